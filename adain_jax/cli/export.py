"""``adain-jax export``: stylize as a file that runs without this package.

    adain-jax export --format stablehlo --output adain.jaxexport
    adain-jax export --format onnx --output adain.onnx

Both hold ``adain_jax.inference.export.portable_stylize`` with any batch N and any H, W, Hs, Ws >=
9, the weights baked in. ``stablehlo``: a serialized ``jax.export.Exported`` with symbolic sizes;
load it with ``jax.export.deserialize``. ``onnx``: via ``jax2onnx``, dynamic sizes. Exit status: 0
written, 2 bad flags, 1 a weight file or the converter failed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

# Light modules only: the flags are checked before JAX is imported.
from adain_jax.cli import compile_cache, exits, helptext
from adain_jax.cli.weight_flags import add_weight_flags, load_weights, weight_inputs
from adain_jax.io.messages import EXIT_RUNTIME, UsageError, one_line, path_flag


def build_parser(prog: str = "adain-jax export") -> argparse.ArgumentParser:
    """The export flags."""
    parser = helptext.parser(
        prog, "Export stylize (content, style, alpha) -> image with the weights baked in."
    )
    add = parser.add_argument
    add("--format", required=True, choices=("stablehlo", "onnx"), help="artifact format")
    add("--output", type=path_flag, required=True, metavar="FILE", help="file to write")
    add_weight_flags(parser)
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str = "adain-jax export") -> int:
    """Run the command; returns the exit status (``exits.run``)."""
    args = build_parser(prog).parse_args(argv)
    return exits.run(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    from adain_jax.io.images import Protected

    out = Path(args.output)
    if not out.parent.is_dir():
        raise UsageError(f"--output {out}: directory {out.parent} does not exist")
    if out.is_dir():
        raise UsageError(f"--output {out}: is a directory")
    if out in Protected(weight_inputs(args)):
        raise UsageError(f"--output {out}: is an input weight file; refusing to overwrite it")
    compile_cache.enable()
    from adain_jax.inference import export
    from adain_jax.io.files import atomic_path

    params = load_weights(args)
    try:
        with atomic_path(out) as tmp:
            convert = export.export_stablehlo if args.format == "stablehlo" else export.export_onnx
            took = "about a minute on a 2-core CPU" if args.format == "onnx" else "seconds"
            print(f"exporting {args.format} to {out} ({took})...", file=sys.stderr, flush=True)
            Path(tmp).write_bytes(convert(params))
    except ImportError as e:
        return exits.fail(f"{e} (pip install 'adain-jax[export]')", EXIT_RUNTIME)
    except Exception as e:  # the converter's own errors: one line, named
        reason = f"{type(e).__name__}: {one_line(e, 300)}"
        return exits.fail(f"{args.format} export failed: {reason}", EXIT_RUNTIME)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB)")
    return 0
