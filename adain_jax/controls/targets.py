"""The AdaIN target of the runtime controls, as per-region affine maps of the content features.

Split into ``target_coefficients`` (statistics, once per image: ``content_statistics`` then
``coefficients_from_stats``) and ``apply_coefficients`` (per pixel, with the ``alpha`` blend) so
that tiling can apply whole-image statistics tile by tile and video can smooth them over frames.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array

from adain_jax.controls.masks import region_stats
from adain_jax.controls.stats import StyleStats, normalize_weights
from adain_jax.nn import ops


def content_statistics(
    feat: Array,
    num_styles: int,
    labels: Array | None = None,
    valid: Array | None = None,
) -> tuple[Array, Array]:
    """Channel mean and std of the content features, per region: what AdaIN normalises by.

    Args:
      feat: content relu4_1 ``[N, h, w, C]``.
      num_styles: K (the number of regions with ``labels``).
      labels, valid: as in ``target_coefficients``.

    Returns:
      ``(mean, std)``, float32 ``[N, R, C]`` (R = 1 without labels, K with them); std is
      ``sqrt(biased variance + ops.EPS)``.
    """
    if labels is None:
        if valid is None:
            c_mean, c_std = ops.channel_mean_std(feat)
            return c_mean[:, 0], c_std[:, 0]  # [N, 1, C]
        return region_stats(feat, jnp.where(valid, 0, -1), 1)
    labels = jnp.broadcast_to(labels, feat.shape[:3])
    if valid is not None:
        labels = jnp.where(valid, labels, -1)
    return region_stats(feat, labels, num_styles)  # [N, K, C]


def coefficients_from_stats(
    c_mean: Array,
    c_std: Array,
    stats: StyleStats,
    weights: Array | None = None,
    labels: Array | None = None,
) -> tuple[Array, Array]:
    """AdaIN's affine maps from content statistics ``[N, R, C]`` (``content_statistics``, or
    any statistics put in their place, e.g. smoothed over video frames) and the styles'.

    ``labels`` only says which mode: ``None`` mixes the K styles with ``weights`` (R = 1),
    else region k takes style k (R = K). Returns ``(scale, shift)``, float32 ``[N, R, C]``.
    """
    k = stats.mean.shape[0]
    s_mean = stats.mean.reshape(k, -1)
    s_std = stats.std.reshape(k, -1)
    if labels is None:
        w = normalize_weights(weights, k)
        mix_mean = jnp.einsum("k,kc->c", w, s_mean)[None, None]
        mix_std = jnp.einsum("k,kc->c", w, s_std)[None, None]
        scale = mix_std / c_std
        return scale, mix_mean - c_mean * scale
    scale = s_std[None] / c_std
    return scale, s_mean[None] - c_mean * scale


def target_coefficients(
    feat: Array,
    stats: StyleStats,
    weights: Array | None = None,
    labels: Array | None = None,
    valid: Array | None = None,
) -> tuple[Array, Array]:
    """Per-region affine maps ``t = scale * f + shift`` that AdaIN applies to ``feat``.

    Args:
      feat: content relu4_1 ``[N, h, w, C]``.
      stats: K styles.
      weights: ``[K]`` interpolation weights (normalised here; equal if ``None``); ignored with
        ``labels``.
      labels: ``None`` (one region: the weighted mix of the K styles) or int ``[h, w]`` /
        ``[N, h, w]`` region labels in ``0..K-1`` at the feature resolution (``resize_labels``).
      valid: ``None`` or bool ``[N, h, w]``: only these cells count in the content statistics
        (e.g. an image padded to a size bucket).

    Returns:
      ``(scale, shift)``, float32 ``[N, R, C]`` with R = 1 without labels, K with labels.
    """
    c_mean, c_std = content_statistics(feat, stats.mean.shape[0], labels, valid)
    return coefficients_from_stats(c_mean, c_std, stats, weights, labels)


def apply_coefficients(
    feat: Array,
    scale: Array,
    shift: Array,
    alpha: Array | float = 1.0,
    labels: Array | None = None,
) -> Array:
    """``(1 - alpha) f + alpha (scale[region] * f + shift[region])`` in float32.

    Args:
      feat: ``[N, h, w, C]`` (a whole feature map or a tile of it).
      scale, shift: ``[N, R, C]`` from ``target_coefficients``.
      alpha: scalar or ``[N]``, in [0, 1].
      labels: ``None`` (R = 1) or int labels ``[h, w]`` / ``[N, h, w]`` of the same tile.
    """
    x = feat.astype(jnp.float32)
    if labels is None:
        target = x * scale[:, :, None, :] + shift[:, :, None, :]
    else:
        labels = jnp.broadcast_to(labels, x.shape[:3])
        pick = jax.vmap(lambda table, lab: table[lab])
        target = x * pick(scale, labels) + pick(shift, labels)
    alpha = jnp.asarray(alpha, jnp.float32).reshape(-1, 1, 1, 1)
    return ops.blend(x, target, alpha)
