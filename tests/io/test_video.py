"""Video round trip on a tiny generated clip."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

pytest.importorskip("av")

import adain_jax.controls as controls
from adain_jax.io import images as image_io  # noqa: E402
from adain_jax.io import video  # noqa: E402
from tests import soft_weights  # noqa: E402
from tests.conftest import random_images  # noqa: E402

soft_nets = soft_weights.soft_nets  # the shared fixture


def make_clip(path, frames: int = 10, fps=Fraction(12), h: int = 32, w: int = 48) -> np.ndarray:
    """Write a smooth moving-gradient clip; returns the uint8 frames written."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    clip = np.stack([np.stack([x + t / frames, y, 1 - x * y], -1) for t in range(frames)])
    clip = 0.3 * clip + 0.2
    clip = image_io.to_uint8(clip)
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


@pytest.mark.slow
def test_stylizing_a_video_matches_per_frame_stylize(tmp_path, soft_nets):
    _, _, params = soft_nets
    src = tmp_path / "clip.mkv"
    make_clip(src, frames=5)
    style = random_images(3, 1, 32, 32)[0]
    stats = controls.encode_style(params, style)
    dst = tmp_path / "styl.mp4"
    fn = lambda frames: controls.stylize_with_stats(params, frames, stats, 0.9)  # noqa: E731
    assert video.transform_video(src, dst, fn, batch_size=2, progress=False) == 5
    frames = np.concatenate(list(video.iter_batches(src, 8))).astype(np.float32) / 255
    want = np.asarray(controls.stylize_with_stats(params, frames, stats, 0.9))
    got = np.concatenate(list(video.iter_batches(dst, 8))).astype(np.float32) / 255
    assert got.shape == want.shape == (5, 32, 48, 3)
    assert np.abs(got - want).mean() < 0.06  # lossy H.264 of a noisy stylized clip


def test_frames_too_small_for_the_network_are_refused(tmp_path):
    """An 8x8 clip was 'stylized' into flat grey frames; an 8x8 image is refused."""
    make_clip(tmp_path / "tiny.mp4", frames=2, h=8, w=8)
    with pytest.raises(video.VideoError, match=r"tiny.mp4: too small for the network: frames "
                       r"are 8x8; each side must be at least 9 px$"):  # fmt: skip
        video.transform_video(tmp_path / "tiny.mp4", tmp_path / "o.mp4", lambda b: b, min_size=9)
    assert not (tmp_path / "o.mp4").exists()


def test_unreadable_video_fails_clearly(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(video.VideoError) as info:
        video.probe(bad)
    assert str(info.value) == f"{bad}: cannot read video (Invalid data found when processing input)"
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(video.VideoError, match=r"empty.mp4: empty file \(0 bytes\), not a video$"):
        video.probe(tmp_path / "empty.mp4")
    assert video.is_video(tmp_path / "a.MP4") and video.is_video("b.webm")
    assert not video.is_video("c.gif") and not video.is_video("d.png")  # a GIF is an image
    with pytest.raises(video.VideoError, match="cannot write .xyz"):
        video.VideoWriter(tmp_path / "o.xyz", Fraction(10), 8, 8)


def test_odd_sized_avi_is_refused_without_leaving_a_temporary_file(tmp_path):
    with pytest.raises(video.VideoError, match="o.avi: MPEG-4 .* needs even frame sizes"):
        video.VideoWriter(tmp_path / "o.avi", Fraction(10), 9, 8)
    assert list(tmp_path.iterdir()) == []


def test_output_under_a_file_is_one_line_naming_both(tmp_path):
    (tmp_path / "f").write_text("a file, not a folder")
    with pytest.raises(video.VideoError) as info:
        video.VideoWriter(tmp_path / "f" / "o.mp4", Fraction(10), 8, 8)
    assert str(info.value) == f"{tmp_path}/f/o.mp4: cannot write ({tmp_path}/f: File exists)"


def _clip_with_audio(path, codec: str, frames: int = 12, fps: int = 12, w: int = 128, h: int = 96):
    """A clip with a moving gradient and a 440 Hz tone (``codec``: aac, libopus, ...)."""
    import av

    rate = 48000
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        aus = out.add_stream(codec, rate=rate)
        aus.layout = "mono"
        t = np.arange(int(rate * frames / fps)) / rate
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        for i in range(frames):
            rgb = np.zeros((h, w, 3), np.uint8)
            rgb[..., 0] = (np.arange(w) * 2 + 10 * i) % 256
            for p in vs.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(p)
        chunk = 1024
        for start in range(0, tone.shape[1], chunk):
            frame = av.AudioFrame.from_ndarray(
                tone[:, start : start + chunk], format="flt", layout="mono"
            )
            frame.sample_rate = rate
            for p in aus.encode(frame):
                out.mux(p)
        for s in (vs, aus):
            for p in s.encode():
                out.mux(p)


def _audio_packets(path) -> list[bytes]:
    import av

    with av.open(str(path)) as c:
        if not c.streams.audio:
            return []
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


def test_content_size_resizes_frames_to_even_sides(tmp_path):
    src, dst = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_clip(src, 5, h=96, w=128)
    assert video.output_size(128, 96, 64) == (84, 64)  # 85.33 -> 85 -> even 84
    assert video.output_size(96, 128, 50) == (50, 66)
    assert video.output_size(127, 95, 0) == (127, 95)
    assert video.transform_video(src, dst, lambda f: f, batch_size=2, progress=False, size=64)
    info = video.probe(dst)
    assert (info.width, info.height) == (84, 64)


def test_audio_is_copied_packet_for_packet(tmp_path):
    src, dst = tmp_path / "in.mp4", tmp_path / "out.mp4"
    _clip_with_audio(src, "aac")
    assert video.transform_video(src, dst, lambda f: 1 - f, batch_size=4, progress=False) == 12
    source_audio = _audio_packets(src)
    assert source_audio and _audio_packets(dst) == source_audio  # remuxed, not re-encoded
    assert video.probe(dst).frames in (None, 12)


def test_audio_the_container_refuses_is_dropped_with_a_warning(tmp_path):
    src, dst = tmp_path / "in.mkv", tmp_path / "out.avi"
    _clip_with_audio(src, "libopus")
    with pytest.warns(UserWarning, match="no audio"):
        video.transform_video(src, dst, lambda f: f, batch_size=4, progress=False)
    assert _audio_packets(dst) == [] and video.probe(dst).width == 128
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mkv", "out.avi"]


def test_interrupted_audio_copy_leaves_no_temporary_file(tmp_path, monkeypatch):
    src, dst = tmp_path / "in.mp4", tmp_path / "out.mp4"
    _clip_with_audio(src, "aac")

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(video, "add_audio", interrupted)
    with pytest.raises(KeyboardInterrupt):
        video.transform_video(src, dst, lambda f: f, batch_size=4, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["in.mp4"]
