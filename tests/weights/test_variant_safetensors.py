"""Every decoder variant (concat, BatchNorm with its running statistics, InstanceNorm)
round-trips through safetensors, bit for bit, and stylizes as before saving (the torch
comparison of the same decoder and images: tests/nn/test_variants.py)."""

from __future__ import annotations

import numpy as np
import pytest

import adain_jax
from adain_jax.nn.models import DecoderVariant
from adain_jax.weights import convert
from adain_jax.weights import safetensors_io as weights_io
from adain_jax.weights.params import load_decoder, load_params
from tests import torch_variant_reference as vref
from tests.conftest import random_images

VARIANTS = [("concat", "none"), ("adain", "batch"), ("adain", "instance")]


@pytest.mark.parametrize(("fusion", "norm"), VARIANTS)
def test_variant_round_trips_and_stylizes_as_before(port_weight_files, tmp_path, fusion, norm):
    dec = vref.decoder_with_stats(fusion, norm).eval()
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
    # the same stylization as before saving: tests/nn/test_variants.py checks this decoder's
    # stylization of these images against torch's
    np.testing.assert_array_equal(got, direct)


def test_variant_files_are_checked_against_their_variant(tmp_path):
    params = vref.to_params(vref.decoder_with_stats("adain", "batch"))
    params = {k: {n: np.float32(v) for n, v in d.items()} for k, d in params.items()}
    missing = {**params, "norm_conv3_1": {"scale": params["norm_conv3_1"]["scale"]}}
    path = tmp_path / "decoder.safetensors"
    weights_io.save(path, "decoder", missing)
    with pytest.raises(convert.WeightsError, match=r"norm_conv3_1 has shapes \{'scale'"):
        convert.load_network(path, "decoder")

    weights_io.save(path, "decoder", params)
    with pytest.raises(convert.WeightsError, match="holds an Enc-AdaIN-BNDec decoder, not the"):
        load_decoder(path, DecoderVariant("adain", "instance"))
