"""Pure feature-statistics maths of AdaIN.

All functions take NHWC feature maps (any leading batch axes, channels last)
and compute statistics over the two spatial axes in float32, whatever the
input dtype. Variance is the biased (population) variance, as in the
authors' Lua code; ``eps`` is added to the variance before the square root.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

EPS = 1e-5

_SPATIAL = (-3, -2)


def channel_mean_std(x: Array, eps: float = EPS) -> tuple[Array, Array]:
    """Per-sample, per-channel mean and std over the spatial axes.

    Args:
      x: features ``[..., H, W, C]``, any float dtype.
      eps: added to the biased variance before the square root.

    Returns:
      ``(mean, std)``, each ``[..., 1, 1, C]`` float32.
    """
    x = x.astype(jnp.float32)
    mean = jnp.mean(x, axis=_SPATIAL, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=_SPATIAL, keepdims=True)
    return mean, jnp.sqrt(var + eps)


def adain(content_feat: Array, style_feat: Array, eps: float = EPS) -> Array:
    """Adaptive instance normalisation: ``std(s) * (c - mean(c)) / std(c) + mean(s)``.

    Args:
      content_feat: ``[..., Hc, Wc, C]`` features of the content.
      style_feat: ``[..., Hs, Ws, C]`` features of the style; leading axes must
        broadcast against the content's (a single style may serve a batch).
      eps: added to both variances before the square root.

    Returns:
      float32 ``[..., Hc, Wc, C]``: the content features re-normalised to the
      style's per-channel mean and std.
    """
    c_mean, c_std = channel_mean_std(content_feat, eps)
    s_mean, s_std = channel_mean_std(style_feat, eps)
    normalised = (content_feat.astype(jnp.float32) - c_mean) / c_std
    return normalised * s_std + s_mean


def blend(content_feat: Array, target_feat: Array, alpha: Array | float) -> Array:
    """``(1 - alpha) * content_feat + alpha * target_feat`` in float32.

    ``alpha`` is a scalar or broadcasts against the features (e.g. ``[N, 1, 1, 1]``).
    """
    alpha = jnp.asarray(alpha, jnp.float32)
    return (1.0 - alpha) * content_feat.astype(jnp.float32) + alpha * target_feat.astype(
        jnp.float32
    )


def adain_from_stats(
    content_feat: Array, style_mean: Array, style_std: Array, eps: float = EPS
) -> Array:
    """AdaIN against precomputed style statistics (see ``channel_mean_std``).

    Args:
      content_feat: ``[..., H, W, C]`` features of the content.
      style_mean, style_std: ``[..., 1, 1, C]`` float32 statistics of the style
        features, broadcasting against the content's leading axes.
      eps: added to the content's variance before the square root.

    Returns:
      float32 ``[..., H, W, C]``; equals ``adain(content_feat, style_feat)``
      when the statistics are ``channel_mean_std(style_feat, eps)``.
    """
    c_mean, c_std = channel_mean_std(content_feat, eps)
    normalised = (content_feat.astype(jnp.float32) - c_mean) / c_std
    return normalised * style_std + style_mean
