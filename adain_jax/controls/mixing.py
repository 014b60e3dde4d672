"""Runtime controls of AdaIN (paper section 7.3, the authors' ``test.lua``).

Everything here is pure and ``jax.jit``-able:

- a style-feature cache: ``encode_style`` -> ``StyleStats`` (relu4_1 channel
  mean/std), so many contents against one style cost only the content's
  encoder and decoder (``stylize_with_stats``);
- style interpolation: K styles with weights (normalised to sum 1) mixing
  their AdaIN outputs before decoding. AdaIN is affine in the style
  statistics, so the mix equals AdaIN with the weighted mean of the styles'
  means and stds: ``sum_k w_k AdaIN(f(c), s_k) = n(c) sum_k w_k std_k + sum_k w_k mean_k``;
- spatial control: an integer label map with K regions, resized to the
  relu4_1 grid by nearest neighbour; region k takes style k. As in the
  authors' code, the content statistics of region k are computed over that
  region's features only;
- ``alpha`` blends the target with the content features in every mode.

The maths is split into ``target_coefficients`` (statistics, once per
image) and ``apply_coefficients`` (per pixel) so ``adain_jax.controls.tiling`` can
process the features in tiles with whole-image statistics.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from adain_jax.controls.transfer import _as_batch, check_image_size, decode, encode
from adain_jax.nn import ops
from adain_jax.nn.models import DOWNSAMPLE

Dtype = Any


class StyleStats(NamedTuple):
    """Channel statistics of K styles' relu4_1 features (a pytree).

    Attributes:
      mean: float32 ``[K, 1, 1, 512]``.
      std: float32 ``[K, 1, 1, 512]`` (biased variance + ``ops.EPS``, square-rooted).
    """

    mean: Array
    std: Array

    @property
    def num_styles(self) -> int:
        return self.mean.shape[0]


@functools.partial(jax.jit, static_argnames=("dtype",))
def encode_style(params: dict, style: Array, *, dtype: Dtype = jnp.float32) -> StyleStats:
    """Encode style images once into ``StyleStats``.

    Args:
      params: ``{"encoder", ...}``.
      style: RGB float ``[Hs, Ws, 3]`` (one style) or ``[K, Hs, Ws, 3]`` (K
        styles of one size) in [0, 1]; each side at least 9 px.
      dtype: compute dtype of the convolutions.

    Returns:
      ``StyleStats`` with ``K`` (1 for a single image) leading entries.
    """
    style = _as_batch(style, "style")
    check_image_size(*style.shape[1:3], "style")
    mean, std = ops.channel_mean_std(encode(params, style, dtype).relu4_1)
    return StyleStats(mean, std)


def stack_stats(stats: Sequence[StyleStats]) -> StyleStats:
    """Concatenate several ``StyleStats`` along the style axis (in order)."""
    if not stats:
        raise ValueError("need at least one style")
    return StyleStats(
        jnp.concatenate([s.mean for s in stats]), jnp.concatenate([s.std for s in stats])
    )


def _is_concrete(x: Any) -> bool:
    return x is not None and not isinstance(x, jax.core.Tracer)


def normalize_weights(weights: Array | Sequence[float] | None, num_styles: int) -> Array:
    """Interpolation weights as float32 ``[K]`` summing to 1 (equal if ``None``).

    Raises ``ValueError`` (when the values are concrete) for a wrong count,
    negative weights or a zero sum.
    """
    if weights is None:
        return jnp.full((num_styles,), 1.0 / num_styles, jnp.float32)
    if _is_concrete(weights):
        w = np.asarray(weights, np.float64)
        if w.shape != (num_styles,):
            raise ValueError(f"got {w.size} style weights for {num_styles} styles")
        if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError(f"style weights must be >= 0 with a positive sum, got {w.tolist()}")
    w = jnp.asarray(weights, jnp.float32)
    return w / jnp.sum(w)


def resize_labels(labels: Array, height: int, width: int) -> Array:
    """Nearest-neighbour resize of integer label maps ``[..., Hm, Wm]`` to ``[..., height, width]``.

    Each output cell takes the label under its centre (the mask may have any
    size; it is stretched over the whole image).
    """
    hm, wm = labels.shape[-2:]
    rows = np.minimum(((np.arange(height) + 0.5) * hm / height).astype(np.int64), hm - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * wm / width).astype(np.int64), wm - 1)
    return jnp.asarray(labels)[..., rows[:, None], cols[None, :]]


def check_labels(labels: Array, num_styles: int) -> None:
    """Raise ``ValueError`` unless the concrete label map uses exactly labels ``0..K-1``."""
    if not _is_concrete(labels):
        return
    arr = np.asarray(labels)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"mask must hold integer region labels, got dtype {arr.dtype}")
    present = np.unique(arr)
    if present.size != num_styles or present[0] != 0 or present[-1] != num_styles - 1:
        raise ValueError(
            f"mask has {present.size} regions (labels {present.tolist()[:10]}) "
            f"but {num_styles} styles were given; need labels 0..{num_styles - 1}"
        )


def labels_from_mask_image(mask: np.ndarray, num_styles: int) -> np.ndarray:
    """Region labels ``[H, W]`` int32 from a decoded mask image.

    Args:
      mask: ``[H, W]`` (grey) or ``[H, W, C]`` (colour; alpha ignored) array,
        any integer or float dtype.
      num_styles: K, the number of styles; the mask must hold exactly K
        distinct colours.

    Returns:
      Labels in ``0..K-1``: the brightest colour (luma ``0.299 R + 0.587 G +
      0.114 B``, ties broken by colour value) is region 0 (style 1), the
      darkest region K-1. For two styles this is the authors' rule: white ->
      style 1, black -> style 2.

      A two-style mask that is black and white except for anti-aliased or
      compressed edges (at least 98% of pixels within 10% of black or white)
      is thresholded at mid-grey.

    Raises:
      ValueError: the number of distinct colours is not K.
    """
    arr = np.asarray(mask)
    if arr.ndim == 3:
        arr = arr[..., :3] if arr.shape[-1] >= 3 else arr[..., :1]
    else:
        arr = arr[..., None]
    flat = arr.reshape(-1, arr.shape[-1])
    colours, inverse = np.unique(flat, axis=0, return_inverse=True)
    if num_styles == 2 and len(colours) > 2:
        binary = _nearly_binary(arr)
        if binary is not None:
            return binary
    if len(colours) != num_styles:
        raise ValueError(
            f"mask has {len(colours)} distinct colours but {num_styles} styles were given "
            "(use one flat colour per region, e.g. a PNG; white/black for two styles)"
        )
    c = colours.astype(np.float64)
    luma = c[:, 0] * 0.299 + c[:, 1] * 0.587 + c[:, 2] * 0.114 if c.shape[1] == 3 else c[:, 0]
    order = sorted(range(len(colours)), key=lambda i: (-luma[i], tuple(-c[i])))
    rank = np.empty(len(colours), np.int32)
    rank[order] = np.arange(len(colours), dtype=np.int32)
    return rank[inverse.reshape(-1)].reshape(arr.shape[:2])


def _nearly_binary(arr: np.ndarray) -> np.ndarray | None:
    """Labels (white -> 0, black -> 1) of a mostly black-and-white ``[H, W, C]`` mask, else None."""
    x = arr.astype(np.float64)
    if np.issubdtype(arr.dtype, np.integer):
        x = x / (255.0 if arr.max() <= 255 else 65535.0)
    y = x[..., 0] if x.shape[-1] == 1 else x[..., :3] @ np.array([0.299, 0.587, 0.114])
    near = (y < 0.1) | (y > 0.9)
    white = y >= 0.5
    if near.mean() < 0.98 or white.all() or not white.any():
        return None
    return np.where(white, 0, 1).astype(np.int32)


def _region_stats(feat: Array, labels: Array, num_regions: int) -> tuple[Array, Array]:
    """Per-region channel mean/std ``[N, K, C]`` float32 of ``feat`` ``[N, h, w, C]``."""
    x = feat.astype(jnp.float32)
    means, stds = [], []
    for k in range(num_regions):
        m = (labels == k)[..., None]
        count = jnp.maximum(jnp.sum(m, axis=(-3, -2), dtype=jnp.float32), 1.0)
        mean = jnp.sum(jnp.where(m, x, 0.0), axis=(-3, -2)) / count
        var = jnp.sum(jnp.where(m, jnp.square(x - mean[..., None, None, :]), 0.0), axis=(-3, -2))
        means.append(mean)
        stds.append(jnp.sqrt(var / count + ops.EPS))
    return jnp.stack(means, axis=-2), jnp.stack(stds, axis=-2)


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
      weights: ``[K]`` interpolation weights (normalised here; equal if
        ``None``); ignored with ``labels``.
      labels: ``None`` (one region: the weighted mix of the K styles) or int
        ``[h, w]`` / ``[N, h, w]`` region labels in ``0..K-1`` at the feature
        resolution (see ``resize_labels``).
      valid: ``None`` or bool ``[N, h, w]``: only these cells count in the
        content statistics (e.g. an image padded to a size bucket).

    Returns:
      ``(scale, shift)``, float32 ``[N, R, C]`` with R = 1 without labels,
      K with labels.
    """
    k = stats.mean.shape[0]
    s_mean = stats.mean.reshape(k, -1)
    s_std = stats.std.reshape(k, -1)
    if labels is None:
        w = normalize_weights(weights, k)
        if valid is None:
            c_mean, c_std = ops.channel_mean_std(feat)
            c_mean, c_std = c_mean[:, 0], c_std[:, 0]  # [N, 1, C]
        else:
            c_mean, c_std = _region_stats(feat, jnp.where(valid, 0, -1), 1)
        mix_mean = jnp.einsum("k,kc->c", w, s_mean)[None, None]
        mix_std = jnp.einsum("k,kc->c", w, s_std)[None, None]
        scale = mix_std / c_std
        return scale, mix_mean - c_mean * scale
    labels = jnp.broadcast_to(labels, feat.shape[:3])
    if valid is not None:
        labels = jnp.where(valid, labels, -1)
    c_mean, c_std = _region_stats(feat, labels, k)  # [N, K, C]
    scale = s_std[None] / c_std
    return scale, s_mean[None] - c_mean * scale


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


