"""Read PyTorch ``.pth`` state dicts into NumPy without importing torch.

Both of torch's serialisations are supported: the zip archive written since
PyTorch 1.6 and the older "legacy" stream (used by the 2018 AdaIN release
files). The files are treated as hostile input:

* Every pickle record goes through a restricted unpickler. The main record
  resolves only the globals a tensor state dict needs (as
  ``torch.load(weights_only=True)`` does); the legacy stream's other records
  (magic number, protocol, sys info, storage keys) resolve no global and no
  persistent id at all. The allowed globals are inert objects: ``BUILD``
  cannot set attributes on them, so a file cannot change the reader.
* Tensors are described while unpickling and built afterwards, only once
  each one's offset, sizes and strides are checked against its storage and
  each storage's byte count against the archive member or legacy record that
  holds it. Sizes are bounded before anything is read or allocated.
* Zip member names must be plain relative paths, with one ``data.pkl``.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import pickletools
import re
import struct
import warnings
import zipfile
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO

import numpy as np

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_MAX_NDIM = 32
_MAX_NUMEL = 2**31  # elements of one tensor
_MAX_BROADCAST = 2**20  # elements a tensor may have beyond its storage's (stride-0 views)
_STORAGE_KEY = re.compile(r"[A-Za-z0-9_]+")
_MAX_MEMO = 1 << 20  # memo slots: a huge LONG_BINPUT index makes CPython allocate the memo
# Opcodes a tensor state dict never needs: class instantiation, the extension
# registry, text persistent ids and out-of-band buffers.
_FORBIDDEN_OPCODES = frozenset(
    ["INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "EXT1", "EXT2", "EXT4", "PERSID"]
    + ["NEXT_BUFFER", "READONLY_BUFFER"]
)


class TorchFileError(ValueError):
    """A file that is not a readable PyTorch tensor pickle."""


def _bfloat16() -> np.dtype:
    import ml_dtypes  # installed with jax

    return np.dtype(ml_dtypes.bfloat16)


_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16",
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _Inert:
    """Base of the objects globals resolve to: no instance dict, BUILD refused."""

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        raise pickle.UnpicklingError("BUILD on a global is not allowed")


class _StorageType(_Inert):
    """``torch.<Name>Storage``: only its name, looked up in ``_STORAGE_DTYPES`` when used."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        object.__setattr__(self, "name", name)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("read-only")

    def dtype(self) -> np.dtype:
        dtype = _STORAGE_DTYPES[self.name]
        return _bfloat16() if dtype == "bfloat16" else np.dtype(dtype)


_STORAGE_TYPES = {name: _StorageType(name) for name in _STORAGE_DTYPES}


class _StateDict(dict):
    """Stands in for ``collections.OrderedDict``: a plain dict without attributes.

    ``BUILD`` state (torch's ``_metadata``) is accepted and dropped.
    """

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        pass


class _StorageRef:
    """A storage named by a persistent id: key, element type and element count."""

    __slots__ = ("key", "storage_type", "numel", "view_offset", "view_numel")

    def __init__(self, key: str, storage_type: _StorageType, numel: int, view=None):
        self.key, self.storage_type, self.numel = key, storage_type, numel
        self.view_offset, self.view_numel = view if view is not None else (0, numel)


