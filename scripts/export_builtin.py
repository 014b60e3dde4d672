"""Write a training workdir's latest decoder and its encoder as the built-in weights.

    python scripts/export_builtin.py --checkpoint runs/builtin \\
        --content-dir data/real/content/held --style-dir data/real/style/held

Both networks are stored as float16 when every held-out stylization (at ``--size``)
made with the float16-stored weights stays within 1/255 of the float32 one (max
absolute difference per pixel, outputs clipped to [0, 1]); else as float32. Prints
the difference and the files' sizes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from adain_jax.controls.transfer import stylize
from adain_jax.training import evaluate
from adain_jax.weights import pretrained
from adain_jax.weights import safetensors_io as weights_io
from adain_jax.weights.params import load_params

TOLERANCE = 1 / 255


def _as_float16(tree: dict) -> dict:
    return jax.tree.map(lambda a: jnp.asarray(np.asarray(a, np.float16), jnp.float32), tree)


def max_difference(params: dict, half: dict, contents: list, styles: list) -> float:
    """Largest per-pixel difference between the stylizations of the two weight sets."""
    fn = jax.jit(stylize)
    worst = 0.0
    for c in contents:
        for s in styles:
            a = np.asarray(fn(params, c[None], s[None]))
            b = np.asarray(fn(half, c[None], s[None]))
            worst = max(worst, float(np.abs(a - b).max()))
    return worst


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="training workdir")
    p.add_argument("--content-dir", required=True)
    p.add_argument("--style-dir", required=True)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--out", type=Path, default=pretrained.builtin_dir())
    args = p.parse_args(argv)
    params = load_params(args.checkpoint)
    contents = evaluate.load_eval_images(args.content_dir, args.size, sys.maxsize)
    styles = evaluate.load_eval_images(args.style_dir, args.size, sys.maxsize)
    half = {k: _as_float16(v) for k, v in params.items()}
    diff = max_difference(params, half, contents, styles)
    dtype = np.float16 if diff <= TOLERANCE else np.float32
    print(f"float16 storage: max difference {diff * 255:.3f}/255 -> storing {np.dtype(dtype)}")
    source = f"{Path(args.checkpoint).name} (adain-jax training workdir)"
    for network in weights_io.NETWORKS:
        target = args.out / weights_io.file_name(network)
        weights_io.save(target, network, params[network], source=source, storage_dtype=dtype)
        print(f"wrote {target} ({target.stat().st_size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
