"""Reflection-padded stride-1 convolution, the one convolution AdaIN uses.

Kept in its own module so that faster formulations (e.g. Winograd on CPU)
can replace the direct convolution behind one function.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array

_DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")


def reflect_pad(x: Array, pad: int) -> Array:
    """Reflection-pad the two spatial axes of ``[..., H, W, C]`` by ``pad`` on each side."""
    widths = [(0, 0)] * (x.ndim - 3) + [(pad, pad), (pad, pad), (0, 0)]
    return jnp.pad(x, widths, mode="reflect")


def reflect_conv(x: Array, kernel: Array, bias: Array) -> Array:
    """Same-size convolution with reflection padding.

    Args:
      x: ``[N, H, W, Cin]``; H and W must exceed ``k // 2`` for reflection.
      kernel: ``[k, k, Cin, Cout]`` (HWIO), k odd.
      bias: ``[Cout]``.

    Returns:
      ``[N, H, W, Cout]`` in the dtype of ``x``.
    """
    k = kernel.shape[0]
    if k > 1:
        x = reflect_pad(x, k // 2)
    y = jax.lax.conv_general_dilated(
        x, kernel, window_strides=(1, 1), padding="VALID", dimension_numbers=_DIMENSION_NUMBERS
    )
    return y + bias