class _TensorSpec:
    """A tensor described by the pickle, built once its storage is read and checked."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage: _StorageRef, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


class _Call(_Inert):
    """An allowed callable global (a rebuild function)."""

    __slots__ = ("_fn",)

    def __init__(self, fn: Callable[..., Any]):
        object.__setattr__(self, "_fn", fn)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("read-only")

    def __call__(self, *args: Any) -> Any:
        return self._fn(*args)


def _rebuild_tensor(
    storage: Any, offset: Any, size: Any, stride: Any, *_unused: Any
) -> _TensorSpec:
    """``torch._utils._rebuild_tensor(_v2)``: check the argument types, defer the build."""
    if not isinstance(storage, _StorageRef):
        raise pickle.UnpicklingError("tensor without a storage")
    if not (isinstance(size, tuple) and isinstance(stride, tuple)):
        raise pickle.UnpicklingError("tensor size and stride must be tuples")
    if not all(_is_int(v) for v in (offset, *size, *stride)):
        raise pickle.UnpicklingError("tensor offset, size and stride must be ints")
    return _TensorSpec(storage, offset, size, stride)


def _rebuild_parameter(data: Any, *_unused: Any) -> _TensorSpec:
    """``torch._utils._rebuild_parameter(_with_state)``: the tensor, state dropped."""
    if not isinstance(data, _TensorSpec):
        raise pickle.UnpicklingError("parameter without a tensor")
    return data


_STATE_DICT_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): _StateDict,
    ("torch._utils", "_rebuild_tensor_v2"): _Call(_rebuild_tensor),
    ("torch._utils", "_rebuild_tensor"): _Call(_rebuild_tensor),
    ("torch._utils", "_rebuild_parameter"): _Call(_rebuild_parameter),
    ("torch._utils", "_rebuild_parameter_with_state"): _Call(_rebuild_parameter),
    **{("torch", name): t for name, t in _STORAGE_TYPES.items()},
}


def _is_int(v: Any) -> bool:
    return type(v) is int


class _Unpickler(pickle.Unpickler):
    """Resolves only ``allowed`` globals and, if given, persistent ids via ``load_storage``."""

    def __init__(
        self,
        file: BinaryIO,
        path: str,
        allowed: Mapping[tuple[str, str], Any],
        load_storage: Callable[[Any], _StorageRef] | None = None,
    ):
        super().__init__(file)
        self._file = file
        self._path, self._allowed, self._load_storage = path, allowed, load_storage

    def load(self) -> Any:
        """Scan the record's opcodes (without running them), then unpickle it."""
        start = self._file.tell()
        _scan(self._file, self._path)
        self._file.seek(start)
        return super().load()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except (KeyError, TypeError):
            raise TorchFileError(
                f"{self._path}: holds a {module}.{name} object; only tensor state dicts are read"
            ) from None

    def persistent_load(self, pid: Any) -> _StorageRef:
        if self._load_storage is None:
            raise TorchFileError(f"{self._path}: unexpected persistent id in a data record")
        return self._load_storage(pid)


def _scan(f: BinaryIO, path: str) -> None:
    """Read one pickle's opcodes up to STOP; refuse forbidden ones and huge memo indices."""
    with warnings.catch_warnings():  # pickletools warns on bad escapes in STRING args
        warnings.simplefilter("ignore")
        ops = list(_ops_to_stop(f))
    for op, arg in ops:
        if op.name in _FORBIDDEN_OPCODES:
            raise TorchFileError(
                f"{path}: pickle opcode {op.name} is not allowed; only tensor state dicts are read"
            )
        if op.name in ("PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET") and (
            not isinstance(arg, int) or not 0 <= arg < _MAX_MEMO
        ):
            raise TorchFileError(f"{path}: pickle memo index {arg!r:.20} out of range")


def _ops_to_stop(f: BinaryIO):
    """``(opcode, argument)`` pairs of one pickle, read up to its STOP."""
    for op, arg, _pos in pickletools.genops(f):
        yield op, arg
        if op.name == "STOP":
            return


def _load_data(f: BinaryIO, path: str) -> Any:
    """Unpickle a plain data record (no globals, no persistent ids)."""
    return _Unpickler(f, path, {}).load()


