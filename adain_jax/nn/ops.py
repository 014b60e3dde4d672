"""Pure feature-statistics maths of AdaIN.

All functions take NHWC feature maps (any leading batch axes, channels last) and compute
statistics over the two spatial axes in float32, whatever the input dtype. Variance is the biased
(population) variance, as in the authors' Lua code; ``eps`` is added to it before the square root.
``EPS`` is the one epsilon of the package (AdaIN, the decoder's norm layers as torch's
``BatchNorm2d``/``InstanceNorm2d``, colour preservation).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from adain_jax.nn.names import known

EPS = 1e-5

_SPATIAL = (-3, -2)


def positions(n: Any) -> Array:
    """int32 ``[n]``: ``0 .. n-1``. ``lax.iota`` rather than ``jnp.arange`` so that a symbolic
    ``n`` (``jax.export`` or a converter's dynamic size) stays an array size."""
    return jax.lax.iota(jnp.int32, n)


def moments(x: Array, valid: Array | None = None) -> tuple[Array, Array]:
    """Per-sample, per-channel mean and biased variance over the spatial axes.

    Args:
      x: features ``[..., H, W, C]``, any float dtype.
      valid: optional bool ``[..., H, W]`` (broadcasting against ``x``'s leading axes): only these
        cells count (an image padded to a size bucket, one region of a mask). A sample without a
        valid cell gets mean 0 and variance 0.

    Returns:
      ``(mean, var)``, each ``[..., 1, 1, C]`` float32.
    """
    x = x.astype(jnp.float32)
    if valid is None:
        mean = jnp.mean(x, axis=_SPATIAL, keepdims=True)
        return mean, jnp.mean(jnp.square(x - mean), axis=_SPATIAL, keepdims=True)
    m = jnp.asarray(valid)[..., None]
    count = jnp.maximum(jnp.sum(m, axis=_SPATIAL, dtype=jnp.float32), 1.0)
    mean = jnp.sum(jnp.where(m, x, 0.0), axis=_SPATIAL) / count
    var = jnp.sum(jnp.where(m, jnp.square(x - mean[..., None, None, :]), 0.0), axis=_SPATIAL)
    return mean[..., None, None, :], (var / count)[..., None, None, :]


def channel_mean_std(x: Array, eps: float = EPS, valid: Array | None = None) -> tuple[Array, Array]:
    """Per-sample, per-channel mean and std (``sqrt(var + eps)``) over the spatial axes.

    Args:
      x: features ``[..., H, W, C]``, any float dtype.
      eps: added to the biased variance before the square root.
      valid: optional bool ``[..., H, W]``: only these cells count (``moments``).

    Returns:
      ``(mean, std)``, each ``[..., 1, 1, C]`` float32. Without ``valid``, reverse mode uses a
      hand-written gradient (``_mean_std_bwd``) and forward mode (``jax.jvp``) is unsupported.
    """
    return _mean_std(x, eps) if valid is None else _mean_std_impl(x, eps, valid)


def _mean_std_impl(x: Array, eps: float, valid: Array | None = None) -> tuple[Array, Array]:
    mean, var = moments(x, valid)
    return mean, jnp.sqrt(var + eps)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _mean_std(x: Array, eps: float) -> tuple[Array, Array]:
    return _mean_std_impl(x, eps)


def _mean_std_fwd(x: Array, eps: float) -> tuple[tuple[Array, Array], tuple[Array, ...]]:
    mean, std = _mean_std_impl(x, eps)
    return (mean, std), (x, mean, std)


def _mean_std_bwd(eps: float, res: tuple[Array, ...], grads: tuple[Array, Array]) -> tuple[Array]:
    # d mean / dx = 1/n and d std / dx = (x - mean) / (n std), evaluated from x in one elementwise
    # pass. Autodiff kept the centred copy (x - mean) of every tap alive from the forward pass
    # instead (a full-size buffer each).
    del eps
    x, mean, std = res
    g_mean, g_std = grads
    n = x.shape[-3] * x.shape[-2]
    dx = (g_mean + g_std * (x.astype(jnp.float32) - mean) / std) / n
    return (dx.astype(x.dtype),)


_mean_std.defvjp(_mean_std_fwd, _mean_std_bwd)


def adain(content_feat: Array, style_feat: Array, eps: float = EPS) -> Array:
    """Adaptive instance normalisation: ``std(s) * (c - mean(c)) / std(c) + mean(s)``.

    Args:
      content_feat: ``[..., Hc, Wc, C]`` features of the content.
      style_feat: ``[..., Hs, Ws, C]`` features of the style; leading axes must broadcast
        against the content's (a single style may serve a batch).
      eps: added to both variances before the square root.

    Returns:
      float32 ``[..., Hc, Wc, C]``: the content features re-normalised to the style's per-channel
      mean and std.
    """
    c, s = tuple(np.shape(content_feat)), tuple(np.shape(style_feat))
    try:
        if len(c) < 3 or len(s) < 3 or (known(c[-1], s[-1]) and c[-1] != s[-1]):
            raise ValueError
        if known(*c[:-3], *s[:-3]):
            jnp.broadcast_shapes(c[:-3], s[:-3])
    except ValueError:
        raise ValueError(
            f"adain takes features [..., H, W, C] of one C whose leading axes broadcast, got "
            f"content {c} and style {s}"
        ) from None
    c_mean, c_std = channel_mean_std(content_feat, eps)
    s_mean, s_std = channel_mean_std(style_feat, eps)
    normalised = (content_feat.astype(jnp.float32) - c_mean) / c_std
    return normalised * s_std + s_mean


def blend(content_feat: Array, target_feat: Array, alpha: Array | float) -> Array:
    """``(1 - alpha) * content_feat + alpha * target_feat`` in float32; ``alpha`` is a scalar or
    broadcasts against the features (e.g. ``[N, 1, 1, 1]``)."""
    alpha = jnp.asarray(alpha, jnp.float32)
    c, t = content_feat.astype(jnp.float32), target_feat.astype(jnp.float32)
    return (1.0 - alpha) * c + alpha * t


def nearest_indices(n: Any, size_in: Any, size_out: Any = None) -> Array | np.ndarray:
    """The input index of each of ``n`` output cells when ``size_in`` cells are stretched over
    ``size_out`` (default ``n``) by nearest neighbour: ``floor((i + 0.5) * size_in / size_out)``,
    half-pixel centres (torch's ``interpolate(mode="nearest-exact")``), computed in integers; cells
    at or past ``size_out`` repeat the last one.

    Returns ``[n]``: NumPy int64 for Python int sizes, else int32 (traced ``size_out``, symbolic).
    """
    size_out = n if size_out is None else size_out
    if known(n, size_in, size_out):
        i = np.minimum(np.arange(n), size_out - 1)
    else:
        i = jnp.minimum(positions(n), size_out - 1)
    return (2 * i + 1) * size_in // (2 * size_out)  # < size_in for every i < size_out


def resize_nearest(x: Array, height: int, width: int) -> Array:
    """Nearest-neighbour resize (``nearest_indices``) of ``[N, h, w, C]`` to ``[N, height, width,
    C]``; the identity when the sizes match."""
    h, w = x.shape[1:3]
    if (h, w) == (height, width):
        return x
    return x[:, nearest_indices(height, h)][:, :, nearest_indices(width, w)]
