"""``adain-jax optimize``: the optimization baseline (Gatys et al.; the paper's section 7.1).

    adain-jax optimize --content c.jpg --style s.jpg --output out.png --steps 500
    adain-jax optimize ... --optimizer adam --init noise --objective adain --log l.tsv

Optimizes the output image itself against the VGG loss network (``experiments.optimize``). Exit
status: 0 done, 1 unreadable images or weights, 2 bad flags.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

# Light modules only: the flags are checked before JAX is imported.
from adain_jax.cli import compile_cache, exits, helptext
from adain_jax.cli.weight_flags import add_version_flag
from adain_jax.experiments.choices import INITS, OBJECTIVES, OPTIMIZERS
from adain_jax.io.messages import UsageError, path_flag
from adain_jax.nn.names import DTYPE_NAMES, MIN_IMAGE_SIZE


def build_parser(prog: str = "adain-jax optimize") -> argparse.ArgumentParser:
    """The flags (``--help`` shows the defaults)."""
    p = helptext.parser(
        prog,
        "Optimize an image against the VGG loss network (Gatys et al.), the slow baseline of "
        "the AdaIN paper's section 7.1.",
    )
    p.add_argument("--content", type=path_flag, required=True, metavar="FILE", help="content image")
    p.add_argument("--style", type=path_flag, required=True, metavar="FILE", help="style image")
    p.add_argument(
        "--output",
        type=path_flag,
        required=True,
        metavar="FILE",
        help="output image (.png or .jpg)",
    )
    p.add_argument("--steps", type=int, default=500, help="optimizer steps")
    p.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        default="lbfgs",
        help="lbfgs (Gatys et al.'s choice) or adam (--lr)",
    )
    p.add_argument("--lr", type=float, default=0.05, help="Adam's learning rate (logit space)")
    p.add_argument("--init", choices=INITS, default="content", help="start image")
    p.add_argument(
        "--objective",
        choices=OBJECTIVES,
        default="gatys",
        help="gatys: relu4_1 content + Gram style loss; adain: the paper's loss",
    )
    p.add_argument(
        "--vgg",
        type=path_flag,
        metavar="FILE",
        help="loss network weights, .pth or .safetensors (default: the pretrained "
        "vgg_normalised, downloaded once; the built-in VGG-16 when offline)",
    )
    p.add_argument("--content-size", type=int, default=512, help="shorter side (0: keep)")
    p.add_argument("--style-size", type=int, default=512, help="shorter side (0: keep)")
    p.add_argument("--content-weight", type=float, default=1.0, help="weight of the content loss")
    p.add_argument("--style-weight", type=float, default=10.0, help="weight of the style loss")
    p.add_argument("--seed", type=int, default=0, help="noise init")
    p.add_argument(
        "--dtype", choices=DTYPE_NAMES, default="float32", help="compute dtype of the convolutions"
    )
    p.add_argument(
        "--log",
        type=path_flag,
        metavar="FILE",
        help="write 'step total content style' per step to this file",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_version_flag(p)
    return p


def main(argv: Sequence[str] | None = None, *, prog: str = "adain-jax optimize") -> int:
    """Parse, load, optimize, write; returns the exit status (``exits.run``)."""
    args = build_parser(prog).parse_args(argv)
    return exits.run(lambda: _run(args), "try a smaller --content-size / --style-size")


def _run(args: argparse.Namespace) -> int:
    if args.steps < 1:
        raise UsageError(f"--steps must be >= 1, got {args.steps}")
    if args.steps >= 2**31:  # an int32 on the device
        raise UsageError(f"--steps must be below 2**31, got {args.steps}")
    for flag in ("content_size", "style_size", "content_weight", "style_weight", "lr"):
        value, name = getattr(args, flag), "--" + flag.replace("_", "-")
        if not value >= 0:  # also rejects nan
            raise UsageError(f"{name} must be >= 0, got {value}")
        if value == math.inf:
            raise UsageError(f"{name} must be finite, got {value}")
    if args.log is not None and os.path.isdir(args.log):
        raise UsageError(f"--log {args.log}: is a directory, expected a file")
    if args.vgg is not None and not args.vgg.endswith((".pth", ".pt", ".safetensors")):
        raise UsageError(f"--vgg {args.vgg}: expected a .pth or .safetensors file")
    from adain_jax.io import images as image_io  # no JAX

    inputs = [args.content, args.style, *([args.vgg] if args.vgg else [])]
    image_io.check_output_path(args.output, inputs)
    if args.log is not None and Path(args.log) in image_io.Protected([*inputs, args.output]):
        raise UsageError(f"--log {args.log}: is an input or the --output file; refusing that")
    compile_cache.enable()
    import numpy as np
    from tqdm import tqdm

    from adain_jax.experiments import optimize as opt_lib
    from adain_jax.io import files
    from adain_jax.nn.models import DTYPES
    from adain_jax.weights import convert, pretrained
    from adain_jax.weights.download import DownloadError

    content = image_io.load_image(args.content, args.content_size, min_size=MIN_IMAGE_SIZE)
    style = image_io.load_image(args.style, args.style_size, min_size=MIN_IMAGE_SIZE)
    try:
        how = "for the authors' encoder, pass --vgg vgg_normalised.pth"
        encoder = convert.load_network(args.vgg or pretrained.adain_or_builtin(how)[0], "encoder")
    except DownloadError as e:
        hint = "to run offline, pass a local encoder: --vgg vgg_normalised.pth"
        raise e.with_hint(hint) from None
    settings = opt_lib.Settings(
        args.objective, args.optimizer, args.init, args.content_weight, args.style_weight, args.lr
    )
    bar = tqdm(total=args.steps, disable=args.quiet, unit="step", file=sys.stderr)

    def progress(done: int, log, _image) -> None:
        total, lc, ls = np.asarray(log[-1])
        bar.set_postfix(total=f"{total:.4g}", content=f"{lc:.4g}", style=f"{ls:.4g}")
        bar.update(done - bar.n)

    start = time.perf_counter()
    image, log = opt_lib.optimize(
        encoder,
        content,
        style,
        steps=args.steps,
        settings=settings,
        seed=args.seed,
        dtype=DTYPES[args.dtype],
        chunk=max(1, args.steps // 50),
        on_chunk=progress,
    )
    bar.close()
    log = np.asarray(log)
    image_io.save_image(args.output, np.asarray(image), [args.content, args.style])
    if args.log:
        with files.atomic_open(args.log) as f:
            f.write("step\ttotal\tcontent\tstyle\n")
            for i, (t, lc, ls) in enumerate(log):
                f.write(f"{i}\t{t:.6g}\t{lc:.6g}\t{ls:.6g}\n")
    print(
        f"wrote {args.output} ({args.steps} {args.optimizer} steps, "
        f"{time.perf_counter() - start:.1f} s; loss {log[0, 0]:.4g} -> {log[-1, 0]:.4g})"
    )
    return 0