def stylize_features(
    feat: Array,
    stats: StyleStats,
    alpha: Array | float = 1.0,
    weights: Array | None = None,
    labels: Array | None = None,
) -> Array:
    """The decoder's input for content features ``feat`` ``[N, h, w, 512]`` (float32).

    ``labels`` may have any spatial size; they are resized to ``h x w``.
    """
    if labels is not None:
        labels = resize_labels(labels, *feat.shape[1:3])
    scale, shift = target_coefficients(feat, stats, weights, labels)
    return apply_coefficients(feat, scale, shift, alpha, labels)


@functools.partial(jax.jit, static_argnames=("dtype",))
def _stylize_with_stats(params, content, stats, alpha, weights, mask, dtype):
    height, width = content.shape[1:3]
    feat = encode(params, content, dtype).relu4_1
    target = stylize_features(feat, stats, alpha, weights, mask)
    image = decode(params, target, dtype)[:, :height, :width, :]
    return jnp.clip(image, 0.0, 1.0)


def _check_mask(mask: Array | None, stats: StyleStats) -> Array | None:
    if mask is None:
        return None
    if jnp.ndim(mask) not in (2, 3):
        raise ValueError(f"mask must be [H, W] or [N, H, W] labels, got shape {jnp.shape(mask)}")
    check_labels(mask, stats.num_styles)
    return jnp.asarray(mask, jnp.int32)


