"""The ``infer.py`` command: stylize image files with AdaIN.

``main(argv)`` parses flags, loads the weights once and stylizes every
(content, style) pair: one pair for two files, every content x every style
when ``--content`` and/or ``--style`` is a directory (its image files,
recursively), written as ``<content>_stylized_<style>.png``. The runtime
controls (style mixing, masks, colour preservation, tiling, video, batching)
are in ``adain_jax.cli.jobs_cli`` / ``adain_jax.cli.jobs``.

Errors are reported as one line ``error: ...`` on stderr, no traceback: exit
code 2 for bad flags, 1 for anything that fails while running (missing or
bad image or weight files, downloads).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import jax

from adain_jax.cli import jobs_cli
from adain_jax.weights.download import DownloadError
from adain_jax.weights.params import load_params

EXIT_RUNTIME = 1
EXIT_USAGE = 2
DEFAULT_SIZE = 512


UsageError = jobs_cli.UsageError  # bad command-line flags (exit code 2)


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
        help="content image or video, or a directory of images (recursive; every content)",
    )
    parser.add_argument(
        "--style",
        required=True,
        metavar="PATH",
        help="style image, a directory of them (every style), or a comma list a.jpg,b.jpg "
        "of styles to mix (--style-weights) or to place by --mask",
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
    jobs_cli.add_arguments(parser)
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


def run(args: argparse.Namespace) -> int:
    """Stylize every planned pair with the runtime controls (``adain_jax.cli.jobs_cli``)."""
    return jobs_cli.run(
        args,
        lambda: load_params(args.weights or args.checkpoint, vgg=args.vgg, decoder=args.decoder),
    )


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
