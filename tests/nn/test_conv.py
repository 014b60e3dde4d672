"""Both ``reflect_conv`` formulations against plain ``lax.conv_general_dilated``.

The reference pads with NumPy's reflect mode and runs the VALID convolution
(its gradients by JAX autodiff of that reference), independent of the
formulations under test (``direct``: SAME-and-crop with a custom VJP on CPU;
``valid``). Whole-network agreement is checked against the torch reference.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adain_jax
from adain_jax.nn import conv, forward, ops
from tests import torch_reference as ref
from tests.conftest import random_images

FORMULATIONS = conv.IMPLEMENTATIONS
LAYER_TOL = 1e-5  # max |error| / max |reference| of one layer (measured ~1e-6)


def _rel_err(got, want) -> float:
    want = np.asarray(want, np.float64)
    return float(np.max(np.abs(np.asarray(got, np.float64) - want)) / np.max(np.abs(want)))


def _reference(x, kernel, bias):
    p = kernel.shape[0] // 2
    xp = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")
    y = jax.lax.conv_general_dilated(
        xp, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=jax.lax.Precision.HIGHEST,
    )  # fmt: skip
    return y + bias


def _case(seed, n, h, w, cin, cout, k=3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, cin)).astype(np.float32)
    kernel = (rng.standard_normal((k, k, cin, cout)) * (2 / (k * k * cin)) ** 0.5).astype(
        np.float32
    )
    bias = (rng.standard_normal(cout) * 0.05).astype(np.float32)
    dy = rng.standard_normal((n, h, w, cout)).astype(np.float32)
    return x, kernel, bias, dy


# Odd and even sizes (tiles that overhang the image), thin and wide channels.
SHAPES = [(1, 7, 9, 16, 32), (2, 8, 8, 24, 16), (1, 5, 6, 3, 16), (1, 13, 10, 64, 3)]


@pytest.mark.slow
@pytest.mark.parametrize("impl", FORMULATIONS)
def test_values_and_gradients_match_lax_conv(impl):
    tol = LAYER_TOL
    for i, shape in enumerate(SHAPES):
        x, kernel, bias, dy = _case(i, *shape)

        def run(x, kernel, bias):
            return conv.reflect_conv(x, kernel, bias, impl=impl)

        got, got_vjp = jax.vjp(jax.jit(run), x, kernel, bias)
        want, want_vjp = jax.vjp(_reference, x, kernel, bias)
        assert got.shape == want.shape == (*shape[:3], shape[4])
        assert _rel_err(got, want) < tol, (shape, "value")
        for name, g, w in zip(("dx", "dkernel", "dbias"), got_vjp(dy), want_vjp(dy), strict=True):
            assert _rel_err(g, w) < tol, (shape, name)


@pytest.mark.parametrize("impl", FORMULATIONS)
def test_one_by_one_conv_is_a_matmul(impl):
    x, kernel, bias, _ = _case(9, 2, 5, 4, 3, 3, k=1)
    got = conv.reflect_conv(jnp.asarray(x), jnp.asarray(kernel), jnp.asarray(bias), impl=impl)
    want = np.einsum("nhwc,co->nhwo", x, kernel[0, 0]) + bias
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_direct_composes_with_vmap_and_jit():
    x, kernel, bias, _ = _case(4, 3, 6, 7, 16, 16)
    per_image = jax.vmap(lambda a: conv.reflect_conv(a[None], kernel, bias, impl="direct")[0])
    grads = jax.jit(jax.grad(lambda a: jnp.sum(per_image(a) ** 2)))(x)
    want = jax.grad(lambda a: jnp.sum(_reference(a, kernel, bias) ** 2))(x)
    assert _rel_err(grads, want) < 1e-5


@pytest.mark.slow
def test_formulation_is_an_explicit_static_choice():
    """No hidden switch: names outside ``conv.IMPLEMENTATIONS`` fail, and a network's
    ``conv_impl`` reaches every convolution: with ``"valid"`` the whole encoder and
    decoder support forward-mode autodiff, which the CPU ``"direct"`` custom VJP does not."""
    x, kernel, bias, _ = _case(5, 1, 6, 6, 4, 4)
    with pytest.raises(ValueError, match="unknown convolution 'auto'"):
        conv.reflect_conv(x, kernel, bias, impl="auto")
    params = adain_jax.init_params(jax.random.key(0))
    images = jnp.asarray(random_images(3, 1, 16, 16))

    def net(impl):
        def run(x):
            return forward.decode(params, forward.encode(params, x, conv_impl=impl).relu4_1,
                                  conv_impl=impl)  # fmt: skip

        return run

    out, tangent = jax.jvp(net("valid"), (images,), (jnp.ones_like(images),))
    assert out.shape == tangent.shape == (1, 16, 16, 3)
    if jax.default_backend() == "cpu":
        with pytest.raises(TypeError, match="custom_vjp"):
            jax.jvp(net("direct"), (images,), (jnp.ones_like(images),))


@pytest.mark.slow
@pytest.mark.parametrize("impl", FORMULATIONS)
def test_whole_network_matches_torch(torch_nets, port_params, impl):
    """Errors compound through 9 encoder + 9 decoder convs: still within 1e-4 relative."""
    encode = jax.jit(functools.partial(forward.encode, conv_impl=impl))
    decode = jax.jit(functools.partial(forward.decode, conv_impl=impl))
    images = random_images(10, 1, 37, 30)
    taps = encode(port_params, jnp.asarray(images))
    for name, got, want in zip(
        taps._fields, taps, ref.encoder_taps(torch_nets[0], images), strict=True
    ):
        assert _rel_err(got, want) < 1e-4, name
    content, style = random_images(11, 1, 40, 33), random_images(12, 1, 34, 41)
    cf, sf = encode(port_params, content).relu4_1, encode(port_params, style).relu4_1
    got = jnp.clip(decode(port_params, ops.blend(cf, ops.adain(cf, sf), 0.9)), 0, 1)[:, :40, :33]
    want = ref.stylize(*torch_nets, content, style, 0.9)
    assert np.max(np.abs(np.asarray(got) - want)) < 1e-4


@pytest.mark.parametrize("band_pixels", [20, 45, 10_000])
def test_direct_kernel_gradient_over_bands_of_rows(monkeypatch, band_pixels):
    """The ``direct`` kernel gradient loops over bands of rows (1, 2 and all rows here)."""
    monkeypatch.setattr(conv, "KERNEL_GRAD_BAND_PIXELS", band_pixels)
    for i, shape in enumerate([(2, 12, 10, 8, 4), (1, 13, 11, 5, 6)]):
        x, kernel, bias, dy = _case(10 + i, *shape)
        run = jax.jit(lambda x, kernel, bias: conv.reflect_conv(x, kernel, bias, impl="direct"))
        _, got_vjp = jax.vjp(run, x, kernel, bias)
        _, want_vjp = jax.vjp(_reference, x, kernel, bias)
        assert _rel_err(got_vjp(dy)[1], want_vjp(dy)[1]) < LAYER_TOL, shape


def test_reflect_pad_of_symbolic_sizes_matches_numpy():
    """Exports trace symbolic sizes, where ``reflect_pad`` gathers instead of ``jnp.pad``:
    the same values as NumPy's reflect mode at sizes unknown when traced."""
    n, h, w = jax.export.symbolic_shape("N, H, W")
    spec = jax.ShapeDtypeStruct((n, h, w, 3), jnp.float32)
    exported = jax.export.export(jax.jit(lambda x: conv.reflect_pad(x, 1)))(spec)
    for shape in [(1, 2, 5, 3), (2, 9, 4, 3)]:
        x = random_images(11, *shape[:3])
        want = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
        np.testing.assert_array_equal(np.asarray(exported.call(x)), want)
