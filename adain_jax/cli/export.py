"""``adain-jax export`` / ``python -m adain_jax.export``: stylize as a file that runs without
this package.

    python -m adain_jax.export --format stablehlo --output adain.jaxexport
    python -m adain_jax.export --format onnx --output adain.onnx --size 512x512 --batch 1

``stablehlo``: a serialized ``jax.export.Exported`` with symbolic sizes (any
batch N, any H, W, Hs, Ws >= 9); load it with ``jax.export.deserialize``.
``onnx``: via ``jax2onnx`` with fixed sizes (``--batch``, ``--size``,
``--style-size``): jax2onnx 0.17 fails on symbolic sizes here (docs/deploy.md).
The weights are baked in.

Exit status: 0 written, 2 bad flags, 1 a weight file or the converter failed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from adain_jax.cli.weight_flags import add_weight_flags, load_weights
from adain_jax.inference import export
from adain_jax.io.files import atomic_path
from adain_jax.weights.download import DownloadError

EXIT_USAGE, EXIT_RUNTIME = 2, 1


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not HxW (e.g. 512x512)") from None
    if min(h, w) < export.MIN_SIDE:
        raise argparse.ArgumentTypeError(f"{text}: each side must be >= {export.MIN_SIDE} px")
    return h, w


def build_parser(prog: str = "python -m adain_jax.export") -> argparse.ArgumentParser:
    """The export flags."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Export stylize (content, style, alpha) -> image with the weights baked in.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--format", required=True, choices=("stablehlo", "onnx"), help="artifact format")
    add("--output", required=True, metavar="FILE", help="file to write")
    add("--size", type=_size, default=(512, 512), help="onnx only: content HxW")
    add("--style-size", type=_size, default=(512, 512), help="onnx only: style HxW")
    add("--batch", type=int, default=1, help="onnx only: contents per call")
    add_weight_flags(parser)
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Run the command; returns the exit status."""
    args = build_parser(*([prog] if prog else [])).parse_args(argv)
    out = Path(args.output)
    if not out.parent.is_dir():
        print(f"error: --output {out}: directory {out.parent} does not exist", file=sys.stderr)
        return EXIT_USAGE
    try:
        params = load_weights(args)
    except (OSError, ValueError, DownloadError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return EXIT_RUNTIME
    try:
        with atomic_path(out) as tmp:
            if args.format == "stablehlo":
                Path(tmp).write_bytes(export.export_stablehlo(params))
            else:
                Path(tmp).write_bytes(
                    export.export_onnx(params, args.size, args.style_size, args.batch)
                )
    except ImportError as e:
        print(f"error: {e} (pip install 'adain-jax[export]')", file=sys.stderr)
        return EXIT_RUNTIME
    except Exception as e:  # the converter's own errors: one line, named
        print(f"error: {args.format} export failed: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_RUNTIME
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
