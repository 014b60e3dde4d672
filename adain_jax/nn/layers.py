"""Building blocks shared by the encoder and the decoder (NHWC).

Padded batches: every block takes an optional ``sizes``, int ``[N, 2]``, the valid ``(height,
width)`` of each image inside a batch padded at the bottom/right, or ``[1, 2]``: one valid size
shared by the whole batch. With it the block computes, on each image's valid area, what it computes
on the unpadded image (up to float rounding); values outside the area are don't-care. Before a 3x3
convolution the first rows/columns past the area are overwritten with the reflection the unpadded
image gets at its border (``fill_past``); before a pool the padding repeats the last valid
row/column, so ceil-mode pooling of an odd size sees a window of one. Sizes are traced: one
compilation serves every mix of sizes in a padded shape.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import Array

from adain_jax.nn import conv
from adain_jax.nn.names import ceil_div
from adain_jax.nn.ops import positions

Dtype = Any


def valid_cells(sizes: Array, height: Any, width: Any) -> Array:
    """bool ``[N, height, width]``: which cells of a padded grid lie in image n's ``sizes[n]``
    (int ``[N, 2]``; ``[1, 2]`` gives ``[1, height, width]``) area."""
    sizes = jnp.asarray(sizes, jnp.int32)
    rows = positions(height)[None, :, None] < sizes[:, 0, None, None]
    cols = positions(width)[None, None, :] < sizes[:, 1, None, None]
    return rows & cols


def _fill_axis(x: Array, valid: Array, axis: int, reflect: bool) -> Array:
    """Rewrite positions ``>= valid[n]`` along ``axis`` (1 or 2) of ``[N, H, W, C]``.

    ``reflect``: position ``v`` takes ``v - 2`` (the reflection about ``v - 1``); else every
    position past the area takes ``v - 1``. ``valid`` ``[1]`` applies to every image (one gather
    along the axis instead of one per image).
    """
    n = x.shape[axis]
    j = positions(n)[None, :]
    v = valid[:, None]
    past = jnp.clip(2 * (v - 1) - j, 0, n - 1) if reflect else v - 1
    idx = jnp.where(j < v, j, past)
    if valid.shape[0] == 1:
        return jnp.take(x, idx[0], axis=axis)
    if axis == 1:
        return jax.vmap(lambda xi, ii: xi[ii])(x, idx)
    return jax.vmap(lambda xi, ii: xi[:, ii])(x, idx)


def fill_past(x: Array, sizes: Array, *, reflect: bool) -> Array:
    """``[N, H, W, C]`` with the cells past each image's ``sizes[n]`` (int ``[N, 2]`` or ``[1, 2]``)
    rewritten: reflected about the last valid row/column (``reflect``) or repeating it."""
    sizes = jnp.asarray(sizes, jnp.int32)
    x = _fill_axis(x, sizes[:, 0], 1, reflect)
    return _fill_axis(x, sizes[:, 1], 2, reflect)


class ReflectConv(nn.Module):
    """``kernel_size`` x ``kernel_size`` convolution, stride 1, reflection padded to keep H, W.

    Parameters are named like ``flax.linen.Conv`` (``kernel`` HWIO, ``bias``) so weight files map
    one to one.

    Attributes:
      features: output channels.
      kernel_size: 1 or 3.
      dtype: compute dtype (inputs and weights are cast to it).
      param_dtype: storage dtype of the parameters.
      conv_impl: the convolution's formulation (``adain_jax.nn.conv``), static.
    """

    features: int
    kernel_size: int = 3
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    conv_impl: str = conv.DEFAULT_IMPL

    @nn.compact
    def __call__(self, x: Array, sizes: Array | None = None) -> Array:
        """``[N, H, W, Cin] -> [N, H, W, features]``; ``sizes``: see the module docstring."""
        in_features = x.shape[-1]
        kernel = self.param(
            "kernel",
            nn.initializers.lecun_normal(),
            (self.kernel_size, self.kernel_size, in_features, self.features),
            self.param_dtype,
        )
        bias = self.param("bias", nn.initializers.zeros, (self.features,), self.param_dtype)
        if sizes is not None and self.kernel_size > 1:
            x = fill_past(x, sizes, reflect=True)
        x, kernel, bias = (a.astype(self.dtype) for a in (x, kernel, bias))
        return conv.reflect_conv(x, kernel, bias, impl=self.conv_impl)


def max_pool_ceil(x: Array, sizes: Array | None = None) -> Array:
    """2x2 max-pool, stride 2, ceil mode: ``[N, H, W, C] -> [N, ceil(H/2), ceil(W/2), C]``.

    Odd sizes keep their last row/column (a window of one), as torch's ``MaxPool2d(2, 2,
    ceil_mode=True)`` does. With ``sizes`` (int ``[N, 2]``, see the module docstring) the same holds
    at each image's own border; the pooled sizes are ``pooled_sizes(sizes)``.

    A reshape and a max over the two window axes rather than ``lax.reduce_window``: the same
    values, but its gradient is an elementwise mask (``x == max``) that fuses, where
    ``reduce_window``'s (select-and-scatter) materialised full-size index tensors on XLA:CPU. On
    ties the gradient is shared equally among the tied inputs (torch gives it all to the first);
    after a ReLU the only ties in practice are zeros, whose gradient the ReLU drops anyway.
    """
    if sizes is not None:
        x = fill_past(x, sizes, reflect=False)
    *lead, h, w, c = x.shape
    if h % 2 or w % 2:
        pad = [(0, 0)] * len(lead) + [(0, h % 2), (0, w % 2), (0, 0)]
        x = jnp.pad(x, pad, constant_values=-jnp.inf)
        h, w = h + h % 2, w + w % 2
    windows = x.reshape(*lead, h // 2, 2, w // 2, 2, c)
    return jnp.max(windows, axis=(-4, -2))


def pooled_sizes(sizes: Array) -> Array:
    """Valid sizes after ``max_pool_ceil``: ``ceil(sizes / 2)``, int32 ``[N, 2]``."""
    return ceil_div(jnp.asarray(sizes, jnp.int32), 2)


def upsample_nearest_2x(x: Array) -> Array:
    """Nearest-neighbour x2 upsampling: ``[N, H, W, C] -> [N, 2H, 2W, C]``; valid sizes double."""
    *lead, h, w, c = x.shape
    x = jnp.broadcast_to(x[..., :, None, :, None, :], (*lead, h, 2, w, 2, c))
    return x.reshape(*lead, 2 * h, 2 * w, c)
