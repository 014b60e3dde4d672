"""``evaluate_pairs``: every (content, style) pair, gathered a chunk at a time."""

from __future__ import annotations

import tracemalloc

import numpy as np

from adain_jax.training import evaluate

SIDE = 32


def _fake_predict(params, loss_encoder, contents, styles, dtype):
    """Losses and an 'output' that identify the pair: (c + s) / 2, content loss c's mean."""
    return contents.mean(axis=(1, 2, 3)), styles.mean(axis=(1, 2, 3)), (contents + styles) / 2


def test_pairs_are_content_major_and_memory_does_not_grow_with_them(monkeypatch):
    monkeypatch.setattr(evaluate, "predict", _fake_predict)
    rng = np.random.default_rng(0)
    contents = [rng.random((SIDE, SIDE, 3), dtype=np.float32) for _ in range(40)]
    styles = [rng.random((SIDE, SIDE, 3), dtype=np.float32) for _ in range(30)]
    tracemalloc.start()
    res = evaluate.evaluate_pairs({}, {}, contents, styles, chunk=8, keep=2)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # 1200 pairs; gathering them all (two inputs and an output each) would be 3600 images.
    assert peak < 100 * SIDE * SIDE * 3 * 4
    expected_c = [contents[i].mean() for i in range(40) for _ in range(30)]
    expected_s = [styles[j].mean() for _ in range(40) for j in range(30)]
    np.testing.assert_allclose(res.content, expected_c, rtol=1e-6)
    np.testing.assert_allclose(res.style, expected_s, rtol=1e-6)
    kept = [(contents[i] + styles[j]) / 2 for i in range(2) for j in range(2)]
    np.testing.assert_allclose(res.outputs, kept, rtol=1e-6)
    every = evaluate.evaluate_pairs({}, {}, contents[:3], styles[:2], chunk=4)
    np.testing.assert_allclose(
        every.outputs, [(contents[i] + styles[j]) / 2 for i in range(3) for j in range(2)]
    )
    none = evaluate.evaluate_pairs({}, {}, contents[:3], styles[:2], chunk=4, keep=0)
    assert none.outputs.shape == (0, SIDE, SIDE, 3)
