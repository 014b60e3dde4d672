"""Encoder, decoder and stylize against the independent torch implementation."""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adain_jax
from adain_jax.weights import convert
from tests import torch_reference as ref
from tests.conftest import random_images


def _rel_err(a, b):
    return float(np.max(np.abs(np.asarray(a) - b)) / (np.max(np.abs(b)) + 1e-12))


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(2, 32, 32), (1, 37, 29)])  # odd sizes exercise ceil pooling
def test_encoder_taps_match_torch_vgg_normalised(torch_nets, port_params, shape):
    images = random_images(0, *shape)
    expected = ref.encoder_taps(torch_nets[0], images)
    taps = adain_jax.encode(port_params, jnp.asarray(images))
    for name, got, want in zip(taps._fields, taps, expected, strict=True):
        assert got.shape == want.shape, name
        assert _rel_err(got, want) < 1e-4, name


@pytest.mark.slow
def test_encoder_taps_match_torch_torchvision_layout(torchvision_file):
    path, sd = torchvision_file
    enc = {"encoder": convert.load_network(path, "encoder")}
    images = random_images(1, 2, 40, 24)
    expected = ref.encoder_taps(ref.torchvision_encoder(sd), images)
    taps = adain_jax.encode(enc, jnp.asarray(images))
    for name, got, want in zip(taps._fields, taps, expected, strict=True):
        assert _rel_err(got, want) < 1e-4, name


@pytest.mark.slow
def test_decoder_matches_torch(torch_nets, port_params):
    feats = np.random.default_rng(2).standard_normal((2, 5, 7, 512)).astype(np.float32)
    import torch

    with torch.no_grad():
        want = torch_nets[1](torch.from_numpy(feats.transpose(0, 3, 1, 2))).numpy()
    got = adain_jax.decode(port_params, jnp.asarray(feats))
    assert got.shape == (2, 40, 56, 3)
    assert _rel_err(got, want.transpose(0, 2, 3, 1)) < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("alpha", [1.0, 0.4])
def test_stylize_matches_torch(torch_nets, port_params, alpha):
    content = random_images(3, 2, 36, 44)
    style = random_images(4, 2, 48, 32)
    want = ref.stylize(*torch_nets, content, style, alpha)
    got = adain_jax.stylize(port_params, content, style, alpha)
    assert got.shape == content.shape
    assert np.max(np.abs(np.asarray(got) - want)) < 1e-4


@pytest.mark.slow
def test_stylize_jit_vmap_grad_and_no_recompile(port_params, caplog):
    content = jnp.asarray(random_images(5, 3, 32, 32))
    style = jnp.asarray(random_images(6, 1, 40, 40))
    batched = adain_jax.stylize(port_params, content, style, 0.8)
    mapped = jax.vmap(lambda c: adain_jax.stylize(port_params, c, style[0], 0.8))(content)
    np.testing.assert_allclose(mapped, batched, atol=1e-5)
    jitted = jax.jit(lambda c: adain_jax.stylize(port_params, c, style, 0.8))(content)
    np.testing.assert_allclose(jitted, batched, atol=1e-5)

    grad = jax.grad(lambda c: jnp.sum(adain_jax.stylize(port_params, c, style) ** 2))(content)
    assert grad.shape == content.shape and bool(jnp.all(jnp.isfinite(grad)))
    assert float(jnp.abs(grad).sum()) > 0

    # alpha is traced, not baked in: a new value compiles nothing, a new dtype does.
    def compiles(**kwargs) -> int:
        with caplog.at_level(logging.WARNING), jax.log_compiles():
            caplog.clear()
            jax.block_until_ready(adain_jax.stylize(port_params, content, style, **kwargs))
        return sum("Compiling jit(_stylize)" in r.getMessage() for r in caplog.records)

    compiles(alpha=0.1)
    assert compiles(alpha=0.9) == 0
    assert compiles(alpha=0.1, dtype=jnp.bfloat16) == 1
