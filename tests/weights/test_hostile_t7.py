"""Hostile ``.t7`` files: nothing runs, nothing big is allocated, every failure is one line.

Each file is built byte by byte with ``tests/torch7_writer.py`` (valid parts) and raw
bytes (the lies); every one must fail with a ``TorchFileError`` naming the file, quickly
and within a small memory bound.
"""

from __future__ import annotations

import struct
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from adain_jax.weights import convert, torch7
from adain_jax.weights.torch_pickle import TorchFileError
from tests import commands
from tests import torch7_writer as w


def _i(v: int) -> bytes:
    return struct.pack("<i", v)


def _q(v: int) -> bytes:
    return struct.pack("<q", v)


def _s(text: str) -> bytes:
    raw = text.encode()
    return _i(len(raw)) + raw


def _refused(tmp_path: Path, data: bytes, match: str = "", state_dict: bool = False) -> str:
    """Read ``data``; assert a quick, small, one-line TorchFileError naming the file."""
    path = tmp_path / "hostile.t7"
    path.write_bytes(data)
    reader = torch7.load_state_dict if state_dict else torch7.load
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(TorchFileError) as info:
            reader(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 2.0
    assert peak < 16 << 20, peak
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    assert match in message, message
    return message


def _torch_head(index: int, class_name: str) -> bytes:
    """The start of a new torch object: tag, index, version, class name."""
    return _i(w.TORCH) + _i(index) + _s("V 1") + _s(class_name)


def _tensor(index: int, size, stride, offset: int, storage: bytes) -> bytes:
    n = len(size)
    body = _i(n) + b"".join(map(_q, size)) + b"".join(map(_q, stride)) + _q(offset + 1)
    return _torch_head(index, "torch.FloatTensor") + body + storage


def _storage(index: int, numel: int, elements: int | None = None) -> bytes:
    """A FloatStorage claiming ``numel`` elements and holding ``elements`` (default all)."""
    n = numel if elements is None else elements
    return _torch_head(index, "torch.FloatStorage") + _q(numel) + b"\0" * (4 * n)


# ---------------------------------------------------------------- truncation
@pytest.mark.slow
@pytest.mark.parametrize("flat", [False, True], ids=["oihw", "old-2d-layout"])
def test_truncated_at_every_byte(tmp_path, flat):
    data = w.dumps(w.small_model(flat=flat))
    path = tmp_path / "cut.t7"
    path.write_bytes(data)
    assert sorted(torch7.load_state_dict(path)) == ["1.bias", "1.weight"]
    start = time.perf_counter()
    for cut in range(len(data)):
        path.write_bytes(data[:cut])
        with pytest.raises(TorchFileError) as info:
            torch7.load_state_dict(path)
        message = str(info.value)
        assert message.startswith(f"{path}: ") and "\n" not in message, (cut, message)
    assert time.perf_counter() - start < 30  # ~3,000 cuts


def test_empty_and_garbage_files(tmp_path):
    _refused(tmp_path, b"", "empty file")
    _refused(tmp_path, b"\x80\x02garbage!", "unknown type tag")
    _refused(tmp_path, w.dumps(w.small_model()) + b"\0", "1 bytes after the object")


# ---------------------------------------------------------------- lying sizes
@pytest.mark.parametrize(
    "data, match",
    [
        (_i(w.STRING) + _i(2**31 - 1) + b"abc", "claims 2147483647 bytes"),
        (_i(w.STRING) + _i(-5), "claims -5 bytes"),
        (_i(w.STRING) + _i(100) + b"abc", "needs 100 bytes"),
        (_i(w.TABLE) + _i(1) + _i(2**31 - 1), "claims 2147483647 entries"),
        (_i(w.TABLE) + _i(1) + _i(-1), "claims -1 entries"),
        (_torch_head(1, "torch.FloatStorage") + _q(10**15), "claims 1000000000000000 elements"),
        (_torch_head(1, "torch.FloatStorage") + _q(-1), "claims -1 elements"),
        (_storage(1, 1000, elements=10), "claims 1000 elements"),
        (_i(w.TORCH) + _i(1) + _i(2**31 - 1), "claims 2147483647 bytes"),
        (_torch_head(1, "torch.FloatTensor") + _i(10**6), "with 1000000 dimensions"),
        (_torch_head(1, "torch.FloatTensor") + _i(-1), "with -1 dimensions"),
        (_torch_head(1, "torch.FloatTensor") + _i(3) + _q(2), "needs 24 bytes"),
    ],
    ids=[
        "string-huge", "string-negative", "string-short", "table-huge", "table-negative",
        "storage-huge", "storage-negative", "storage-short", "class-name-huge", "rank-huge",
        "rank-negative", "sizes-short",
    ],
)  # fmt: skip
def test_lying_sizes(tmp_path, data, match):
    _refused(tmp_path, data, match)


@pytest.mark.parametrize(
    "size, stride, offset, numel, match",
    [
        ((10**6, 10**6), (0, 0), 0, 1, "elements"),  # 10^12 elements of a 1-element storage
        ((64, 64, 3, 3), (576, 9, 3, 1), 0, 1, "past the end"),  # a conv weight on 1 element
        ((4,), (1,), 1, 4, "past the end"),  # one past the end
        ((4,), (-1,), 3, 4, "negative"),
        ((2,), (1,), -2, 4, "negative"),
        ((-2, 3), (3, 1), 0, 6, "negative"),
    ],
    ids=["huge-view", "conv-on-one-element", "off-by-one", "neg-stride", "neg-offset", "neg-size"],
)
def test_tensor_outside_its_storage(tmp_path, size, stride, offset, numel, match):
    data = _tensor(1, size, stride, offset, _storage(2, numel))
    _refused(tmp_path, data, match)


def test_stride_zero_views_cannot_multiply_memory(tmp_path):
    """Many 2^20-element stride-0 views of one element: the output budget stops them."""
    storage = w.Storage(np.zeros(1, np.float32))
    views = {f"v{i}": w.View(storage, (1 << 20,), (0,)) for i in range(40)}
    path = tmp_path / "views.t7"
    path.write_bytes(w.dumps(views))
    assert path.stat().st_size < 16 << 10
    with pytest.raises(TorchFileError, match="far more data than the file"):
        torch7.load(path)


# ---------------------------------------------------------------- structure
def test_reference_loops(tmp_path):
    # A table holding itself: {1: <ref 1>}.
    _refused(
        tmp_path,
        _i(w.TABLE) + _i(1) + _i(1) + _i(w.STRING) + _s("k") + w.dumps(w.Ref(1)),
        "reference loop",
    )
    # A module whose fields hold the module itself.
    data = (
        _torch_head(1, "nn.ReLU")
        + _i(w.TABLE)
        + _i(2)
        + _i(1)
        + _i(w.STRING)
        + _s("self")
        + w.dumps(w.Ref(1, w.TORCH))
    )
    _refused(tmp_path, data, "reference loop")
    # A tensor whose storage is the tensor.
    data = _tensor(1, (1,), (1,), 0, w.dumps(w.Ref(1, w.TORCH)))
    _refused(tmp_path, data, "reference loop")


def test_shared_references_are_linear_not_exponential(tmp_path):
    """60 levels each holding the level below twice (2^60 paths): read in linear time."""
    # Level k (k > 1) is {1: level k-1, 2: <ref to level k-1>}; written innermost last.
    data = bytearray()
    for level in range(60, 1, -1):
        data += _i(w.TABLE) + _i(level) + _i(2) + w.dumps(1)
    data += _i(w.TABLE) + _i(1) + _i(0)  # level 1: empty
    for level in range(2, 61):
        data += w.dumps(2) + _i(w.TABLE) + _i(level - 1)
    path = tmp_path / "dag.t7"
    path.write_bytes(bytes(data))
    start = time.perf_counter()
    got = torch7.load(path)
    assert time.perf_counter() - start < 1.0
    node = got
    for _ in range(59):
        assert node[1.0] is node[2.0]
        node = node[1.0]
    assert node == {}


def test_deep_nesting(tmp_path):
    depth = 10_000
    data = b"".join(_i(w.TABLE) + _i(i + 1) + _i(1) + w.dumps("k") for i in range(depth))
    _refused(tmp_path, data + w.dumps(None), "nested deeper than 64")


def _empty_tables(n: int) -> bytes:
    """A table of ``n`` empty tables."""
    entries = b"".join(w.dumps(float(i + 1)) + _i(w.TABLE) + _i(i + 2) + _i(0) for i in range(n))
    return _i(w.TABLE) + _i(1) + _i(n) + entries


def _nil_entries(n: int) -> bytes:
    """A table of ``n`` entries ``"<i>" = nil``."""
    return _i(w.TABLE) + _i(1) + _i(n) + b"".join(w.dumps(str(i)) + _i(w.NIL) for i in range(n))


def test_too_many_objects_or_entries(tmp_path):
    _refused(tmp_path, _empty_tables(torch7.MAX_OBJECTS), f"more than {torch7.MAX_OBJECTS} objects")
    _refused(
        tmp_path, _nil_entries(torch7.MAX_ENTRIES + 1), f"more than {torch7.MAX_ENTRIES} entries"
    )


@pytest.mark.slow
def test_files_at_the_bounds_stay_small_in_memory(tmp_path):
    """The most objects and entries a file may hold load within a few tens of MiB."""
    for data, n in (
        (_empty_tables(torch7.MAX_OBJECTS - 1), torch7.MAX_OBJECTS - 1),
        (_nil_entries(torch7.MAX_ENTRIES), torch7.MAX_ENTRIES),
    ):
        path = tmp_path / "bounds.t7"
        path.write_bytes(data)
        tracemalloc.start()
        try:
            assert len(torch7.load(path)) == n
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 32 << 20, peak


def test_dangling_reference_reads_as_a_new_object(tmp_path):
    """An index never seen starts a new object: what follows must then be one."""
    _refused(tmp_path, _i(w.TABLE) + _i(99), "needs 4 bytes")


@pytest.mark.parametrize(
    "class_name",
    ["nn.Linear", "nn.PReLU", "torch.CudaHalfTensor", "torch.HalfStorage", "os.execute",
     "nn.gModule", "V 1"],
)  # fmt: skip
def test_unknown_classes(tmp_path, class_name):
    data = _torch_head(1, class_name) + w.dumps({})
    message = _refused(tmp_path, data, "holds a torch class")
    assert repr(class_name) in message


def test_unknown_class_deep_inside_a_model(tmp_path):
    model = w.small_model()
    model.fields["modules"].append(w.Module("nn.Linear", {"weight": np.zeros((2, 2), np.float32)}))
    _refused(tmp_path, w.dumps(model), "'nn.Linear'")


@pytest.mark.parametrize("tag", [6, 7, 8])
def test_lua_functions_are_never_loaded(tmp_path, tag):
    bytecode = b"\x1bLuaQ\x00" + b"os.execute('touch pwned')"
    data = _i(tag) + _i(1) + _i(len(bytecode)) + bytecode + w.dumps({})
    _refused(tmp_path, data, "Lua function")
    # Also as a field of a module inside a valid model.
    model = w.small_model()
    model.fields["modules"][0].fields["updateOutput"] = w.Raw(data)
    _refused(tmp_path, w.dumps(model), "Lua function")


@pytest.mark.parametrize(
    "data, match",
    [
        (_i(9), "unknown type tag 9"),
        (_i(w.BOOLEAN) + _i(2), "boolean 2"),
        (w.dumps({"b": 1}), ""),  # the control: the same construction, valid
        (_i(w.TABLE) + _i(1) + _i(1) + _i(w.TABLE) + _i(2) + _i(0) + w.dumps(1), "key a table"),
        (_i(w.TABLE) + _i(1) + _i(1) + w.dumps(float("nan")) + w.dumps(1), "table key a number"),
        (_i(w.TABLE) + _i(1) + _i(1) + w.dumps(True) + w.dumps(1), "table key a boolean"),
        (_i(w.TABLE) + _i(1) + _i(2) + (w.dumps("k") + w.dumps(1)) * 2, "appears twice"),
        (_torch_head(1, "nn.ReLU") + w.dumps("not a table"), "without a table of fields"),
        (_tensor(1, (1,), (1,), 0, _i(w.TABLE) + _i(2) + _i(0)), "whose storage is a table"),
        (
            _tensor(1, (1,), (1,), 0, _torch_head(2, "torch.DoubleStorage") + _q(1) + b"\0" * 8),
            "whose storage is a torch.DoubleStorage",
        ),
        (_i(w.TORCH) + _i(1) + _s("V nan") + _s("nn.ReLU") + w.dumps({}), "not a number"),
    ],
    ids=[
        "tag", "boolean", "control", "table-key", "nan-key", "bool-key", "duplicate-key",
        "module-fields", "tensor-storage", "storage-type", "version-nan",
    ],
)  # fmt: skip
def test_malformed_values(tmp_path, data, match):
    if not match:  # the control: the same construction, valid, loads
        path = tmp_path / "ok.t7"
        path.write_bytes(data)
        assert torch7.load(path) == {"b": 1.0}
        return
    _refused(tmp_path, data, match)


# ---------------------------------------------------------------- models
def _conv_model(**changes) -> w.Module:
    model = w.small_model()
    conv = model.fields["modules"][1]
    for key, value in changes.items():
        if value is None:
            del conv.fields[key]
        else:
            conv.fields[key] = value
    return model


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"nInputPlane": 5}, "weight has shape (3, 2, 3, 3), expected (3, 5, 3, 3)"),
        ({"weight": np.zeros((3, 17), np.float32)}, "weight has shape (3, 17)"),
        ({"bias": np.zeros(4, np.float32)}, "bias has shape (4,)"),
        ({"bias": None}, "its bias is nil"),
        ({"weight": "weights"}, "its weight is a string"),
        ({"dW": 2}, "stride (1, 2)"),
        ({"padH": 1}, "zero-padding (1, 0)"),
        ({"kH": 2.5}, "kH 2.5"),
        ({"nOutputPlane": -3}, "nOutputPlane -3.0"),
        ({"nOutputPlane": 1e12}, "nOutputPlane 1000000000000.0"),
        ({"kW": None}, "has no kW"),
    ],
)
def test_convolutions_that_lie(tmp_path, changes, match):
    _refused(tmp_path, w.dumps(_conv_model(**changes)), match, state_dict=True)