def _storage_ref(pid: Any, path: str, legacy: bool) -> _StorageRef:
    """Check a persistent id ``('storage', type, key, location, numel[, view])``."""
    length = 6 if legacy else 5
    if not (isinstance(pid, tuple) and len(pid) == length and pid[0] == "storage"):
        raise TorchFileError(f"{path}: unexpected persistent id (not a tensor storage)")
    storage_type, key, numel = pid[1], pid[2], pid[4]
    if not isinstance(storage_type, _StorageType):
        raise TorchFileError(f"{path}: storage of an unknown type")
    if not (isinstance(key, str) and _STORAGE_KEY.fullmatch(key)):
        raise TorchFileError(f"{path}: storage key {key!r} is not a plain name")
    if not (_is_int(numel) and numel >= 0):
        raise TorchFileError(f"{path}: storage {key} has a bad element count")
    view = None
    if legacy and pid[5] is not None:
        meta = pid[5]
        if not (isinstance(meta, tuple) and len(meta) == 3 and all(map(_is_int, meta[1:]))):
            raise TorchFileError(f"{path}: storage {key} has a bad view")
        _, view_offset, view_numel = meta
        if view_offset < 0 or view_numel < 0 or view_offset + view_numel > numel:
            raise TorchFileError(f"{path}: storage {key} has a view past its end")
        view = (view_offset, view_numel)
    return _StorageRef(key, storage_type, numel, view)


class _Storages:
    """The storages a main record references, checked for consistency and size."""

    def __init__(self, path: str, legacy: bool, max_bytes: int):
        self.path, self.legacy, self.max_bytes = path, legacy, max_bytes
        self.refs: dict[str, _StorageRef] = {}

    def load(self, pid: Any) -> _StorageRef:
        ref = _storage_ref(pid, self.path, self.legacy)
        seen = self.refs.setdefault(ref.key, ref)
        if (seen.storage_type, seen.numel) != (ref.storage_type, ref.numel):
            raise TorchFileError(f"{self.path}: storage {ref.key} declared twice differently")
        if ref.numel * ref.storage_type.dtype().itemsize > self.max_bytes:
            raise TorchFileError(
                f"{self.path}: storage {ref.key} claims {ref.numel} elements,"
                " more than the file holds"
            )
        return ref

    def nbytes(self, key: str) -> int:
        ref = self.refs[key]
        return ref.numel * ref.storage_type.dtype().itemsize

    def array(self, key: str, raw: bytes, byteorder: str = "<") -> np.ndarray:
        dtype = self.refs[key].storage_type.dtype()
        return np.frombuffer(raw, dtype=dtype.newbyteorder(byteorder)).astype(dtype)


# ---------------------------------------------------------------- zip format
def _check_member_names(archive: zipfile.ZipFile, path: str) -> None:
    """Refuse absolute, backslashed, ``..``/``.``, drive-letter and duplicate member names."""
    seen = set()
    for name in archive.namelist():
        parts = name.split("/")
        if (
            name in seen
            or not name
            or name.startswith("/")
            or "\\" in name
            or ":" in name
            or any(p in ("", ".", "..") for p in parts[:-1])
            or parts[-1] in (".", "..")
        ):
            raise TorchFileError(f"{path}: zip member name {name!r} is not a plain relative path")
        seen.add(name)


