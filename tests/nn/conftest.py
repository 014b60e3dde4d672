"""The converted port weights as params, shared by the tests of ``adain_jax.nn``."""

from __future__ import annotations

import pytest

import adain_jax


@pytest.fixture(scope="module")
def port_params(port_weight_files):
    vgg_path, dec_path = port_weight_files
    return adain_jax.load_params(vgg=vgg_path, decoder=dec_path)
