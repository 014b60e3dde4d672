"""``infer.py``'s runtime-control flags and job planning (see README, "Runtime controls").

``add_arguments`` adds the flags to the ``infer.py`` parser,
``options_from_args`` validates them into ``jobs.JobOptions``, ``plan_pairs``
expands ``--content``/``--style``/``--output`` into ``jobs.Pair``s and
``run`` stylizes them.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from collections.abc import Callable
from pathlib import Path

from adain_jax.cli import jobs
from adain_jax.controls import tiling
from adain_jax.io import images as image_io
from adain_jax.io import video

DEFAULT_EXT = ".png"


class UsageError(Exception):
    """Bad command-line flags (exit code 2)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the runtime-control flags to the ``infer.py`` parser."""
    g = parser.add_argument_group("runtime controls")
    g.add_argument(
        "--style-weights",
        metavar="W1,W2,...",
        help="style interpolation: one weight >= 0 per style of a comma list given to --style "
        "(normalised to sum 1; default equal weights)",
    )
    g.add_argument(
        "--preserve-color",
        nargs="?",
        const="coral",
        choices=jobs.PRESERVE_MODES,
        help="keep the content's colours: coral (default: the style's RGB mean and covariance "
        "matched to the content's) or luminance (stylize luminance, keep the content's "
        "chrominance)",
    )
    g.add_argument(
        "--mask",
        metavar="PATH",
        help="spatial control: with two styles, style 1 goes to the mask's white and style 2 "
        "to its black; with K styles, a mask of K flat colours, brightest -> style 1",
    )
    g.add_argument(
        "--max-tile",
        type=int,
        metavar="PX",
        help="process images larger than PX per side in overlapping tiles (bounded memory, "
        f"same result; >= {tiling.MIN_TILE}); default: from the available memory; 0: never tile",
    )
    g.add_argument(
        "--batch-size",
        type=int,
        default=4,
        metavar="N",
        help="contents (or video frames) per compiled call (default 4)",
    )
    g.add_argument(
        "--bucket",
        type=int,
        default=64,
        metavar="PX",
        help="batch images of mixed sizes by padding to multiples of PX (exact; "
        "0: one compilation per size; default 64)",
    )
    g.add_argument(
        "--overwrite",
        action="store_true",
        help="redo outputs that already exist (default: skip them)",
    )
    g.add_argument("--quiet", action="store_true", help="no progress bars")


def parse_style_sets(style: str) -> list[tuple[Path, ...]]:
    """``--style``: a file (one style), a directory (each image one style) or a comma list
    (one style set of K styles)."""
    path = Path(style)
    if path.is_dir():
        return [(p,) for p in image_io.find_images(path)]
    if path.exists():
        return [(path,)]
    parts = [Path(s.strip()) for s in style.split(",") if s.strip()]
    if len(parts) < 2:
        raise image_io.ImageError(f"{path}: no such file or directory (--style)")
    for p in parts:
        if not p.is_file():
            raise image_io.ImageError(f"{p}: no such file (--style list)")
    return [tuple(parts)]


def parse_weights(text: str | None, num_styles: int) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        weights = tuple(float(w) for w in text.split(","))
    except ValueError:
        raise UsageError(f"--style-weights {text!r}: not a comma list of numbers") from None
    if len(weights) != num_styles:
        raise UsageError(
            f"--style-weights has {len(weights)} values but --style gives {num_styles} styles"
        )
    if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise UsageError(f"--style-weights must be >= 0 with a positive sum, got {text}")
    return weights


def options_from_args(args: argparse.Namespace, num_styles: int) -> jobs.JobOptions:
    """Validate the flags into ``JobOptions`` (``num_styles``: styles per style set)."""
    if args.mask is not None and args.style_weights is not None:
        raise UsageError("--mask and --style-weights cannot be combined (a mask picks one style)")
    if args.mask is not None and num_styles < 2:
        raise UsageError("--mask needs two or more styles: --style a.jpg,b.jpg")
    max_tile = args.max_tile
    if max_tile is not None and max_tile != 0 and max_tile < tiling.MIN_TILE:
        raise UsageError(f"--max-tile must be 0 or at least {tiling.MIN_TILE}, got {max_tile}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.bucket < 0 or (args.bucket and args.bucket % 8):
        raise UsageError(f"--bucket must be 0 or a multiple of 8, got {args.bucket}")
    return jobs.JobOptions(
        alpha=args.alpha,
        content_size=args.content_size,
        style_size=args.style_size,
        crop=args.crop,
        dtype=args.dtype,
        style_weights=parse_weights(args.style_weights, num_styles),
        preserve_color=args.preserve_color,
        mask=Path(args.mask) if args.mask else None,
        max_tile=(1 << 30) if max_tile == 0 else max_tile,
        batch_size=args.batch_size,
        bucket=args.bucket,
        overwrite=args.overwrite,
        progress=not args.quiet,
        video_batch=args.batch_size,
    )


def _ext_for(content: Path) -> str:
    if video.is_video(content):
        suffix = content.suffix.lower()
        return suffix if suffix in video.OUTPUT_CODECS else ".mp4"
    return DEFAULT_EXT


def plan_pairs(content: str, style: str, output: str | None) -> list[jobs.Pair]:
    """Every (content, style set) pair and its output path.

    One content file and one style set: ``output`` is the output file, or a
    directory (existing, or ending in ``/``) for the default name
    ``<content>_stylized_<style>.png`` (the content's container for videos).
    A directory of contents (recursive) and/or of styles: every pair into the
    directory ``output`` (default: the current one), keeping the contents'
    sub-directories.
    """
    content_path = Path(content)
    if not content_path.exists():
        raise image_io.ImageError(f"{content_path}: no such file or directory (--content)")
    style_sets = parse_style_sets(style)
    contents = image_io.find_images(content_path) if content_path.is_dir() else [content_path]
    many = content_path.is_dir() or Path(style).is_dir()
    out_is_dir = output is not None and (
        many or Path(output).is_dir() or output.endswith(("/", os.sep))
    )
    if many and output is not None and Path(output).suffix.lower() in image_io.WRITE_FORMATS:
        raise UsageError(
            f"--output {output}: with a directory of contents or styles, --output is a directory"
        )
    out_dir = Path(output) if out_is_dir else Path(".")
    if content_path.is_dir() and out_is_dir:
        # An output directory inside the content tree: its files are outputs, not contents.
        out_abs = out_dir.resolve()
        contents = [c for c in contents if out_abs not in c.resolve().parents]
        if not contents:
            raise image_io.ImageError(f"{content_path}: no image files outside --output")
    pairs = []
    for c in contents:
        sub = c.parent.relative_to(content_path) if content_path.is_dir() else Path()
        for styles in style_sets:
            if output is not None and not out_is_dir:
                target = Path(output)
            else:
                target = out_dir / sub / jobs.output_name(c, styles, _ext_for(c))
            pairs.append(jobs.Pair(c, styles, target))
    inputs = {*contents, *(s for st in style_sets for s in st)}
    for pair in pairs:
        if video.is_video(pair.content):
            if pair.output.suffix.lower() not in video.OUTPUT_CODECS:
                known = ", ".join(sorted(video.OUTPUT_CODECS))
                raise UsageError(f"--output {pair.output}: a video output needs one of {known}")
            if pair.output.resolve() in {p.resolve() for p in inputs}:
                raise image_io.ImageError(f"{pair.output}: is an input file; refusing to overwrite")
        else:
            image_io.check_output_path(pair.output, inputs)
    return pairs


def run(args: argparse.Namespace, load_params: Callable[[], dict]) -> int:
    """Plan, validate, stylize; one line per problem on stderr. Returns the exit code."""
    pairs = plan_pairs(args.content, args.style, args.output)
    num_styles = len(pairs[0].styles)
    opts = options_from_args(args, num_styles)
    if len(pairs) == 1:  # an explicit single output is always (re)written
        opts = dataclasses.replace(opts, overwrite=True)
    labels = jobs.load_mask(opts.mask, num_styles) if opts.mask else None
    if len(pairs) == 1 and not video.is_video(pairs[0].content):
        # Fail fast on a bad image, before the weights (which may download).
        image_io.load_image(
            pairs[0].content, opts.content_size, opts.crop, min_size=jobs.MIN_IMAGE_SIZE
        )
        for s in pairs[0].styles:
            image_io.load_image(s, opts.style_size, opts.crop, min_size=jobs.MIN_IMAGE_SIZE)
    if video.is_video(pairs[0].content):
        video.probe(pairs[0].content)  # a clear error if PyAV is missing or the file is bad
    params = load_params()
    summary = jobs.run_pairs(params, pairs, opts, labels)
    if len(pairs) > 1:
        print(
            f"done: {len(summary.written)} written, {len(summary.skipped)} skipped (already "
            f"exist; --overwrite redoes them), {len(summary.failed)} failed"
        )
    return 1 if summary.failed else 0
