"""Hostile safetensors files: every lie in the header fails with one clear line, before
anything is allocated from a size the file claims."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from adain_jax.weights import convert
from adain_jax.weights import safetensors_io as weights_io
from adain_jax.weights.safetensors_io import WeightsFormatError

META = {"adain_jax.format": "1", "adain_jax.network": "decoder", "adain_jax.source": "x"}


def _file(header: dict, data: bytes, header_len: int | None = None) -> bytes:
    raw = json.dumps(header).encode()
    n = len(raw) if header_len is None else header_len
    return struct.pack("<Q", n) + raw + data


def _valid_header(shape=(3,), dtype="F32", offsets=(0, 12), name="conv1/bias") -> dict:
    return {
        "__metadata__": META,
        name: {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)},
    }


def _load_fails(tmp_path, content: bytes, match: str) -> str:
    path = tmp_path / "decoder.safetensors"
    path.write_bytes(content)
    with pytest.raises(WeightsFormatError, match=match) as info:
        weights_io.load(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message
    return message


def test_a_valid_hand_made_file_loads(tmp_path):
    path = tmp_path / "d.safetensors"
    path.write_bytes(_file(_valid_header(), np.arange(3, dtype="<f4").tobytes()))
    network, params = weights_io.load(path)
    assert network == "decoder"
    np.testing.assert_array_equal(params["conv1"]["bias"], [0.0, 1.0, 2.0])


@pytest.mark.parametrize("claimed", [2**40, 2**64 - 1, 10_000])
def test_header_length_larger_than_the_file(tmp_path, claimed):
    _load_fails(tmp_path, _file(_valid_header(), b"\0" * 12, header_len=claimed), "header claims")


def test_tensor_larger_than_the_file(tmp_path):
    header = _valid_header(shape=(1000, 1000, 1000), offsets=(0, 4 * 10**9))
    _load_fails(tmp_path, _file(header, b"\0" * 12), "claims bytes")


def test_offsets_that_disagree_with_the_shape(tmp_path):
    _load_fails(tmp_path, _file(_valid_header(offsets=(0, 8)), b"\0" * 12), "claims bytes")


@pytest.mark.parametrize("offsets", [(-4, 8), (8, 4), (0, 2**70)])
def test_offsets_out_of_range(tmp_path, offsets):
    _load_fails(tmp_path, _file(_valid_header(offsets=offsets), b"\0" * 12), "claims bytes")


@pytest.mark.parametrize("shape", [(-3,), (2**40, 2**40), ("3",), (1.5,)])
def test_malformed_shapes(tmp_path, shape):
    _load_fails(tmp_path, _file(_valid_header(shape=shape), b"\0" * 12), "shape|claims")


@pytest.mark.parametrize("dtype", ["I64", "U8", "BOOL", "F64", None])
def test_dtype_not_allowed(tmp_path, dtype):
    _load_fails(tmp_path, _file(_valid_header(dtype=dtype), b"\0" * 12), "dtype")


def test_header_not_json(tmp_path):
    raw = b"{not json"
    _load_fails(tmp_path, struct.pack("<Q", len(raw)) + raw, "not JSON")


@pytest.mark.parametrize("size", [0, 1, 7])
def test_too_short(tmp_path, size):
    _load_fails(tmp_path, b"\x01" * size, "not a safetensors file")


def test_non_finite_weights(tmp_path):
    data = np.array([0.0, np.nan, 1.0], "<f4").tobytes()
    _load_fails(tmp_path, _file(_valid_header(), data), "NaN or infinite")


def test_every_truncation_of_a_real_file_fails_cleanly(tmp_path):
    params = {"conv1": {"kernel": np.ones((3, 3, 2, 2), np.float32), "bias": np.zeros(2)}}
    good = tmp_path / "good.safetensors"
    weights_io.save(good, "decoder", params)
    data = good.read_bytes()
    bad = tmp_path / "cut.safetensors"
    for cut in range(0, len(data), 7):
        bad.write_bytes(data[:cut])
        with pytest.raises(WeightsFormatError):
            weights_io.load(bad)


def test_cli_refuses_a_lying_file_with_one_line(tmp_path, capsys):
    from adain_jax.cli import infer

    bad = tmp_path / "decoder.safetensors"
    bad.write_bytes(_file(_valid_header(), b"\0" * 12, header_len=2**40))
    content = tmp_path / "c.png"
    from PIL import Image

    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(content)
    out = tmp_path / "o.png"
    argv = [
        "--content",
        str(content),
        "--style",
        str(content),
        "--output",
        str(out),
        "--vgg",
        str(bad),
        "--decoder",
        str(bad),
    ]
    assert infer.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "header claims" in err and "\n" not in err
    assert not out.exists()


def test_convert_check_params_still_applies(tmp_path):
    path = tmp_path / "d.safetensors"
    path.write_bytes(_file(_valid_header(), np.zeros(3, "<f4").tobytes()))
    with pytest.raises(convert.WeightsError):
        convert.load_network(path, "decoder")


def test_fuzzed_files_raise_only_the_format_error(tmp_path):
    """2,000 seeded mutants of a real file: each loads or fails with WeightsFormatError."""
    from tests.fuzz_util import mutations

    params = {
        "conv1": {
            "kernel": np.arange(36, dtype=np.float32).reshape(3, 3, 2, 2),
            "bias": np.ones(2),
        },
        "conv2": {"kernel": np.ones((1, 1, 2, 3), np.float32), "bias": np.zeros(3)},
    }
    good = tmp_path / "good.safetensors"
    weights_io.save(good, "decoder", params)
    path = tmp_path / "mutant.safetensors"
    outcomes = {"loaded": 0, "refused": 0}
    for mutant in mutations(good.read_bytes(), 2000, seed=9):
        path.write_bytes(mutant)
        try:
            weights_io.load(path)
            outcomes["loaded"] += 1
        except WeightsFormatError as e:
            assert "\n" not in str(e)
            outcomes["refused"] += 1
    assert outcomes["refused"] > 1000  # the mutants really were damaged
