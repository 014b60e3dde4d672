"""The restricted unpickling of torch's pickle records, and the tensors they describe.

``RecordUnpickler`` resolves only an allow-list of globals (none at all for data records) after
a scan of the opcodes; tensors come out as descriptions (``_TensorSpec``: storage, offset,
sizes, strides) that ``build_all`` turns into arrays only after checking them against their
storages. The file formats (zip archive, legacy stream) are read by ``torch_pickle``.
"""

from __future__ import annotations

import math
import pickle
import pickletools
import re
import struct
import warnings
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO

import numpy as np

from adain_jax.io.messages import describe

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
_MAX_NDIM = 32
_MAX_NUMEL = 2**31  # elements of one tensor
_MAX_BROADCAST = 2**20  # elements a tensor may have beyond its storage's (stride-0 views)
STORAGE_KEY = re.compile(r"[A-Za-z0-9_]+")
_MAX_MEMO = 1 << 20  # memo slots: a huge LONG_BINPUT index makes CPython allocate the memo
# Bytes of one pickle record: a real state dict's is a few KB per hundred tensors; the
# opcode scan takes ~5 s per MiB of one-byte opcodes.
MAX_RECORD_BYTES = 1 << 20
# Opcodes a tensor state dict never needs: class instantiation, the extension
# registry, text persistent ids and out-of-band buffers.
_FORBIDDEN_OPCODES = frozenset(
    ["INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "EXT1", "EXT2", "EXT4", "PERSID"]
    + ["NEXT_BUFFER", "READONLY_BUFFER"]
)


class TorchFileError(ValueError):
    """A file that is not a readable PyTorch tensor pickle."""


# What parsing a malformed weight file can raise; the readers (``torch_pickle``, ``torch7``,
# ``numpy_pickle``) turn each into one ``TorchFileError`` line naming the file.
MALFORMED_FILE_ERRORS: tuple[type[BaseException], ...] = (
    pickle.UnpicklingError,
    EOFError,
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
)


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


class Inert:
    """Base of the objects globals resolve to: no instance dict, read-only, BUILD refused."""

    __slots__ = ()

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("read-only")

    def __setstate__(self, state: Any) -> None:
        raise pickle.UnpicklingError("BUILD on a global is not allowed")


class StorageType(Inert):
    """``torch.<Name>Storage``: only its name, looked up in ``_STORAGE_DTYPES`` when used."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        object.__setattr__(self, "name", name)

    def dtype(self) -> np.dtype:
        dtype = _STORAGE_DTYPES[self.name]
        return _bfloat16() if dtype == "bfloat16" else np.dtype(dtype)


_STORAGE_TYPES = {name: StorageType(name) for name in _STORAGE_DTYPES}


class _StateDict(dict):
    """Stands in for ``collections.OrderedDict``: a plain dict without attributes.

    ``BUILD`` state (torch's ``_metadata``) is accepted and dropped.
    """

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        pass


class StorageRef:
    """A storage named by a persistent id: key, element type and element count."""

    __slots__ = ("key", "storage_type", "numel", "view_offset", "view_numel")

    def __init__(self, key: str, storage_type: StorageType, numel: int, view=None):
        self.key, self.storage_type, self.numel = key, storage_type, numel
        self.view_offset, self.view_numel = view if view is not None else (0, numel)


class _TensorSpec:
    """A tensor described by the pickle, built once its storage is read and checked."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage: StorageRef, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


class AllowedCall(Inert):
    """An allowed callable global (a rebuild function)."""

    __slots__ = ("_fn",)

    def __init__(self, fn: Callable[..., Any]):
        object.__setattr__(self, "_fn", fn)

    def __call__(self, *args: Any) -> Any:
        return self._fn(*args)


def _rebuild_tensor(
    storage: Any, offset: Any, size: Any, stride: Any, *_unused: Any
) -> _TensorSpec:
    """``torch._utils._rebuild_tensor(_v2)``: check the argument types, defer the build."""
    if not isinstance(storage, StorageRef):
        raise pickle.UnpicklingError("tensor without a storage")
    if not (isinstance(size, tuple) and isinstance(stride, tuple)):
        raise pickle.UnpicklingError("tensor size and stride must be tuples")
    if not all(is_int(v) for v in (offset, *size, *stride)):
        raise pickle.UnpicklingError("tensor offset, size and stride must be ints")
    return _TensorSpec(storage, offset, size, stride)


def _rebuild_parameter(data: Any, *_unused: Any) -> _TensorSpec:
    """``torch._utils._rebuild_parameter(_with_state)``: the tensor, state dropped."""
    if not isinstance(data, _TensorSpec):
        raise pickle.UnpicklingError("parameter without a tensor")
    return data


STATE_DICT_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): _StateDict,
    ("torch._utils", "_rebuild_tensor_v2"): AllowedCall(_rebuild_tensor),
    ("torch._utils", "_rebuild_tensor"): AllowedCall(_rebuild_tensor),
    ("torch._utils", "_rebuild_parameter"): AllowedCall(_rebuild_parameter),
    ("torch._utils", "_rebuild_parameter_with_state"): AllowedCall(_rebuild_parameter),
    **{("torch", name): t for name, t in _STORAGE_TYPES.items()},
}


def is_int(v: Any) -> bool:
    return type(v) is int


