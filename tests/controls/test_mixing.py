"""Style interpolation, spatial control and the style cache against the torch reference."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import torch

import adain_jax.controls as controls
from tests import soft_weights
from tests import torch_reference as ref
from tests.conftest import random_images

soft_nets = soft_weights.soft_nets  # the shared fixture


def _nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def _torch_decode(dec, t: torch.Tensor, h: int, w: int) -> np.ndarray:
    with torch.no_grad():
        out = dec(t)[:, :, :h, :w].clamp(0, 1)
    return out.permute(0, 2, 3, 1).numpy()


def _torch_mix(vgg, dec, content, styles, weights, alpha):
    """test.lua's interpolation: sum_k w_k AdaIN(f(c), f(s_k)), then alpha, then decode."""
    enc = vgg[:31]
    with torch.no_grad():
        cf = enc(_nchw(content))
        w = np.asarray(weights, np.float64) / np.sum(weights)
        t = sum(
            float(wk) * ref.adain(cf, enc(_nchw(s[None]))) for wk, s in zip(w, styles, strict=True)
        )
        t = alpha * t + (1 - alpha) * cf
    return _torch_decode(dec, t, *content.shape[1:3])


def _torch_masked(vgg, dec, content, styles, labels_f, alpha):
    """test.lua's spatial control: region k's content features (statistics over the region
    only) AdaIN'ed to style k; labels_f [h, w] at the relu4_1 resolution."""
    enc = vgg[:31]
    with torch.no_grad():
        cf = enc(_nchw(content))[0]  # C, h, w
        c = cf.shape[0]
        flat = cf.reshape(c, -1)
        target = torch.zeros_like(flat)
        for k, s in enumerate(styles):
            idx = torch.from_numpy(np.flatnonzero(labels_f.reshape(-1) == k))
            region = flat[:, idx].reshape(1, c, -1, 1)
            out = ref.adain(region, enc(_nchw(s[None])))
            target[:, idx] = out.reshape(c, -1)
        t = alpha * target.reshape(1, *cf.shape) + (1 - alpha) * cf[None]
    return _torch_decode(dec, t, *content.shape[1:3])


@pytest.mark.slow
@pytest.mark.parametrize("alpha", [1.0, 0.6])
def test_interpolation_matches_torch_weighted_mix(soft_nets, alpha):
    vgg, dec, params = soft_nets
    content = random_images(0, 2, 32, 64)
    styles = [random_images(1, 1, 32, 32)[0], random_images(2, 1, 48, 24)[0]]
    styles.append(random_images(3, 1, 32, 32)[0] ** 2)
    weights = [0.5, 0.3, 0.2]
    got = controls.stylize_mix(params, content, styles, alpha, weights=weights)
    want = _torch_mix(vgg, dec, content, styles, weights, alpha)
    assert got.shape == content.shape
    assert 0.05 < float(np.mean((want > 0) & (want < 1)))  # the comparison is not all clipped
    np.testing.assert_allclose(np.asarray(got), want, atol=2e-4)


def test_weights_are_normalised(soft_nets):
    vgg, dec, params = soft_nets
    content = random_images(4, 1, 32, 64)
    styles = random_images(5, 2, 32, 32)
    stats = controls.stack_stats([controls.encode_style(params, s) for s in styles])
    raw = controls.stylize_with_stats(params, content, stats, weights=[2.0, 6.0])
    want = _torch_mix(vgg, dec, content, list(styles), [0.25, 0.75], 1.0)
    np.testing.assert_allclose(np.asarray(raw), want, atol=2e-4)
    equal = controls.stylize_with_stats(params, content, stats)  # default: equal weights
    np.testing.assert_allclose(
        np.asarray(equal), _torch_mix(vgg, dec, content, list(styles), [1, 1], 1.0), atol=2e-4
    )
    np.testing.assert_allclose(np.asarray(controls.normalize_weights([1, 3], 2)), [0.25, 0.75])
    for bad in ([1.0], [1.0, -1.0], [0.0, 0.0]):
        with pytest.raises(ValueError, match="weights"):
            controls.stylize_with_stats(params, content, stats, weights=bad)


def test_style_cache_matches_stylize(soft_nets):
    vgg, dec, params = soft_nets
    content = random_images(6, 1, 32, 64)
    style = random_images(7, 1, 32, 32)[0]
    stats = controls.encode_style(params, style)
    assert stats.mean.shape == stats.std.shape == (1, 1, 1, 512)
    assert stats.mean.dtype == jnp.float32
    got = controls.stylize_with_stats(params, content, stats, alpha=0.8)
    want = ref.stylize(vgg, dec, content, style[None], alpha=0.8)
    np.testing.assert_allclose(np.asarray(got), want, atol=2e-4)


