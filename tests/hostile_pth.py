"""Build ``.pth`` files byte by byte, valid or hostile, without torch.

Pickles are written with raw opcodes so that a test can put any global,
any opcode and any tensor geometry into any record of either torch format:

* legacy stream: ``magic | protocol | sys_info | main | keys | storages``,
  each of the first five a pickle, each storage ``<int64 count><bytes>``;
* zip archive: ``<prefix>/data.pkl`` (the main pickle), ``<prefix>/data/<key>``
  (raw little-endian storage bytes), ``<prefix>/byteorder``.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from collections.abc import Mapping, Sequence

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
LEGACY_RECORDS = ("magic", "protocol", "sys_info", "main", "keys")

PROTO2 = b"\x80\x02"
MARK, TUPLE, LIST, REDUCE, STOP = b"(", b"t", b"l", b"R", b"."
EMPTY_DICT, SETITEMS, BINPERSID, NONE = b"}", b"u", b"Q", b"N"
NEWFALSE = b"\x89"


# ---------------------------------------------------------------- opcodes
def string(s: str) -> bytes:
    """BINUNICODE: push ``s``."""
    raw = s.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def integer(i: int) -> bytes:
    """BININT or LONG1: push ``i``."""
    if -(2**31) <= i < 2**31:
        return b"J" + struct.pack("<i", i)
    raw = i.to_bytes((i.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def tuple_of(items: Sequence[bytes]) -> bytes:
    """Push a tuple of already-encoded items."""
    return MARK + b"".join(items) + TUPLE


def ints(values: Sequence[int]) -> bytes:
    """Push a tuple of ints."""
    return tuple_of([integer(v) for v in values])


def global_(module: str, name: str) -> bytes:
    """GLOBAL (protocol 0 text): push ``module.name``."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def stack_global(module: str, name: str) -> bytes:
    """STACK_GLOBAL (protocol 4): push ``module.name`` named by two strings."""
    return string(module) + string(name) + b"\x93"


def call(func: bytes, *args: bytes) -> bytes:
    """REDUCE: push ``func(*args)``; ``func`` and ``args`` are encoded pushes."""
    return func + tuple_of(list(args)) + REDUCE


def inst(module: str, name: str, *args: bytes) -> bytes:
    """INST: push ``module.name(*args)`` (the class-instantiation opcode)."""
    return MARK + b"".join(args) + b"i" + module.encode() + b"\n" + name.encode() + b"\n"


def obj(module: str, name: str, *args: bytes) -> bytes:
    """OBJ: push ``module.name(*args)`` with the callable from GLOBAL."""
    return MARK + global_(module, name) + b"".join(args) + b"o"


def record(body: bytes) -> bytes:
    """A whole pickle: protocol 2 header, ``body`` (one push), STOP."""
    return PROTO2 + body + STOP


# ---------------------------------------------------------------- payloads
def payloads(canary: str) -> dict[str, bytes]:
    """Pickles (whole records) that each create the file ``canary`` if unpickled freely."""
    touch = string(f"touch {canary}")
    py_touch = string(f"open({canary!r}, 'w').close()")
    os_system = call(
        call(global_("builtins", "getattr"), call(global_("builtins", "__import__"), string("os"))),
        string("system"),
    )
    return {
        "os.system GLOBAL": record(call(global_("os", "system"), touch)),
        "posix.system STACK_GLOBAL": b"\x80\x04"
        + call(stack_global("posix", "system"), touch)
        + STOP,
        "eval GLOBAL": record(call(global_("builtins", "eval"), py_touch)),
        "exec STACK_GLOBAL": b"\x80\x04" + call(stack_global("builtins", "exec"), py_touch) + STOP,
        "getattr chain": record(call(os_system, touch)),
        "subprocess.Popen INST": record(
            inst("subprocess", "Popen", MARK + string("touch") + string(canary) + LIST)
        ),
        "subprocess.check_call REDUCE": record(
            call(
                global_("subprocess", "check_call"), MARK + string("touch") + string(canary) + LIST
            )
        ),
        "os.system INST": record(inst("os", "system", touch)),
        "eval OBJ": record(obj("builtins", "eval", py_touch)),
    }


# ---------------------------------------------------------------- tensors
class Tensor:
    """A tensor entry: ``key`` of storage ``storage`` with ``offset``/``size``/``stride``."""

    def __init__(
        self,
        storage: str,
        size: Sequence[int],
        stride: Sequence[int] | None = None,
        offset: int = 0,
        storage_type: str = "FloatStorage",
        numel: int | None = None,
        view: tuple[str, int, int] | None = None,
    ):
        self.storage, self.size, self.offset = storage, tuple(size), offset
        self.stride = tuple(stride) if stride is not None else _contiguous(self.size)
        self.storage_type = storage_type
        self.numel = numel
        self.view = view


