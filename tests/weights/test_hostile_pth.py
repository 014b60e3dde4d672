"""Hostile ``.pth`` files: no code runs, no memory past a storage is read, nothing big is allocated.

Every hostile file is built byte by byte (``tests/hostile_pth.py``); torch only
makes the valid files that the truncation tests cut.
"""

from __future__ import annotations

import io
import subprocess
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from adain_jax.weights import torch_pickle
from adain_jax.weights.torch_pickle import TorchFileError
from tests import commands
from tests import hostile_pth as h

ROOT = Path(__file__).resolve().parents[2]


def _refused(path: Path, canary: Path | None = None, match: str = "") -> str:
    """Load ``path``; assert a one-line TorchFileError naming it and no canary; return it."""
    with pytest.raises(TorchFileError) as info:
        torch_pickle.load_state_dict(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message
    assert match in message, message
    if canary is not None:
        assert not canary.exists(), "the hostile pickle ran code"
    return message


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.fixture
def canary(tmp_path) -> Path:
    return tmp_path / "pwned"


def test_builder_makes_valid_files(tmp_path):
    """The base files the hostile ones are derived from load, in both formats."""
    sd = {"w": h.Tensor("0", (2, 3)), "b": h.Tensor("0", (3,), offset=6)}
    for name, data in (("l.pth", h.legacy_file(sd)), ("z.pth", h.zip_file(sd))):
        got = torch_pickle.load_state_dict(_write(tmp_path, name, data))
        np.testing.assert_array_equal(got["w"], np.arange(6, dtype=np.float32).reshape(2, 3))
        np.testing.assert_array_equal(got["b"], [6, 7, 8])


# ---------------------------------------------------------------- code execution
PAYLOADS = sorted(h.payloads("CANARY"))


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("record", h.LEGACY_RECORDS)
def test_legacy_record_cannot_run_code(tmp_path, canary, record, payload):
    hostile = h.payloads(str(canary))[payload]
    data = h.legacy_file(h.small_state_dict(), replace={record: hostile})
    _refused(_write(tmp_path, "hostile.pth", data))
    _assert_no_canary(canary, payload)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_zip_data_pkl_cannot_run_code(tmp_path, canary, payload):
    hostile = h.payloads(str(canary))[payload]
    data = h.zip_file(h.small_state_dict(), data_pkl=hostile)
    _refused(_write(tmp_path, "hostile.pth", data))
    _assert_no_canary(canary, payload)


def _assert_no_canary(canary: Path, payload: str) -> None:
    """No canary; a started ``Popen`` runs in the background, so give it time to show."""
    if "Popen" in payload:
        time.sleep(0.3)
    assert not canary.exists(), "the hostile pickle ran code"


def test_code_inside_a_valid_state_dict(tmp_path, canary):
    """A payload as one value of an otherwise valid main record (legacy and zip)."""
    body = h.string("x") + h.call(h.global_("os", "system"), h.string(f"touch {canary}"))
    main = h.record(h.call(h.global_("collections", "OrderedDict")) + h.MARK + body + h.SETITEMS)
    sd = h.small_state_dict()
    for name, data in (
        ("l.pth", h.legacy_file(sd, replace={"main": main})),
        ("z.pth", h.zip_file(sd, data_pkl=main)),
    ):
        _refused(_write(tmp_path, name, data), canary, "os.system")


@pytest.mark.parametrize("record", ["magic", "protocol", "sys_info", "keys"])
def test_data_records_resolve_no_global(tmp_path, record):
    """Even the globals a state dict may use are refused outside the main record."""
    body = h.call(h.global_("collections", "OrderedDict"))
    data = h.legacy_file(h.small_state_dict(), replace={record: h.record(body)})
    _refused(_write(tmp_path, "g.pth", data), match="collections.OrderedDict")


@pytest.mark.parametrize("record", ["magic", "protocol", "sys_info", "keys"])
def test_data_records_have_no_persistent_ids(tmp_path, record):
    body = h.tuple_of([h.string("storage")]) + h.BINPERSID
    data = h.legacy_file(h.small_state_dict(), replace={record: h.record(body)})
    _refused(_write(tmp_path, "p.pth", data), match="persistent id")


def _build(target: bytes, state: bytes) -> bytes:
    """Push ``target``, then BUILD it with ``state``."""
    return target + state + b"b"


@pytest.mark.parametrize(
    "target",
    [
        h.global_("torch._utils", "_rebuild_tensor_v2"),
        h.global_("torch", "FloatStorage"),
        h.call(h.global_("collections", "OrderedDict")),
    ],
    ids=["rebuild-function", "storage-type", "ordered-dict"],
)
def test_build_cannot_set_attributes(tmp_path, target):
    """BUILD on an allowed global or a dict must not change the reader (no ``__defaults__``)."""
    state = h.MARK + h.NONE + h.MARK + h.string("__defaults__") + h.ints([0]) + b"d" + h.TUPLE
    attrs = h.MARK + h.string("get") + h.global_("torch._utils", "_rebuild_tensor_v2") + b"d"
    for i, st in enumerate((state, attrs)):
        data = h.legacy_file(h.small_state_dict(), replace={"main": h.record(_build(target, st))})
        with pytest.raises(TorchFileError):
            torch_pickle.load_state_dict(_write(tmp_path, f"b{i}.pth", data))
    # The reader is unchanged: a valid file still loads to the same values.
    got = torch_pickle.load_state_dict(_write(tmp_path, "ok.pth", h.zip_file(h.small_state_dict())))
    np.testing.assert_array_equal(got["w"], np.arange(6, dtype=np.float32).reshape(2, 3))


# ---------------------------------------------------------------- tensor geometry
def _both(tmp_path: Path, tensors: dict, **legacy_kw) -> list[Path]:
    return [
        _write(tmp_path, "geo_legacy.pth", h.legacy_file(tensors, **legacy_kw)),
        _write(tmp_path, "geo_zip.pth", h.zip_file(tensors)),
    ]


def test_view_past_the_storage_end(tmp_path):
    """The issue's case: a 64x64x3x3 ``5.weight`` viewing a 1-element storage."""
    tensors = {"5.weight": h.Tensor("0", (64, 64, 3, 3), numel=1)}
    for path in _both(tmp_path, tensors):
        _refused(path, match="past the end of its storage")


@pytest.mark.parametrize(
    "tensor",
    [
        h.Tensor("0", (4,), stride=(-1,), offset=3, numel=4),
        h.Tensor("0", (2,), offset=-1, numel=4),
        h.Tensor("0", (-2, 3), stride=(3, 1), numel=6),
        h.Tensor("0", (2, 3), stride=(3, 1), offset=1, numel=6),  # one past the end
        h.Tensor("0", (2, 2), stride=(2,), numel=4),  # size and stride lengths differ
    ],
    ids=["negative-stride", "negative-offset", "negative-size", "off-by-one", "rank-mismatch"],
)
def test_bad_geometry(tmp_path, tensor):
    for path in _both(tmp_path, {"t": tensor}):
        _refused(path)


def test_huge_tensor_is_refused_without_allocating(tmp_path):
    """10**12 elements (a stride-0 view of 1 element) fail before any allocation."""
    tensors = {"t": h.Tensor("0", (10**6, 10**6), stride=(0, 0), numel=1)}
    for path in _both(tmp_path, tensors):
        tracemalloc.start()
        try:
            _refused(path, match="elements")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 16 << 20


def test_huge_storage_is_refused_without_allocating(tmp_path):
    """A storage claiming 10**12 elements (pid and legacy count) fails before reading it."""
    tensors = {"t": h.Tensor("0", (2,), numel=10**12)}
    legacy = h.legacy_file({"t": h.Tensor("0", (2,))}, counts={"0": 10**12})
    paths = [
        _write(tmp_path, "pid_legacy.pth", h.legacy_file(tensors)),
        _write(tmp_path, "count_legacy.pth", legacy),
        _write(tmp_path, "pid_zip.pth", h.zip_file(tensors)),
    ]
    for path in paths:
        tracemalloc.start()
        try:
            _refused(path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 16 << 20


def test_wrong_storage_byte_size(tmp_path):
    tensors = {"t": h.Tensor("0", (4,))}
    short = h.zip_file(tensors, storage_bytes={"0": b"\0" * 12})
    long = h.zip_file(tensors, storage_bytes={"0": b"\0" * 20})
    _refused(_write(tmp_path, "short.pth", short), match="bytes")
    _refused(_write(tmp_path, "long.pth", long), match="bytes")
    # Legacy: the count before the bytes disagrees with the numel the pickle declared.
    _refused(_write(tmp_path, "count.pth", h.legacy_file(tensors, counts={"0": 3})))


def test_unknown_storage_dtype(tmp_path):
    tensors = {"t": h.Tensor("0", (2,), storage_type="ComplexFloatStorage")}
    for path in _both(tmp_path, tensors):
        _refused(path, match="ComplexFloatStorage")


# ---------------------------------------------------------------- zip structure
def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as z:
        for name, raw in members.items():
            z.writestr(name, raw)
    return out.getvalue()


def test_zip_with_two_data_pkl(tmp_path):
    pkl = h.main_record(h.small_state_dict(), legacy=False)
    data = h.zip_file(h.small_state_dict(), extra={"other/data.pkl": pkl})
    _refused(_write(tmp_path, "two.pth", data), match="data.pkl")


@pytest.mark.parametrize(
    "name",
    ["../evil", "/abs/file", "archive/data/../../x", "archive\\data\\0", "C:/x", "archive/./x"],
)
def test_zip_member_path_tricks(tmp_path, name):
    data = h.zip_file(h.small_state_dict(), extra={name: b"x"})
    _refused(_write(tmp_path, "trick.pth", data), match="member name")


def test_zip_duplicate_member(tmp_path):
    with pytest.warns(UserWarning):  # zipfile warns when writing a duplicate name
        data = h.zip_file(h.small_state_dict(), extra={"archive/data/0": b"\0" * 24})
    _refused(_write(tmp_path, "dup.pth", data), match="member name")


@pytest.mark.parametrize("key", ["../x", "a/b", "", ".."])
def test_storage_key_not_a_plain_name(tmp_path, key):
    tensors = {"t": h.Tensor(key, (2,))}
    legacy, zipped = _both(tmp_path, tensors)
    _refused(legacy, match="storage key")
    message = _refused(zipped)  # the member name data/<key> may be refused first
    assert "storage key" in message or "member name" in message


def test_zip_bomb_member_is_refused_before_reading(tmp_path):
    """A deflated member (claiming more bytes than the whole archive) is never inflated:
    torch stores members uncompressed, so compressed ones are refused."""
    n = 4 << 20
    tensors = {"t": h.Tensor("0", (2,))}
    members = {
        "archive/data.pkl": h.main_record(tensors, legacy=False),
        "archive/byteorder": b"little",
        "archive/data/0": b"\0" * (4 * n),
    }
    path = _write(tmp_path, "bomb.pth", _zip(members, zipfile.ZIP_DEFLATED))
    assert path.stat().st_size < n
    tracemalloc.start()
    try:
        _refused(path, match="is compressed")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * n


# ---------------------------------------------------------------- truncation
@pytest.fixture(scope="module")
def valid_files(tmp_path_factory) -> dict[str, bytes]:
    torch = pytest.importorskip("torch")
    root = tmp_path_factory.mktemp("valid")
    sd = {"a.weight": torch.arange(12.0).reshape(3, 4), "a.bias": torch.ones(3)}
    files = {}
    for name, legacy in (("zip", False), ("legacy", True)):
        torch.save(sd, root / name, _use_new_zipfile_serialization=not legacy)
        files[name] = (root / name).read_bytes()
    return files


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_truncated_everywhere(tmp_path, valid_files, fmt):
    data = valid_files[fmt]
    assert torch_pickle.load_state_dict(_write(tmp_path, "full.pth", data))
    cuts = sorted(set(range(0, len(data), max(1, len(data) // 97))) | {len(data) - 1})
    for cut in cuts:
        _refused(_write(tmp_path, "cut.pth", data[:cut]))


def test_zero_length_file(tmp_path):
    _refused(_write(tmp_path, "empty.pth", b""))


# ---------------------------------------------------------------- command lines
def _hostile_legacy(tmp_path: Path, canary: Path) -> Path:
    payload = h.payloads(str(canary))["os.system GLOBAL"]
    return _write(
        tmp_path, "hostile.pth", h.legacy_file(h.small_state_dict(), replace={"magic": payload})
    )


def _assert_clean_failure(proc: subprocess.CompletedProcess, canary: Path) -> None:
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not canary.exists()


def test_convert_command_on_hostile_file(tmp_path, canary):
    commands.convert_refuses(_hostile_legacy(tmp_path, canary), tmp_path)
    assert not canary.exists()


@pytest.mark.slow
def test_infer_command_on_hostile_file(tmp_path, canary):
    from PIL import Image

    hostile = _hostile_legacy(tmp_path, canary)
    for name in ("c.png", "s.png"):
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / name)
    output = tmp_path / "out.png"
    cmd = [
        str(ROOT / "infer.py"), "--vgg", str(hostile), "--decoder", str(hostile),
        "--content", str(tmp_path / "c.png"), "--style", str(tmp_path / "s.png"),
        "--output", str(output),
    ]  # fmt: skip
    proc = commands.run(cmd, tmp_path)
    _assert_clean_failure(proc, canary)
    assert str(hostile) in proc.stderr
    assert not output.exists()


_FIND_CLASS_EVENTS: list[tuple] | None = None  # recording while a list


def _record_find_class(event: str, args: tuple) -> None:
    if event == "pickle.find_class" and _FIND_CLASS_EVENTS is not None:
        _FIND_CLASS_EVENTS.append(args)


def test_no_global_is_resolved_by_pickle_itself(tmp_path, port_weight_files):
    """Every global of a .pth (zip and legacy) or NumPy pickle resolves through the
    allow-list; pickle's own ``find_class`` (what ``pickle.load``/``loads`` or a plain
    ``Unpickler`` use, which imports anything) is never reached: it raises the audit
    event ``pickle.find_class``, and none is raised."""
    global _FIND_CLASS_EVENTS
    import pickle

    import torch

    from adain_jax.weights import numpy_pickle

    sys.addaudithook(_record_find_class)  # hooks cannot be removed: off outside the test
    legacy = tmp_path / "legacy.pth"
    torch.save({"w": torch.ones(2, 3)}, legacy, _use_new_zipfile_serialization=False)
    arrays = tmp_path / "arrays.ckpt"
    arrays.write_bytes(pickle.dumps({"conv": {"w": np.ones((2, 3), np.float32)}}))
    _FIND_CLASS_EVENTS = []
    try:
        pickle.loads(pickle.dumps(np.float32))  # the hook sees an unrestricted load
        assert _FIND_CLASS_EVENTS == [("numpy", "float32")]
        _FIND_CLASS_EVENTS.clear()
        loaded = [torch_pickle.load_state_dict(f) for f in (*port_weight_files, legacy)]
        assert len(loaded[0]) > 10 and loaded[2]["w"].shape == (2, 3)
        assert numpy_pickle.load_array_tree(arrays)["conv.w"].shape == (2, 3)
        assert _FIND_CLASS_EVENTS == []
    finally:
        _FIND_CLASS_EVENTS = None
