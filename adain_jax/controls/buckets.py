"""Encoder and decoder for images padded to a size bucket, exact on each image's own area.

A folder of mixed-size images would compile one executable per size. Here
each image is padded at the bottom and right to a common bucket shape, and
every layer is told each image's valid size (traced, so one compilation per
bucket): before each 3x3 convolution the first row/column past the valid
area is overwritten with the reflection that the unpadded network would
use, and before each max-pool the padding repeats the last valid
row/column (so ceil-mode pooling of an odd size sees a window of one, as
unpadded). The valid area of every layer's output then equals the unpadded
network's output exactly (up to float rounding); outside it are don't-care
values that are cropped away.

Same parameters and layer order as ``adain_jax.nn.models`` (``VGGEncoder``,
``Decoder``); the convolution is ``adain_jax.nn.conv.reflect_conv``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import Array

from adain_jax.nn import conv
from adain_jax.nn.layers import max_pool_ceil, upsample_nearest_2x
from adain_jax.nn.models import DECODER_LAYERS, DOWNSAMPLE, ENCODER_LAYERS

Dtype = Any


def _fill_past(x: Array, valid: Array, axis: int, reflect: bool) -> Array:
    """Rewrite positions ``>= valid[n]`` along ``axis`` (1 or 2) of ``[N, H, W, C]``.

    ``reflect``: position ``v`` takes ``v - 2`` (the reflection about ``v - 1``);
    else every position past the area takes ``v - 1``.
    """
    n = x.shape[axis]
    j = jnp.arange(n)[None, :]
    v = valid[:, None]
    past = jnp.clip(2 * (v - 1) - j, 0, n - 1) if reflect else v - 1
    idx = jnp.where(j < v, j, past)
    if axis == 1:
        return jax.vmap(lambda xi, ii: xi[ii])(x, idx)
    return jax.vmap(lambda xi, ii: xi[:, ii])(x, idx)


def _fill(x: Array, valid: Array, reflect: bool) -> Array:
    x = _fill_past(x, valid[:, 0], 1, reflect)
    return _fill_past(x, valid[:, 1], 2, reflect)


def _conv(x: Array, layer: dict, dtype: Dtype) -> Array:
    kernel, bias = layer["kernel"].astype(dtype), layer["bias"].astype(dtype)
    return conv.reflect_conv(x.astype(dtype), kernel, bias)


def encode_valid(params: dict, images: Array, sizes: Array, dtype: Dtype = jnp.float32):
    """relu4_1 of padded images, exact on each image's area.

    Args:
      params: ``{"encoder": ...}``.
      images: ``[N, Hb, Wb, 3]`` in [0, 1], each padded at the bottom/right.
      sizes: int ``[N, 2]``: each image's ``(H, W)`` (at least 9 px each).
      dtype: compute dtype.

    Returns:
      ``(relu4_1 [N, ceil(Hb/8), ceil(Wb/8), 512] in dtype, cells [N, 2])``;
      ``cells`` = ``ceil(sizes / 8)``, the valid relu4_1 area.
    """
    enc = params["encoder"]
    valid = jnp.asarray(sizes, jnp.int32)
    x = _conv(images, enc["conv0"], dtype)
    for layer in ENCODER_LAYERS:
        if layer == "pool":
            x = max_pool_ceil(_fill(x, valid, reflect=False))
            valid = (valid + 1) // 2
            continue
        x = jax.nn.relu(_conv(_fill(x, valid, reflect=True), enc[layer[0]], dtype))
    return x, valid


def decode_valid(params: dict, features: Array, cells: Array, dtype: Dtype = jnp.float32):
    """Decode padded ``[N, h, w, 512]`` features, exact on each ``cells[n]`` area.

    Returns float32 ``[N, 8h, 8w, 3]``; image n is valid on ``8 * cells[n]``.
    """
    dec = params["decoder"]
    valid = jnp.asarray(cells, jnp.int32)
    x = features
    last = DECODER_LAYERS[-1]
    for layer in DECODER_LAYERS:
        if layer == "up":
            x = upsample_nearest_2x(x)
            valid = 2 * valid
            continue
        x = _conv(_fill(x, valid, reflect=True), dec[layer[0]], dtype)
        if layer is not last:
            x = jax.nn.relu(x)
    assert DOWNSAMPLE == 8
    return x.astype(jnp.float32)
