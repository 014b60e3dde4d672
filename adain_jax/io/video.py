"""Stream a video through a frame function, one batch of frames in memory at a time.

PyAV (FFmpeg bindings; the optional ``video`` extra: ``pip install "adain-jax[video]"``). The
output keeps the source's average frame rate and its frame size, or the size ``--content-size``
asks for (shorter side N as for images, each side then rounded down to even for the codecs'
4:2:0 chroma); its codec follows the extension (``OUTPUT_CODECS``). The source's first audio
stream is copied when the output container accepts its codec (``add_audio``), else a warning
says why; subtitles are not copied. Frames (source and resized) are bounded like images
(``io.images.check_pixels``), from the stream header and again per frame. Inputs: anything
FFmpeg decodes (``is_video``: the extensions the command line treats as video).
"""

from __future__ import annotations

import heapq
import os
import warnings
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import numpy as np

from adain_jax.io import files
from adain_jax.io.images import check_pixels, resize_rgb, resized_shape, to_uint8
from adain_jax.io.messages import one_line, shown_path

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")  # .gif reads as an image
OUTPUT_CODECS = {
    **dict.fromkeys((".mp4", ".m4v", ".mov", ".mkv"), "libx264"),
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
        files.require_file(path, "a video file")  # (FFmpeg would wait on a named pipe)
    except OSError as e:
        raise VideoError(str(e)) from None
    if os.path.getsize(path) == 0:
        raise VideoError(f"{shown_path(path)}: empty file (0 bytes), not a video")
    try:
        container = av.open(os.fspath(path))
    except (av.error.FFmpegError, OSError) as e:  # FFmpeg's reason, without its errno and path
        reason = getattr(e, "strerror", None) or one_line(e)
        raise VideoError(f"{shown_path(path)}: cannot read video ({reason})") from e
    if not container.streams.video:
        container.close()
        raise VideoError(f"{shown_path(path)}: no video stream")
    return container


def probe(path: str | os.PathLike) -> VideoInfo:
    """Frame rate, frame count and size of the first video stream of ``path``."""
    with _open_input(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        frames = stream.frames or None
        return VideoInfo(Fraction(rate), frames, stream.width, stream.height)


def output_size(width: int, height: int, size: int) -> tuple[int, int]:
    """``(width, height)`` of frames resized so the shorter side is ``size`` (0: kept), as
    ``io.images.resized_shape``; a resized side is then made even (rounded down, at least 2)."""
    if size == 0:
        return width, height
    new_h, new_w = resized_shape(height, width, size)
    return max(2, new_w - new_w % 2), max(2, new_h - new_h % 2)


def check_frames(
    path: str | os.PathLike, info: VideoInfo, size: int, min_size: int = 0
) -> tuple[int, int]:
    """``(width, height)`` of the frames of ``path`` (``info``: its ``probe``) resized to
    ``size`` (``output_size``). Raises ``ImageError`` for frames over the pixel bound, as read or
    resized, and ``VideoError`` for a side shorter than ``min_size`` px (0: no check)."""
    check_pixels(path, info.height, info.width, what="video frames are")
    width, height = output_size(info.width, info.height, size)
    check_pixels(path, height, width, what=f"resized to {size} px, frames would be")
    if min(height, width) < min_size:
        how = f" after resizing to {size}" if size else ""
        raise VideoError(
            f"{shown_path(path)}: too small for the network{how}: frames are {height}x{width}; "
            f"each side must be at least {min_size} px"
        )
    return width, height


def iter_batches(
    path: str | os.PathLike, batch_size: int, size: tuple[int, int] | None = None
) -> Iterator[np.ndarray]:
    """Decoded RGB frames of ``path``, uint8 ``[B, H, W, 3]`` batches (the last may be shorter).

    ``size``: ``(width, height)`` to resize each frame to (bilinear, as images are); ``None``
    keeps the source size. Raises ``VideoError`` (corrupt) or ``ImageError`` (over the bound).
    """
    av = _av()
    with _open_input(path) as container:
        batch: list[np.ndarray] = []
        try:
            for frame in container.decode(video=0):
                check_pixels(path, frame.height, frame.width, what="video frames are")
                if size is None or size == (frame.width, frame.height):
                    rgb = frame.to_ndarray(format="rgb24")
                else:
                    rgb = to_uint8(resize_rgb(frame.to_image(), size[1], size[0]))
                batch.append(rgb)
                if len(batch) == batch_size:
                    yield np.stack(batch)
                    batch = []
        except av.error.FFmpegError as e:
            raise VideoError(f"{shown_path(path)}: corrupt video ({shown_path(str(e))})") from e
        if batch:
            yield np.stack(batch)


class VideoWriter:
    """Encode RGB uint8 frames into ``path`` (written to a temporary file, renamed on ``close``).

    H.264 in yuv420p, or yuv444p when a side is odd; ``VideoError`` for an extension not in
    ``OUTPUT_CODECS`` or an odd size in MPEG-4 (.avi)."""

    def __init__(self, path: str | os.PathLike, fps: Fraction, width: int, height: int):
        av = _av()
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in OUTPUT_CODECS:
            raise VideoError(
                f"{shown_path(path)}: cannot write {suffix or 'files without extension'}; "
                f"use one of {', '.join(sorted(OUTPUT_CODECS))}"
            )
        codec = OUTPUT_CODECS[suffix]
        odd = width % 2 or height % 2
        if codec == "mpeg4" and odd:  # before the temporary file exists: nothing left behind
            raise VideoError(
                f"{shown_path(path)}: MPEG-4 (.avi) needs even frame sizes; use .mp4 or .mkv"
            )
        try:
            self._tmp = files.temp_path_beside(self.path, suffix=suffix)
        except OSError as e:  # e.g. a parent that is a file; as images.save_image says it
            raise VideoError(f"{shown_path(path)}: cannot write ({one_line(e)})") from None
        self._container = av.open(str(self._tmp), mode="w")
        self._stream = self._container.add_stream(codec, rate=fps)
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = "yuv444p" if codec == "libx264" and odd else "yuv420p"
        self._av = av

    def write(self, frames: np.ndarray) -> None:
        """Append uint8 ``[B, H, W, 3]`` frames."""
        for rgb in frames:
            frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            for packet in self._stream.encode(frame):
                self._container.mux(packet)

    def close(self, audio_from: str | os.PathLike | None = None) -> None:
        """Flush the encoder and move the finished file into place, with the audio of
        ``audio_from`` copied in when given (see ``add_audio``); on any failure (Ctrl-C included)
        no temporary file is left."""
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            if audio_from is not None:
                muxed = files.temp_path_beside(self.path, suffix=self.path.suffix)
                try:
                    copied, why_not = add_audio(self._tmp, audio_from, muxed)
                    if copied:
                        files.commit(muxed, self.path)
                        self._tmp.unlink()
                        return
                    if why_not:
                        warnings.warn(f"{shown_path(self.path)}: no audio: {why_not}", stacklevel=2)
                finally:
                    muxed.unlink(missing_ok=True)
            files.commit(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Drop the partial output."""
        try:
            self._container.close()
        finally:
            self._tmp.unlink(missing_ok=True)


def _packets(container, stream, which: int) -> Iterator[tuple[float, int, object]]:
    """Demuxed packets of ``stream`` with a sort key (time in seconds, then ``which``)."""
    for packet in container.demux(stream):
        if packet.dts is None:  # the demuxer's end-of-stream marker
            continue
        yield float(packet.dts * packet.time_base), which, packet


def add_audio(
    video_only: str | os.PathLike, source: str | os.PathLike, dst: str | os.PathLike
) -> tuple[bool, str | None]:
    """Write ``dst``: the video stream of ``video_only`` plus the first audio stream of
    ``source``, both copied packet by packet (no re-encoding), interleaved by time. FFmpeg says
    which codecs a container takes (AAC or MP3 into .mp4/.mov/.mkv, Opus into .webm, ...).

    Returns:
      ``(copied, why_not)``: ``(True, None)`` when ``dst`` was written; ``(False, None)`` when
      ``source`` has no audio; ``(False, reason)`` when the container refuses the codec
      (``dst`` is then left unwritten).
    """
    av = _av()
    with av.open(os.fspath(source)) as src:
        if not src.streams.audio:
            return False, None
        audio_in = src.streams.audio[0]
        with av.open(os.fspath(video_only)) as vid:
            video_in = vid.streams.video[0]
            try:
                with av.open(os.fspath(dst), mode="w") as out:
                    video_out = out.add_stream_from_template(video_in)
                    audio_out = out.add_stream_from_template(audio_in)
                    targets = {0: video_out, 1: audio_out}
                    merged = heapq.merge(
                        _packets(vid, video_in, 0), _packets(src, audio_in, 1), key=lambda i: i[:2]
                    )
                    for _, which, packet in merged:
                        packet.stream = targets[which]
                        out.mux(packet)
            except (av.error.FFmpegError, ValueError) as e:
                name = audio_in.codec_context.name
                return False, f"{name} audio cannot go into {Path(dst).suffix} ({e})"
    return True, None


def transform_video(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    fn: FrameFn,
    batch_size: int = 8,
    progress: bool = True,
    size: int = 0,
    min_size: int = 0,
) -> int:
    """Apply ``fn`` to every frame of ``src`` and write ``dst`` at the source frame rate.

    The source's audio is copied (module doc); the output is written to a temporary file and
    renamed into place when complete.

    Args:
      src, dst: video paths; ``dst`` must not be ``src``.
      fn: float32 ``[B, H, W, 3]`` in [0, 1] -> float ``[B, H, W, 3]`` in [0, 1]. Always
        called with ``batch_size`` frames (the last batch is padded by repeating its last
        frame), so a jitted ``fn`` compiles once.
      batch_size: frames per call (memory: one batch in and out).
      progress: show a tqdm progress bar.
      size: shorter side of the output frames in px (even sides); 0 keeps the size.
      min_size: raise if a side of the frames the network gets is shorter (as
        ``images.load_image``'s); 0: no check.

    Returns:
      The number of frames written. Raises ``VideoError`` (``dst`` is ``src``; a bad, empty or
      unwritable video) or ``ImageError`` (frames over the pixel bound).
    """
    if Path(src).resolve() == Path(dst).resolve():
        raise VideoError(f"{dst}: the output would overwrite the input video")
    info = probe(src)
    width, height = check_frames(src, info, size, min_size)
    frame_size = None if (width, height) == (info.width, info.height) else (width, height)
    writer = VideoWriter(dst, info.fps, width, height)
    count = 0
    try:
        from tqdm import tqdm

        with tqdm(
            total=info.frames, unit="frame", disable=not progress, desc=Path(src).name
        ) as bar:
            for batch in iter_batches(src, batch_size, frame_size):
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
        raise VideoError(f"{shown_path(src)}: no frames")
    writer.close(audio_from=src)
    return count
