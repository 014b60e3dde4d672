"""Mutation fuzzing of the ``.t7`` reader: only TorchFileError may come out, quickly."""

from __future__ import annotations

import numpy as np
import pytest

from adain_jax.weights import torch7
from adain_jax.weights.torch_pickle import TorchFileError
from tests import torch7_writer as w
from tests.fuzz_util import fuzz_readers

CASES = 1500  # per seed file; a few seconds each on a 2-core machine


def _shared_views() -> w.Module:
    """A model whose conv weight and bias are views of one storage, plus odd values."""
    storage = w.Storage(np.arange(3 * 2 * 3 * 3 + 3, dtype=np.float32))
    model = w.small_model()
    conv = model.fields["modules"][1]
    conv.fields["weight"] = w.View(storage, (3, 2, 3, 3))
    conv.fields["bias"] = w.View(storage, (3,), offset=54)
    conv.fields["name"] = "conv1_1"
    conv.fields["gradWeight"] = w.View(storage, (2, 3), (1, 2))  # a strided view
    model.fields["modules"].append(w.Module("nn.ReLU", {"inplace": True}, version=None))
    return model


SEEDS = {
    "small": lambda: w.small_model(),
    "old-2d-layout": lambda: w.small_model(flat=True),
    "shared-views": _shared_views,
}


def _fuzz(tmp_path, data: bytes, n: int, seed: int) -> dict[str, int]:
    return fuzz_readers(
        tmp_path / "mutant.t7", data, (torch7.load_state_dict, torch7.load), n, seed, TorchFileError
    )


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_fuzz_t7_files(tmp_path, name):
    data = w.dumps(SEEDS[name]())
    path = tmp_path / "seed.t7"
    path.write_bytes(data)
    assert sorted(torch7.load_state_dict(path)) == ["1.bias", "1.weight"]  # the seed is valid
    counts = _fuzz(tmp_path, data, CASES, seed=sorted(SEEDS).index(name) + 11)
    assert counts["refused"] > CASES // 4  # the mutations do reach the checks
