"""Temporal consistency of stylized video: the maths, pure (no state, no I/O; docs/video.md).

- ``stylize_smoothed``: AdaIN with the content's relu4_1 channel mean/std an exponential
  moving average over the frames (``ema``; per region with a mask), scanned inside the one
  compiled call; between batches the caller keeps the last frame's ``ContentStats``.
- ``blend_warped``: the previous output frame, warped to the current one by the optical flow
  (``warp``; the flow comes from OpenCV in ``adain_jax.inference.temporal``), blended in where
  the forward/backward check ``consistent_flow`` says it is visible.
- ``warping_error``: the measurement (Lai et al. 2018, as in ReReVST and CCPL).

Conventions: images float ``[H, W, 3]`` (or ``[N, H, W, 3]``) in [0, 1]; a flow is float
``[H, W, 2]`` of ``(dx, dy)`` in px (OpenCV's order) such that pixel ``(x, y)`` of the current
frame shows what pixel ``(x + dx, y + dy)`` of the previous frame showed ("backward" flow,
current -> previous); pixel centres at integer coordinates.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from adain_jax.controls.masks import check_mask, resize_labels
from adain_jax.controls.stats import StyleStats, normalize_weights, require_adain_fusion
from adain_jax.controls.targets import (
    apply_coefficients,
    coefficients_from_stats,
    content_statistics,
)
from adain_jax.controls.transfer import render
from adain_jax.nn.forward import as_batch, check_image_size
from adain_jax.nn.layers import Dtype


# ---------------------------------------------------------------------- smoothed statistics
class ContentStats(NamedTuple):
    """Content relu4_1 channel statistics per frame and region (a pytree).

    Attributes:
      mean, std: float32 ``[N, R, C]`` (R = 1, or K regions with a mask).
    """

    mean: Array
    std: Array

    def at(self, index: int) -> ContentStats:
        """Frame ``index``'s statistics, ``[1, R, C]`` each (the state for the next batch)."""
        return ContentStats(self.mean[index : index + 1], self.std[index : index + 1])


def ema(x: Array, state: Array, started: Array | bool, decay: Array | float) -> Array:
    """Exponential moving average along axis 0, continuing from ``state``.

    ``m_t = m_{t-1} + (1 - decay) * (x_t - m_{t-1})`` (a frame equal to the average leaves it
    exactly unchanged), with ``m_{-1} = state`` if ``started`` else ``m_0 = x_0``.

    Args:
      x: float ``[N, ...]``, one entry per frame in time order.
      state: float ``[1, ...]`` or ``[...]``: the average after the previous frame (ignored
        when ``started`` is false).
      started: bool scalar, traced.
      decay: weight of the past in [0, 1) (0: no smoothing), traced.

    Returns:
      float32 ``[N, ...]``: the average after each frame.
    """
    x = jnp.asarray(x, jnp.float32)
    rate = 1.0 - jnp.asarray(decay, jnp.float32)
    init = jnp.where(started, jnp.reshape(state, x.shape[1:]).astype(jnp.float32), x[0])

    def step(m, xt):
        m = m + rate * (xt - m)
        return m, m

    return jax.lax.scan(step, init, x)[1]


@functools.partial(jax.jit, static_argnames=("dtype",))
def _stylize_smoothed(params, content, stats, alpha, weights, mask, state, started, decay, dtype):
    def target(feat: Array, _: None) -> tuple[Array, ContentStats]:
        labels = None if mask is None else resize_labels(mask, *feat.shape[1:3])
        mean, std = content_statistics(feat, stats.num_styles, labels)
        smoothed = ContentStats(
            ema(mean, state.mean, started, decay), ema(std, state.std, started, decay)
        )
        scale, shift = coefficients_from_stats(smoothed.mean, smoothed.std, stats, weights, labels)
        return apply_coefficients(feat, scale, shift, alpha, labels), smoothed

    return render(params, content, target, has_aux=True, dtype=dtype)


def stylize_smoothed(
    params: dict,
    frames: Array,
    stats: StyleStats,
    alpha: Array | float = 1.0,
    state: ContentStats | None = None,
    *,
    decay: float = 0.9,
    weights: Array | None = None,
    mask: Array | None = None,
    dtype: Dtype = jnp.float32,
) -> tuple[Array, ContentStats]:
    """Stylize consecutive video frames with content statistics smoothed over time (``ema``).

    With ``decay=0`` this is ``stylize_with_stats`` frame by frame (same maths, exact
    sizes: no ``sizes`` padding here).

    Args:
      params: ``{"encoder", "decoder"}`` (AdaIN decoder).
      frames: RGB float ``[N, H, W, 3]`` in [0, 1], consecutive, in time order.
      stats: K >= 1 styles.
      alpha: in [0, 1], scalar or ``[N]``.
      state: the smoothed statistics after the previous frame (``ContentStats.at`` of the
        previous call's result, ``[1, R, C]``), or ``None`` for the first frames of a clip.
      decay: weight of the past in [0, 1), traced (changing it does not recompile).
      weights, mask: as in ``stylize_with_stats`` (with a mask, each region's statistics
        are smoothed on their own).
      dtype: compute dtype of the convolutions, static.

    Returns:
      ``(images, smoothed)``: float32 ``[N, H, W, 3]`` in [0, 1], and the smoothed statistics
      of every frame, ``[N, R, C]`` each (take ``smoothed.at(n - 1)`` after the last real
      frame as the next call's ``state``).

    Raises:
      ValueError: a concat decoder, sides under 9 px, ``decay`` outside [0, 1), bad weights or
        mask labels.
    """
    require_adain_fusion(params, "--temporal stats (smoothed content statistics)")
    frames = as_batch(frames, "frames")
    check_image_size(*frames.shape[1:3], "frames")
    if not 0.0 <= float(decay) < 1.0:
        raise ValueError(f"decay must be in [0, 1), got {decay}")
    weights = normalize_weights(weights, stats.num_styles) if mask is None else None
    mask = check_mask(mask, stats, frames.shape[0])
    regions = 1 if mask is None else stats.num_styles
    started = state is not None
    if state is None:  # a placeholder: ``ema`` ignores it while not started
        zeros = jnp.zeros((1, regions, stats.mean.shape[-1]), jnp.float32)
        state = ContentStats(zeros, zeros)
    started, decay = jnp.asarray(started), jnp.asarray(decay, jnp.float32)
    return _stylize_smoothed(
        params, frames, stats, alpha, weights, mask, state, started, decay, dtype
    )