class RecordUnpickler(pickle.Unpickler):
    """Resolves only ``allowed`` globals and, if given, persistent ids via ``load_storage``.

    ``max_bytes`` bounds the record (``MAX_RECORD_BYTES``: a state dict's records are a
    few KB; a pickle that holds its arrays inline passes its own, larger, bound).
    """

    def __init__(
        self,
        file: BinaryIO,
        path: str,
        allowed: Mapping[tuple[str, str], Any],
        load_storage: Callable[[Any], StorageRef] | None = None,
        *,
        max_bytes: int | None = None,
    ):
        super().__init__(file)
        self._file = file
        self._path, self._allowed, self._load_storage = path, allowed, load_storage
        self._max_bytes = MAX_RECORD_BYTES if max_bytes is None else max_bytes

    def load(self) -> Any:
        """Scan the record's opcodes (without running them), then unpickle it."""
        start = self._file.tell()
        _scan(self._file, self._path, self._max_bytes)
        self._file.seek(start)
        return super().load()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except (KeyError, TypeError):
            raise TorchFileError(
                f"{self._path}: holds a {module}.{name} object; only tensor state dicts are read"
            ) from None

    def persistent_load(self, pid: Any) -> StorageRef:
        if self._load_storage is None:
            raise TorchFileError(f"{self._path}: unexpected persistent id in a data record")
        return self._load_storage(pid)


class _Clamped:
    """A read-only view of ``f`` ending ``limit`` bytes after the current position: a length
    field claiming more is read short (and reported by pickletools), never allocated."""

    def __init__(self, f: BinaryIO, limit: int):
        self._f, self._end = f, f.tell() + limit

    def _left(self, n: int) -> int:
        left = max(0, self._end - self._f.tell())
        return left if n is None or n < 0 else min(n, left)

    def read(self, n: int = -1) -> bytes:
        return self._f.read(self._left(n))

    def readline(self) -> bytes:
        return self._f.readline(self._left(-1))

    def tell(self) -> int:
        return self._f.tell()


def _scan(f: BinaryIO, path: str, max_bytes: int = MAX_RECORD_BYTES) -> None:
    """Read one pickle's opcodes up to STOP, one at a time (nothing kept); refuse forbidden
    ones, huge memo indices and a record over ``max_bytes``."""
    start = f.tell()
    clamped = _Clamped(f, max_bytes)
    with warnings.catch_warnings():  # pickletools warns on bad escapes in STRING args
        warnings.simplefilter("ignore")
        for op, arg, _pos in pickletools.genops(clamped):
            if op.name in _FORBIDDEN_OPCODES:
                raise TorchFileError(
                    f"{path}: pickle opcode {op.name} is not allowed; only tensor state dicts"
                    " are read"
                )
            if op.name in ("PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET") and (
                not isinstance(arg, int) or not 0 <= arg < _MAX_MEMO
            ):
                raise TorchFileError(f"{path}: pickle memo index {describe(arg)} out of range")
            if op.name == "STOP":
                return
            if f.tell() - start >= max_bytes:
                break
    raise TorchFileError(
        f"{path}: a pickle record longer than {max_bytes} bytes; a state dict's is a few KB"
    )


def load_data(f: BinaryIO, path: str) -> Any:
    """Unpickle a plain data record (no globals, no persistent ids)."""
    return RecordUnpickler(f, path, {}).load()


def state_dict_specs(obj: Any, path: str) -> dict[str, _TensorSpec]:
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


def output_budget(file_size: int) -> int:
    """The bytes of arrays a file of ``file_size`` bytes may build (stride-0 views and
    shared storages can describe more data than the file holds, but not much more)."""
    return 2 * file_size + (64 << 20)


def build_all(
    specs: dict[str, _TensorSpec], arrays: dict[str, np.ndarray], path: str, file_size: int
) -> dict[str, np.ndarray]:
    """Build every tensor; the total output is bounded by the file's size."""
    budget = output_budget(file_size)
    out = {}
    for key, spec in specs.items():
        ref = spec.storage
        data = arrays[ref.key][ref.view_offset : ref.view_offset + ref.view_numel]
        where = f"{path}: {describe(key, 80)}"
        out[key] = build_view(data, spec.offset, spec.size, spec.stride, where)
        budget -= out[key].nbytes
        if budget < 0:
            raise TorchFileError(f"{path}: tensors hold far more data than the file")
    return out


def build_view(
    data: np.ndarray, offset: int, size: tuple[int, ...], stride: tuple[int, ...], where: str
) -> np.ndarray:
    """The tensor ``data[offset + sum(i_k * stride_k)]`` of shape ``size``, copied out of the
    1-D storage ``data`` after proving every index inside it (also used for ``.t7`` files).

    Raises:
      TorchFileError: ``where: ...``, for a rank mismatch, a negative offset, size or
        stride, more elements than the storage holds, or a view past its end.
    """
    if len(size) != len(stride) or len(size) > _MAX_NDIM:
        raise TorchFileError(f"{where}: size {size} and stride {stride} do not match")
    if offset < 0 or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise TorchFileError(f"{where}: negative offset, size or stride")
    numel = math.prod(size)
    if numel > _MAX_NUMEL or numel > max(len(data), _MAX_BROADCAST):
        raise TorchFileError(f"{where}: {numel} elements, more than its storage holds")
    if numel == 0:
        return np.zeros(size, data.dtype)
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
