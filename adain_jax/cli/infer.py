"""The ``infer.py`` command (``adain-jax stylize``): all its flags, their validation, ``main``.

``main(argv)`` expands ``--content``/``--style``/``--output`` into pairs (``inference.paths``: one
pair for two files; every content x every style when either is a directory, its image files
recursively, written as ``<content>_stylized_<style>.png``), validates the runtime controls into
``JobOptions``, plans the job once (``inference.plan``), loads the weights and runs it
(``inference.run``). Errors are one line ``error: ...`` on stderr, no traceback (``cli.exits``):
exit 2 for bad flags, 1 for a failure while running (bad image or weight files, downloads).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

# Only light modules here: a bad flag is reported before JAX is imported (``run``
# imports the pipeline once the flags are checked).
from adain_jax.cli import compile_cache, exits, helptext
from adain_jax.cli.weight_flags import add_weight_flags, load_weights
from adain_jax.inference.names import IMAGE_EXTS, NEVER_TILE, PRESERVE_MODES
from adain_jax.inference.temporal_options import CHOICES as TEMPORAL_CHOICES
from adain_jax.inference.temporal_options import DEFAULT_MODE as TEMPORAL_DEFAULT
from adain_jax.inference.temporal_options import parse_temporal
from adain_jax.io.messages import UsageError, path_flag, shown_path
from adain_jax.nn.names import DTYPE_NAMES, MIN_IMAGE_SIZE, MIN_TILE, check_style_weights

DEFAULT_SIZE = 512

__all__ = ["NEVER_TILE", "UsageError", "build_parser", "main", "parse_args", "run"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        raise UsageError(message)


def build_parser(prog: str = "infer.py") -> argparse.ArgumentParser:
    """The ``infer.py`` argument parser (see README, "Stylize: infer.py")."""
    parser = _Parser(
        prog=prog,
        formatter_class=helptext.HelpFormatter,
        description="AdaIN style transfer (Huang & Belongie, ICCV 2017) of image files.",
        epilog="Outputs that already exist are skipped unless --overwrite, for one pair as "
        "for directories. Exit status: 0 done, 1 a failure while running (a bad image or "
        "weight file, a failed download), 2 bad flags, 130 interrupted. Compiled code is "
        f"cached in $ADAIN_JAX_CACHE/xla ({compile_cache.CACHE_ENV}=off: no cache).",
    )
    add = parser.add_argument
    add(
        "--content",
        type=path_flag,
        required=True,
        metavar="PATH",
        help="content image or video, or a directory of them (recursive; every content)",
    )
    add(
        "--style",
        type=path_flag,
        required=True,
        metavar="PATH",
        help="style image, a directory of them (every style), or a comma list a.jpg,b.jpg "
        "of styles to mix (--style-weights) or to place by --mask",
    )
    add(
        "--output",
        type=path_flag,
        metavar="PATH",
        help="output file (.png, .jpg, .jpeg) or directory; default: "
        "<content>_stylized_<style>.png in the current directory (a mix adds its "
        "weights: _w1-3)",
    )
    add(
        "--alpha",
        type=float,
        metavar="A",
        default=1.0,
        help="content-style trade-off in [0, 1]; 1 = full style (default 1)",
    )
    for image in ("content", "style"):
        add(
            f"--{image}-size",
            type=int,
            default=DEFAULT_SIZE,
            metavar="N",
            help=f"resize the {image} so its shorter side is N px; 0 keeps it "
            f"(default {DEFAULT_SIZE})",
        )
    add(
        "--crop",
        action="store_true",
        help="centre-crop content and style to N x N after resizing (N = 0: the shorter side)",
    )
    add(
        "--save-ext",
        choices=IMAGE_EXTS,
        default=".png",
        help="extension of default-named image outputs (directory jobs, --output DIR/); "
        ".jpg/.jpeg: JPEG at quality 95 (default .png)",
    )
    add_weight_flags(parser)  # --vgg, --decoder, --weights | --checkpoint, --version
    add(
        "--dtype",
        choices=DTYPE_NAMES,
        default="float32",
        help="compute dtype of the convolutions (default float32)",
    )
    g = parser.add_argument_group("runtime controls")
    g.add_argument(
        "--style-weights",
        metavar="W1,W2,...",
        help="style interpolation: one weight >= 0 per style of a comma list given to "
        "--style (normalised to sum 1; default equal weights)",
    )
    g.add_argument(
        "--preserve-color",
        nargs="?",
        const="coral",
        choices=PRESERVE_MODES,
        help="keep the content's colours: coral (default: the style's RGB mean and "
        "covariance matched to the content's) or luminance (stylize luminance, keep "
        "the content's chrominance)",
    )
    g.add_argument(
        "--mask",
        type=path_flag,
        metavar="PATH",
        help="spatial control: with two styles, style 1 goes to the mask's white and "
        "style 2 to its black; with K styles, a mask of K flat colours, brightest -> "
        "style 1",
    )
    g.add_argument(
        "--max-tile",
        type=int,
        metavar="PX",
        help="process images larger than PX per side in overlapping tiles (bounded "
        f"memory, same result; >= {MIN_TILE}); default: from the available "
        "memory; 0: never tile",
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
        help="replace outputs that already exist (default: skip them, for one pair as for "
        "directories)",
    )
    g.add_argument(
        "--temporal",
        metavar="MODE",
        default=TEMPORAL_DEFAULT,
        help=f"video without flicker: {TEMPORAL_CHOICES}; flow blends in the previous "
        "output frame warped by the optical flow (needs opencv-python-headless; the one "
        "that helps, docs/video.md), stats smooths the content statistics over frames "
        f"(default {TEMPORAL_DEFAULT})",
    )
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser  # fmt: skip


_NEGATIVE_VALUE = re.compile(r"-([\d.]|inf|nan)", re.IGNORECASE)  # float() reads -inf, -nan


def _attach_negative_values(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """``--flag -1,2`` -> ``--flag=-1,2`` for flags taking one value: argparse takes a value
    starting with ``-`` for an option unless it is a plain number (``--style-weights -1,2``,
    ``--alpha -inf``)."""
    one_value = {s for a in parser._actions if a.nargs is None for s in a.option_strings}
    out = []
    for arg in argv:
        if out and out[-1] in one_value and _NEGATIVE_VALUE.match(arg):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def parse_args(argv: Sequence[str] | None, prog: str = "infer.py") -> argparse.Namespace:
    """Parse and check every flag that needs no file (no JAX import); raise ``UsageError``
    with one line."""
    parser = build_parser(prog)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(_attach_negative_values(parser, argv))
    if not 0.0 <= args.alpha <= 1.0:  # also rejects nan
        raise UsageError(f"--alpha must be in [0, 1], got {args.alpha}")
    for flag in ("content_size", "style_size"):  # a shorter side under the network's minimum
        if getattr(args, flag) < 0 or 0 < getattr(args, flag) < MIN_IMAGE_SIZE:
            raise UsageError(
                f"--{flag.replace('_', '-')} must be 0 (keep the size) or at least "
                f"{MIN_IMAGE_SIZE} px, got {getattr(args, flag)}"
            )
    if args.mask is not None and args.style_weights is not None:
        raise UsageError("--mask and --style-weights cannot be combined (a mask picks one style)")
    if args.max_tile not in (None, 0) and args.max_tile < MIN_TILE:
        raise UsageError(f"--max-tile must be 0 or at least {MIN_TILE}, got {args.max_tile}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.bucket < 0 or (args.bucket and args.bucket % 8):
        raise UsageError(f"--bucket must be 0 or a multiple of 8, got {args.bucket}")
    args.weight_values = None  # checked once the styles are known: ``check_style_flags``
    if args.style_weights is not None:
        try:
            args.weight_values = tuple(float(w) for w in args.style_weights.split(","))
        except ValueError:
            raise UsageError(
                f"--style-weights {args.style_weights!r}: not a comma list of numbers"
            ) from None
    try:
        args.temporal_options = parse_temporal(args.temporal)  # a TemporalOptions
    except ValueError as e:
        raise UsageError(str(e)) from None
    return args


def check_style_flags(args: argparse.Namespace, num_styles: int) -> None:
    """``UsageError`` for ``--mask`` or ``--style-weights`` that do not fit the styles
    (``num_styles``: styles per style set, known once ``--style`` is expanded); no JAX."""
    if args.mask is not None and num_styles < 2:
        raise UsageError("--mask needs two or more styles: --style a.jpg,b.jpg")
    # --style-weights: K numbers, the library's rule (>= 0, positive sum, in float32), K the
    # styles of the comma list --style (a directory takes none).
    weights = args.weight_values
    if weights is not None:
        try:
            check_style_weights(weights, len(weights))
        except ValueError as e:  # the library's rule, the flag's text
            rule = str(e).split(", got ")[0].removeprefix("style weights ")
            raise UsageError(f"--style-weights {rule}, got {args.style_weights}") from None
        if Path(args.style).is_dir():
            raise UsageError(
                f"--style-weights mixes the styles of a comma list (--style a.jpg,b.jpg); "
                f"--style {args.style} is a directory, whose images are used one at a time"
            )
        if len(weights) != num_styles:
            raise UsageError(
                f"--style-weights has {len(weights)} values but --style gives {num_styles} "
                f"style{'s' if num_styles != 1 else ''} to mix"
            )


def options_from_args(args: argparse.Namespace, num_styles: int):
    """Validate the runtime-control flags into ``JobOptions`` (``check_style_flags``)."""
    from adain_jax.inference.plan import JobOptions

    check_style_flags(args, num_styles)
    return JobOptions(
        alpha=args.alpha,
        content_size=args.content_size,
        style_size=args.style_size,
        crop=args.crop,
        dtype=args.dtype,
        style_weights=args.weight_values,
        preserve_color=args.preserve_color,
        mask=Path(args.mask) if args.mask else None,
        max_tile=NEVER_TILE if args.max_tile == 0 else args.max_tile,
        batch_size=args.batch_size,
        bucket=args.bucket,
        overwrite=args.overwrite,
        progress=not args.quiet,
        video_batch=args.batch_size,
        temporal=args.temporal_options,
    )


def check_variant(params: dict, opts, num_styles: int) -> None:
    """``UsageError`` (one line) for a control the weights' decoder variant cannot do: the
    concat variant (Enc-Concat-Dec) has no alpha, mixing, mask or smoothed statistics."""
    from adain_jax.nn.models import decoder_variant

    variant = decoder_variant(params["decoder"])
    if variant.fusion != "concat":
        return
    why = f"does not apply to these weights: their decoder is {variant.describe()}"
    if opts.temporal.stats:
        raise UsageError(f"--temporal stats {why} (concatenated features, no AdaIN statistics)")
    used = f"--alpha {opts.alpha}" if opts.alpha != 1.0 else None
    if used := used or ("several styles (mixing, --mask)" if num_styles > 1 else None):
        raise UsageError(
            f"{used} {why} (concatenated features, no AdaIN); use one style at alpha 1"
        )


def _check_smoothed_stats(plan, clip) -> None:
    """``UsageError`` for a ``--temporal stats`` job whose frames cannot run as batches
    (``Plan.batches_frames``): colour preservation, or frames over ``--max-tile``."""
    if plan.color is not None:
        raise UsageError(f"--temporal stats cannot be combined with --preserve-color {plan.color}")
    if clip is not None:
        from adain_jax.io.video import output_size

        width, height = output_size(clip.width, clip.height, plan.content_size)
        if not plan.batches_frames(height, width):
            raise UsageError(
                f"--temporal stats needs frames within --max-tile ({plan.max_tile} px): these "
                f"are {width}x{height}; lower --content-size or raise --max-tile"
            )


def run(args: argparse.Namespace) -> int:
    """Expand, validate, plan, load the weights (once every input is checked), run;
    returns the exit code."""
    from adain_jax.inference import paths  # numpy and PIL, no JAX yet
    from adain_jax.io import images as image_io
    from adain_jax.io import video

    say = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    pairs = paths.plan_pairs(
        args.content, args.style, args.output, log=say,
        weights=args.weight_values, ext=args.save_ext, protect=[args.mask] if args.mask else [],
    )  # fmt: skip
    first, num_styles = pairs[0], len(pairs[0].styles)
    check_style_flags(args, num_styles)
    # An output that exists is skipped once every flag (and the mask) is checked.
    skip = len(pairs) == 1 and first.output.exists() and not args.overwrite
    clip = None
    one_content = all(p.content == first.content for p in pairs)  # (a directory of styles)
    if args.crop and (clips := [p.content for p in pairs if video.is_video(p.content)]):
        raise UsageError(
            f"--crop applies to images; video frames keep their aspect ratio "
            f"({shown_path(clips[0])})"
        )
    if video.is_video(first.content):
        if not skip and one_content:  # a directory's bad video is skipped like a bad image
            clip = video.probe(first.content)  # a clear error if PyAV is missing or the file is bad
            video.check_frames(first.content, clip, args.content_size, MIN_IMAGE_SIZE)
    elif not skip and len(pairs) == 1:
        # Fail fast on a bad image, before the weights (which may download).
        image_io.load_image(first.content, args.content_size, args.crop, min_size=MIN_IMAGE_SIZE)
    if not skip and len(pairs) == 1:
        for s in first.styles:
            image_io.load_image(s, args.style_size, args.crop, min_size=MIN_IMAGE_SIZE)
    compile_cache.enable()
    from adain_jax.inference.plan import make_plan
    from adain_jax.inference.run import load_mask, run_job

    opts = options_from_args(args, num_styles)
    labels = load_mask(opts.mask, num_styles) if opts.mask else None
    plan = make_plan(opts, pairs, labels)
    if opts.temporal.active and not any(video.is_video(p.content) for p in pairs):
        raise UsageError(f"--temporal {args.temporal} applies to video contents only")
    if opts.temporal.stats:
        _check_smoothed_stats(plan, clip)
    if opts.temporal.flow:
        from adain_jax.inference.temporal import opencv

        opencv()  # a one-line error naming the extra, before the weights load
    if skip:
        print(f"skipped {first.output}: exists (--overwrite replaces it)")
        return 0
    loaded = load_weights(args)
    check_variant(loaded, opts, num_styles)
    summary = run_job(loaded, plan)
    if len(pairs) > 1:
        print(
            f"done: {len(summary.written)} written, {len(summary.skipped)} skipped (already "
            f"exist; --overwrite redoes them), {len(summary.failed)} failed"
        )
    return 1 if summary.failed else 0


def main(argv: Sequence[str] | None = None, *, prog: str = "infer.py") -> int:
    """Run ``infer.py``; returns the exit code (0 ok, 1 runtime error, 2 bad flags)."""
    hint = "try a smaller --content-size / --style-size"
    return exits.run(lambda: run(parse_args(argv, prog)), hint)
