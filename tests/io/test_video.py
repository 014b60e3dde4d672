"""Video round trip on a tiny generated clip."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

pytest.importorskip("av")

import adain_jax.controls as controls
from adain_jax.io import video  # noqa: E402
from tests import soft_weights  # noqa: E402
from tests.conftest import random_images  # noqa: E402

soft_nets = soft_weights.soft_nets  # the shared fixture


def make_clip(path, frames: int = 10, fps=Fraction(12), h: int = 32, w: int = 48) -> np.ndarray:
    """Write a smooth moving-gradient clip; returns the uint8 frames written."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    clip = np.stack([np.stack([x + t / frames, y, 1 - x * y], -1) for t in range(frames)])
    clip = 0.3 * clip + 0.2
    clip = video.to_uint8(clip)
    writer = video.VideoWriter(path, fps, w, h)
    writer.write(clip)
    writer.close()
    return clip


def test_video_round_trip_keeps_count_rate_and_size(tmp_path):
    src = tmp_path / "clip.mp4"
    clip = make_clip(src, frames=10, fps=Fraction(30000, 1001))
    info = video.probe(src)
    assert (info.fps, info.width, info.height) == (Fraction(30000, 1001), 48, 32)
    calls = []

    def invert(batch):
        calls.append(batch.shape)
        return 1.0 - batch

    dst = tmp_path / "out" / "inv.webm"
    assert video.transform_video(src, dst, invert, batch_size=4, progress=False) == 10
    assert calls == [(4, 32, 48, 3)] * 3  # the last batch of 2 is padded to 4
    out = np.concatenate(list(video.iter_batches(dst, 3)))
    assert out.shape == clip.shape
    assert video.probe(dst).fps == Fraction(30000, 1001)
    decoded = np.concatenate(list(video.iter_batches(src, 4))).astype(float)
    assert np.abs(decoded - clip).mean() < 3  # lossy H.264
    assert np.abs(out - (255 - decoded)).mean() < 3  # lossy VP9
    assert not [p for p in dst.parent.iterdir() if p.name.startswith(".tmp")]


def test_stylize_video_matches_per_frame_stylize(tmp_path, soft_nets):
    _, _, params = soft_nets
    src = tmp_path / "clip.mkv"
    make_clip(src, frames=5)
    style = random_images(3, 1, 32, 32)[0]
    stats = controls.encode_style(params, style)
    dst = tmp_path / "styl.mp4"
    assert video.stylize_video(params, src, dst, stats, 0.9, batch_size=2, progress=False) == 5
    frames = np.concatenate(list(video.iter_batches(src, 8))).astype(np.float32) / 255
    want = np.asarray(controls.stylize_with_stats(params, frames, stats, 0.9))
    got = np.concatenate(list(video.iter_batches(dst, 8))).astype(np.float32) / 255
    assert got.shape == want.shape == (5, 32, 48, 3)
    assert np.abs(got - want).mean() < 0.06  # lossy H.264 of a noisy stylized clip


def test_unreadable_video_fails_clearly(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(video.VideoError, match="bad.mp4"):
        video.probe(bad)
    with pytest.raises(video.VideoError, match="cannot write .xyz"):
        video.VideoWriter(tmp_path / "o.xyz", Fraction(10), 8, 8)