def stylize_with_stats(
    params: dict,
    content: Array,
    stats: StyleStats,
    alpha: Array | float = 1.0,
    *,
    weights: Array | Sequence[float] | None = None,
    mask: Array | None = None,
    dtype: Dtype = jnp.float32,
) -> Array:
    """Stylize against cached style statistics (``encode_style``).

    Args:
      params: ``{"encoder", "decoder"}``.
      content: RGB float ``[H, W, 3]`` or ``[N, H, W, 3]`` in [0, 1], sides >= 9 px.
      stats: K >= 1 styles, shared by every content image.
      alpha: content-style trade-off in [0, 1], scalar or ``[N]``.
      weights: ``[K]`` interpolation weights, normalised to sum 1 (equal if
        ``None``); used without ``mask``.
      mask: int region labels ``[Hm, Wm]`` or ``[N, Hm, Wm]`` in ``0..K-1``,
        any size (resized to the relu4_1 grid by nearest neighbour); region k
        takes style k.
      dtype: compute dtype of the convolutions.

    Returns:
      float32 image with the content's shape, clipped to [0, 1]. Compiled
      once per shape and dtype; ``alpha``, ``weights`` and the mask's values
      are traced.
    """
    single = jnp.ndim(content) == 3
    content = _as_batch(content, "content")
    check_image_size(*content.shape[1:3], "content")
    weights = normalize_weights(weights, stats.num_styles) if mask is None else None
    mask = _check_mask(mask, stats)
    out = _stylize_with_stats(params, content, stats, alpha, weights, mask, dtype)
    return out[0] if single else out


