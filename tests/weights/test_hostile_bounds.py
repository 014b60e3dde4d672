"""Hostile weights, second pass (issue 20): objects that are costly to print, compressed
members that add up, long pickle records, safetensors headers that nest, overflow or
lie, NaN weights. Every file is built in the test and small on disk; every case is
bounded in time and memory in the test itself (a capped child process, or tracemalloc).
"""

from __future__ import annotations

import struct
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from adain_jax.weights import safetensors_io, torch_pickle, torch_records
from adain_jax.weights.safetensors_io import WeightsFormatError
from adain_jax.weights.torch_pickle import TorchFileError
from tests import hostile_pth as h
from tests.bounded import run_bounded

DEPTH = 60  # the repr of the nested list below would have 2^60 elements


def nested_list(depth: int = DEPTH) -> bytes:
    """Opcodes pushing ``l_d`` with ``l_0 = []``, ``l_k = [l_(k-1), l_(k-1)]`` (memo-shared,
    each ``l_(k-1)`` popped once memoised):
    a few hundred bytes whose repr has 2^depth elements."""
    out = b"]" + b"q\x00"  # EMPTY_LIST, BINPUT 0
    for k in range(depth):
        out += b"0" + b"(" + b"h" + bytes([k]) + b"h" + bytes([k]) + b"l" + b"q" + bytes([k + 1])
    return out


def _load_bounded(path: Path) -> dict:
    """``load_state_dict(path)`` in a child capped at 2 GiB and 60 s; its message."""
    code = f"""
    from adain_jax.weights import torch_pickle
    try:
        torch_pickle.load_state_dict({str(path)!r})
        result = "loaded"
    except torch_pickle.TorchFileError as e:
        result = str(e)
    """
    return run_bounded(code, mem_mb=2048, timeout_s=60)


def test_legacy_protocol_record_that_is_costly_to_print(tmp_path):
    path = tmp_path / "deep.pth"
    protocol = h.PROTO2 + nested_list() + h.STOP
    path.write_bytes(h.legacy_file(h.small_state_dict(), replace={"protocol": protocol}))
    assert path.stat().st_size < 2000
    run = _load_bounded(path)
    message = run["result"]
    assert message == f"{path}: not a PyTorch file (unknown protocol a list of length 2)"
    assert run["seconds"] < 30 and run["peak_mb"] < 1500


