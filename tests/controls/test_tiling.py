"""Tiled stylization equals the untiled result."""

from __future__ import annotations

import numpy as np
import pytest

import adain_jax.controls as controls
from adain_jax.controls import tiling
from tests import soft_weights
from tests.conftest import random_images

soft_nets = soft_weights.soft_nets  # the shared fixture

# Measured: max |tiled - untiled| is 0 (bit-identical) on a 321x290 image (windows of 160 and
# 256 px, random weights); the bound leaves room for other XLA backends and image sizes.
TOLERANCE = 1e-5


@pytest.mark.parametrize("n", [9, 63, 64, 65, 200, 203, 517])
@pytest.mark.parametrize(("tile", "margin", "align"), [(64, 48, 8), (16, 8, 8), (10, 6, 1)])
def test_plan_axis_partitions_with_margins(n, tile, margin, align):
    windows = tiling.plan_axis(n, tile, margin, align)
    assert windows[0].keep_lo == 0 and windows[-1].keep_hi == n
    assert len({w.size for w in windows}) == 1
    for prev, cur in zip(windows, windows[1:], strict=False):
        assert cur.keep_lo == prev.keep_hi  # contiguous, no gap or overlap
    for w in windows:
        assert w.start % align == 0 and 0 <= w.start and w.start + w.size <= n
        assert w.keep_lo < w.keep_hi
        assert w.keep_lo % align == 0 and (w.keep_hi % align == 0 or w.keep_hi == n)
        if w.start > 0:
            assert w.keep_lo - w.start >= margin
        if w.start + w.size < n:
            assert w.start + w.size - w.keep_hi >= margin
    if n > tile + 2 * margin + align:
        assert len(windows) > 1


@pytest.mark.slow
@pytest.mark.parametrize("use_mask", [False, True])
def test_tiled_equals_untiled(soft_nets, use_mask):
    _, _, params = soft_nets
    content = random_images(0, 1, 179, 170)  # odd sizes: ceil pooling at the border; 2x2 windows
    styles = [random_images(1, 1, 32, 32)[0], random_images(2, 1, 32, 32)[0] ** 3]
    stats = controls.stack_stats([controls.encode_style(params, s) for s in styles])
    mask = None
    if use_mask:
        mask = np.zeros((7, 9), np.int32)
        mask[2:5, 3:] = 1
    kwargs = dict(weights=[0.3, 0.7], mask=mask)
    want = np.asarray(controls.stylize_with_stats(params, content, stats, 0.8, **kwargs))
    got = tiling.stylize_tiled(params, content, stats, 0.8, max_tile=tiling.MIN_TILE, **kwargs)
    assert got.shape == want.shape
    assert 0.2 < float(np.mean((want > 0) & (want < 1)))
    assert np.max(np.abs(got - want)) <= TOLERANCE


def test_max_tile_too_small_fails(soft_nets):
    _, _, params = soft_nets
    stats = controls.encode_style(params, random_images(1, 1, 32, 32)[0])
    with pytest.raises(ValueError, match="max_tile"):
        tiling.stylize_tiled(params, random_images(0, 1, 32, 32), stats, max_tile=100)


@pytest.mark.parametrize("shape", [(9,), (1, 1, 9, 9)])
def test_mask_of_wrong_rank_fails_as_untiled(soft_nets, shape):
    _, _, params = soft_nets
    styles = [random_images(1, 1, 32, 32)[0], random_images(2, 1, 32, 32)[0]]
    stats = controls.stack_stats([controls.encode_style(params, s) for s in styles])
    mask = np.arange(np.prod(shape)).reshape(shape) % 2
    with pytest.raises(ValueError, match=r"mask must be \[H, W\] or \[N, H, W\] labels"):
        tiling.stylize_tiled(params, random_images(0, 1, 32, 32), stats, mask=mask)


def test_integer_images_are_refused_as_untiled(soft_nets):
    """uint8 0..255 ran as floats far outside [0, 1], with no error."""
    _, _, params = soft_nets
    stats = controls.encode_style(params, random_images(1, 1, 32, 32)[0])
    uint8 = (random_images(0, 1, 32, 32)[0] * 255).astype(np.uint8)
    with pytest.raises(TypeError, match=r"content has dtype uint8.*/ 255"):
        tiling.stylize_tiled(params, uint8, stats)


def test_auto_max_tile_is_bounded():
    t = tiling.auto_max_tile()
    assert 256 <= t <= 4096 and t % 64 == 0