def stylize_mix(
    params: dict,
    content: Array,
    styles: Array | Sequence[Array],
    weights: Array | Sequence[float] | None = None,
    alpha: Array | float = 1.0,
    mask: Array | None = None,
    *,
    dtype: Dtype = jnp.float32,
) -> Array:
    """Stylize with several styles: interpolation (``weights``) or spatial control (``mask``).

    Args:
      params: ``{"encoder", "decoder"}``.
      content: RGB float ``[H, W, 3]`` or ``[N, H, W, 3]`` in [0, 1].
      styles: ``[K, Hs, Ws, 3]`` or a sequence of K images ``[Hs_k, Ws_k, 3]``
        (sizes may differ) in [0, 1].
      weights: ``[K]`` floats >= 0, normalised to sum 1 (equal if ``None``).
      alpha: in [0, 1]; applies after mixing.
      mask: int labels ``[Hm, Wm]`` (or ``[N, Hm, Wm]``) in ``0..K-1``; region
        k gets style k and content statistics of region k only (the authors'
        semantics). Use ``labels_from_mask_image`` for mask images.
      dtype: compute dtype.

    Returns:
      float32 image with the content's shape, in [0, 1].
    """
    if isinstance(styles, (list, tuple)):
        stats = stack_stats([encode_style(params, s, dtype=dtype) for s in styles])
    else:
        stats = encode_style(params, styles, dtype=dtype)
    return stylize_with_stats(
        params, content, stats, alpha, weights=weights, mask=mask, dtype=dtype
    )


def feature_size(height: int, width: int) -> tuple[int, int]:
    """relu4_1 grid size of an ``height x width`` image (three ceil-mode pools)."""
    return -(-height // DOWNSAMPLE), -(-width // DOWNSAMPLE)


def pad_to_bucket(image: np.ndarray, bucket: int) -> np.ndarray:
    """Reflect-pad ``[H, W, C]`` at the bottom and right up to multiples of ``bucket`` px."""
    h, w = image.shape[:2]
    hb, wb = -(-h // bucket) * bucket, -(-w // bucket) * bucket
    if (hb, wb) == (h, w):
        return image
    return np.pad(image, ((0, hb - h), (0, wb - w), (0, 0)), mode="symmetric")


@functools.partial(jax.jit, static_argnames=("dtype",))
def stylize_padded(
    params: dict,
    content: Array,
    sizes: Array,
    stats: StyleStats,
    alpha: Array | float = 1.0,
    weights: Array | None = None,
    *,
    dtype: Dtype = jnp.float32,
) -> Array:
    """Stylize a batch of images padded to one shape, exactly as each unpadded image.

    Lets images of different sizes share one compiled function (size
    buckets): each image is padded at the bottom/right (``pad_to_bucket``);
    the network runs with per-image valid sizes (``adain_jax.controls.buckets``) and
    the content statistics are taken over each image's own relu4_1 cells, so
    the crop ``[:H, :W]`` of the output equals ``stylize_with_stats`` on the
    unpadded image up to float rounding.

    Args:
      content: ``[N, Hb, Wb, 3]`` float in [0, 1], padded.
      sizes: int ``[N, 2]``, each image's ``(H, W)`` before padding (traced).
      stats, alpha, weights: as in ``stylize_with_stats``.

    Returns:
      float32 ``[N, Hb, Wb, 3]`` in [0, 1]; crop each image to its size.
    """
    from adain_jax.controls import buckets as bucketed

    height, width = content.shape[1:3]
    feat, cells = bucketed.encode_valid(params, content, sizes, dtype)
    h, w = feat.shape[1:3]
    valid = (jnp.arange(h)[None, :, None] < cells[:, 0, None, None]) & (
        jnp.arange(w)[None, None, :] < cells[:, 1, None, None]
    )
    scale, shift = target_coefficients(feat, stats, weights, None, valid)
    target = apply_coefficients(feat, scale, shift, alpha)
    image = bucketed.decode_valid(params, target, cells, dtype)[:, :height, :width, :]
    return jnp.clip(image, 0.0, 1.0)
