"""Spatial control (paper section 7.3): region labels 0..K-1, resized to the relu4_1 grid by
nearest neighbour; region k takes style k and, as in the authors' code, AdaIN's content
statistics over region k's features only (``region_stats``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from adain_jax.controls.stats import StyleStats, is_concrete
from adain_jax.nn import ops
from adain_jax.nn.forward import dtype_of
from adain_jax.nn.names import known


def resize_labels(labels: Array, height: int, width: int) -> Array:
    """Nearest-neighbour resize of integer label maps ``[..., Hm, Wm]`` to ``[..., height, width]``.

    Each output cell takes the label under its centre (a mask of any size is stretched over the
    whole image).
    """
    hm, wm = labels.shape[-2:]
    rows, cols = ops.nearest_indices(height, hm), ops.nearest_indices(width, wm)
    return jnp.asarray(labels)[..., rows[:, None], cols[None, :]]


def check_labels(labels: Array, num_styles: int) -> None:
    """Raise ``ValueError`` unless the concrete label map uses exactly labels ``0..K-1``."""
    if not is_concrete(labels):
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
      mask: ``[H, W]`` (grey) or ``[H, W, C]`` (colour; alpha ignored) array, any integer or
        float dtype.
      num_styles: K, the number of styles; the mask must hold exactly K distinct colours.

    Returns:
      Labels in ``0..K-1``: the brightest colour (luma ``0.299 R + 0.587 G + 0.114 B``, ties
      broken by colour value) is region 0 (style 1), the darkest region K-1. For two styles
      this is the authors' rule: white -> style 1, black -> style 2. A two-style mask that is
      black and white except for anti-aliased or compressed edges (at least 98% of pixels
      within 10% of black or white) is thresholded at mid-grey.

    Raises:
      ValueError: the number of distinct colours is not K.
    """
    arr = np.asarray(mask)
    if arr.ndim == 3:
        arr = arr[..., :3] if arr.shape[-1] >= 3 else arr[..., :1]
    else:
        arr = arr[..., None]
    colours, inverse = _distinct_colours(arr)
    if num_styles == 2 and len(colours) > 2:
        binary = _nearly_binary(arr)
        if binary is not None:
            return binary
    if len(colours) != num_styles:
        raise ValueError(
            f"mask has {len(colours)} distinct colour{'s' * (len(colours) != 1)} but "
            f"{num_styles} styles were given "
            "(use one flat colour per region, e.g. a PNG; white/black for two styles)"
        )
    c = colours.astype(np.float64)
    luma = _luma(c)
    order = sorted(range(len(colours)), key=lambda i: (-luma[i], tuple(-c[i])))
    rank = np.empty(len(colours), np.int32)
    rank[order] = np.arange(len(colours), dtype=np.int32)
    return rank[inverse.reshape(-1)].reshape(arr.shape[:2])


def _luma(x: np.ndarray) -> np.ndarray:
    """``0.299 R + 0.587 G + 0.114 B`` of float ``[..., 3]`` colours; grey ``[..., 1]``: itself."""
    return (
        x[..., 0] if x.shape[-1] == 1 else x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114
    )


