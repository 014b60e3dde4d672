"""Mutation fuzzing of the ``.pth`` reader: only TorchFileError may come out, quickly."""

from __future__ import annotations

import pytest

from adain_jax.weights import torch_pickle
from adain_jax.weights.torch_pickle import TorchFileError
from tests import hostile_pth as h
from tests.fuzz_util import fuzz_readers, mutations

CASES = 1500  # per format; about 10 s for both on a 2-core machine


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, bytes]:
    """Small valid files of both formats: torch's own, and the hand-built ones."""
    torch = pytest.importorskip("torch")
    root = tmp_path_factory.mktemp("fuzz_seeds")
    sd = {
        "a.weight": torch.arange(12.0).reshape(3, 4),
        "a.bias": torch.ones(3, dtype=torch.float16),
        "t": torch.arange(6.0).reshape(2, 3).t(),
    }
    files = {}
    for name, legacy in (("zip", False), ("legacy", True)):
        torch.save(sd, root / name, _use_new_zipfile_serialization=not legacy)
        files[name] = (root / name).read_bytes()
    return files


def _fuzz(tmp_path, data: bytes, n: int, seed: int) -> dict[str, int]:
    return fuzz_readers(
        tmp_path / "mutant.pth", data, (torch_pickle.load_state_dict,), n, seed, TorchFileError
    )


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_fuzz_torch_files(tmp_path, seeds, fmt):
    counts = _fuzz(tmp_path, seeds[fmt], CASES, seed={"zip": 1, "legacy": 2}[fmt])
    assert counts["refused"] > CASES // 4  # the mutations do reach the checks


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_fuzz_hand_built_files(tmp_path, fmt):
    sd = {"w": h.Tensor("0", (2, 3)), "b": h.Tensor("0", (3,), offset=6)}
    data = h.zip_file(sd) if fmt == "zip" else h.legacy_file(sd)
    _fuzz(tmp_path, data, CASES // 3, seed=3)


def test_mutations_are_reproducible():
    data = bytes(range(256))
    assert list(mutations(data, 20, 7)) == list(mutations(data, 20, 7))
    assert list(mutations(data, 20, 7)) != list(mutations(data, 20, 8))
