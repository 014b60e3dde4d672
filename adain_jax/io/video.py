"""Stream a video through a frame function, a batch of frames at a time.

Reading and writing use PyAV (FFmpeg bindings; the optional ``video`` extra:
``pip install "adain-jax[video]"``). Only one batch of frames is in memory;
the output has the source's frame size and average frame rate. Audio and
subtitle streams are not copied.

Output codecs by extension: ``.mp4``/``.mov``/``.mkv`` H.264 (``libx264``,
yuv420p, or yuv444p when a side is odd), ``.webm`` VP9, ``.avi`` MPEG-4 part 2.
Inputs: anything FFmpeg decodes (``VIDEO_EXTENSIONS`` are the ones the
command line treats as video).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import numpy as np

from adain_jax.io import files

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".gif")
OUTPUT_CODECS = {
    ".mp4": "libx264",
    ".m4v": "libx264",
    ".mov": "libx264",
    ".mkv": "libx264",
    ".webm": "libvpx-vp9",
    ".avi": "mpeg4",
}

FrameFn = Callable[[np.ndarray], np.ndarray]


class VideoError(ValueError):
    """A video that cannot be read or written; the message names the file."""


class VideoInfo(NamedTuple):
    """Frame rate (frames/s), frame count (``None`` if the container does not say), size."""

    fps: Fraction
    frames: int | None
    width: int
    height: int


def _av():
    try:
        import av
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise VideoError(
            'video needs PyAV: pip install "adain-jax[video]" (or pip install av)'
        ) from e
    return av


def is_video(path: str | os.PathLike) -> bool:
    """Whether ``path`` has one of ``VIDEO_EXTENSIONS``."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def _open_input(path: str | os.PathLike):
    av = _av()
    try:
        container = av.open(os.fspath(path))
    except (av.error.FFmpegError, OSError) as e:
        raise VideoError(f"{path}: cannot read video ({e})") from e
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: no video stream")
    return container


def probe(path: str | os.PathLike) -> VideoInfo:
    """Frame rate, frame count and size of the first video stream of ``path``."""
    with _open_input(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        frames = stream.frames or None
        return VideoInfo(Fraction(rate), frames, stream.width, stream.height)


def iter_batches(path: str | os.PathLike, batch_size: int) -> Iterator[np.ndarray]:
    """Decoded RGB frames of ``path``, uint8 ``[B, H, W, 3]`` batches (the last may be shorter)."""
    av = _av()
    with _open_input(path) as container:
        batch: list[np.ndarray] = []
        try:
            for frame in container.decode(video=0):
                batch.append(frame.to_ndarray(format="rgb24"))
                if len(batch) == batch_size:
                    yield np.stack(batch)
                    batch = []
        except av.error.FFmpegError as e:
            raise VideoError(f"{path}: corrupt video ({e})") from e
        if batch:
            yield np.stack(batch)


class VideoWriter:
    """Encode RGB uint8 frames into ``path`` (written to a temporary file, renamed on ``close``)."""

    def __init__(self, path: str | os.PathLike, fps: Fraction, width: int, height: int):
        av = _av()
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in OUTPUT_CODECS:
            raise VideoError(
                f"{path}: cannot write {suffix or 'files without extension'}; "
                f"use one of {', '.join(sorted(OUTPUT_CODECS))}"
            )
        self._tmp = files.temp_path_beside(self.path, suffix=suffix)
        self._container = av.open(str(self._tmp), mode="w")
        codec = OUTPUT_CODECS[suffix]
        self._stream = self._container.add_stream(codec, rate=fps)
        self._stream.width, self._stream.height = width, height
        odd = width % 2 or height % 2
        self._stream.pix_fmt = "yuv444p" if codec == "libx264" and odd else "yuv420p"
        if codec == "mpeg4" and odd:
            raise VideoError(f"{path}: MPEG-4 (.avi) needs even frame sizes; use .mp4 or .mkv")
        self._av = av

    def write(self, frames: np.ndarray) -> None:
        """Append uint8 ``[B, H, W, 3]`` frames."""
        for rgb in frames:
            frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            for packet in self._stream.encode(frame):
                self._container.mux(packet)

    def close(self) -> None:
        """Flush the encoder and move the finished file into place."""
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        files.commit(self._tmp, self.path)

    def abort(self) -> None:
        """Drop the partial output."""
        try:
            self._container.close()
        finally:
            self._tmp.unlink(missing_ok=True)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Float ``[..., 3]`` in [0, 1] -> uint8 (rounded)."""
    return np.clip(np.rint(np.asarray(images, np.float32) * 255.0), 0, 255).astype(np.uint8)


def transform_video(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    fn: FrameFn,
    batch_size: int = 8,
    progress: bool = True,
) -> int:
    """Apply ``fn`` to every frame of ``src`` and write ``dst`` at the source frame rate.

    Args:
      src, dst: video paths; ``dst`` must not be ``src``.
      fn: float32 ``[B, H, W, 3]`` in [0, 1] -> float ``[B, H, W, 3]`` in [0, 1].
        Always called with ``batch_size`` frames (the last batch is padded by
        repeating its last frame), so a jitted ``fn`` compiles once.
      batch_size: frames per call (memory: one batch in and out).
      progress: show a tqdm progress bar.

    Returns:
      The number of frames written.
    """
    if Path(src).resolve() == Path(dst).resolve():
        raise VideoError(f"{dst}: the output would overwrite the input video")
    info = probe(src)
    writer = VideoWriter(dst, info.fps, info.width, info.height)
    count = 0
    try:
        from tqdm import tqdm

        with tqdm(
            total=info.frames, unit="frame", disable=not progress, desc=Path(src).name
        ) as bar:
            for batch in iter_batches(src, batch_size):
                n = len(batch)
                if n < batch_size:
                    pad = np.repeat(batch[-1:], batch_size - n, axis=0)
                    batch = np.concatenate([batch, pad])
                out = np.asarray(fn(batch.astype(np.float32) / 255.0))[:n]
                writer.write(to_uint8(out))
                count += n
                bar.update(n)
    except BaseException:
        writer.abort()
        raise
    if count == 0:
        writer.abort()
        raise VideoError(f"{src}: no frames")
    writer.close()
    return count


def stylize_video(
    params: dict,
    src: str | os.PathLike,
    dst: str | os.PathLike,
    stats,
    alpha: float = 1.0,
    *,
    weights=None,
    mask=None,
    batch_size: int = 8,
    dtype=None,
    progress: bool = True,
) -> int:
    """Stylize every frame of ``src`` against cached ``StyleStats`` into ``dst``.

    The style is encoded once (``controls.encode_style``); each batch of
    frames costs the content encoder and the decoder. ``weights``, ``mask``
    and ``alpha`` as in ``controls.stylize_with_stats``. Returns the frame count.
    """
    import jax.numpy as jnp

    from adain_jax.controls import transfer as controls

    dtype = jnp.float32 if dtype is None else dtype

    def fn(frames: np.ndarray) -> np.ndarray:
        return controls.stylize_with_stats(
            params, frames, stats, alpha, weights=weights, mask=mask, dtype=dtype
        )

    return transform_video(src, dst, fn, batch_size, progress)
