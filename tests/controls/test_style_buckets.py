"""Styles padded to a size bucket (``encode_style_padded``): the same statistics as the
unpadded style, one compilation for every style size of a bucket (issue 22: a new style
of another size hits the compile cache)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from adain_jax.controls import encode_style, encode_style_padded, pad_to_bucket
from adain_jax.inference import backend
from adain_jax.weights.params import init_params


@pytest.mark.slow
def test_padded_style_statistics_equal_the_unpadded_ones():
    params = init_params(jax.random.key(0))
    rng = np.random.default_rng(0)
    before = encode_style_padded._cache_size()
    for h, w in ((40, 56), (33, 61), (64, 64), (17, 50)):
        style = rng.random((h, w, 3), dtype=np.float32)
        want = encode_style(params, style)
        got = encode_style_padded(params, pad_to_bucket(style, 64), np.array([h, w], np.int32))
        np.testing.assert_allclose(got.mean, want.mean, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got.std, want.std, rtol=1e-4, atol=1e-5)
    assert encode_style_padded._cache_size() - before == 1  # all four in one 64x64 bucket
    stats = backend.encode_styles(params, [rng.random((30, 70, 3), dtype=np.float32)] * 2,
                                  np.float32, bucket=64)  # fmt: skip
    assert stats.mean.shape == (2, 1, 1, 512)
