"""The public, pure stylization functions.

``stylize`` is ``jax.jit``-compiled once here (``dtype`` static, everything
else traced), so repeated calls at one shape reuse one executable; it also
composes with ``jax.vmap`` and ``jax.grad``.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array

from adain_jax.nn import ops
from adain_jax.nn.models import DOWNSAMPLE, Decoder, EncoderTaps, VGGEncoder

Dtype = Any


def encode(params: dict, images: Array, dtype: Dtype = jnp.float32) -> EncoderTaps:
    """VGG taps of RGB ``[N, H, W, 3]`` images in [0, 1] (see ``VGGEncoder``)."""
    return VGGEncoder(dtype=dtype).apply({"params": params["encoder"]}, images)


def decode(params: dict, features: Array, dtype: Dtype = jnp.float32) -> Array:
    """Decode ``[N, h, w, 512]`` features to float32 RGB ``[N, 8h, 8w, 3]`` (unclipped)."""
    return Decoder(dtype=dtype).apply({"params": params["decoder"]}, features)


def _as_batch(x: Array, name: str) -> Array:
    x = jnp.asarray(x)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"{name} must be [H, W, 3] or [N, H, W, 3], got shape {x.shape}")
    return x


def check_image_size(height: int, width: int, name: str = "image") -> None:
    """Raise ``ValueError`` for images too small for relu4_1's reflection padding."""
    smallest = DOWNSAMPLE + 1  # relu4_1 must be at least 2x2 to reflect-pad it
    if min(height, width) < smallest:
        raise ValueError(f"{name} is {height}x{width}; each side must be at least {smallest} px")


@functools.partial(jax.jit, static_argnames=("dtype",))
def stylize(
    params: dict,
    content: Array,
    style: Array,
    alpha: Array | float = 1.0,
    *,
    dtype: Dtype = jnp.float32,
) -> Array:
    """Render ``content`` in the style of ``style`` (Huang & Belongie, eq. 11).

    ``T(c, s) = g((1 - alpha) f(c) + alpha AdaIN(f(c), f(s)))``.

    Args:
      params: ``{"encoder", "decoder"}`` from ``load_params``.
      content: RGB float ``[H, W, 3]`` or ``[N, H, W, 3]`` in [0, 1]; each
        side at least 9 px.
      style: RGB float ``[Hs, Ws, 3]`` or ``[N or 1, Hs, Ws, 3]`` in [0, 1];
        any size; a single style serves the whole content batch.
      alpha: content-style trade-off in [0, 1] (1 = full style); a scalar or
        one value per content image ``[N]``. Traced: changing it does not
        recompile.
      dtype: compute dtype of the convolutions (``jnp.float32`` or
        ``jnp.bfloat16``); statistics are always float32.

    Returns:
      float32 image with the content's shape, clipped to [0, 1].
    """
    single = jnp.ndim(content) == 3
    content = _as_batch(content, "content")
    style = _as_batch(style, "style")
    height, width = content.shape[1:3]
    check_image_size(height, width, "content")
    check_image_size(*style.shape[1:3], "style")
    content_feat = encode(params, content, dtype).relu4_1
    style_feat = encode(params, style, dtype).relu4_1
    alpha = jnp.asarray(alpha, jnp.float32).reshape(-1, 1, 1, 1)
    target = ops.blend(content_feat, ops.adain(content_feat, style_feat), alpha)
    image = decode(params, target, dtype)[:, :height, :width, :]
    image = jnp.clip(image, 0.0, 1.0)
    return image[0] if single else image
