"""The temporal-consistency maths against independent NumPy computations."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import adain_jax
from adain_jax import controls
from adain_jax.controls import temporal
from adain_jax.nn import forward, ops


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_warping_error_on_an_integer_shift_matches_numpy():
    h, w, dy, dx = 12, 15, 2, 3
    prev = _rng(0).random((h, w, 3))
    cur = _rng(1).random((h, w, 3))
    noise = 0.05 * _rng(2).standard_normal((h - dy, w - dx, 3))
    cur[: h - dy, : w - dx] = prev[dy:, dx:] + noise  # cur(x, y) = prev(x + 3, y + 2)
    flow = np.broadcast_to(np.array([dx, dy], np.float32), (h, w, 2))
    visible = _rng(3).random((h, w)) > 0.3
    got = temporal.warping_error(prev, cur, flow, visible)
    # independent: slicing, no sampling; the flow leaves the frame beyond the shifted area
    m = visible[: h - dy, : w - dx]
    want = np.sum((cur[: h - dy, : w - dx] - prev[dy:, dx:]) ** 2, -1)[m].mean()
    np.testing.assert_allclose(got, want, rtol=1e-5)
    np.testing.assert_allclose(want, np.sum(noise**2, -1)[m].mean(), rtol=1e-5)
    assert temporal.warping_error(prev, cur, flow, np.zeros((h, w), bool)) == 0.0


def test_warping_error_on_a_half_pixel_shift_matches_numpy():
    h, w = 8, 10
    prev = _rng(4).random((h, w, 3))
    cur = _rng(5).random((h, w, 3))
    flow = np.zeros((h, w, 2), np.float32)
    flow[..., 0] = 0.5
    got = temporal.warping_error(prev, cur, flow, np.ones((h, w), bool))
    between = (prev[:, :-1] + prev[:, 1:]) / 2  # x + 0.5 lies inside for x < w - 1
    want = np.sum((cur[:, :-1] - between) ** 2, -1).mean()
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_consistency_check_marks_what_the_flows_disagree_on():
    h, w = 10, 12
    backward = np.broadcast_to(np.array([2.0, 0.0], np.float32), (h, w, 2)).copy()
    forward = -backward
    visible = temporal.consistent_flow(backward, forward)
    assert visible[:, : w - 2].all() and not visible[:, w - 2 :].any()  # lands outside
    forward[3:6, 4:7] = [5.0, 5.0]  # disagrees where the backward flow lands: x + 2 in 4..6
    visible = temporal.consistent_flow(backward, forward)
    assert not visible[3:6, 2:5].any() and visible[:3, : w - 2].all()


@pytest.mark.parametrize("started", [False, True])
def test_ema_matches_a_numpy_loop(started):
    x = _rng(6).random((7, 2, 5)).astype(np.float32)
    state = _rng(7).random((1, 2, 5)).astype(np.float32)
    decay = 0.7
    got = np.asarray(temporal.ema(x, state, started, decay))
    m = state[0].astype(np.float64) if started else x[0].astype(np.float64)
    want = []
    for t, xt in enumerate(x):
        m = xt if (t == 0 and not started) else decay * m + (1 - decay) * xt
        want.append(m)
    np.testing.assert_allclose(got, np.stack(want), rtol=1e-6, atol=1e-6)


@pytest.fixture(scope="module")
def random_params():
    return adain_jax.init_params(jax.random.key(0))


@pytest.mark.slow
def test_smoothed_statistics_stream_as_a_numpy_ema(random_params):
    params = random_params
    frames = _rng(8).random((5, 24, 32, 3), dtype=np.float32)
    style = controls.encode_style(params, _rng(9).random((24, 24, 3), dtype=np.float32))
    decay = 0.8
    # two calls, the state carried between them, as the streaming loop does
    _, first = temporal.stylize_smoothed(params, frames[:2], style, 1.0, decay=decay)
    _, second = temporal.stylize_smoothed(params, frames[2:], style, 1.0, first.at(1), decay=decay)
    got_mean = np.concatenate([first.mean, second.mean])[:, 0]
    got_std = np.concatenate([first.std, second.std])[:, 0]
    # independent: per-frame statistics in NumPy (biased variance + eps), then the EMA
    feat = np.asarray(forward.encode(params, frames).relu4_1, np.float64)
    mean = feat.mean(axis=(1, 2))
    std = np.sqrt(feat.var(axis=(1, 2)) + ops.EPS)
    want_mean, want_std = [mean[0]], [std[0]]
    for t in range(1, 5):
        want_mean.append(decay * want_mean[-1] + (1 - decay) * mean[t])
        want_std.append(decay * want_std[-1] + (1 - decay) * std[t])
    np.testing.assert_allclose(got_mean, np.stack(want_mean), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got_std, np.stack(want_std), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_no_smoothing_is_per_frame_adain(random_params):
    params = random_params
    frames = _rng(10).random((3, 24, 24, 3), dtype=np.float32)
    style = controls.encode_style(params, _rng(11).random((24, 24, 3), dtype=np.float32))
    want = np.asarray(controls.stylize_with_stats(params, frames, style, 0.7))
    state = temporal.ContentStats(*(np.ones((1, 1, 512), np.float32),) * 2)  # ignored rate
    got, _ = temporal.stylize_smoothed(params, frames, style, 0.7, state, decay=0.0)
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-5)
    with pytest.raises(ValueError, match="decay"):
        temporal.stylize_smoothed(params, frames, style, decay=1.0)


def test_blend_is_exact_where_the_frames_agree():
    cur = _rng(12).random((6, 7, 3)).astype(np.float32)
    prev = cur.copy()
    prev[0] = 0.0
    visible = np.ones((6, 7), bool)
    visible[:, 0] = False
    out = temporal.blend_warped(cur, prev, visible, 0.4)
    assert np.array_equal(out[1:], cur[1:]) and np.array_equal(out[:, 0], cur[:, 0])
    np.testing.assert_allclose(out[0, 1:], 0.6 * cur[0, 1:], rtol=1e-6)
