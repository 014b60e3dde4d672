"""Building blocks shared by the encoder and the decoder (NHWC)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp
from jax import Array

from adain_jax.nn import conv

Dtype = Any


class ReflectConv(nn.Module):
    """``kernel_size`` x ``kernel_size`` convolution, stride 1, reflection padded to keep H, W.

    Parameters are named like ``flax.linen.Conv`` (``kernel`` HWIO, ``bias``)
    so weight files map one to one.

    Attributes:
      features: output channels.
      kernel_size: 1 or 3.
      dtype: compute dtype (inputs and weights are cast to it).
      param_dtype: storage dtype of the parameters.
    """

    features: int
    kernel_size: int = 3
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        in_features = x.shape[-1]
        kernel = self.param(
            "kernel",
            nn.initializers.lecun_normal(),
            (self.kernel_size, self.kernel_size, in_features, self.features),
            self.param_dtype,
        )
        bias = self.param("bias", nn.initializers.zeros, (self.features,), self.param_dtype)
        x, kernel, bias = (a.astype(self.dtype) for a in (x, kernel, bias))
        return conv.reflect_conv(x, kernel, bias)


def max_pool_ceil(x: Array) -> Array:
    """2x2 max-pool, stride 2, ceil mode: ``[N, H, W, C] -> [N, ceil(H/2), ceil(W/2), C]``.

    Odd sizes keep their last row/column (a window of one), as torch's
    ``MaxPool2d(2, 2, ceil_mode=True)`` does.

    Written as a reshape and a max over the two window axes rather than
    ``lax.reduce_window``: the same values, but its gradient is an elementwise
    mask (``x == max``) that fuses, where ``reduce_window``'s gradient
    (select-and-scatter) materialised full-size index tensors on XLA:CPU. On
    ties the gradient is shared equally among the tied inputs (torch gives it
    all to the first); after a ReLU the only ties in practice are zeros,
    whose gradient the ReLU drops anyway.
    """
    *lead, h, w, c = x.shape
    if h % 2 or w % 2:
        pad = [(0, 0)] * len(lead) + [(0, h % 2), (0, w % 2), (0, 0)]
        x = jnp.pad(x, pad, constant_values=-jnp.inf)
        h, w = h + h % 2, w + w % 2
    windows = x.reshape(*lead, h // 2, 2, w // 2, 2, c)
    return jnp.max(windows, axis=(-4, -2))


def upsample_nearest_2x(x: Array) -> Array:
    """Nearest-neighbour x2 upsampling: ``[N, H, W, C] -> [N, 2H, 2W, C]``."""
    *lead, h, w, c = x.shape
    x = jnp.broadcast_to(x[..., :, None, :, None, :], (*lead, h, 2, w, 2, c))
    return x.reshape(*lead, 2 * h, 2 * w, c)