@pytest.mark.parametrize(
    "model, match",
    [
        ({"modules": []}, "holds a table, not an nn.Sequential"),
        (w.relu(), "holds a nn.ReLU, not an nn.Sequential"),
        (w.sequential([w.sequential([w.relu()])]), "module 0 of the nn.Sequential is a nn.Seq"),
        (w.Module("nn.Sequential", {"modules": {1: w.relu(), 3: w.relu()}}), "not a list"),
        (w.Module("nn.Sequential", {"modules": "x"}), "not a list"),
        (w.sequential([w.relu(), "relu"]), "module 1 of the nn.Sequential is a string"),
    ],
    ids=["table", "bare-module", "nested", "gap", "not-a-table", "string-module"],
)  # fmt: skip
def test_not_a_flat_sequential(tmp_path, model, match):
    _refused(tmp_path, w.dumps(model), match, state_dict=True)


def test_only_the_convolutions_storages_are_read(tmp_path):
    """A model whose unused tensor views lie past their storage still loads (they are never
    built), and its size claims were still checked against the file while parsing."""
    model = w.small_model()
    pool = model.fields["modules"][3]
    pool.fields["indices"] = w.View(w.Storage(np.zeros(2, np.float32)), (10**6,), (1,))
    path = tmp_path / "lazy.t7"
    path.write_bytes(w.dumps(model))
    assert sorted(torch7.load_state_dict(path)) == ["1.bias", "1.weight"]
    with pytest.raises(TorchFileError, match="indices"):
        torch7.load(path)  # the generic reader builds every tensor


