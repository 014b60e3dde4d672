"""The ``infer.py`` command: stylize image files with AdaIN.

``main(argv)`` parses flags, loads the weights once and stylizes every
(content, style) pair: one pair for two files, every content x every style
when ``--content`` and/or ``--style`` is a directory (its image files, not
recursive), written as ``<content>_stylized_<style>.png``.

Errors are reported as one line ``error: ...`` on stderr, no traceback: exit
code 2 for bad flags, 1 for anything that fails while running (missing or
bad image or weight files, downloads).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from adain_jax import image_io
from adain_jax.download import DownloadError
from adain_jax.params import load_params
from adain_jax.stylize import stylize

EXIT_RUNTIME = 1
EXIT_USAGE = 2
DEFAULT_SIZE = 512
DEFAULT_EXT = ".png"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")


class UsageError(Exception):
    """Bad command-line flags (exit code 2)."""


@dataclasses.dataclass(frozen=True)
class Options:
    """How each pair is stylized.

    Attributes:
      alpha: content-style trade-off in [0, 1] (1 = full style).
      content_size: shorter side of the content in px after resizing (0 = as is).
      style_size: shorter side of the style in px after resizing (0 = as is).
      crop: centre-crop both to a square after resizing.
      dtype: compute dtype of the convolutions, ``"float32"`` or ``"bfloat16"``.
    """

    alpha: float = 1.0
    content_size: int = DEFAULT_SIZE
    style_size: int = DEFAULT_SIZE
    crop: bool = False
    dtype: str = "float32"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The ``infer.py`` argument parser (see README, "Stylize: infer.py")."""
    parser = _Parser(
        prog="infer.py",
        description="AdaIN style transfer (Huang & Belongie, ICCV 2017) of image files.",
    )
    parser.add_argument(
        "--content",
        required=True,
        metavar="PATH",
        help="content image, or a directory of them (every content)",
    )
    parser.add_argument(
        "--style",
        required=True,
        metavar="PATH",
        help="style image, or a directory of them (every style)",
    )
    parser.add_argument(
        "--output",
        metavar="PATH",
        help="output file (.png, .jpg, .jpeg) or directory; default: "
        "<content>_stylized_<style>.png in the current directory",
    )
    parser.add_argument(
        "--alpha",
        type=float,
        metavar="A",
        default=1.0,
        help="content-style trade-off in [0, 1]; 1 = full style (default 1)",
    )
    parser.add_argument(
        "--content-size",
        type=int,
        default=DEFAULT_SIZE,
        metavar="N",
        help=f"resize the content so its shorter side is N px; 0 keeps it (default {DEFAULT_SIZE})",
    )
    parser.add_argument(
        "--style-size",
        type=int,
        default=DEFAULT_SIZE,
        metavar="N",
        help=f"resize the style so its shorter side is N px; 0 keeps it (default {DEFAULT_SIZE})",
    )
    parser.add_argument(
        "--crop",
        action="store_true",
        help="centre-crop content and style to N x N after resizing (N = 0: the shorter side)",
    )
    parser.add_argument(
        "--vgg",
        metavar="FILE",
        help="encoder weights: the PyTorch port's vgg_normalised.pth, torchvision vgg19 .pth, "
        "or a converted encoder.safetensors (overrides the default / --weights one)",
    )
    parser.add_argument(
        "--decoder",
        metavar="FILE",
        help="decoder weights: decoder.pth or a converted decoder.safetensors "
        "(overrides the default / --weights one)",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--weights", metavar="DIR", help="directory from python -m adain_jax.convert"
    )
    source.add_argument(
        "--checkpoint", metavar="DIR", help="training workdir (train.py): its latest decoder"
    )
    parser.add_argument(
        "--dtype",
        choices=("float32", "bfloat16"),
        default="float32",
        help="compute dtype of the convolutions (default float32)",
    )
    return parser


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse and validate flags; raise ``UsageError`` with one line."""
    args = build_parser().parse_args(argv)
    if not 0.0 <= args.alpha <= 1.0:  # also rejects nan
        raise UsageError(f"--alpha must be in [0, 1], got {args.alpha}")
    for flag in ("content_size", "style_size"):
        if getattr(args, flag) < 0:
            raise UsageError(f"--{flag.replace('_', '-')} must be >= 0, got {getattr(args, flag)}")
    return args


def options_from_args(args: argparse.Namespace) -> Options:
    """The per-pair ``Options`` of parsed flags."""
    return Options(
        alpha=args.alpha,
        content_size=args.content_size,
        style_size=args.style_size,
        crop=args.crop,
        dtype=args.dtype,
    )


def list_images(directory: Path) -> list[Path]:
    """Image files (by extension) directly in ``directory``, sorted; raises if none."""
    files = sorted(
        p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        known = ", ".join(IMAGE_SUFFIXES)
        raise image_io.ImageError(f"{directory}: no image files ({known}) in this directory")
    return files


def output_name(content: Path, style: Path, ext: str = DEFAULT_EXT) -> str:
    """``<content stem>_stylized_<style stem><ext>``, as the authors' tools name outputs."""
    return f"{content.stem}_stylized_{style.stem}{ext}"