# ----------------------------------------------------------------------------- flow, warping
def bilinear_sample(image: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """``image`` (float ``[H, W, C]``) sampled at ``(xs, ys)`` (float ``[h, w]``, px), bilinear,
    coordinates clamped to the image. Returns ``[h, w, C]`` float32; an integer coordinate
    returns the pixel exactly."""
    h, w = image.shape[:2]
    xs = np.clip(xs, 0.0, w - 1.0)
    ys = np.clip(ys, 0.0, h - 1.0)
    x0 = np.floor(xs).astype(np.int64)
    y0 = np.floor(ys).astype(np.int64)
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    fx = (xs - x0).astype(np.float32)[..., None]
    fy = (ys - y0).astype(np.float32)[..., None]
    img = np.asarray(image, np.float32)
    top = img[y0, x0] + fx * (img[y0, x1] - img[y0, x0])
    bottom = img[y1, x0] + fx * (img[y1, x1] - img[y1, x0])
    return top + fy * (bottom - top)


def warp(previous: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The previous frame seen from the current one.

    Args:
      previous: float ``[H, W, C]``.
      flow: float ``[H, W, 2]``, current -> previous (module doc).

    Returns:
      ``(warped, inside)``: float32 ``[H, W, C]`` (``previous`` sampled at ``x + flow``,
      bilinear) and bool ``[H, W]``: where ``x + flow`` lies inside the previous frame
      (elsewhere ``warped`` repeats its border).
    """
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    px, py = xs + flow[..., 0], ys + flow[..., 1]
    inside = (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1)
    return bilinear_sample(previous, px, py), inside


def consistent_flow(
    backward: np.ndarray, forward: np.ndarray, rel: float = 0.01, abs_px2: float = 0.5
) -> np.ndarray:
    """Forward/backward consistency check (Sundaram et al. 2010, as in Ruder et al. 2016).

    A pixel of the current frame is visible in the previous one when the backward flow (current
    -> previous) lands inside the frame and the forward flow (previous -> current) taken there
    leads back: ``|b + f(x + b)|^2 <= rel (|b|^2 + |f(x + b)|^2) + abs_px2``.

    Args:
      backward, forward: float ``[H, W, 2]`` flows in px.
      rel, abs_px2: the tolerances (unitless, px^2).

    Returns:
      bool ``[H, W]``: True where not occluded.
    """
    f_back, inside = warp(forward, backward)
    total = backward + f_back
    err = np.sum(total**2, -1)
    bound = rel * (np.sum(backward**2, -1) + np.sum(f_back**2, -1)) + abs_px2
    return inside & (err <= bound)


def blend_warped(
    current: np.ndarray, warped_previous: np.ndarray, visible: np.ndarray, weight: float
) -> np.ndarray:
    """``current + weight * visible * (warped_previous - current)``: the previous output
    (warped to this frame) blended in where ``visible``; float32 ``[H, W, 3]`` in [0, 1].

    ``weight`` in [0, 1): the share of the previous output (0: none). Where the two agree
    the result equals ``current`` exactly.
    """
    cur = np.asarray(current, np.float32)
    diff = np.asarray(warped_previous, np.float32) - cur
    return cur + np.float32(weight) * visible[..., None].astype(np.float32) * diff


def warping_error(
    previous: np.ndarray, current: np.ndarray, flow: np.ndarray, visible: np.ndarray
) -> float:
    """Temporal warping error of two consecutive output frames (Lai et al. 2018).

    ``sum_x M(x) |O_t(x) - W(O_{t-1})(x)|^2 / sum_x M(x)``: the squared RGB distance (summed
    over the 3 channels, values in [0, 1]) between the current frame and the previous frame
    warped by ``flow`` to it, averaged over the visible pixels ``M`` (also limited to where the
    flow lands inside the previous frame). Average it over the frame pairs of a clip. 0.0 when
    no pixel is visible.

    Args:
      previous, current: float ``[H, W, 3]`` in [0, 1].
      flow: float ``[H, W, 2]``, current -> previous, px.
      visible: bool ``[H, W]``, non-occluded pixels.
    """
    warped, inside = warp(previous, flow)
    m = visible & inside
    if not m.any():
        return 0.0
    d = np.sum((np.asarray(current, np.float64) - warped) ** 2, -1)
    return float(d[m].mean())