def _distinct_colours(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(pixels, axis=0, return_inverse=True)`` of ``[H, W, C]``, in linear time for
    8-bit masks (a colour histogram) and one 1-D sort for 16-bit ones, not a row sort (seconds
    per megapixel)."""
    flat = arr.reshape(-1, arr.shape[-1])
    channels = flat.shape[1]
    if not (np.issubdtype(arr.dtype, np.integer) and flat.size and channels <= 3):
        return np.unique(flat, axis=0, return_inverse=True)
    low, high = int(flat.min()), int(flat.max())
    if low < 0 or high >= 1 << 16:
        return np.unique(flat, axis=0, return_inverse=True)
    bits = 8 if high < 256 else 16
    dtype = np.int32 if bits * channels < 31 else np.int64
    key = np.zeros(flat.shape[0], dtype)
    for c in range(channels):  # channel 0 most significant: np.unique's row order
        key = (key << bits) | flat[:, c].astype(dtype)
    if bits * channels <= 24:
        present = np.flatnonzero(np.bincount(key, minlength=1 << (bits * channels)))
        lookup = np.zeros(1 << (bits * channels), np.int64)
        lookup[present] = np.arange(present.size)
        keys, inverse = present, lookup[key]
    else:
        keys, inverse = np.unique(key, return_inverse=True)
    mask = (1 << bits) - 1
    shifts = [bits * (channels - 1 - c) for c in range(channels)]
    colours = np.stack([(keys >> s) & mask for s in shifts], axis=-1).astype(arr.dtype)
    return colours, inverse


def _nearly_binary(arr: np.ndarray) -> np.ndarray | None:
    """Labels (white -> 0, black -> 1) of a mostly black-and-white ``[H, W, C]`` mask, else None."""
    x = arr.astype(np.float64)
    if np.issubdtype(arr.dtype, np.integer):
        x = x / (255.0 if arr.max() <= 255 else 65535.0)
    y = _luma(x)
    near = (y < 0.1) | (y > 0.9)
    white = y >= 0.5
    if near.mean() < 0.98 or white.all() or not white.any():
        return None
    return np.where(white, 0, 1).astype(np.int32)


def resize_labels_within(labels: Array, cells: Array, height: int, width: int) -> Array:
    """``resize_labels`` to each image's own valid cells of a padded ``[N, height, width]`` grid.

    Args:
      labels: int ``[Hm, Wm]`` or ``[N, Hm, Wm]``.
      cells: int ``[N, 2]`` valid cells of each image, or ``[1, 2]`` for all (traced).

    Returns:
      int ``[N, height, width]``: image n's labels stretched over its ``cells[n]`` area (the
      same cells as ``resize_labels(labels[n], *cells[n])``); cells outside the area repeat the
      last valid row/column (don't care).
    """
    labels = jnp.asarray(labels)
    hm, wm = labels.shape[-2:]
    cells = jnp.asarray(cells, jnp.int32)
    batch = labels.shape[0] if labels.ndim == 3 else cells.shape[0]
    labels = jnp.broadcast_to(labels, (batch, hm, wm))
    cells = jnp.broadcast_to(cells, (batch, 2))

    def one(lab: Array, cell: Array) -> Array:
        rows = ops.nearest_indices(height, hm, cell[0])
        cols = ops.nearest_indices(width, wm, cell[1])
        return lab[rows[:, None], cols[None, :]]

    return jax.vmap(one)(labels, cells)


def region_stats(feat: Array, labels: Array, num_regions: int) -> tuple[Array, Array]:
    """Per-region channel mean/std ``[N, K, C]`` float32 of ``feat`` ``[N, h, w, C]``
    (``ops.channel_mean_std`` over the cells labelled k; an empty region: mean 0)."""
    stats = [ops.channel_mean_std(feat, valid=labels == k) for k in range(num_regions)]
    return tuple(jnp.stack([s[i][..., 0, 0, :] for s in stats], axis=-2) for i in (0, 1))


def check_mask(mask: Array | None, stats: StyleStats, contents: int) -> Array | None:
    """``mask`` (``None`` passes) as int32 labels after ``check_labels``; ``ValueError`` unless
    it is ``[H, W]`` or ``[N, H, W]`` (N = 1 or ``contents``) of integers (checked at trace time
    too: a traced float mask was cast to one region)."""
    if mask is None:
        return None
    shape = np.shape(mask)
    if len(shape) not in (2, 3):
        raise ValueError(f"mask must be [H, W] or [N, H, W] labels, got shape {shape}")
    if len(shape) == 3 and known(shape[0], contents) and shape[0] not in (1, contents):
        raise ValueError(f"mask has a batch of {shape[0]} for {contents} content image(s)")
    dtype = dtype_of(mask)
    if not jnp.issubdtype(dtype, jnp.integer):
        raise ValueError(f"mask must hold integer region labels, got dtype {dtype}")
    check_labels(mask, stats.num_styles)
    return jnp.asarray(mask, jnp.int32)