def _existing(path: str, flag: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise image_io.ImageError(f"{p}: no such file or directory ({flag})")
    return p


def plan_jobs(content: str, style: str, output: str | None) -> list[tuple[Path, Path, Path]]:
    """``(content file, style file, output file)`` for every pair to stylize.

    Two files: one pair; ``output`` is the output file, or a directory (existing,
    or written with a trailing ``/``) to put the default name in. A directory
    for ``--content`` and/or ``--style``: every pair, ``output`` is a directory
    (default: the current one).
    """
    content_path, style_path = _existing(content, "--content"), _existing(style, "--style")
    contents = list_images(content_path) if content_path.is_dir() else [content_path]
    styles = list_images(style_path) if style_path.is_dir() else [style_path]
    many = content_path.is_dir() or style_path.is_dir()
    out_is_dir = output is not None and (
        Path(output).is_dir() or output.endswith(("/", os.sep)) or many
    )
    if many and output is not None and Path(output).suffix.lower() in image_io.WRITE_FORMATS:
        raise UsageError(
            f"--output {output}: with a directory of contents or styles, --output is a directory"
        )
    out_dir = Path(output) if out_is_dir else Path(".")
    jobs = []
    for c in contents:
        for s in styles:
            if output is not None and not out_is_dir:
                target = Path(output)
            else:
                target = out_dir / output_name(c, s)
            jobs.append((c, s, target))
    inputs = [*contents, *styles]
    for _, _, target in jobs:
        image_io.check_output_path(target, inputs)
    return jobs


def stylize_arrays(
    params: dict, content: np.ndarray, style: np.ndarray, opts: Options
) -> np.ndarray:
    """Stylize float32 RGB ``[H, W, 3]`` content with ``[Hs, Ws, 3]`` style (both in [0, 1]).

    Returns float32 ``[H, W, 3]`` in [0, 1] (NumPy).
    """
    out = stylize(params, content, style, opts.alpha, dtype=jnp.dtype(opts.dtype))
    return np.asarray(out)


def stylize_files(
    params: dict,
    content_path: str | os.PathLike,
    style_path: str | os.PathLike,
    output_path: str | os.PathLike,
    opts: Options,
    inputs: Sequence[str | os.PathLike] = (),
) -> Path:
    """Stylize one content file with one style file and write ``output_path``.

    Args:
      params: from ``adain_jax.load_params``.
      content_path, style_path: image files (see ``adain_jax.image_io``).
      output_path: ``.png``/``.jpg``/``.jpeg`` file; parent created if missing.
      opts: sizes, crop, alpha, dtype.
      inputs: more files that must not be overwritten (the two inputs always are).

    Returns:
      ``output_path``.

    Raises:
      image_io.ImageError: a bad input image or an unwritable output.
    """
    content = image_io.load_image(content_path, opts.content_size, opts.crop)
    style = image_io.load_image(style_path, opts.style_size, opts.crop)
    return image_io.save_image(
        output_path,
        stylize_arrays(params, content, style, opts),
        inputs=[content_path, style_path, *inputs],
    )


def run(args: argparse.Namespace) -> int:
    """Stylize every planned pair; print where each output went."""
    opts = options_from_args(args)
    jobs = plan_jobs(args.content, args.style, args.output)
    inputs = sorted({p for c, s, _ in jobs for p in (c, s)})
    if len(jobs) == 1:
        # Read the images before the weights (which may download), so a bad
        # image fails fast.
        content_path, style_path, target = jobs[0]
        content = image_io.load_image(content_path, opts.content_size, opts.crop)
        style = image_io.load_image(style_path, opts.style_size, opts.crop)
        params = load_params(args.weights or args.checkpoint, vgg=args.vgg, decoder=args.decoder)
        out = stylize_arrays(params, content, style, opts)
        print(f"wrote {image_io.save_image(target, out, inputs=inputs)}")
        return 0
    params = load_params(args.weights or args.checkpoint, vgg=args.vgg, decoder=args.decoder)
    for content_path, style_path, target in jobs:
        path = stylize_files(params, content_path, style_path, target, opts, inputs)
        print(f"wrote {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``infer.py``; returns the exit code (0 ok, 1 runtime error, 2 bad flags)."""
    try:
        args = parse_args(argv)
        return run(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, ValueError, DownloadError) as e:
        # ImageError, WeightsError, TorchFileError, WeightsFormatError are ValueErrors;
        # missing files are OSErrors. Their messages name the file.
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return EXIT_RUNTIME
    except jax.errors.JaxRuntimeError as e:  # e.g. out of device memory
        print(
            f"error: {_one_line(e)[:300]} (try a smaller --content-size / --style-size)",
            file=sys.stderr,
        )
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def _one_line(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    if isinstance(e, OSError) and e.filename and e.strerror:
        text = f"{e.filename}: {e.strerror}"
    return " ".join(text.split())
