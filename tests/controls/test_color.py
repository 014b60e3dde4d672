"""Colour preservation against NumPy statistics."""

from __future__ import annotations

import numpy as np

import adain_jax.controls as controls
from adain_jax.controls import color
from tests import soft_weights
from tests.conftest import random_images

# NTSC YIQ, written out independently of adain_jax.controls.color
YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def _stats(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(img, np.float64).reshape(-1, 3)
    return p.mean(0), np.cov(p.T, bias=True)


def _tinted(seed: int, h: int, w: int, gain, offset) -> np.ndarray:
    x = random_images(seed, 1, h, w)[0]
    x = 0.6 * x + 0.4 * x.mean(-1, keepdims=True)  # correlated channels
    return np.clip(x * np.asarray(gain, np.float32) + np.asarray(offset, np.float32), 0, 1)


def _numpy_coral(style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The authors' coral (standardise, match correlations with symmetric square roots,
    restore the content's std and mean), with mean (not summed) covariances, float64."""
    s = style.reshape(-1, 3).astype(np.float64)
    c = content.reshape(-1, 3).astype(np.float64)

    def sqrtm(m, power):
        vals, vecs = np.linalg.eigh(m)
        return vecs @ np.diag(vals**power) @ vecs.T

    zs = (s - s.mean(0)) / s.std(0)
    zc = (c - c.mean(0)) / c.std(0)
    rs, rc = zs.T @ zs / len(zs), zc.T @ zc / len(zc)
    out = (sqrtm(rc, 0.5) @ sqrtm(rs, -0.5) @ zs.T).T * c.std(0) + c.mean(0)
    return out.reshape(style.shape)


def test_match_color_takes_content_mean_and_covariance():
    style = _tinted(0, 24, 40, (1.0, 0.5, 0.2), (0.0, 0.1, 0.3))
    content = _tinted(1, 32, 16, (0.3, 0.8, 0.6), (0.2, 0.0, 0.1))
    got = np.asarray(color.match_color(content, style, clip=False))
    assert got.shape == style.shape
    c_mean, c_cov = _stats(content)
    g_mean, g_cov = _stats(got)
    np.testing.assert_allclose(g_mean, c_mean, atol=1e-5)
    np.testing.assert_allclose(g_cov, c_cov, atol=2e-5 * np.abs(c_cov).max() + 1e-7)
    np.testing.assert_allclose(got, _numpy_coral(style, content), atol=2e-3)
    clipped = np.asarray(color.match_color(content, style))
    assert clipped.min() >= 0 and clipped.max() <= 1
    # batched: leading axes broadcast
    both = np.asarray(color.match_color(content[None], np.stack([style, style]), clip=False))
    np.testing.assert_allclose(both[1], got, atol=1e-5)


def _blocky(seed: int, h: int, w: int, gain, offset) -> np.ndarray:
    """Correlated colours, constant on the 8x8 blocks that the encoder pools."""
    x = np.random.default_rng(seed).random((h // 8, w // 8, 3))
    x = np.kron(0.6 * x + 0.4 * x.mean(-1, keepdims=True), np.ones((8, 8, 1)))
    return np.clip(x * np.asarray(gain) + np.asarray(offset), 0, 1).astype(np.float32)


def test_preserve_color_moves_output_colours_to_content():
    """With colour-carrying (identity) networks the plain output takes the style's colour
    mean; with the style recoloured first it takes the content's mean and covariance."""
    params = soft_weights.identity_params()
    content = _blocky(2, 32, 64, (0.2, 0.9, 0.4), (0.1, 0.0, 0.3))
    style = _blocky(3, 32, 32, (1.0, 0.3, 0.1), (0.0, 0.2, 0.0))
    plain = np.asarray(controls.stylize_mix(params, content, [style]))
    kept = controls.stylize_mix(params, content, [np.asarray(color.match_color(content, style))])
    c_mean, c_cov = _stats(content)
    s_mean, _ = _stats(style)
    np.testing.assert_allclose(_stats(plain)[0], s_mean, atol=1e-4)
    assert np.linalg.norm(s_mean - c_mean) > 0.3
    k_mean, k_cov = _stats(kept)
    np.testing.assert_allclose(k_mean, c_mean, atol=1e-4)
    np.testing.assert_allclose(k_cov, c_cov, atol=1e-5)


def test_luminance_only_keeps_content_chrominance():
    content = _tinted(4, 16, 24, (0.2, 0.9, 0.4), (0.1, 0.0, 0.3))
    style = _tinted(5, 20, 12, (1.0, 0.3, 0.1), (0.0, 0.2, 0.0))
    c_grey, s_grey = (np.asarray(a) for a in color.luminance_inputs(content, style))
    yc, ys = content @ YIQ[0], style @ YIQ[0]
    np.testing.assert_allclose(c_grey, np.repeat(yc[..., None], 3, -1), atol=1e-5)
    np.testing.assert_allclose(s_grey[..., 0], s_grey[..., 2])
    # the style's luminance takes the content's mean and std (before clipping to [0, 1])
    want = (ys - ys.mean()) / ys.std() * yc.std() + yc.mean()
    np.testing.assert_allclose(s_grey[..., 0], np.clip(want, 0, 1), atol=1e-4)

    stylized = random_images(6, 1, 16, 24)[0] * 0.5 + 0.25
    out = np.asarray(color.recombine_luminance(stylized, content))
    inside = np.all((out > 0) & (out < 1), axis=-1)
    assert inside.mean() > 0.5
    out_yiq, c_yiq, s_yiq = out @ YIQ.T, content @ YIQ.T, stylized @ YIQ.T
    np.testing.assert_allclose(out_yiq[inside][:, 0], s_yiq[inside][:, 0], atol=2e-3)
    np.testing.assert_allclose(out_yiq[inside][:, 1:], c_yiq[inside][:, 1:], atol=2e-3)