def _read_member(archive: zipfile.ZipFile, name: str, path: str, size: int, limit: int) -> bytes:
    """Read member ``name`` after checking its declared size against ``size``/``limit``."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise TorchFileError(f"{path}: zip archive lacks {name}") from None
    if info.file_size > limit:
        raise TorchFileError(f"{path}: zip member {name} is larger than the archive")
    if size >= 0 and info.file_size != size:
        raise TorchFileError(f"{path}: {name} holds {info.file_size} bytes, expected {size}")
    return archive.read(info)


def _load_zip(path: str) -> Any:
    file_size = os.path.getsize(path)
    with zipfile.ZipFile(path) as archive:
        _check_member_names(archive, path)
        pickles = [n for n in archive.namelist() if n.rsplit("/", 1)[-1] == "data.pkl"]
        if not pickles:
            raise TorchFileError(f"{path}: zip archive without data.pkl, not a torch file")
        if len(pickles) > 1:
            raise TorchFileError(f"{path}: zip archive with {len(pickles)} data.pkl members")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = "<"
        if prefix + "byteorder" in archive.namelist():
            text = _read_member(archive, prefix + "byteorder", path, -1, 16)
            if text.strip() not in (b"little", b"big"):
                raise TorchFileError(f"{path}: unknown byte order {text[:16]!r}")
            byteorder = "<" if text.strip() == b"little" else ">"
        storages = _Storages(path, legacy=False, max_bytes=file_size)
        data_pkl = _read_member(archive, pickles[0], path, -1, file_size)
        obj = _Unpickler(io.BytesIO(data_pkl), path, _STATE_DICT_GLOBALS, storages.load).load()
        state_dict = _state_dict(obj, path)
        arrays = {}
        for key in sorted({spec.storage.key for spec in state_dict.values()}):
            name = f"{prefix}data/{key}"
            raw = _read_member(archive, name, path, storages.nbytes(key), file_size)
            arrays[key] = storages.array(key, raw, byteorder)
    return _build_all(state_dict, arrays, path, file_size)


# ---------------------------------------------------------------- legacy format
def _check_legacy_header(f: BinaryIO, path: str) -> None:
    """Read the magic number, protocol and sys-info records (plain data only)."""
    try:
        magic = _load_data(f, path)
        protocol = _load_data(f, path)
        sys_info = _load_data(f, path)
    except TorchFileError:
        raise
    except Exception as e:
        raise TorchFileError(f"{path}: not a PyTorch file ({e})") from None
    if not (_is_int(magic) and magic == _LEGACY_MAGIC):
        raise TorchFileError(f"{path}: not a PyTorch file (bad magic number)")
    if not (_is_int(protocol) and protocol == _LEGACY_PROTOCOL):
        raise TorchFileError(f"{path}: not a PyTorch file (unknown protocol {protocol!r:.40})")
    if isinstance(sys_info, dict) and sys_info.get("little_endian") is False:
        raise TorchFileError(f"{path}: big-endian legacy files are not supported")


def _load_legacy(path: str) -> Any:
    file_size = os.path.getsize(path)
    with open(path, "rb") as f:
        _check_legacy_header(f, path)
        storages = _Storages(path, legacy=True, max_bytes=file_size)
        obj = _Unpickler(f, path, _STATE_DICT_GLOBALS, storages.load).load()
        state_dict = _state_dict(obj, path)
        keys = _load_data(f, path)
        if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
            raise TorchFileError(f"{path}: storage keys record is not a list of names")
        if sorted(keys) != sorted(storages.refs) or len(set(keys)) != len(keys):
            raise TorchFileError(f"{path}: storage keys do not match the storages used")
        arrays = {key: _read_legacy_storage(f, path, key, storages, file_size) for key in keys}
    return _build_all(state_dict, arrays, path, file_size)


def _read_legacy_storage(
    f: BinaryIO, path: str, key: str, storages: _Storages, file_size: int
) -> np.ndarray:
    """Read one ``<int64 count><bytes>`` storage, its count checked before reading."""
    head = f.read(8)
    if len(head) != 8:
        raise TorchFileError(f"{path}: truncated (storage {key} is missing)")
    (count,) = struct.unpack("<q", head)
    if count != storages.refs[key].numel:
        raise TorchFileError(
            f"{path}: storage {key} holds {count} elements, the pickle declared"
            f" {storages.refs[key].numel}"
        )
    nbytes = storages.nbytes(key)
    if nbytes > file_size - f.tell():
        raise TorchFileError(f"{path}: truncated (storage {key} is short)")
    raw = f.read(nbytes)
    if len(raw) != nbytes:
        raise TorchFileError(f"{path}: truncated (storage {key} is short)")
    return storages.array(key, raw)


# ---------------------------------------------------------------- tensors
def _state_dict(obj: Any, path: str) -> dict[str, _TensorSpec]:
    """The ``{key: tensor}`` dict, unwrapping ``{"state_dict": ...}``/``{"model": ...}``."""
    if isinstance(obj, dict):
        for wrapper in ("state_dict", "model"):
            inner = dict.get(obj, wrapper)
            if isinstance(inner, dict):
                obj = inner
                break
    if not isinstance(obj, dict) or not all(
        isinstance(k, str) and isinstance(v, _TensorSpec) for k, v in dict.items(obj)
    ):
        raise TorchFileError(f"{path}: not a state dict (a dict of tensors)")
    return dict(dict.items(obj))


def _build_all(
    specs: dict[str, _TensorSpec], arrays: dict[str, np.ndarray], path: str, file_size: int
) -> dict[str, np.ndarray]:
    """Build every tensor; the total output is bounded by the file's size."""
    budget = 2 * file_size + (64 << 20)
    out = {}
    for key, spec in specs.items():
        out[key] = _build_tensor(spec, arrays[spec.storage.key], f"{path}: {key!r}")
        budget -= out[key].nbytes
        if budget < 0:
            raise TorchFileError(f"{path}: tensors hold far more data than the file")
    return out


