"""The public API refuses mistakes a user makes at trace time, naming the argument and
the fix; forward-mode autodiff works with the plain convolution."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adain_jax


@pytest.fixture(scope="module")
def params():
    return adain_jax.init_params(jax.random.key(0))


def _images(n: int, size: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, size, size, 3), dtype=np.float32)


def test_integer_images_are_refused_with_the_fix(params):
    uint8 = (_images(1)[0] * 255).astype(np.uint8)
    with pytest.raises(TypeError, match=r"content has dtype uint8.*/ 255"):
        adain_jax.stylize(params, uint8, _images(1)[0])
    with pytest.raises(TypeError, match="style has dtype int32"):
        adain_jax.encode_style(params, uint8.astype(np.int32))


def test_a_wrong_shape_is_named_as_given(params):
    rgba = np.concatenate([_images(1)[0], _images(1)[0][..., :1]], -1)
    with pytest.raises(ValueError, match=r"^content must be .*, got shape \(16, 16, 4\)(\n|$)"):
        adain_jax.stylize(params, rgba, _images(1)[0])
    with pytest.raises(ValueError, match=r"^style must be .*, got shape \(16, 16\)(\n|$)"):
        adain_jax.encode_style(params, _images(1)[0][..., 0])


def test_style_batch_must_be_one_or_n(params):
    with pytest.raises(ValueError, match="style has a batch of 2 for 1 content"):
        adain_jax.stylize(params, _images(1)[0], _images(2))  # HWC content, two styles
    with pytest.raises(ValueError, match="style has a batch of 2 for 3 content"):
        adain_jax.stylize(params, _images(3), _images(2))
    out = adain_jax.stylize(params, _images(3), _images(3, seed=1))  # one style each
    assert out.shape == (3, 16, 16, 3)


def test_alpha_is_a_scalar_or_one_per_content(params):
    with pytest.raises(ValueError, match=r"alpha has shape \(2,\)"):
        adain_jax.stylize(params, _images(3), _images(1), jnp.array([0.5, 0.5]))
    stats = adain_jax.encode_style(params, _images(1)[0])
    with pytest.raises(ValueError, match="alpha has shape"):
        adain_jax.stylize_with_stats(params, _images(2), stats, jnp.ones((2, 2)))


def test_checks_also_hold_under_jit(params):
    with pytest.raises(ValueError, match="style has a batch of 2"):
        jax.jit(adain_jax.stylize)(params, _images(3), _images(2))


@pytest.mark.slow
def test_forward_mode_is_refused_clearly_and_reverse_mode_works(params):
    """Forward mode is unsupported (custom VJPs) and fails at trace time with JAX's own
    message; reverse mode (checked against torch in tests/nn) runs."""
    content, style = _images(1)[0] * 0.8 + 0.1, _images(1, seed=2)[0]

    def f(c):
        return adain_jax.stylize(params, c, style, 0.7)

    rng = np.random.default_rng(3)
    v = jnp.asarray(rng.standard_normal(content.shape), jnp.float32)
    with pytest.raises(TypeError, match="forward-mode autodiff"):
        jax.jvp(f, (content,), (v,))
    (grad,) = jax.vjp(f, content)[1](jnp.ones_like(content))  # reverse mode: fine
    assert np.all(np.isfinite(np.asarray(grad))) and float(jnp.abs(grad).sum()) > 0
