"""``--temporal``: the flag's values and the streaming loop on a still clip."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import adain_jax
from adain_jax.inference import backend
from adain_jax.inference import temporal as stream
from adain_jax.inference.plan import JobOptions, make_plan


def test_parse_temporal_values():
    assert stream.parse_temporal(None) == stream.parse_temporal("off") == stream.OFF
    assert stream.parse_temporal("stats") == stream.TemporalOptions(decay=stream.DEFAULT_DECAY)
    got = stream.parse_temporal("flow=0.3, stats=0.5")
    assert (got.decay, got.blend, got.describe()) == (0.5, 0.3, "stats=0.5,flow=0.3")


@pytest.mark.parametrize(
    "text, message",
    [
        ("blur", "unknown mode 'blur'"),
        ("stats=1", "must be in (0, 1)"),
        ("flow=0", "must be in (0, 1)"),
        ("stats=nan", "must be in (0, 1)"),
        ("stats=x", "is not a number"),
        ("flow,flow", "flow given twice"),
        ("", "unknown mode ''"),
    ],
)
def test_bad_temporal_values_are_one_line(text, message):
    with pytest.raises(ValueError) as e:
        stream.parse_temporal(text)
    assert message in str(e.value) and "--temporal" in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_opencv_is_one_line(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "cv2", None)  # import cv2 -> ImportError
    with pytest.raises(stream.TemporalError) as e:
        stream.Flow()
    assert "opencv-python-headless" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["off", "stats", "flow", "stats,flow"])
def test_a_still_clip_gives_identical_frames(mode):
    if "flow" in mode:
        pytest.importorskip("cv2")
    params = adain_jax.init_params(jax.random.key(1))
    frame = np.random.default_rng(0).random((24, 32, 3), dtype=np.float32)
    style = np.random.default_rng(1).random((24, 24, 3), dtype=np.float32)
    stats = backend.encode_styles(params, [style], np.float32)
    plan = make_plan(JobOptions(progress=False, bucket=0, temporal=stream.parse_temporal(mode)), [])
    plain = lambda f: backend.stylize_exact(params, f, stats, plan)  # noqa: E731
    fn = stream.TemporalStream(params, stats, plan, plan.temporal, plain)
    clip = np.broadcast_to(frame, (3, *frame.shape))
    outs = np.concatenate([fn(np.array(clip)), fn(np.array(clip))])  # two batches: state kept
    assert outs.shape == (6, 24, 32, 3)
    for out in outs[1:]:
        assert np.array_equal(out, outs[0])
    np.testing.assert_allclose(outs[0], plain(clip[:1])[0], atol=1e-5)  # = per-frame AdaIN