def _build_tensor(spec: _TensorSpec, storage: np.ndarray, where: str) -> np.ndarray:
    """Build ``spec`` from its root ``storage`` after checking it lies inside it."""
    ref, size, stride, offset = spec.storage, spec.size, spec.stride, spec.offset
    data = storage[ref.view_offset : ref.view_offset + ref.view_numel]
    if len(size) != len(stride) or len(size) > _MAX_NDIM:
        raise TorchFileError(f"{where}: size {size} and stride {stride} do not match")
    if offset < 0 or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise TorchFileError(f"{where}: negative offset, size or stride")
    numel = math.prod(size)
    if numel > _MAX_NUMEL or numel > max(len(data), _MAX_BROADCAST):
        raise TorchFileError(f"{where}: {numel} elements, more than its storage holds")
    if numel == 0:
        return np.zeros(size, storage.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
    if last >= len(data):
        raise TorchFileError(
            f"{where}: view reaches element {last}, past the end of its storage ({len(data)})"
        )
    if stride == _contiguous_strides(size):
        return data[offset : offset + numel].reshape(size).copy()
    # Proved in bounds above: every element index lies in [offset, last].
    itemsize = data.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        data[offset:], shape=size, strides=tuple(s * itemsize for s in stride), writeable=False
    )
    return np.ascontiguousarray(view)


def _contiguous_strides(size: tuple[int, ...]) -> tuple[int, ...]:
    strides, acc = [], 1
    for n in reversed(size):
        strides.append(acc)
        acc *= n
    return tuple(reversed(strides))


# ---------------------------------------------------------------- entry point
def _one_line(text: str) -> str:
    return " ".join(text.splitlines())


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load a PyTorch ``state_dict`` file as ``{key: numpy array}``.

    Args:
      path: a file written by ``torch.save(module.state_dict(), path)``, in
        the zip or the legacy format. A ``{"state_dict": ...}`` or
        ``{"model": ...}`` wrapper is unwrapped.

    Raises:
      FileNotFoundError: the file does not exist.
      TorchFileError: the file is not a torch pickle, is truncated, holds
        something other than tensors (no code in it runs), is not a dict of
        tensors, or has a tensor that does not fit its storage.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as f:
        head = f.read(4)
    try:
        if zipfile.is_zipfile(path):
            return _load_zip(path)
        if head == b"PK\x03\x04":  # a zip whose central directory (at the end) is missing
            raise TorchFileError(
                f"{path}: truncated or damaged torch file (incomplete zip archive)"
            )
        return _load_legacy(path)
    except TorchFileError as e:
        raise TorchFileError(_one_line(str(e))) from None
    except (
        pickle.UnpicklingError,
        EOFError,
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        NotImplementedError,  # a zip compression method zipfile lacks
        KeyError,
        ValueError,
        TypeError,
        IndexError,
        AttributeError,
        OverflowError,
        RecursionError,
        MemoryError,
        UnicodeDecodeError,
        struct.error,
        OSError,
    ) as e:
        raise TorchFileError(
            _one_line(f"{path}: unreadable or truncated torch file ({e})"[:400])
        ) from None
