"""Every decoder variant (concat, BatchNorm with its running statistics, InstanceNorm)
round-trips through safetensors and stylizes as the independent torch implementation of
that variant does (tests/torch_variant_reference.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import adain_jax
from adain_jax.nn.models import DecoderVariant
from adain_jax.weights import convert
from adain_jax.weights import safetensors_io as weights_io
from adain_jax.weights.params import load_decoder, load_params
from tests import torch_variant_reference as vref
from tests.conftest import random_images

VARIANTS = [("concat", "none"), ("adain", "batch"), ("adain", "instance")]


def _torch_decoder(fusion: str, norm: str) -> torch.nn.Sequential:
    dec = vref.variant_decoder(fusion, norm, seed=5)  # tests/nn/test_variants.py's
    g = torch.Generator().manual_seed(6)
    for m in dec:  # running statistics that differ from the initial 0 / 1
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(0.3 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
    return dec.eval()


@pytest.mark.parametrize(("fusion", "norm"), VARIANTS)
def test_variant_round_trips_and_stylizes_as_torch(
    torch_nets, port_weight_files, tmp_path, fusion, norm
):
    dec = _torch_decoder(fusion, norm)
    params = {k: {n: np.float32(v) for n, v in d.items()} for k, d in vref.to_params(dec).items()}
    path = tmp_path / "decoder.safetensors"
    weights_io.save(path, "decoder", params, source="torch")

    network, loaded = weights_io.load(path)  # every leaf back, bit for bit
    assert network == "decoder"
    assert {k: set(d) for k, d in loaded.items()} == {k: set(d) for k, d in params.items()}
    for layer, leaves in params.items():
        for leaf, value in leaves.items():
            np.testing.assert_array_equal(loaded[layer][leaf], value)
    if norm == "batch":
        assert {"mean", "var"} <= set(loaded["norm_conv4_1"])

    variant = DecoderVariant(fusion, norm)
    assert set(load_decoder(path, variant)) == set(params)  # --init-decoder accepts it
    restored = load_params(vgg=port_weight_files[0], decoder=path)
    content, style = random_images(20, 2, 32, 40), random_images(21, 1, 48, 32)
    got = adain_jax.stylize(restored, content, style)
    direct = adain_jax.stylize({**restored, "decoder": params}, content, style)
    np.testing.assert_array_equal(got, direct)  # the same stylization as before saving

    c, s = vref._nchw(content), vref._nchw(style)
    with torch.no_grad():
        cf = vref.tref._encode_taps(torch_nets[0], c)[-1]
        sf = vref.tref._encode_taps(torch_nets[0], s)[-1]
        want = dec(vref.fuse(fusion, cf, sf)).clamp(0, 1).numpy().transpose(0, 2, 3, 1)
    # InstanceNorm over relu4_1's 4x5 cells amplifies float32 rounding (3.4e-4 here).
    assert np.max(np.abs(np.asarray(got) - want)) < (1e-3 if norm == "instance" else 2e-4)


def test_variant_files_are_checked_against_their_variant(tmp_path):
    params = vref.to_params(_torch_decoder("adain", "batch"))
    params = {k: {n: np.float32(v) for n, v in d.items()} for k, d in params.items()}
    missing = {**params, "norm_conv3_1": {"scale": params["norm_conv3_1"]["scale"]}}
    path = tmp_path / "decoder.safetensors"
    weights_io.save(path, "decoder", missing)
    with pytest.raises(convert.WeightsError, match=r"norm_conv3_1 has shapes \{'scale'"):
        convert.load_network(path, "decoder")

    weights_io.save(path, "decoder", params)
    with pytest.raises(convert.WeightsError, match="holds an Enc-AdaIN-BNDec decoder, not the"):
        load_decoder(path, DecoderVariant("adain", "instance"))
