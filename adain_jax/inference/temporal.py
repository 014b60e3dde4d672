"""``--temporal``: video without flicker, streaming (the state between batches lives here).

``parse_temporal`` (``temporal_options``) reads the flag into ``TemporalOptions``;
``TemporalStream`` is the frame function ``io.video.transform_video`` calls batch after batch for
one clip: it stylizes a batch (with smoothed content statistics when asked,
``backend.stylize_exact_smoothed``, batched over the local devices as every video), then blends the
previous output frame, warped by the optical flow, into each frame (when asked). In memory: one
batch, the smoothed statistics of the last frame, the last output frame and the last content frame
(grey). The maths is in ``adain_jax.controls.temporal``.

Optical flow: OpenCV's DIS flow (``pip install opencv-python-headless``, the ``flow`` extra),
forward and backward on the content frames, with a consistency check for the occlusions.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from adain_jax.controls import temporal
from adain_jax.controls.stats import StyleStats
from adain_jax.inference import backend
from adain_jax.inference.temporal_options import (  # noqa: F401 - re-exported
    DEFAULT_DECAY,
    DEFAULT_MODE,
    FLAG,
    OFF,
    TemporalError,
    TemporalOptions,
    parse_temporal,
)


def opencv():
    """The ``cv2`` module, or ``TemporalError`` (one line) naming the extra to install."""
    try:
        import cv2
    except ImportError:
        raise TemporalError(
            f"{FLAG} flow needs OpenCV for the optical flow: pip install "
            '"adain-jax[flow]" (or pip install opencv-python-headless)'
        ) from None
    return cv2


class Flow:
    """DIS optical flow between consecutive frames (OpenCV), with its occlusion mask."""

    def __init__(self, preset: str = "medium", interpolation: str = "cubic"):
        cv2 = opencv()
        presets = {
            "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
            "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
            "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
        }
        self._cv2 = cv2
        self._dis = cv2.DISOpticalFlow_create(presets[preset])
        self._interp = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}[interpolation]

    def warp(self, previous: np.ndarray, flow: np.ndarray) -> np.ndarray:
        """``previous`` (float ``[H, W, 3]``) sampled at ``x + flow`` (``cv2.remap``, bicubic by
        default: repeated warps of the blended output blur less than bilinear ones; borders
        replicated), float32 ``[H, W, 3]``."""
        h, w = flow.shape[:2]
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        mx, my = xs + flow[..., 0], ys + flow[..., 1]
        src = np.ascontiguousarray(previous, np.float32)
        out = self._cv2.remap(src, mx, my, self._interp, borderMode=self._cv2.BORDER_REPLICATE)
        return np.clip(out, 0.0, 1.0)

    def grey(self, frame: np.ndarray) -> np.ndarray:
        """uint8 ``[H, W]`` luma of a float ``[H, W, 3]`` frame in [0, 1]."""
        rgb = np.clip(np.rint(np.asarray(frame) * 255.0), 0, 255).astype(np.uint8)
        return self._cv2.cvtColor(rgb, self._cv2.COLOR_RGB2GRAY)

    def between(self, previous: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(flow, visible)`` from grey uint8 frames ``[H, W]``: the flow current -> previous
        (float32 ``[H, W, 2]``, px) and bool ``[H, W]`` where it passes the forward/backward
        check (``controls.temporal.consistent_flow``)."""
        backward = self._dis.calc(current, previous, None)
        forward = self._dis.calc(previous, current, None)
        return backward, temporal.consistent_flow(backward, forward)


class TemporalStream:
    """The frame function of one clip: float ``[B, H, W, 3]`` in [0, 1] -> same, called with the
    clip's batches in order (``io.video.transform_video``).

    Args:
      params: ``{"encoder", "decoder"}``.
      stats: the clip's style statistics (``backend.encode_styles``).
      plan: the job's ``Plan`` (alpha, weights, mask, dtype, per-call bound).
      options: ``TemporalOptions``.
      plain: the per-frame stylization to use without ``stats`` smoothing (``run.Stylizer.frames``
        for this clip's styles).
    """

    def __init__(
        self,
        params: dict,
        stats: StyleStats | None,
        plan,
        options: TemporalOptions,
        plain: Callable[[np.ndarray], np.ndarray],
    ):
        self.params, self.stats, self.plan, self.options = params, stats, plan, options
        self.plain = plain
        self.flow = Flow() if options.flow else None
        self.state: temporal.ContentStats | None = None  # smoothed stats after the last frame
        self.previous: tuple[np.ndarray, np.ndarray] | None = None  # (grey content, output)

    def stylize(self, frames: np.ndarray) -> np.ndarray:
        """The network's outputs for a batch (smoothed statistics when asked)."""
        if not self.options.stats:
            return np.asarray(self.plain(frames), np.float32)
        if self.stats is None or not self.plan.batches_frames(*frames.shape[1:3]):
            raise TemporalError(
                f"{FLAG} stats needs frames that are stylized as batches: no "
                "--preserve-color, frames within --max-tile, an AdaIN decoder"
            )
        out, self.state = backend.stylize_exact_smoothed(
            self.params, frames, self.stats, self.plan, self.state, self.options.decay
        )
        return out

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        out = self.stylize(frames)
        if self.flow is None:
            return out
        for i, frame in enumerate(frames):
            grey = self.flow.grey(frame)
            if self.previous is not None:
                prev_grey, prev_out = self.previous
                flow, visible = self.flow.between(prev_grey, grey)
                warped = self.flow.warp(prev_out, flow)
                out[i] = temporal.blend_warped(out[i], warped, visible, self.options.blend)
            self.previous = (grey, out[i].copy())
        return out