def test_zip_storage_key_that_is_costly_to_print(tmp_path):
    pid = h.MARK + h.string("storage") + h.global_("torch", "FloatStorage") + nested_list()
    pid += h.string("cpu") + h.integer(2) + h.TUPLE + h.BINPERSID
    tensor = h.call(
        h.global_("torch._utils", "_rebuild_tensor_v2"),
        pid,
        h.integer(0),
        h.ints((2,)),
        h.ints((1,)),
        h.NEWFALSE,
        h.call(h.global_("collections", "OrderedDict")),
    )
    record = h.record(
        h.call(h.global_("collections", "OrderedDict")) + h.MARK + h.string("w") + tensor
        + h.SETITEMS
    )  # fmt: skip
    path = tmp_path / "key.pth"
    path.write_bytes(h.zip_file({"w": h.Tensor("0", (2,))}, data_pkl=record))
    assert path.stat().st_size < 3000
    run = _load_bounded(path)
    assert run["result"] == f"{path}: storage key a list of length 2 is not a plain name"
    assert run["seconds"] < 30 and run["peak_mb"] < 1500


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2])
def test_compressed_members_are_refused_before_inflating(tmp_path, method):
    """Members of 8 MiB each, each bounded by nothing but the archive: refused unread."""
    count, numel = 8, 2 << 20  # 8 x 8 MiB = 64 MiB inflated
    tensors = {f"t{i}": h.Tensor(str(i), (numel,)) for i in range(count)}
    path = tmp_path / "bomb.pth"
    with zipfile.ZipFile(path, "w", method) as z:
        z.writestr("archive/data.pkl", h.main_record(tensors, legacy=False))
        z.writestr("archive/byteorder", b"little", compress_type=zipfile.ZIP_STORED)
        for i in range(count):
            z.writestr(f"archive/data/{i}", bytes(4 * numel))
    assert path.stat().st_size < 1_000_000
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(TorchFileError, match="is compressed") as info:
            torch_pickle.load_state_dict(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(info.value).startswith(f"{path}: zip member archive/data.pkl is compressed")
    assert time.perf_counter() - start < 5 and peak < 10 << 20


def test_opcode_scan_is_streamed(tmp_path):
    """A 512 KB data.pkl of 2^18 opcodes: scanned one opcode at a time (the old list of
    opcodes took ~75x the record's size)."""
    body = h.PROTO2 + b"N0" * (1 << 17) + b"}" + h.STOP  # NONE, POP ... then an empty dict
    path = tmp_path / "long.pth"
    path.write_bytes(h.zip_file({}, data_pkl=body))
    tracemalloc.start()
    try:
        assert torch_pickle.load_state_dict(path) == {}
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * len(body) + (1 << 20), peak


@pytest.mark.parametrize("legacy", [False, True])
def test_pickle_record_over_the_cap_is_refused(tmp_path, monkeypatch, legacy):
    monkeypatch.setattr(torch_records, "MAX_RECORD_BYTES", 1 << 16)
    monkeypatch.setattr(torch_pickle, "MAX_RECORD_BYTES", 1 << 16)
    body = h.PROTO2 + b"N0" * (1 << 16) + b"}" + h.STOP
    path = tmp_path / "capped.pth"
    if legacy:
        path.write_bytes(h.legacy_file({}, replace={"main": body}))
    else:
        path.write_bytes(h.zip_file({}, data_pkl=body))
    with pytest.raises(TorchFileError) as info:
        torch_pickle.load_state_dict(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert "longer than" in message or "larger than" in message


def test_a_failure_without_text_names_its_type(tmp_path):
    """``not a PyTorch file ()`` was the message of an exception without text."""
    path = tmp_path / "empty_error.pth"
    path.write_bytes(h.PROTO2 + b"0" + h.STOP)  # POP on an empty stack
    with pytest.raises(TorchFileError) as info:
        torch_pickle.load_state_dict(path)
    assert "()" not in str(info.value) and str(info.value).startswith(f"{path}: ")


# ---------------------------------------------------------------- safetensors


def _header_file(path: Path, header: bytes, data: bytes = b"") -> Path:
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)
    return path


def _refused(path: Path, match: str) -> str:
    start = time.perf_counter()
    with pytest.raises(WeightsFormatError) as info:
        safetensors_io.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message and match in message, message
    assert time.perf_counter() - start < 5
    return message


def test_deeply_nested_header_is_one_line(tmp_path):
    depth = 200_000
    header = b'{"a": ' + b"[" * depth + b"]" * depth + b"}"
    _refused(_header_file(tmp_path / "deep.safetensors", header), "nested 200001 deep")


def test_shape_whose_product_overflows(tmp_path):
    entry = {"dtype": "F32", "shape": [2**31 - 1] * 8, "data_offsets": [0, 4]}
    import json

    header = json.dumps({"l/kernel": entry}).encode()
    _refused(_header_file(tmp_path / "big.safetensors", header, b"\0" * 4), "claims bytes")
    entry["shape"] = [2] * 100
    header = json.dumps({"l/kernel": entry}).encode()
    _refused(_header_file(tmp_path / "ndim.safetensors", header, b"\0" * 4), "malformed shape")


def test_header_over_the_cap_is_named_as_such(tmp_path):
    """A 2 MiB header in a (sparse, tiny on disk) 3 MiB file: over the bound, not a lie."""
    path = tmp_path / "wide.safetensors"
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", 2 << 20))
        f.seek(3 << 20)
        f.write(b"\0")
    _refused(path, "over the bound of 1 MiB")


def test_first_eight_bytes_are_not_printed(tmp_path):
    path = tmp_path / "passwd"
    path.write_bytes(b"root:x:0:0:root:/root:/bin/bash\n")
    message = _refused(path, "header claims more bytes than the file's 32")
    assert str(struct.unpack("<Q", b"root:x:0")[0]) not in message


def test_non_finite_weights_are_never_written(tmp_path):
    path = tmp_path / "decoder.safetensors"
    params = {"conv": {"kernel": np.array([[1.0, np.nan]], np.float32), "bias": np.zeros(2)}}
    with pytest.raises(WeightsFormatError, match="conv/kernel' holds NaN or infinite values"):
        safetensors_io.save(path, "decoder", params, source="decoder.pth")
    big = {"conv": {"kernel": np.full((1, 2), 1e6, np.float32), "bias": np.zeros(2)}}
    with pytest.raises(WeightsFormatError, match=r"\(as float16\)"):
        safetensors_io.save(path, "decoder", big, storage_dtype=np.float16)
    assert list(tmp_path.iterdir()) == []


def test_convert_refuses_nan_weights(tmp_path, port_weight_files, capsys):
    torch = pytest.importorskip("torch")
    from adain_jax.cli import convert

    _, decoder = port_weight_files
    state = torch.load(decoder, weights_only=True)
    first = next(iter(state))
    state[first].view(-1)[0] = float("nan")
    bad = tmp_path / "decoder_nan.pth"
    torch.save(state, bad)
    out = tmp_path / "out"
    assert convert.main(["--decoder", str(bad), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "NaN or infinite" in err and "\n" not in err
    assert not (out / "decoder.safetensors").exists()