def _contiguous(size: Sequence[int]) -> tuple[int, ...]:
    stride, acc = [], 1
    for s in reversed(size):
        stride.append(acc)
        acc *= s
    return tuple(reversed(stride))


def _numel(t: Tensor) -> int:
    """Elements written for ``t``'s storage: the declared count if small, else its extent."""
    if t.numel is not None and t.numel <= 2**20:
        return t.numel
    n = 1
    for s in t.size:
        n *= s
    return max(t.offset + n, 0)


def _rebuild(t: Tensor, storage_numel: int, legacy: bool) -> bytes:
    pid = [
        string("storage"),
        global_("torch", t.storage_type),
        string(t.storage),
        string("cpu"),
        integer(t.numel if t.numel is not None else storage_numel),
    ]
    if legacy:
        pid.append(
            NONE
            if t.view is None
            else tuple_of([string(t.view[0]), integer(t.view[1]), integer(t.view[2])])
        )
    return call(
        global_("torch._utils", "_rebuild_tensor_v2"),
        tuple_of(pid) + BINPERSID,
        integer(t.offset),
        ints(t.size),
        ints(t.stride),
        NEWFALSE,
        call(global_("collections", "OrderedDict")),
    )


def main_record(tensors: Mapping[str, Tensor], legacy: bool) -> bytes:
    """The state-dict pickle: ``OrderedDict`` of ``_rebuild_tensor_v2`` calls."""
    numels = {k: n for k, (n, _) in _storage_bytes(tensors).items()}
    items = b"".join(string(k) + _rebuild(t, numels[t.storage], legacy) for k, t in tensors.items())
    return record(call(global_("collections", "OrderedDict")) + MARK + items + SETITEMS)


def _storage_bytes(tensors: Mapping[str, Tensor]) -> dict[str, tuple[int, bytes]]:
    """``{key: (numel, bytes)}``, the bytes a run of 0, 1, 2, ... float32 values."""
    numels: dict[str, int] = {}
    for t in tensors.values():
        numels[t.storage] = max(numels.get(t.storage, 0), _numel(t))
    return {k: (n, struct.pack(f"<{n}f", *range(n))) for k, n in numels.items()}


def legacy_file(
    tensors: Mapping[str, Tensor],
    *,
    replace: Mapping[str, bytes] | None = None,
    counts: Mapping[str, int] | None = None,
) -> bytes:
    """A legacy-format file; ``replace[record]`` swaps a whole pickle record.

    ``counts[key]`` overrides the element count written before a storage's bytes.
    """
    storages = _storage_bytes(tensors)
    records = {
        "magic": pickle.dumps(LEGACY_MAGIC, protocol=2),
        "protocol": pickle.dumps(LEGACY_PROTOCOL, protocol=2),
        "sys_info": pickle.dumps(
            {"protocol_version": LEGACY_PROTOCOL, "little_endian": True}, protocol=2
        ),
        "main": main_record(tensors, legacy=True),
        "keys": pickle.dumps(list(storages), protocol=2),
    }
    records.update(replace or {})
    out = io.BytesIO()
    for name in LEGACY_RECORDS:
        out.write(records[name])
    for key, (numel, raw) in storages.items():
        out.write(struct.pack("<q", (counts or {}).get(key, numel)))
        out.write(raw)
    return out.getvalue()


def zip_file(
    tensors: Mapping[str, Tensor],
    *,
    data_pkl: bytes | None = None,
    prefix: str = "archive/",
    extra: Mapping[str, bytes] | None = None,
    storage_bytes: Mapping[str, bytes] | None = None,
) -> bytes:
    """A zip-format file (stored members, like torch's), with optional overrides."""
    storages = _storage_bytes(tensors)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr(prefix + "data.pkl", data_pkl or main_record(tensors, legacy=False))
        z.writestr(prefix + "byteorder", b"little")
        z.writestr(prefix + "version", b"3\n")
        for key, (_, raw) in storages.items():
            z.writestr(f"{prefix}data/{key}", (storage_bytes or {}).get(key, raw))
        for name, raw in (extra or {}).items():
            z.writestr(name, raw)
    return out.getvalue()


def small_state_dict() -> dict[str, Tensor]:
    """Two tensors sharing one storage, like a small valid state dict."""
    return {"w": Tensor("0", (2, 3)), "b": Tensor("1", (3,))}
