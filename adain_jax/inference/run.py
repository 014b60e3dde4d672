"""Running a planned job: read -> batch -> stylize -> write.

- read: ``load_mask``, ``Styles`` (each style image read once; its statistics encoded once when
  the plan shares them), contents via ``io.images``/``io.video``;
- batch: ``Batches`` groups contents under ``Plan.batch_key`` and flushes a group once it holds
  ``batch_size`` contents;
- stylize: ``Stylizer`` applies colour preservation and the plan's back-end
  (``adain_jax.inference.backend``); a video with ``--temporal`` goes through one
  ``inference.temporal.TemporalStream`` per clip (the state between its batches);
- write: ``Writer`` saves atomically, prints ``wrote PATH`` / one-line errors and counts the
  ``Summary``.

A content or style that cannot be read is reported and its pairs skipped; the rest still run.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from adain_jax.controls.masks import labels_from_mask_image
from adain_jax.controls.stats import StyleStats
from adain_jax.controls.transfer import stylize
from adain_jax.inference import backend
from adain_jax.inference.paths import Pair
from adain_jax.inference.plan import Backend, Plan
from adain_jax.inference.temporal import TemporalStream
from adain_jax.io import images as image_io
from adain_jax.io import video
from adain_jax.io.messages import one_line, shown_path
from adain_jax.nn.models import MIN_IMAGE_SIZE, decoder_variant

# What a bad file raises (ImageError is a ValueError); MemoryError: an input too large
# for this machine even within the pixel bounds.
_ERRORS = (OSError, ValueError, MemoryError)


@dataclasses.dataclass
class Summary:
    written: list[Path] = dataclasses.field(default_factory=list)
    skipped: list[Path] = dataclasses.field(default_factory=list)
    failed: list[str] = dataclasses.field(default_factory=list)


# ------------------------------------------------------------------------------------ read
MASK_MAX_PIXELS = 1 << 24  # 16.8 MP: a mask places styles on a grid 1/8 of the image


def load_mask(path: str | os.PathLike, num_styles: int) -> np.ndarray:
    """Region labels ``[H, W]`` int32 from a mask image of any size and mode.

    Two styles: white (the brightest colour) -> style 1, black -> style 2 (the authors' rule). K
    styles: K distinct colours, brightest first (``controls.labels_from_mask_image``). The mask is
    read by ``io.images.open_image`` (the same formats and bounds as images) and may have at most
    ``MASK_MAX_PIXELS`` pixels (or the image limit, if lower). Raises ``ImageError`` naming the
    file.
    """
    path = Path(path)
    if not path.exists():
        raise image_io.ImageError(f"{shown_path(path)}: no such mask file (--mask)")
    limit = min(MASK_MAX_PIXELS, image_io.pixel_limit())
    how = "it places styles on a grid 1/8 of the image's size: scale it down"
    img = image_io.open_image(path, max_pixels=limit, what="mask", setting=how)
    try:
        if img.mode == "1":
            img = img.convert("L")
        elif img.mode not in ("L", "I", "I;16", "F", "RGB"):
            img = img.convert("RGB")  # palette, RGBA (alpha ignored), CMYK...
        return labels_from_mask_image(np.asarray(img), num_styles)
    except MemoryError:
        raise image_io.ImageError(f"{shown_path(path)}: out of memory reading the mask") from None
    except ValueError as e:
        raise image_io.ImageError(f"{shown_path(path)}: {e}") from None


class Styles:
    """Style images read once each; a style set's statistics encoded once (when shared)."""

    def __init__(self, params: dict, plan: Plan):
        self.params, self.plan = params, plan
        self._images: dict[Path, np.ndarray] = {}
        self._stats: dict[tuple[Path, ...], StyleStats] = {}

    def images(self, styles: tuple[Path, ...]) -> list[np.ndarray]:
        """float ``[Hs, Ws, 3]`` in [0, 1] per style; raises ``ImageError`` naming the file."""
        for path in styles:
            if path not in self._images:
                p = self.plan
                self._images[path] = image_io.load_image(
                    path, p.style_size, p.crop, min_size=MIN_IMAGE_SIZE
                )
        return [self._images[path] for path in styles]

    def stats(self, styles: tuple[Path, ...]) -> StyleStats:
        if styles not in self._stats:
            self._stats[styles] = backend.encode_styles(
                self.params, self.images(styles), self.plan.dtype, self.plan.bucket
            )
        return self._stats[styles]


# -------------------------------------------------------------------------------- stylize
def stylize_one(params: dict, content: np.ndarray, stats: StyleStats, plan: Plan) -> np.ndarray:
    """One content ``[H, W, 3]`` (what the network sees) through the back-end the plan picks for
    its size (``Plan.backend_for``): THE dispatch of ``infer.py`` and the demo."""
    kind = plan.backend_for(*content.shape[:2])
    if kind is Backend.TILED:
        return backend.stylize_tiled_one(params, content, stats, plan)
    if kind is Backend.EXACT:
        return backend.stylize_exact(params, content[None], stats, plan)[0]
    return backend.stylize_padded(params, [content], stats, plan)[0]


class Stylizer:
    """The stylize stage: colour preservation, then the back-end the plan picks."""

    def __init__(self, params: dict, plan: Plan, styles: Styles):
        self.params, self.plan, self.styles = params, plan, styles
        # The concat variant (Enc-Concat-Dec) needs the style's feature map, not its statistics:
        # each content goes whole through ``stylize`` with its one style.
        self.concat = decoder_variant(params["decoder"]).fusion == "concat"

    def _concat(self, content: np.ndarray, styles: tuple[Path, ...]) -> np.ndarray:
        seen, style_images, finish = backend.preserve_color(
            self.plan.color, content, self.styles.images(styles)
        )
        return finish(
            np.asarray(stylize(self.params, seen, style_images[0], dtype=self.plan.dtype))
        )

    def one(self, content: np.ndarray, styles: tuple[Path, ...]) -> np.ndarray:
        """One content ``[H, W, 3]`` with one style set, any controls."""
        if self.concat:
            return self._concat(content, styles)
        if self.plan.shared_stats:
            return stylize_one(self.params, content, self.styles.stats(styles), self.plan)
        seen, style_images, finish = backend.preserve_color(
            self.plan.color, content, self.styles.images(styles)
        )
        stats = backend.encode_styles(self.params, style_images, self.plan.dtype, self.plan.bucket)
        return finish(stylize_one(self.params, seen, stats, self.plan))

    def bucket(self, contents: list[np.ndarray], styles: tuple[Path, ...]) -> list[np.ndarray]:
        """Contents of one bucket shape (``Plan.batch_key``) with one style set."""
        if self.concat:
            return [self._concat(c, styles) for c in contents]
        return backend.stylize_padded(self.params, contents, self.styles.stats(styles), self.plan)

    def frames(self, frames: np.ndarray, styles: tuple[Path, ...]) -> np.ndarray:
        """Video frames ``[B, H, W, 3]`` (``Plan.batches_frames``: one call, else each alone)."""
        if self.plan.batches_frames(*frames.shape[1:3]) and not self.concat:
            return backend.stylize_exact(self.params, frames, self.styles.stats(styles), self.plan)
        return np.stack([self.one(f, styles) for f in frames])


# ---------------------------------------------------------------------------------- write
class Writer:
    """The write stage: atomic saves, ``wrote PATH`` on stdout, one-line errors on stderr."""

    def __init__(self, plan: Plan, inputs: Sequence[Path], log: Callable[[str], None] | None):
        self.summary = Summary(skipped=list(plan.skipped))
        todo = plan.todo
        self.protected = image_io.Protected(
            [*inputs, *{p.content for p in todo}, *{s for p in todo for s in p.styles}]
        )
        self.bar = tqdm(total=len(todo), unit="img", disable=not plan.progress or len(todo) < 2)
        self.say = log or (lambda msg: tqdm.write(msg, file=sys.stderr))
        self.tell = log or (lambda msg: tqdm.write(msg, file=sys.stdout))

    def fail(self, pairs: Sequence[Pair], error: BaseException | str) -> None:
        message = one_line(error)
        self.say(f"error: {message} (skipped)")
        self.summary.failed.extend([message] * len(pairs))  # one per pair not written
        self.bar.update(len(pairs))

    def save(self, pair: Pair, image: np.ndarray) -> None:
        try:
            path = image_io.save_image(pair.output, image, inputs=self.protected)
        except _ERRORS as e:
            return self.fail([pair], e)
        self.summary.written.append(path)
        self.tell(f"wrote {shown_path(pair.output)}")
        self.bar.update(1)

    def wrote_video(self, pair: Pair) -> None:
        self.summary.written.append(pair.output)
        self.tell(f"wrote {shown_path(pair.output)}")
        self.bar.update(1)


# ---------------------------------------------------------------------------------- batch
class Batches:
    """Pending contents per (bucket shape, style set), flushed at ``batch_size``."""

    def __init__(self, plan: Plan, stylizer: Stylizer, writer: Writer):
        self.plan, self.stylizer, self.writer = plan, stylizer, writer
        self.pending: dict[tuple[int, int], dict[tuple[Path, ...], list]] = {}

    def add(self, key: tuple[int, int], content: np.ndarray, pair: Pair) -> None:
        group = self.pending.setdefault(key, {}).setdefault(pair.styles, [])
        group.append((content, pair))
        if len(group) >= self.plan.batch_size:
            self.flush(key, pair.styles)

    def flush(self, key: tuple[int, int], styles: tuple[Path, ...]) -> None:
        items = self.pending[key].pop(styles)
        try:
            outs = self.stylizer.bucket([c for c, _ in items], styles)
        except _ERRORS as e:
            self.writer.fail([p for _, p in items], e)
            return
        for out, (_, pair) in zip(outs, items, strict=True):
            self.writer.save(pair, out)

    def flush_all(self) -> None:
        for key in list(self.pending):
            for styles in list(self.pending[key]):
                self.flush(key, styles)


# ------------------------------------------------------------------------------------ job
def run_job(
    params: dict,
    plan: Plan,
    inputs: Sequence[Path] = (),
    log: Callable[[str], None] | None = None,
) -> Summary:
    """Stylize every pair of ``plan.todo``; never raises for a bad content or style file.

    ``inputs``: files that must never be overwritten. ``log``: where one-line messages go
    (default: "wrote ..." to stdout, errors to stderr, through tqdm).
    """
    styles = Styles(params, plan)
    stylizer = Stylizer(params, plan, styles)
    writer = Writer(plan, inputs, log)
    batches = Batches(plan, stylizer, writer)
    by_content: dict[Path, list[Pair]] = {}
    for pair in plan.todo:
        by_content.setdefault(pair.content, []).append(pair)
    for content_path, pairs in by_content.items():
        if video.is_video(content_path):
            for pair in pairs:
                _run_video(plan, styles, stylizer, writer, pair)
            continue
        try:
            content = image_io.load_image(
                content_path, plan.content_size, plan.crop, min_size=MIN_IMAGE_SIZE
            )
        except _ERRORS as e:
            writer.fail(pairs, e)
            continue
        key = plan.batch_key(*content.shape[:2])
        for pair in pairs:
            try:
                styles.images(pair.styles)
            except _ERRORS as e:
                writer.fail([pair], e)
                continue
            if key is not None:
                batches.add(key, content, pair)
                continue
            try:
                out = stylizer.one(content, pair.styles)
            except _ERRORS as e:
                writer.fail([pair], f"{shown_path(content_path)}: {one_line(e)}")
                continue
            writer.save(pair, out)
    batches.flush_all()
    writer.bar.close()
    return writer.summary


def _run_video(plan: Plan, styles: Styles, stylizer: Stylizer, writer: Writer, pair: Pair):
    try:
        styles.images(pair.styles)  # fail early on a bad style
        frame_fn = lambda frames: stylizer.frames(frames, pair.styles)  # noqa: E731
        if plan.temporal.active:  # one stream (its state) per clip
            stats = None if stylizer.concat or not plan.shared_stats else styles.stats(pair.styles)
            frame_fn = TemporalStream(stylizer.params, stats, plan, plan.temporal, frame_fn)
        video.transform_video(
            pair.content,
            pair.output,
            frame_fn,
            plan.video_batch,
            plan.progress,
            size=plan.content_size,
            min_size=MIN_IMAGE_SIZE,
        )
        writer.wrote_video(pair)
    except _ERRORS as e:
        writer.fail([pair], e)