@pytest.mark.parametrize("num_styles", [2, 3])
def test_mask_matches_torch_region_adain(soft_nets, num_styles):
    vgg, dec, params = soft_nets
    h, w = 32, 64
    content = random_images(8, 1, h, w)
    styles = [random_images(10 + k, 1, 32, 32)[0] ** (k + 1) for k in range(num_styles)]
    # a mask at another size than the content: rows of bands, resized by nearest
    mask = np.repeat(np.arange(num_styles, dtype=np.int32), 3)[None, :].repeat(5, 0)
    got = controls.stylize_mix(params, content, styles, alpha=0.9, mask=mask)
    fh, fw = h // 8, w // 8
    cols = np.minimum(((np.arange(fw) + 0.5) * mask.shape[1] / fw).astype(int), mask.shape[1] - 1)
    labels_f = np.broadcast_to(mask[0, cols], (fh, fw))
    want = _torch_masked(vgg, dec, content, styles, labels_f, 0.9)
    np.testing.assert_allclose(np.asarray(got), want, atol=2e-4)
    if num_styles == 2:
        # Routing: away from the border, each half is much closer to the single-style
        # output of its own style than to the other style's.
        out = np.asarray(got)
        single = [
            np.asarray(
                controls.stylize_with_stats(params, content, controls.encode_style(params, s))
            )
            for s in styles
        ]
        assert (labels_f[:, :4] == 0).all() and (labels_f[:, 4:] == 1).all()
        for region, k in ((np.s_[:, :, :24], 0), (np.s_[:, :, 40:], 1)):
            own = np.abs(out[region] - single[k][region]).mean()
            other = np.abs(out[region] - single[1 - k][region]).mean()
            assert own < 0.5 * other, (k, own, other)


def test_mask_region_count_mismatch_fails(soft_nets):
    _, _, params = soft_nets
    content = random_images(30, 1, 32, 64)
    styles = list(random_images(31, 2, 32, 32))
    three = np.arange(3, dtype=np.int32)[None].repeat(4, 0)
    with pytest.raises(ValueError, match="3 regions .* 2 styles"):
        controls.stylize_mix(params, content, styles, mask=three)
    image = np.zeros((10, 12, 3), np.uint8)
    image[:, 4:8] = (255, 0, 0)
    image[:, 8:] = 255
    with pytest.raises(ValueError, match="3 distinct colours but 2 styles"):
        controls.labels_from_mask_image(image, 2)
    labels = controls.labels_from_mask_image(image, 3)
    # brightest (white) -> style 1, then red (luma 76), black last
    assert labels[0, 0] == 2 and labels[0, 5] == 1 and labels[0, 9] == 0


def test_mask_image_white_is_first_style():
    grey = np.zeros((6, 6), np.uint8)
    grey[:3] = 255
    labels = controls.labels_from_mask_image(grey, 2)
    np.testing.assert_array_equal(labels[:3], 0)
    np.testing.assert_array_equal(labels[3:], 1)
    rgba = np.stack([grey, grey, grey, np.full_like(grey, 7)], axis=-1)
    np.testing.assert_array_equal(controls.labels_from_mask_image(rgba, 2), labels)
    with pytest.raises(ValueError, match="mask has 1 distinct colour but 2 styles"):
        controls.labels_from_mask_image(np.zeros((6, 6), np.uint8), 2)  # one flat colour


def test_resize_labels_nearest():
    labels = np.arange(16, dtype=np.int32).reshape(4, 4)
    np.testing.assert_array_equal(controls.resize_labels(labels, 2, 2), [[5, 7], [13, 15]])
    np.testing.assert_array_equal(controls.resize_labels(labels, 8, 4)[::2], labels)


@pytest.mark.slow
def test_size_buckets_equal_unpadded_results(soft_nets):
    """Two images of different sizes padded into one bucket shape and one batch give the
    unpadded results (the statistics and every layer's borders ignore the padding)."""
    _, _, params = soft_nets
    images = [random_images(40, 1, 37, 64)[0], random_images(41, 1, 25, 50)[0]]
    stats = controls.encode_style(params, random_images(42, 1, 32, 32)[0])
    batch = np.stack([controls.pad_to_bucket(img, 64) for img in images])  # reflected
    assert batch.shape == (2, 64, 64, 3)
    batch[1, 25:, 50:] = 7.0  # the padding's values do not matter
    sizes = np.array([img.shape[:2] for img in images])
    got = np.asarray(controls.stylize_with_stats(params, batch, stats, 0.7, sizes=sizes))
    for i, img in enumerate(images):
        want = np.asarray(controls.stylize_with_stats(params, img, stats, 0.7))
        h, w = img.shape[:2]
        np.testing.assert_allclose(got[i, :h, :w], want, atol=1e-5)


def test_two_style_mask_with_soft_edges_is_thresholded():
    mask = np.zeros((50, 50), np.uint8)
    mask[:, 25:] = 255
    mask[:, 24] = 100  # an anti-aliased column: 2% of the pixels
    labels = controls.labels_from_mask_image(mask, 2)
    np.testing.assert_array_equal(labels[:, :25], 1)
    np.testing.assert_array_equal(labels[:, 25:], 0)
    mask[:, 20:24] = 128  # 10% grey: not a two-colour mask
    with pytest.raises(ValueError, match="distinct colours but 2 styles"):
        controls.labels_from_mask_image(mask, 2)
