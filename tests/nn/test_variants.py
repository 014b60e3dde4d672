"""The section 7.2 decoder variants (concat fusion, BatchNorm / InstanceNorm decoders)
against independent torch implementations (tests/torch_variant_reference.py)."""

from __future__ import annotations

import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import adain_jax
from adain_jax.nn import forward, models, ops
from adain_jax.training import losses
from adain_jax.weights import convert
from tests import torch_variant_reference as vref
from tests.conftest import random_images

VARIANTS = [("concat", "none"), ("adain", "batch"), ("adain", "instance"), ("concat", "batch")]


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / (np.linalg.norm(b) + 1e-30))


@pytest.fixture(scope="module")
def encoder(torch_nets):
    sd = {k: v.numpy() for k, v in torch_nets[0].state_dict().items()}
    return convert.params_from_state_dict(sd, "vgg")[1]


def _jax_params(dec):
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), vref.to_params(dec))


def test_variant_is_read_from_the_params():
    for fusion, norm in VARIANTS:
        shapes = models.decoder_shapes(models.DecoderVariant(fusion, norm))
        assert models.decoder_variant(shapes) == (fusion, norm)
        torch_shapes = jax.tree.map(
            lambda a: a.shape, vref.to_params(vref.decoder_with_stats(fusion, norm))
        )
        assert torch_shapes == jax.tree.map(lambda a: a.shape, shapes)  # the layouts map 1:1
    with pytest.raises(ValueError, match="unknown decoder norm 'layer'"):
        models.make_decoder(models.DecoderVariant("adain", "layer"))


@pytest.mark.slow
@pytest.mark.parametrize(("fusion", "norm"), VARIANTS[:3])
def test_stylize_matches_torch(torch_nets, encoder, fusion, norm):
    """Inference: BatchNorm with its running statistics, concat with a style whose relu4_1
    grid (6x4) differs from the content's (4x5): resized by nearest (half-pixel)."""
    dec = vref.decoder_with_stats(fusion, norm).eval()
    content, style = random_images(20, 2, 32, 40), random_images(21, 1, 48, 32)
    params = {"encoder": encoder, "decoder": _jax_params(dec)}
    got = adain_jax.stylize(params, content, style)
    want = vref.stylize(torch_nets[0], dec, fusion, content, style)
    # InstanceNorm divides by the std of a 4x5 relu4_1 map of random weights: float32
    # differences of the two backends grow there (3.4e-4 on a 2-core EPYC without AVX-512;
    # under 2e-4 on the earlier CI machines)
    assert np.max(np.abs(np.asarray(got) - want)) < (1e-3 if norm == "instance" else 2e-4)


def test_resize_nearest_matches_torch_nearest_exact():
    x = np.random.default_rng(0).standard_normal((2, 5, 7, 3)).astype(np.float32)
    for h, w in ((3, 4), (9, 11), (5, 7)):
        want = torch.nn.functional.interpolate(
            torch.from_numpy(x.transpose(0, 3, 1, 2)), size=(h, w), mode="nearest-exact"
        )
        np.testing.assert_array_equal(
            ops.resize_nearest(x, h, w), want.numpy().transpose(0, 2, 3, 1)
        )


@pytest.mark.slow
@pytest.mark.parametrize(("fusion", "norm"), VARIANTS[:3])
def test_train_losses_grads_and_running_stats_match_torch(torch_nets, encoder, fusion, norm):
    """Training mode (BatchNorm on batch statistics): losses, every decoder gradient
    (scale/offset included) and the updated running statistics, vs torch in float64.

    Tolerances: the losses 1e-4 and the concat decoder's gradients 2e-4 (relative L2).
    Through a norm layer over 2 x 2x2 (BN) or 2x2 (IN) relu4_1 cells the loss gradient
    is ill-conditioned in float32 (BN's backward removes the large per-channel mean of
    the upstream gradient): torch's own float32 gradient is ~3% off its float64 one
    here, ours ~1-2%, so the norm variants' full gradients are checked at 5%, and the
    norm layers' maths exactly by ``test_norm_decoder_vjp_matches_torch``."""
    dec = vref.decoder_with_stats(fusion, norm)
    content, style = random_images(22, 2, 16, 16), random_images(23, 2, 16, 16)
    cw, sw = 0.5, 3.0
    want_c, want_s, want_t, _, want_g, dec_after = vref.losses_and_grads(
        torch_nets[0], dec, content, style, fusion, cw, sw
    )
    params = _jax_params(dec)
    trainable, stats = models.split_stats(params)

    def total(p):
        parts, _, new = losses.train_losses(
            encoder, models.merge_stats(p, stats), content, style, content_weight=cw,
            style_weight=sw,
        )  # fmt: skip
        return parts.total, (parts, new)

    with jax.default_matmul_precision("highest"):
        grads, (parts, new) = jax.jit(jax.grad(total, has_aux=True))(trainable)
    for got, want in ((parts.content, want_c), (parts.style, want_s), (parts.total, want_t)):
        assert _rel(got, want) < 1e-4
    scale = max(np.linalg.norm(leaf) for leaf in jax.tree.leaves(want_g))
    tol = 2e-4 if norm == "none" else 5e-2
    for layer, leaves in want_g.items():
        for leaf, want in leaves.items():
            # a conv bias before BatchNorm has a zero gradient (the norm removes it)
            err = np.linalg.norm(np.asarray(grads[layer][leaf], np.float64) - want)
            assert err < tol * max(np.linalg.norm(want), 1e-3 * scale), (layer, leaf)
    if norm == "batch":
        after = vref.to_params(dec_after)
        for layer in stats:
            before_var = np.asarray(stats[layer]["var"], np.float64)
            np.testing.assert_allclose(
                new[layer]["mean"], after[layer]["mean"], rtol=1e-4, atol=1e-4
            )
            # torch stores the unbiased batch variance, Flax (and adain-jax) the biased one
            n = content.shape[0] * layer_hw(layer) ** 2
            batch_unbiased = (after[layer]["var"] - 0.9 * before_var) / 0.1
            want_var = 0.9 * before_var + 0.1 * batch_unbiased * (n - 1) / n
            np.testing.assert_allclose(new[layer]["var"], want_var, rtol=1e-3)
            assert not np.allclose(new[layer]["var"], before_var)
    else:
        assert jax.tree.structure(new) == jax.tree.structure(params)


