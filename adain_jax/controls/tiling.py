"""Stylize large images in bounded memory: encoder and decoder in overlapping windows.

The relu4_1 map is encoded window by window (``ENCODER_MARGIN`` px overlap, interior kept),
the AdaIN (and mask-region) statistics are taken over the whole map, then the decoder runs
window by window (``DECODER_MARGIN`` feature cells). Why this equals the untiled result (window
alignment, receptive-field radii, measurements) and the memory model: docs/design.md,
"Tiling is exact".
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from adain_jax.controls.masks import check_mask, resize_labels
from adain_jax.controls.stats import (
    StyleStats,
    check_alpha,
    check_stats,
    normalize_weights,
    require_adain_fusion,
)
from adain_jax.controls.targets import apply_coefficients, target_coefficients
from adain_jax.nn.forward import (
    as_batch,
    check_batches,
    check_dtype,
    check_image_size,
    check_params,
    decode,
    encode,
    feature_size,
)
from adain_jax.nn.layers import Dtype
from adain_jax.nn.models import DOWNSAMPLE, FEATURE_CHANNELS, decoder_variant
from adain_jax.nn.names import ENCODER_MARGIN, MIN_TILE, ceil_div

DECODER_MARGIN = 6  # feature cells (48 px), > the decoder's 30 px radius
# Peak float32 encoder/decoder working memory per window pixel (relu1_1-level activations:
# 64 channels x 4 bytes, a few alive at once, plus XLA temporaries; an untiled 1024 px stylize
# measures ~1.4 KB/px)
BYTES_PER_PIXEL = 1500
MEMORY_FRACTION = 0.25  # of the available memory a window may use


class Window(NamedTuple):
    """One window along an axis, in input units: read ``[start, start + size)``,
    keep ``[keep_lo, keep_hi)`` (absolute)."""

    start: int
    size: int
    keep_lo: int
    keep_hi: int


def plan_axis(n: int, tile: int, margin: int, align: int) -> list[Window]:
    """Cover ``[0, n)`` with windows of ``tile + 2 * margin`` (+ ``n % align``) units.

    Windows start on multiples of ``align`` and all have one size (one compilation per image
    size); their kept ranges partition ``[0, n)``, each at least ``margin`` away from a window
    edge that is not an image edge. Raises ``ValueError`` unless ``tile`` and ``margin`` are
    positive multiples of ``align``.
    """
    if tile <= 0 or tile % align or margin % align:
        raise ValueError(f"tile {tile} and margin {margin} must be positive multiples of {align}")
    size = tile + 2 * margin + n % align
    if size >= n:
        return [Window(0, n, 0, n)]
    starts = list(range(0, n - size, tile)) + [n - size]
    windows, prev_hi = [], 0
    for s in starts:
        hi = n if s + size == n else s + margin + tile
        windows.append(Window(s, size, prev_hi, hi))
        prev_hi = hi
    return windows


def _kept(win: Window, to_out: Callable[[int], int]) -> tuple[slice, slice]:
    """``win``'s kept range as (slice of the whole output, slice of the window's output)."""
    lo, hi, start = win.keep_lo, win.keep_hi, win.start
    return slice(to_out(lo), to_out(hi)), slice(to_out(lo - start), to_out(hi - start))


def available_memory() -> int:
    """Bytes the default device can use: its limit on an accelerator, else the host's
    ``MemAvailable`` (``/proc/meminfo``)."""
    device = jax.devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "bytes_limit" in stats:
            return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def auto_max_tile(batch: int = 1, dtype: Dtype = jnp.float32) -> int:
    """Default ``max_tile`` in px: the window side whose working memory is ``MEMORY_FRACTION``
    of ``available_memory()``, a multiple of 64 in [256, 4096]."""
    per_px = BYTES_PER_PIXEL * batch * (jnp.dtype(dtype).itemsize / 4)
    side = math.isqrt(int(MEMORY_FRACTION * available_memory() / per_px))
    return int(min(4096, max(256, side // 64 * 64)))


def needs_tiling(height: int, width: int, max_tile: int) -> bool:
    """Whether an image of this size is larger than one window."""
    return max(height, width) > max_tile


@functools.partial(jax.jit, static_argnames=("dtype",))
def _encode_window(params, window, dtype):
    return encode(params, window, dtype=dtype).relu4_1.astype(jnp.float32)


@functools.partial(jax.jit, static_argnames=("dtype",))
def _decode_window(params, feat, scale, shift, alpha, labels, dtype):
    target = apply_coefficients(feat, scale, shift, alpha, labels)
    return jnp.clip(decode(params, target, dtype=dtype), 0.0, 1.0)


_coefficients = jax.jit(target_coefficients)


def _encode_tiled(
    params: dict, content: np.ndarray, max_tile: int, dtype: Dtype = jnp.float32
) -> np.ndarray:
    """relu4_1 of ``[N, H, W, 3]`` images in [0, 1], encoded in windows of at most
    ``max_tile`` (+7) px per side; float32 ``[N, ceil(H/8), ceil(W/8), 512]`` on the host."""
    n, height, width, _ = content.shape
    tile = (max_tile - 2 * ENCODER_MARGIN) // DOWNSAMPLE * DOWNSAMPLE
    h, w = feature_size(height, width)
    feat = np.empty((n, h, w, FEATURE_CHANNELS), np.float32)
    cells = lambda v: ceil_div(v, DOWNSAMPLE)  # noqa: E731  (the last cell may be partial)
    for r in plan_axis(height, tile, ENCODER_MARGIN, DOWNSAMPLE):
        for c in plan_axis(width, tile, ENCODER_MARGIN, DOWNSAMPLE):
            window = content[:, r.start : r.start + r.size, c.start : c.start + c.size]
            out = np.asarray(_encode_window(params, jnp.asarray(window), dtype))
            (r_all, r_win), (c_all, c_win) = _kept(r, cells), _kept(c, cells)
            feat[:, r_all, c_all] = out[:, r_win, c_win]
    return feat


def _decode_tiled(
    params: dict,
    feat: np.ndarray,
    scale: Array,
    shift: Array,
    alpha: Array | float,
    labels: np.ndarray | None,
    max_tile: int,
    dtype: Dtype = jnp.float32,
) -> np.ndarray:
    """Decode ``apply_coefficients(feat, ...)`` in windows; float32 ``[N, 8h, 8w, 3]`` in [0, 1].

    ``labels``: ``None`` or int ``[N, h, w]`` at the feature resolution.
    """
    n, h, w, _ = feat.shape
    tile = max_tile // DOWNSAMPLE - 2 * DECODER_MARGIN
    out = np.empty((n, DOWNSAMPLE * h, DOWNSAMPLE * w, 3), np.float32)
    alpha = jnp.broadcast_to(jnp.asarray(alpha, jnp.float32).reshape(-1), (n,))
    for r in plan_axis(h, tile, DECODER_MARGIN, 1):
        for c in plan_axis(w, tile, DECODER_MARGIN, 1):
            rs, cs = slice(r.start, r.start + r.size), slice(c.start, c.start + c.size)
            lab = None if labels is None else jnp.asarray(labels[:, rs, cs])
            img = _decode_window(
                params, jnp.asarray(feat[:, rs, cs]), scale, shift, alpha, lab, dtype
            )
            px = lambda v: DOWNSAMPLE * v  # noqa: E731
            (r_all, r_win), (c_all, c_win) = _kept(r, px), _kept(c, px)
            out[:, r_all, c_all] = np.asarray(img)[:, r_win, c_win]
    return out


def stylize_tiled(
    params: dict,
    content: np.ndarray,
    stats: StyleStats,
    alpha: float | np.ndarray = 1.0,
    *,
    weights: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    max_tile: int | None = None,
    dtype: Dtype = jnp.float32,
) -> np.ndarray:
    """``stylize_with_stats`` in bounded memory (same arguments, NumPy in and out).

    Args:
      content: float ``[H, W, 3]`` or ``[N, H, W, 3]`` in [0, 1], any size.
      max_tile: window side in px including margins (>= ``MIN_TILE``); ``None``:
        ``auto_max_tile()``.

    Returns:
      float32 NumPy array with the content's shape, in [0, 1]; equal to the untiled result up
      to float rounding.

    Raises:
      TypeError: integer images (divide uint8 by 255).
      ValueError: a concat or instance-norm decoder, sides under 9 px, ``max_tile`` under
        ``MIN_TILE``, or bad weights or mask labels.
    """
    check_params(params)
    require_adain_fusion(params, "tiling")
    if decoder_variant(params["decoder"]).norm == "instance":
        raise ValueError(
            "tiling does not apply to an instance-norm decoder (its statistics span the "
            "whole image); stylize the image whole"
        )
    check_stats(stats)
    check_dtype(dtype)
    content = np.asarray(content)
    single = content.ndim == 3
    content = as_batch(content, "content").astype(np.float32, copy=False)
    n, height, width, _ = content.shape
    check_image_size(height, width, "content")
    alpha = check_alpha(alpha)
    check_batches(n, 1, np.shape(alpha))
    max_tile = auto_max_tile(n, dtype) if max_tile is None else max_tile
    if not isinstance(max_tile, (int, np.integer)) or max_tile < MIN_TILE:
        raise ValueError(f"max_tile must be an integer of at least {MIN_TILE} px, got {max_tile}")
    feat = _encode_tiled(params, content, max_tile, dtype)
    labels = None
    if mask is not None:
        labels = resize_labels(check_mask(mask, stats, n), *feat.shape[1:3])
        labels = np.broadcast_to(np.asarray(labels), feat.shape[:3])
    weights = normalize_weights(weights, stats.num_styles) if mask is None else None
    scale, shift = _coefficients(jnp.asarray(feat), stats, weights, labels)
    out = _decode_tiled(params, feat, scale, shift, alpha, labels, max_tile, dtype)
    out = out[:, :height, :width]
    return out[0] if single else out
