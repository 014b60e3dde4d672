"""Evaluate a decoder as the paper does: content and style losses averaged over
every (content, style) pair (the command: ``adain_jax.cli.evaluate``).

Each pair is stylized with the weights' own encoder and decoder (alpha 1; any
decoder variant, read from the params: ``adain_jax.nn.forward.fuse``),
clipped to [0, 1] (the image a user gets), then measured with one fixed *loss
encoder* (``--loss-vgg``; default: the weights' encoder): content loss =
MSE(f(out) at relu4_1, AdaIN(f(c), f(s))), style loss = sum over relu1_1..relu4_1
of MSE(means) + MSE(stds), as in training. To compare two decoders trained
with different encoders, pass the same ``--loss-vgg`` to both runs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from adain_jax.nn import forward
from adain_jax.nn.models import DTYPES
from adain_jax.training import losses

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
        out = forward.decode(params, forward.fuse(params, cf, sf), dtype=compute)
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
