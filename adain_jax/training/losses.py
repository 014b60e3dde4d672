"""The paper's training losses (Huang & Belongie 2017, eqs. 11-13).

With ``t = AdaIN(f(c), f(s))`` and the decoder output ``g(t)``:

* content loss: mean squared error between ``f(g(t))`` at relu4_1 and ``t`` (the AdaIN target,
  not ``f(c)``), averaged over all elements;
* style loss: for each tap relu1_1, relu2_1, relu3_1, relu4_1, the mean squared error of the
  per-channel means plus that of the per-channel stds of ``f(g(t))`` and ``f(s)``, each averaged
  over batch and channels (the PyTorch port's convention, used with ``style_weight`` 10 and
  ``content_weight`` 1; the authors' Lua code sums over channels and uses ``style_weight`` 1e-2).

Statistics come from ``adain_jax.nn.ops.channel_mean_std``: float32, biased (population) variance
with ``eps = 1e-5`` added before the square root, as in the authors' code. The PyTorch port uses
the unbiased variance (divides by ``H*W - 1``); the difference is below 1% of the std for feature
maps of 32x32 and larger, and it is the only deliberate departure from the port. All losses are
float32 even when the networks compute in bfloat16.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from adain_jax.nn import forward, ops
from adain_jax.nn.layers import Dtype
from adain_jax.nn.models import EncoderTaps

CONTENT_WEIGHT = 1.0
STYLE_WEIGHT = 10.0


class Losses(NamedTuple):
    """Scalar float32 losses; ``total = content_weight * content + style_weight * style``."""

    content: Array
    style: Array
    total: Array


def _mse(a: Array, b: Array) -> Array:
    return jnp.mean(jnp.square(a.astype(jnp.float32) - b.astype(jnp.float32)))


def content_loss(output_feat: Array, target: Array) -> Array:
    """MSE between relu4_1 features ``[N, h, w, 512]`` of ``g(t)`` and the target ``t``."""
    return _mse(output_feat, target)


def style_loss(output_taps: EncoderTaps, style_taps: EncoderTaps) -> Array:
    """Sum over the four taps of MSE(channel means) + MSE(channel stds), float32 scalar."""
    total = jnp.zeros((), jnp.float32)
    for out, sty in zip(output_taps, style_taps, strict=True):
        out_mean, out_std = ops.channel_mean_std(out)
        sty_mean, sty_std = ops.channel_mean_std(sty)
        total = total + _mse(out_mean, sty_mean) + _mse(out_std, sty_std)
    return total


def adain_losses(
    encoder_params: dict,
    decoder_params: dict,
    content: Array,
    style: Array,
    *,
    content_weight: float = CONTENT_WEIGHT,
    style_weight: float = STYLE_WEIGHT,
    dtype: Dtype = jnp.float32,
) -> tuple[Losses, Array]:
    """The paper's losses of one batch of content/style pairs (``train_losses`` with
    ``train=False``: a BatchNorm decoder uses its running statistics).

    Args:
      encoder_params: frozen encoder params (no gradient flows to them through the targets;
        differentiate w.r.t. ``decoder_params`` only).
      decoder_params: decoder params (``adain_jax.nn.models.init_decoder``).
      content: RGB float ``[N, H, W, 3]`` in [0, 1]; H and W multiples of 8, at least 16.
      style: RGB float ``[N, Hs, Ws, 3]`` in [0, 1].
      content_weight, style_weight: loss weights (paper/port: 1 and 10).
      dtype: compute dtype of the convolutions (float32 or bfloat16).

    Returns:
      ``(Losses, output)``: float32 scalars and the decoder output ``g(t)``, float32
      ``[N, H, W, 3]`` (unclipped).
    """
    return train_losses(
        encoder_params,
        decoder_params,
        content,
        style,
        content_weight=content_weight,
        style_weight=style_weight,
        dtype=dtype,
        train=False,
    )[:2]


def train_losses(
    encoder_params: dict,
    decoder_params: dict,
    content: Array,
    style: Array,
    *,
    content_weight: float = CONTENT_WEIGHT,
    style_weight: float = STYLE_WEIGHT,
    dtype: Dtype = jnp.float32,
    train: bool = True,
) -> tuple[Losses, Array, dict]:
    """``adain_losses`` for any decoder variant, in training mode (``train``: a BatchNorm
    decoder normalises with the batch's statistics and updates its running ones).

    Returns:
      ``(Losses, output, decoder_params)``, the last with the updated running statistics.
    """
    params = {"encoder": encoder_params, "decoder": decoder_params}
    encode = lambda x: forward.encode(params, x, dtype=dtype)  # noqa: E731
    if content.shape == style.shape:  # one encoder pass for both halves of the batch
        both = encode(jnp.concatenate([content, style]))
        n = content.shape[0]
        content_feat = both.relu4_1[:n]
        style_taps = EncoderTaps(*(tap[n:] for tap in both))
    else:
        content_feat = encode(content).relu4_1
        style_taps = encode(style)
    style_taps = jax.tree.map(jax.lax.stop_gradient, style_taps)
    target = jax.lax.stop_gradient(ops.adain(content_feat, style_taps.relu4_1))
    fused = jax.lax.stop_gradient(forward.fuse(params, content_feat, style_taps.relu4_1))
    if train:
        output, decoder_params = forward.decode_train(params, fused, dtype=dtype)
    else:
        output = forward.decode(params, fused, dtype=dtype)
    output_taps = encode(output)
    c = content_loss(output_taps.relu4_1, target)
    s = style_loss(output_taps, style_taps)
    return Losses(c, s, content_weight * c + style_weight * s), output, decoder_params


def output_losses(
    encoder_params: dict,
    output: Array,
    content: Array,
    style: Array,
    *,
    dtype: Dtype = jnp.float32,
) -> tuple[Array, Array]:
    """The paper's content and style losses of a finished stylization, measured with
    ``encoder_params`` (which need not be the encoder that produced it). The content target is
    ``AdaIN(f(content), f(style))`` under this encoder, so two decoders (each with its own
    encoder) compare on the same numbers.

    Args:
      output, content, style: RGB float ``[N, H, W, 3]`` in [0, 1], one pair per row.

    Returns:
      ``(content_loss, style_loss)``, float32 scalars (unweighted, batch means).
    """
    encode = lambda x: forward.encode({"encoder": encoder_params}, x, dtype=dtype)  # noqa: E731
    style_taps = encode(style)
    target = ops.adain(encode(content).relu4_1, style_taps.relu4_1)
    output_taps = encode(output)
    return content_loss(output_taps.relu4_1, target), style_loss(output_taps, style_taps)