# ---------------------------------------------------------------- command lines
def test_convert_command_on_hostile_t7(tmp_path):
    bytecode = b"\x1bLuaQ\x00os.execute('touch pwned')"
    hostile = tmp_path / "decoder.t7"
    hostile.write_bytes(_i(8) + _i(1) + _i(len(bytecode)) + bytecode + w.dumps({}))
    assert "Lua function" in commands.convert_refuses(hostile, tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_infer_on_hostile_t7(tmp_path, capsys):
    from PIL import Image

    from adain_jax.cli import infer

    hostile = tmp_path / "vgg_normalised.t7"
    hostile.write_bytes(_torch_head(1, "nn.gModule") + w.dumps({}))
    image = tmp_path / "c.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(image)
    output = tmp_path / "out.png"
    argv = ["--vgg", str(hostile), "--decoder", str(hostile), "--content", str(image)]
    argv += ["--style", str(image), "--output", str(output), "--quiet"]
    assert infer.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {hostile}: holds a torch class 'nn.gModule'")
    assert err.count("\n") == 1 and not output.exists()


def test_convert_routes_only_t7_headers_to_the_t7_reader(tmp_path):
    """``.pth`` files keep going to the pickle reader; a ``.t7`` header goes to the .t7 one."""
    t7 = tmp_path / "model.pth"
    t7.write_bytes(w.dumps(w.relu()))
    with pytest.raises(TorchFileError, match="not an nn.Sequential"):
        convert.load_torch_weights(t7)
    pickle_like = tmp_path / "other.pth"
    pickle_like.write_bytes(b"\x80\x02K\x01.")
    with pytest.raises(TorchFileError, match="not a PyTorch file"):
        convert.load_torch_weights(pickle_like)
