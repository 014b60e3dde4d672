"""Evaluate a decoder as the paper does: content and style losses averaged over
every (content, style) pair of two folders, and a contents x styles grid.

    python -m adain_jax.evaluate --checkpoint runs/exp1 --content-dir held/content \\
        --style-dir held/style --size 256 --grid grid.png
    python -m adain_jax.evaluate --vgg vgg_normalised.pth --decoder decoder.pth \\
        --loss-vgg vgg19-dcbb9e9d.pth --content-dir ... --style-dir ...

Each pair is stylized with the weights' own encoder and decoder (alpha 1),
clipped to [0, 1] (the image a user gets), then measured with one fixed *loss
encoder* (``--loss-vgg``; default: the weights' encoder): content loss =
MSE(f(out) at relu4_1, AdaIN(f(c), f(s))), style loss = sum over relu1_1..relu4_1
of MSE(means) + MSE(stds), as in training. To compare two decoders trained
with different encoders, pass the same ``--loss-vgg`` to both runs.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from adain_jax.nn import forward, ops
from adain_jax.training import losses, monitoring
from adain_jax.training.step import DTYPES
from adain_jax.weights import convert

DEFAULT_CHUNK = 8


class PairResults(NamedTuple):
    """Per-pair results, pairs ordered content-major (``i * n_styles + j``)."""

    content: np.ndarray  # float32 [P]
    style: np.ndarray  # float32 [P]
    outputs: np.ndarray  # float32 [P, s, s, 3] in [0, 1]


@functools.cache
def pair_function(dtype: str = "float32") -> Callable:
    """jit-compiled ``(enc, dec, loss_enc, contents [P,s,s,3], styles [P,s,s,3])
    -> (content [P], style [P], outputs [P,s,s,3])``, one loss per pair."""
    compute = DTYPES[dtype]

    def one(enc, dec, loss_enc, c, s):
        c, s = c[None], s[None]
        params = {"encoder": enc, "decoder": dec}
        cf = forward.encode(params, c, dtype=compute).relu4_1
        sf = forward.encode(params, s, dtype=compute).relu4_1
        out = forward.decode(params, ops.adain(cf, sf), dtype=compute)
        out = jnp.clip(out, 0.0, 1.0)
        lc, ls = losses.output_losses(loss_enc, out, c, s, dtype=compute)
        return lc, ls, out[0]

    return jax.jit(jax.vmap(one, in_axes=(None, None, None, 0, 0)))


def evaluate_pairs(
    params: dict,
    loss_encoder: dict,
    contents: Sequence[np.ndarray],
    styles: Sequence[np.ndarray],
    *,
    chunk: int = DEFAULT_CHUNK,
    dtype: str = "float32",
) -> PairResults:
    """Stylize and measure every (content, style) pair.

    Args:
      params: ``{"encoder", "decoder"}`` used to stylize.
      loss_encoder: the encoder params the losses are measured with.
      contents, styles: float ``[s, s, 3]`` images in [0, 1], all one size
        (a multiple of 8, at least 16).
      chunk: pairs per compiled call (the last chunk is padded: one compilation).
    """
    fn = pair_function(dtype)
    c_idx = np.repeat(np.arange(len(contents)), len(styles))
    s_idx = np.tile(np.arange(len(styles)), len(contents))
    contents, styles = np.stack(contents), np.stack(styles)
    results = []
    for start in range(0, len(c_idx), chunk):
        ci, si = c_idx[start : start + chunk], s_idx[start : start + chunk]
        n = len(ci)
        pad = chunk - n
        ci, si = np.concatenate([ci, ci[:1].repeat(pad)]), np.concatenate([si, si[:1].repeat(pad)])
        out = fn(params["encoder"], params["decoder"], loss_encoder, contents[ci], styles[si])
        results.append([np.asarray(x)[:n] for x in out])
    lc, ls, outs = (np.concatenate(parts) for parts in zip(*results, strict=True))
    return PairResults(lc, ls, outs)


def _load_images(folder: str, size: int, limit: int | None) -> list[np.ndarray]:
    """Shorter side resized to ``size``, centre-cropped (``data.load_eval_images``)."""
    from adain_jax.training import data

    return data.load_eval_images(folder, size, limit if limit is not None else sys.maxsize)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m adain_jax.evaluate",
        description="The paper's content and style losses of a decoder, averaged over all "
        "content x style pairs, and a grid of the outputs.",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--weights", help="weights directory (encoder/decoder.safetensors)")
    src.add_argument("--checkpoint", help="training workdir: its latest decoder and its encoder")
    p.add_argument("--vgg", help="encoder weights file (.pth or .safetensors)")
    p.add_argument("--decoder", help="decoder weights file (.pth or .safetensors)")
    p.add_argument(
        "--loss-vgg",
        help="encoder the losses are measured with (default: the weights' encoder); "
        "use the same file to compare decoders",
    )
    p.add_argument("--content-dir", required=True)
    p.add_argument("--style-dir", required=True)
    p.add_argument("--size", type=int, default=256, help="image side in px (multiple of 8)")
    p.add_argument("--limit", type=int, default=None, help="at most this many images per folder")
    p.add_argument("--grid", help="write the contents x styles grid to this PNG")
    p.add_argument("--grid-max", type=int, default=8, help="at most N contents and N styles")
    p.add_argument("--batch-size", type=int, default=DEFAULT_CHUNK, help="pairs per step")
    p.add_argument("--dtype", choices=tuple(DTYPES), default="float32")
    return p


def _error(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.size < 16 or args.size % 8:
        return _error(f"--size {args.size}: must be a multiple of 8, at least 16")
    if args.batch_size < 1:
        return _error(f"--batch-size {args.batch_size}: must be positive")
    if args.limit is not None and args.limit < 1:
        return _error(f"--limit {args.limit}: must be positive")
    if (args.vgg is None) != (args.decoder is None) and not (args.weights or args.checkpoint):
        return _error("give both --vgg and --decoder (or --weights / --checkpoint)")
    if args.grid and not args.grid.lower().endswith(".png"):
        return _error(f"--grid {args.grid}: must end in .png")
    import adain_jax

    try:
        contents = _load_images(args.content_dir, args.size, args.limit)
        styles = _load_images(args.style_dir, args.size, args.limit)
        source = args.weights or args.checkpoint
        params = adain_jax.load_params(source, vgg=args.vgg, decoder=args.decoder)
        loss_enc = (
            jax.tree.map(jnp.asarray, convert.load_network(args.loss_vgg, "encoder"))
            if args.loss_vgg
            else params["encoder"]
        )
    except (OSError, ValueError, RuntimeError) as e:  # includes DataError, WeightsError
        return _error(str(e))
    res = evaluate_pairs(
        params, loss_enc, contents, styles, chunk=args.batch_size, dtype=args.dtype
    )
    print(
        f"pairs: {len(res.content)} ({len(contents)} contents x {len(styles)} styles, "
        f"{args.size} px)"
    )
    print(f"content loss: {float(np.mean(res.content)):.6f}")
    print(f"style loss:   {float(np.mean(res.style)):.6f}")
    if args.grid:
        n_c, n_s = min(len(contents), args.grid_max), min(len(styles), args.grid_max)
        outs = res.outputs.reshape(len(contents), len(styles), *res.outputs.shape[1:])
        grid = monitoring.pair_grid(contents[:n_c], styles[:n_s], outs[:n_c, :n_s])
        monitoring.write_png(args.grid, grid)
        print(f"wrote {args.grid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
