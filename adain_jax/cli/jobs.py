"""Batch stylization jobs with every runtime control (used by ``infer.py``).

A job is a list of ``Pair``s: one content (image or video) x one style set
(one style, or K styles mixed by weights or routed by a mask). ``run_pairs``
stylizes them all:

- each style image is read and encoded once (``controls.StyleStats``),
  unless colour preservation makes the style depend on the content;
- contents of one size bucket (``bucket`` px multiples, padded at the
  bottom/right, exact: ``controls.stylize_with_stats(..., sizes=)``) are batched through one
  compiled function; batches are padded to a power of two so a handful of
  shapes compile, and hold at most ``max_tile**2`` pixels (the memory bound
  of one tile);
- contents larger than ``max_tile`` go through ``tiling.stylize_tiled``;
- a content or style that cannot be read is reported and its pairs skipped,
  the rest still run; outputs that exist are skipped unless ``overwrite``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import jax.numpy as jnp
import numpy as np

import adain_jax.controls as controls
from adain_jax.controls import StyleStats, color, tiling
from adain_jax.io import images as image_io
from adain_jax.io import video

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
VIDEO_SUFFIXES = tuple(s for s in video.VIDEO_EXTENSIONS if s != ".gif")
PRESERVE_MODES = ("coral", "luminance")


@dataclasses.dataclass(frozen=True)
class JobOptions:
    """How every pair of a job is stylized.

    Attributes:
      alpha: content-style trade-off in [0, 1].
      content_size, style_size: shorter side in px after resizing (0 = as is).
      crop: centre-crop to a square after resizing.
      dtype: ``"float32"`` or ``"bfloat16"`` convolutions.
      style_weights: K interpolation weights (normalised; ``None`` = equal).
      preserve_color: ``None``, ``"coral"`` or ``"luminance"``.
      mask: mask image routing style k to region k (``load_mask``).
      max_tile: window side (px) above which images are tiled; ``None`` =
        ``tiling.auto_max_tile()``.
      batch_size: contents per compiled call (rounded down to a power of two).
      bucket: pad sizes up to multiples of this many px (0 = exact sizes).
      overwrite: redo pairs whose output exists.
      progress: show progress bars.
      video_batch: frames per call for video contents.
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


@dataclasses.dataclass(frozen=True)
class Pair:
    """One output: ``content`` stylized with the style set ``styles`` into ``output``."""

    content: Path
    styles: tuple[Path, ...]
    output: Path


@dataclasses.dataclass
class Summary:
    written: list[Path] = dataclasses.field(default_factory=list)
    skipped: list[Path] = dataclasses.field(default_factory=list)
    failed: list[str] = dataclasses.field(default_factory=list)


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def find_images(directory: Path) -> list[Path]:
    """Image files (by extension) under ``directory``, recursively, sorted; raises if none."""
    files = sorted(
        p
        for p in directory.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )
    if not files:
        known = ", ".join(IMAGE_SUFFIXES)
        raise image_io.ImageError(f"{directory}: no image files ({known}) in this directory tree")
    return files


def output_name(content: Path, styles: Sequence[Path], ext: str) -> str:
    """``<content>_stylized_<style>[_<style2>...]<ext>`` (the authors' naming)."""
    return f"{content.stem}_stylized_{'_'.join(s.stem for s in styles)}{ext}"


def load_mask(path: str | os.PathLike, num_styles: int) -> np.ndarray:
    """Region labels ``[H, W]`` int32 from a mask image of any size and mode.

    Two styles: white (the brightest colour) -> style 1, black -> style 2 (the
    authors' rule). K styles: K distinct colours, brightest first (see
    ``controls.labels_from_mask_image``). Raises ``ImageError`` naming the file.
    """
    from PIL import Image, ImageOps

    path = Path(path)
    if not path.is_file():
        raise image_io.ImageError(f"{path}: no such mask file (--mask)")
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            img.load()
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for bad files
        raise image_io.ImageError(f"{path}: cannot read the mask image ({e})") from None
    if img.mode == "1":
        img = img.convert("L")
    elif img.mode not in ("L", "I", "I;16", "F", "RGB"):
        img = img.convert("RGB")  # palette, RGBA (alpha ignored), CMYK...
    try:
        return controls.labels_from_mask_image(np.asarray(img), num_styles)
    except ValueError as e:
        raise image_io.ImageError(f"{path}: {e}") from None


def _pow2_at_least(n: int) -> int:
    b = 1
    while b < n:
        b *= 2
    return b