@pytest.mark.slow
@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_norm_decoder_vjp_matches_torch(norm):
    """The norm decoders alone (training mode), forward and every parameter's gradient
    for a fixed output cotangent, vs torch float64: 1e-5 relative."""
    dec = vref.decoder_with_stats("adain", norm)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 2, 3, 512)).astype(np.float32)
    cot = rng.standard_normal((2, 16, 24, 3))
    d64 = copy.deepcopy(dec).double().train()
    out = d64(torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float64)))
    (out * torch.from_numpy(cot.transpose(0, 3, 1, 2).copy())).sum().backward()
    want_g = vref.to_params(d64, grads=True)
    trainable, stats = models.split_stats(_jax_params(dec))

    def f(p):
        y, _ = forward.decode_train({"decoder": models.merge_stats(p, stats)}, jnp.asarray(x))
        return jnp.sum(y * cot), y

    with jax.default_matmul_precision("highest"):
        grads, y = jax.jit(jax.grad(f, has_aux=True))(trainable)
    assert _rel(y, out.detach().numpy().transpose(0, 2, 3, 1)) < 1e-5
    for layer, leaves in want_g.items():
        for leaf, want in leaves.items():
            if layer.startswith("conv") and layer != "conv1_1" and leaf == "bias":
                # a bias before a norm layer: zero gradient (the norm removes it)
                assert np.abs(np.asarray(grads[layer][leaf])).max() < 1e-4, layer
            else:
                assert _rel(grads[layer][leaf], want) < 1e-5, (layer, leaf)


def layer_hw(layer: str) -> int:
    """Side of the feature map after the decoder conv of ``norm_<layer>`` for 16 px images."""
    return {"conv4_1": 2, "conv3_4": 4, "conv3_3": 4, "conv3_2": 4, "conv3_1": 4,
            "conv2_2": 8, "conv2_1": 8, "conv1_2": 16}[layer[5:]]  # fmt: skip


@pytest.mark.slow
def test_instance_norm_with_padded_sizes_matches_unpadded(encoder):
    """A padded batch (``sizes``) decodes each image as if alone: IN statistics over
    its own valid cells."""
    dec = {"decoder": _jax_params(vref.decoder_with_stats("adain", "instance"))}
    feats = jax.random.normal(jax.random.key(1), (2, 3, 3, 512))
    sizes = jnp.array([[3, 3], [2, 3]])
    padded = forward.decode(dec, feats, sizes=sizes)
    alone = forward.decode(dec, feats[1:, :2, :3])
    np.testing.assert_allclose(padded[1, :16, :24], alone[0], atol=1e-4)


@pytest.mark.slow
def test_controls_that_do_not_apply_fail_in_one_line(encoder):
    params = {"encoder": encoder, "decoder": _jax_params(vref.decoder_with_stats("concat", "none"))}
    content, style = random_images(24, 1, 16, 16), random_images(25, 1, 16, 16)
    with pytest.raises(ValueError, match="alpha other than 1 does not apply"):
        adain_jax.stylize(params, content, style, 0.5)
    stats = adain_jax.encode_style(params, style)
    with pytest.raises(ValueError, match="style statistics .* does not apply"):
        adain_jax.stylize_with_stats(params, content, stats)
    with pytest.raises(ValueError, match="does not apply"):
        adain_jax.stylize_mix(params, content, [style[0], style[0]])
    with pytest.raises(ValueError, match="tiling does not apply"):
        adain_jax.stylize_tiled(params, content, stats, max_tile=64)
    inorm = {
        "encoder": encoder,
        "decoder": _jax_params(vref.decoder_with_stats("adain", "instance")),
    }
    with pytest.raises(ValueError, match="instance-norm"):
        adain_jax.stylize_tiled(inorm, content, adain_jax.encode_style(inorm, style))
    # jit(stylize) works with the variant read from the params' structure
    out = jax.jit(adain_jax.stylize)(params, content, style)
    np.testing.assert_allclose(out, adain_jax.stylize(params, content, style), atol=1e-6)
