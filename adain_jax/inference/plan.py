"""Planning: every mode decision of a job, made once, before any image is read.

``make_plan(opts, pairs, labels)`` turns ``JobOptions`` and the job's ``Pair``s into a ``Plan``.
Each rule of ``infer.py`` lives in one function here:

- ``resolve_weights``: a mask overrides the style weights;
- ``Plan.shared_stats``: colour preservation makes the style depend on the content (so style
  statistics are per content, and such contents are not batched);
- ``Plan.backend_for``: which back-end stylizes a content of a given size (tiled / exact / padded
  bucket); ``Plan.batch_key``: which contents batch together; ``Plan.batches_frames``: whether
  video frames run as batches; ``Plan.per_call``: the memory bound of one compiled call;
- ``split_existing``: which outputs are skipped (exist, no ``overwrite``).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from adain_jax.controls.tiling import auto_max_tile, needs_tiling
from adain_jax.inference.names import NEVER_TILE, PRESERVE_MODES
from adain_jax.inference.paths import Pair
from adain_jax.inference.temporal_options import OFF, TemporalOptions
from adain_jax.nn.names import round_up

__all__ = ["NEVER_TILE", "PRESERVE_MODES", "Backend", "JobOptions", "Plan", "make_plan"]


@dataclasses.dataclass(frozen=True)
class JobOptions:
    """How every pair of a job is stylized (``infer.py``'s flags, validated).

    Attributes:
      alpha: content-style trade-off in [0, 1].
      content_size, style_size: shorter side in px after resizing (0 = as is).
      crop: centre-crop to a square after resizing.
      dtype: ``"float32"`` or ``"bfloat16"`` convolutions.
      style_weights: K interpolation weights (>= 0, positive sum; ``None`` = equal).
      preserve_color: ``None``, ``"coral"`` or ``"luminance"``.
      mask: mask image routing style k to region k (``run.load_mask``).
      max_tile: window side (px) above which images are tiled; ``None`` =
        ``tiling.auto_max_tile()``.
      batch_size: contents per compiled call (rounded down to a power of two).
      bucket: pad sizes up to multiples of this many px (0 = exact sizes).
      overwrite: redo pairs whose output exists.
      progress: show progress bars.
      video_batch: frames per call for video contents.
      temporal: temporal consistency of video contents (``inference.temporal``).
    """

    alpha: float = 1.0
    content_size: int = 512
    style_size: int = 512
    crop: bool = False
    dtype: str = "float32"
    style_weights: tuple[float, ...] | None = None
    preserve_color: str | None = None
    mask: Path | None = None
    max_tile: int | None = None
    batch_size: int = 4
    bucket: int = 64
    overwrite: bool = False
    progress: bool = True
    video_batch: int = 4
    temporal: TemporalOptions = OFF


class Backend(enum.Enum):
    """How a content (or a batch of same-size contents) goes through the network.

    ``EXACT`` is not ``PADDED`` with full sizes: the masked statistics and border fills that
    ``sizes`` brings change the output in the last float bits (measured: 7e-7, some 8-bit pixels
    flip) and cost ~15% more encoder time on the CPU.
    """

    TILED = "tiled"  # larger than max_tile: overlapping windows, whole-image statistics
    EXACT = "exact"  # at its own size; same-size contents (video frames) share a call
    PADDED = "padded"  # reflect-padded to a bucket shape, run with its valid size


def resolve_weights(
    style_weights: tuple[float, ...] | None, labels: np.ndarray | None
) -> tuple[float, ...] | None:
    """The weights the network gets: none when a mask routes the styles (it picks one)."""
    return None if labels is not None else style_weights


def split_existing(pairs: Sequence[Pair], overwrite: bool) -> tuple[list[Pair], list[Path]]:
    """(pairs to run, outputs skipped because they exist and ``overwrite`` is off)."""
    todo, skipped = [], []
    for pair in pairs:
        if pair.output.exists() and not overwrite:
            skipped.append(pair.output)
        else:
            todo.append(pair)
    return todo, skipped


@dataclasses.dataclass(frozen=True)
class Plan:
    """A job, decided: what runs, and how (see the module doc for the rules).

    Attributes:
      todo: the pairs to stylize; ``skipped``: outputs left as they are.
      alpha, content_size, style_size, crop: as in ``JobOptions``.
      dtype: the compute dtype (a ``jnp.dtype``).
      color: ``None``, ``"coral"`` or ``"luminance"``.
      weights: style weights given to the network (``None``: equal, or a mask).
      labels: int32 ``[Hm, Wm]`` region labels of the mask, or ``None``.
      max_tile: window side in px above which a content is tiled.
      bucket, batch_size, video_batch, progress, temporal: as in ``JobOptions``.
    """

    todo: tuple[Pair, ...]
    skipped: tuple[Path, ...]
    alpha: float
    content_size: int
    style_size: int
    crop: bool
    dtype: Any
    color: str | None
    weights: tuple[float, ...] | None
    labels: np.ndarray | None
    max_tile: int
    bucket: int
    batch_size: int
    video_batch: int
    progress: bool
    temporal: TemporalOptions = OFF

    @property
    def shared_stats(self) -> bool:
        """Whether one style set's statistics serve every content: not with colour preservation,
        which recolours the style (or greys it) for each content."""
        return self.color is None

    def backend_for(self, height: int, width: int) -> Backend:
        """THE choice of back-end for one ``height x width`` content."""
        if needs_tiling(height, width, self.max_tile):
            return Backend.TILED
        if self.labels is not None or self.bucket <= 0:
            return Backend.EXACT  # the padded path takes no mask; bucket 0: exact sizes
        return Backend.PADDED

    def batch_key(self, height: int, width: int) -> tuple[int, int] | None:
        """The bucket shape under which a content batches with other contents, or ``None`` if it
        runs alone (tiled, exact, or its styles depend on it)."""
        if not self.shared_stats or self.backend_for(height, width) is not Backend.PADDED:
            return None
        return (round_up(height, self.bucket), round_up(width, self.bucket))

    def batches_frames(self, height: int, width: int) -> bool:
        """Whether video frames (all ``height x width``) run as unpadded batches (``Backend.EXACT``,
        ``video_batch`` frames a call); otherwise frame by frame, each as an image
        (``backend_for``)."""
        return self.shared_stats and self.backend_for(height, width) is not Backend.TILED

    def per_call(self, height: int, width: int) -> int:
        """How many ``height x width`` images one call may take: at most ``max_tile**2`` pixels in
        all (the memory one tile may use), at least one."""
        return max(1, self.max_tile**2 // (height * width))


def make_plan(opts: JobOptions, pairs: Sequence[Pair], labels: np.ndarray | None = None) -> Plan:
    """Decide the job: which pairs run, and every mode (see the module doc). ``labels``: the mask's
    region labels (``run.load_mask``), when ``opts.mask``. Every job, one pair or many, skips
    outputs that exist unless ``opts.overwrite``."""
    todo, skipped = split_existing(pairs, opts.overwrite)
    dtype = jnp.dtype(opts.dtype)
    return Plan(
        todo=tuple(todo),
        skipped=tuple(skipped),
        alpha=opts.alpha,
        content_size=opts.content_size,
        style_size=opts.style_size,
        crop=opts.crop,
        dtype=dtype,
        color=opts.preserve_color,
        weights=resolve_weights(opts.style_weights, labels),
        labels=labels,
        max_tile=opts.max_tile or auto_max_tile(1, dtype),
        bucket=opts.bucket,
        batch_size=opts.batch_size,
        video_batch=opts.video_batch,
        progress=opts.progress,
        temporal=opts.temporal,
    )
