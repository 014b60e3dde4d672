"""A shared fixture for the runtime-control tests: random weights whose decoder output
mostly lies inside [0, 1], so comparisons are not hidden by clipping."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import torch

import adain_jax
from tests import torch_reference as ref


@pytest.fixture(scope="session")
def soft_nets(tmp_path_factory, torch_nets):
    """The random torch nets with the decoder's last conv scaled so outputs mostly lie
    inside [0, 1] (clipping would hide differences), and the same weights in adain-jax."""
    vgg, dec = torch_nets
    dec = ref.decoder()
    dec.load_state_dict(torch_nets[1].state_dict())
    with torch.no_grad():
        dec[-1].weight.mul_(0.2)
        dec[-1].bias.add_(0.5)
    root = tmp_path_factory.mktemp("soft")
    torch.save(vgg.state_dict(), root / "vgg.pth")
    torch.save(dec.eval().state_dict(), root / "dec.pth")
    params = adain_jax.load_params(vgg=root / "vgg.pth", decoder=root / "dec.pth")
    return vgg, dec.eval(), params


def identity_params() -> dict:
    """Encoder and decoder that carry the RGB channels straight through (centre-tap identity
    kernels on channels 0-2, zero elsewhere): relu4_1 holds the image max-pooled 8x, and
    the decoder upsamples it back. Colour statistics then flow from AdaIN to the output,
    which random weights do not do."""

    def ident(leaf_path, leaf):
        arr = np.zeros(leaf.shape, np.float32)
        if leaf_path[-1].key == "kernel":
            k = arr.shape[0] // 2
            for i in range(3):
                arr[k, k, i, i] = 1.0
        return arr

    shapes = jax.eval_shape(lambda key: adain_jax.init_params(key), jax.random.key(0))
    return jax.tree_util.tree_map_with_path(ident, shapes)


@pytest.fixture(scope="session")
def soft_files(tmp_path_factory, soft_nets):
    """``--vgg``/``--decoder`` flags for ``soft_nets``' weights."""
    vgg, dec, _ = soft_nets
    root = tmp_path_factory.mktemp("soft_files")
    torch.save(vgg.state_dict(), root / "vgg.pth")
    torch.save(dec.state_dict(), root / "dec.pth")
    return ["--vgg", str(root / "vgg.pth"), "--decoder", str(root / "dec.pth")]
