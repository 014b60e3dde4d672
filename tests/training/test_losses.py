"""The paper's losses and the decoder gradient against the torch port's training code."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adain_jax.nn import ops
from adain_jax.training import losses
from adain_jax.weights import convert
from tests import torch_train_reference as tref
from tests.conftest import random_images


def _rel(a, b) -> float:
    """Relative error in the L2 norm (float32 result vs a float64 reference)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / (np.linalg.norm(b) + 1e-30))


@pytest.fixture(scope="module")
def nets_and_params(torch_nets):
    vgg, dec = torch_nets
    enc = convert.params_from_state_dict(
        {k: v.numpy() for k, v in vgg.state_dict().items()}, "vgg"
    )[1]
    dec_params = convert.params_from_state_dict(
        {k: v.numpy() for k, v in dec.state_dict().items()}, "dec"
    )[1]
    return vgg, dec, enc, dec_params


@pytest.mark.slow
def test_losses_and_decoder_grad_match_torch(nets_and_params):
    """Against the port's losses in float64. XLA:CPU's default precision computes
    the backward convolutions with ~1e-4 relative error (torch float32: ~1e-6),
    so the comparison of the maths runs at "highest" precision."""
    vgg, dec, enc, dec_params = nets_and_params
    cw, sw = 0.5, 3.0  # not the defaults, so the weights are checked too
    content = random_images(10, 2, 32, 32)
    style = random_images(11, 2, 32, 32)
    want_c, want_s, want_t, want_g = tref.losses_and_decoder_grads(vgg, dec, content, style, cw, sw)

    def total(d):
        parts, _ = losses.adain_losses(enc, d, content, style, content_weight=cw, style_weight=sw)
        return parts.total, parts

    with jax.default_matmul_precision("highest"):
        grads, parts = jax.jit(jax.grad(total, has_aux=True))(dec_params)
    assert _rel(parts.content, want_c) < 1e-4
    assert _rel(parts.style, want_s) < 1e-4
    assert _rel(parts.total, want_t) < 1e-4
    # Map the torch grads (OIHW) onto our tree with the converter's layout.
    want_tree = convert.params_from_state_dict(want_g, "grads", layout="decoder")[1]
    for layer, leaves in want_tree.items():
        for leaf, want in leaves.items():
            assert _rel(grads[layer][leaf], want) < 1e-4, (layer, leaf)


def test_style_loss_matches_numpy_and_is_zero_for_identical_stats():
    rng = np.random.default_rng(0)
    taps_a = [rng.standard_normal((2, s, s, c)).astype(np.float32) for s, c in
              ((8, 4), (4, 6), (2, 8), (2, 3))]  # fmt: skip
    taps_b = [rng.standard_normal(t.shape).astype(np.float32) * 2 + 1 for t in taps_a]

    def stats(x):
        m = x.mean(axis=(1, 2))
        return m, np.sqrt(((x - m[:, None, None]) ** 2).mean(axis=(1, 2)) + 1e-5)

    want = 0.0
    for a, b in zip(taps_a, taps_b, strict=True):
        (ma, sa), (mb, sb) = stats(a), stats(b)
        want += np.mean((ma - mb) ** 2) + np.mean((sa - sb) ** 2)
    got = losses.style_loss(taps_a, taps_b)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(float(got), want, rtol=1e-5)
    # AdaIN output has the style's statistics: zero style loss on that tap.
    t = ops.adain(jnp.asarray(taps_a[0]), jnp.asarray(taps_b[0]))
    assert float(losses.style_loss([t], [taps_b[0]])) < 1e-8


@pytest.mark.slow
def test_bfloat16_losses_are_float32_and_close(nets_and_params):
    _, _, enc, dec_params = nets_and_params
    content = random_images(12, 2, 32, 32)
    style = random_images(13, 2, 32, 32)
    both = jax.jit(
        lambda e, d, c, s: (
            losses.adain_losses(e, d, c, s)[0],
            losses.adain_losses(e, d, c, s, dtype=jnp.bfloat16),
        )
    )
    f32, (bf16, out) = both(enc, dec_params, content, style)
    assert bf16.total.dtype == jnp.float32 and out.dtype == jnp.float32
    assert abs(float(bf16.total) - float(f32.total)) < 0.05 * float(f32.total)