class Runner:
    """Stylizes pairs with cached style images and statistics (see module doc)."""

    def __init__(self, params: dict, opts: JobOptions, labels: np.ndarray | None = None):
        self.params = params
        self.opts = opts
        self.labels = labels
        self.dtype = jnp.dtype(opts.dtype)
        self.max_tile = opts.max_tile or tiling.auto_max_tile(1, self.dtype)
        self._styles: dict[Path, np.ndarray] = {}
        self._stats: dict[tuple[Path, ...], StyleStats] = {}

    def images_per_call(self, height: int, width: int) -> int:
        """How many ``height x width`` images one call may take: at most ``max_tile**2``
        pixels in all (the memory one tile may use), at least one."""
        return max(1, self.max_tile**2 // (height * width))

    # -- styles -------------------------------------------------------------
    def style_images(self, styles: tuple[Path, ...]) -> list[np.ndarray]:
        out = []
        for path in styles:
            if path not in self._styles:
                o = self.opts
                self._styles[path] = image_io.load_image(path, o.style_size, o.crop)
            out.append(self._styles[path])
        return out

    def _encode(self, images: Sequence[np.ndarray]) -> StyleStats:
        return controls.stack_stats(
            [controls.encode_style(self.params, s, dtype=self.dtype) for s in images]
        )

    def style_stats(self, styles: tuple[Path, ...]) -> StyleStats:
        if styles not in self._stats:
            self._stats[styles] = self._encode(self.style_images(styles))
        return self._stats[styles]

    # -- stylization --------------------------------------------------------
    def _weights(self):
        return None if self.labels is not None else self.opts.style_weights

    def _one(self, content: np.ndarray, stats: StyleStats) -> np.ndarray:
        """One ``[H, W, 3]`` content, exact size (tiled if large)."""
        h, w = content.shape[:2]
        if tiling.needs_tiling(h, w, self.max_tile):
            return tiling.stylize_tiled(
                self.params,
                content,
                stats,
                self.opts.alpha,
                weights=self._weights(),
                mask=self.labels,
                max_tile=self.max_tile,
                dtype=self.dtype,
            )
        return np.asarray(self._same_size(content[None], stats)[0])

    def _same_size(self, contents: np.ndarray, stats: StyleStats) -> np.ndarray:
        """``[B, H, W, 3]`` contents of one size, bucketed when possible."""
        o = self.opts
        n, h, w, _ = contents.shape
        if self.labels is not None or o.bucket <= 0:
            return np.asarray(
                controls.stylize_with_stats(
                    self.params,
                    contents,
                    stats,
                    o.alpha,
                    weights=self._weights(),
                    mask=self.labels,
                    dtype=self.dtype,
                )
            )
        padded = np.stack([controls.pad_to_bucket(c, o.bucket) for c in contents])
        sizes = np.tile(np.array([[h, w]], np.int32), (n, 1))
        return self._padded(padded, sizes, stats)[:, :h, :w]

    def _padded(self, padded: np.ndarray, sizes: np.ndarray, stats: StyleStats) -> np.ndarray:
        out = controls.stylize_with_stats(
            self.params,
            padded,
            stats,
            self.opts.alpha,
            weights=self.opts.style_weights,
            sizes=sizes,
            dtype=self.dtype,
        )
        return np.asarray(out)

    def stylize_one(self, content: np.ndarray, styles: tuple[Path, ...]) -> np.ndarray:
        """Stylize one ``[H, W, 3]`` content with one style set (any controls)."""
        mode = self.opts.preserve_color
        if mode == "coral":
            matched = [np.asarray(color.match_color(content, s)) for s in self.style_images(styles)]
            return self._one(content, self._encode(matched))
        if mode == "luminance":
            pairs = [color.luminance_inputs(content, s) for s in self.style_images(styles)]
            grey = np.asarray(pairs[0][0])
            out = self._one(grey, self._encode([np.asarray(p[1]) for p in pairs]))
            return np.asarray(color.recombine_luminance(out, content))
        return self._one(content, self.style_stats(styles))

    def stylize_frames(self, frames: np.ndarray, styles: tuple[Path, ...]) -> np.ndarray:
        """Video frames ``[B, H, W, 3]``: one compiled call per batch when possible."""
        h, w = frames.shape[1:3]
        if self.opts.preserve_color or tiling.needs_tiling(h, w, self.max_tile):
            return np.stack([self.stylize_one(f, styles) for f in frames])
        stats = self.style_stats(styles)
        n = len(frames)
        step = min(n, self.images_per_call(h, w))
        outs = []
        for start in range(0, n, step):
            chunk = frames[start : start + step]
            pad = step - len(chunk)  # keep one shape: pad the last chunk
            if pad:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)])
            out = controls.stylize_with_stats(
                self.params,
                chunk,
                stats,
                self.opts.alpha,
                weights=self._weights(),
                mask=self.labels,
                dtype=self.dtype,
            )
            outs.append(np.asarray(out)[: step - pad])
        return np.concatenate(outs)

    def stylize_bucket(
        self, contents: list[np.ndarray], styles: tuple[Path, ...]
    ) -> list[np.ndarray]:
        """Several contents of one bucket shape with one style set (no preservation, no mask)."""
        o = self.opts
        stats = self.style_stats(styles)
        results: list[np.ndarray] = []
        hb, wb = controls.pad_to_bucket(contents[0], o.bucket).shape[:2]
        per_call = min(o.batch_size, self.images_per_call(hb, wb))
        for start in range(0, len(contents), per_call):
            chunk = contents[start : start + per_call]
            size = _pow2_at_least(len(chunk))
            padded = [controls.pad_to_bucket(c, o.bucket) for c in chunk]
            padded += [padded[-1]] * (size - len(chunk))
            sizes = np.array(
                [c.shape[:2] for c in chunk] + [chunk[-1].shape[:2]] * (size - len(chunk))
            )
            out = self._padded(np.stack(padded), sizes.astype(np.int32), stats)
            results += [out[i, : c.shape[0], : c.shape[1]] for i, c in enumerate(chunk)]
        return results

    def bucket_key(self, content: np.ndarray) -> tuple[int, int] | None:
        """The padded shape this content batches under, or ``None`` if it runs alone."""
        o = self.opts
        h, w = content.shape[:2]
        if o.preserve_color or self.labels is not None or o.bucket <= 0:
            return None
        if tiling.needs_tiling(h, w, self.max_tile):
            return None
        return (-(-h // o.bucket) * o.bucket, -(-w // o.bucket) * o.bucket)


def run_pairs(
    params: dict,
    pairs: Sequence[Pair],
    opts: JobOptions,
    labels: np.ndarray | None = None,
    inputs: Sequence[Path] = (),
    log: Callable[[str], None] | None = None,
) -> Summary:
    """Stylize every pair (see module doc); never raises for a bad content or style file.

    ``inputs``: files that must never be overwritten. ``log``: where one-line
    messages go (default: "wrote ..." to stdout, errors to stderr, through tqdm).
    """
    from tqdm import tqdm

    summary = Summary()
    todo = []
    for pair in pairs:
        if pair.output.exists() and not opts.overwrite:
            summary.skipped.append(pair.output)
        else:
            todo.append(pair)
    runner = Runner(params, opts, labels)
    bar = tqdm(total=len(todo), unit="img", disable=not opts.progress or len(todo) < 2)
    say = log or (lambda msg: tqdm.write(msg, file=sys.stderr))
    tell = (lambda msg: log(msg)) if log else (lambda msg: tqdm.write(msg, file=sys.stdout))
    by_content: dict[Path, list[Pair]] = {}
    for pair in todo:
        by_content.setdefault(pair.content, []).append(pair)
    protected = [*inputs, *{p.content for p in todo}, *{s for p in todo for s in p.styles}]

    def fail(pair_list: Sequence[Pair], message: str) -> None:
        say(f"error: {message} (skipped)")
        summary.failed.append(message)
        bar.update(len(pair_list))

    def save(pair: Pair, image: np.ndarray) -> None:
        try:
            summary.written.append(image_io.save_image(pair.output, image, inputs=protected))
            tell(f"wrote {pair.output}")
        except (OSError, ValueError) as e:
            summary.failed.append(str(e))
            say(f"error: {e} (skipped)")
        bar.update(1)

    # Pending batches: bucket shape -> style set -> [(content image, pair)].
    pending: dict[tuple[int, int], dict[tuple[Path, ...], list]] = {}

    def flush(key: tuple[int, int], styles: tuple[Path, ...]) -> None:
        items = pending[key].pop(styles)
        try:
            outs = runner.stylize_bucket([c for c, _ in items], styles)
        except (OSError, ValueError) as e:
            fail([p for _, p in items], str(e))
            return
        for out, (_, pair) in zip(outs, items, strict=True):
            save(pair, out)

    for content_path, content_pairs in by_content.items():
        if is_video(content_path):
            for pair in content_pairs:
                try:
                    runner.style_images(pair.styles)  # fail early on a bad style
                    video.transform_video(
                        content_path,
                        pair.output,
                        lambda frames, st=pair.styles: runner.stylize_frames(frames, st),
                        opts.video_batch,
                        opts.progress,
                    )
                    summary.written.append(pair.output)
                    tell(f"wrote {pair.output}")
                    bar.update(1)
                except (OSError, ValueError) as e:
                    fail([pair], str(e))
            continue
        try:
            content = image_io.load_image(content_path, opts.content_size, opts.crop)
        except (OSError, ValueError) as e:
            fail(content_pairs, str(e))
            continue
        key = runner.bucket_key(content)
        for pair in content_pairs:
            try:
                runner.style_images(pair.styles)
            except (OSError, ValueError) as e:
                fail([pair], str(e))
                continue
            if key is None:
                try:
                    out = runner.stylize_one(content, pair.styles)
                except (OSError, ValueError) as e:
                    fail([pair], f"{content_path}: {e}")
                    continue
                save(pair, out)
                continue
            group = pending.setdefault(key, {}).setdefault(pair.styles, [])
            group.append((content, pair))
            if len(group) >= opts.batch_size:
                flush(key, pair.styles)
    for key in list(pending):
        for styles in list(pending[key]):
            flush(key, styles)
    bar.close()
    return summary
