"""``adain-jax convert`` / ``python -m adain_jax.convert``: .pth weights -> .safetensors.

Exit status: 0 done, 2 bad flags, 1 a missing or unreadable weight file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from adain_jax.weights import pretrained
from adain_jax.weights.convert import WeightsError, convert
from adain_jax.weights.torch_pickle import TorchFileError


def build_parser(prog: str = "python -m adain_jax.convert") -> argparse.ArgumentParser:
    """The convert flags; the epilog lists the published files and their sha256."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Convert PyTorch VGG-19 / AdaIN decoder weights to adain-jax's format.",
        epilog=pretrained.download_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--vgg", help="torchvision vgg19 .pth or the port's vgg_normalised.pth")
    parser.add_argument("--decoder", help="the PyTorch port's decoder.pth (or one it trained)")
    parser.add_argument("--out", required=True, help="output directory")
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Run the command; returns the exit status."""
    parser = build_parser(*([prog] if prog else []))
    args = parser.parse_args(argv)
    if args.vgg is None and args.decoder is None:
        parser.error("give --vgg and/or --decoder")
    try:
        for path in convert(args.out, args.vgg, args.decoder):
            print(f"wrote {path}")
    except (OSError, TorchFileError, WeightsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
