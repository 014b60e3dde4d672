"""Read PyTorch ``.pth`` state dicts into NumPy without importing torch.

Both of torch's serialisations are supported: the zip archive written since
PyTorch 1.6 and the older "legacy" stream (used by the 2018 AdaIN release
files). Unpickling is restricted to the few globals a tensor state dict
needs, as ``torch.load(weights_only=True)`` is, so a malicious file cannot run
code.
"""

from __future__ import annotations

import collections
import os
import pickle
import struct
import zipfile
from typing import Any

import numpy as np

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


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


class _StorageType:
    def __init__(self, name: str):
        dtype = _STORAGE_DTYPES[name]
        self.dtype = _bfloat16() if dtype == "bfloat16" else np.dtype(dtype)


def _rebuild_tensor(storage: np.ndarray, offset: int, size, stride, *_unused) -> np.ndarray:
    if not size:
        return np.array(storage[offset])  # 0-d array (a scalar tensor)
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride)
    )
    return np.ascontiguousarray(view)


def _rebuild_parameter(data, *_unused):
    return data


_SAFE_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, load_storage, path: str):
        super().__init__(file)
        self._load_storage = load_storage
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise TorchFileError(
                f"{self._path}: holds a {module}.{name} object; only tensor state dicts are read"
            ) from None

    def persistent_load(self, pid):
        return self._load_storage(pid)


def _load_zip(path: str) -> Any:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("data.pkl")]
        if not pickles:
            raise TorchFileError(f"{path}: zip archive without data.pkl, not a torch file")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = "little"
        if prefix + "byteorder" in names:
            byteorder = archive.read(prefix + "byteorder").decode().strip()
        cache: dict[str, np.ndarray] = {}

        def load_storage(pid):
            _, storage_type, key, _location, _numel = pid
            if key not in cache:
                raw = archive.read(f"{prefix}data/{key}")
                dtype = storage_type.dtype.newbyteorder("<" if byteorder == "little" else ">")
                cache[key] = np.frombuffer(raw, dtype=dtype).astype(storage_type.dtype)
            return cache[key]

        with archive.open(pickles[0]) as f:
            return _Unpickler(f, load_storage, path).load()


def _load_legacy(path: str) -> Any:
    with open(path, "rb") as f:

        def plain_load():
            return pickle.Unpickler(f).load()

        try:
            magic = plain_load()
            protocol = plain_load()
            plain_load()  # sys_info
        except Exception as e:
            raise TorchFileError(f"{path}: not a PyTorch file ({e})") from None
        if magic != _LEGACY_MAGIC or protocol != _LEGACY_PROTOCOL:
            raise TorchFileError(f"{path}: not a PyTorch file (bad magic number)")

        storages: dict[str, tuple[_StorageType, int]] = {}

        def load_storage(pid):
            _, storage_type, root_key, _location, numel, view_metadata = pid
            storages.setdefault(root_key, (storage_type, numel))
            placeholder = _LegacyStorage(root_key)
            if view_metadata is not None:
                _view_key, offset, view_size = view_metadata
                placeholder = _LegacyStorage(root_key, offset, view_size)
            return placeholder

        unpickler = _Unpickler(f, load_storage, path)
        # Tensors are rebuilt after the storages are read: defer them.
        deferred = _DeferredTensors()
        unpickler.find_class = deferred.wrap(unpickler.find_class)
        result = unpickler.load()
        keys = pickle.Unpickler(f).load()
        arrays: dict[str, np.ndarray] = {}
        for key in keys:
            storage_type, numel = storages[key]
            (count,) = struct.unpack("<q", f.read(8))
            nbytes = count * storage_type.dtype.itemsize
            raw = f.read(nbytes)
            if len(raw) != nbytes:
                raise TorchFileError(f"{path}: truncated (storage {key} is short)")
            arrays[key] = np.frombuffer(raw, dtype=storage_type.dtype.newbyteorder("<")).astype(
                storage_type.dtype
            )
        return deferred.resolve(result, arrays)


class _LegacyStorage:
    def __init__(self, key: str, offset: int = 0, size: int | None = None):
        self.key, self.offset, self.size = key, offset, size


class _PendingTensor:
    def __init__(self, args):
        self.args = args


class _DeferredTensors:
    """Replaces tensor rebuilds by placeholders until the storage bytes are read."""

    def wrap(self, find_class):
        def wrapped(module, name):
            obj = find_class(module, name)
            if obj is _rebuild_tensor:
                return lambda *args: _PendingTensor(args)
            return obj

        return wrapped

    def resolve(self, obj, arrays):
        if isinstance(obj, _PendingTensor):
            storage, offset, *rest = obj.args
            data = arrays[storage.key][storage.offset :]
            if storage.size is not None:
                data = data[: storage.size]
            return _rebuild_tensor(data, offset, *rest)
        if isinstance(obj, dict):
            return type(obj)((k, self.resolve(v, arrays)) for k, v in obj.items())
        if isinstance(obj, (list, tuple)):
            return type(obj)(self.resolve(v, arrays) for v in obj)
        return obj


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
        something other than tensors, or is not a dict of tensors.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as f:
        head = f.read(4)
    try:
        if zipfile.is_zipfile(path):
            obj = _load_zip(path)
        elif head == b"PK\x03\x04":  # a zip whose central directory (at the end) is missing
            raise TorchFileError(
                f"{path}: truncated or damaged torch file (incomplete zip archive)"
            )
        else:
            obj = _load_legacy(path)
    except TorchFileError as e:
        raise TorchFileError(_one_line(str(e))) from None
    except (
        pickle.UnpicklingError,
        EOFError,
        zipfile.BadZipFile,
        KeyError,
        ValueError,
        TypeError,
        IndexError,
        AttributeError,
        struct.error,
    ) as e:
        raise TorchFileError(
            _one_line(f"{path}: unreadable or truncated torch file ({e})")
        ) from None
    if isinstance(obj, dict):
        for wrapper in ("state_dict", "model"):
            if isinstance(obj.get(wrapper), dict):
                obj = obj[wrapper]
    if not isinstance(obj, dict) or not all(isinstance(v, np.ndarray) for v in obj.values()):
        raise TorchFileError(f"{path}: not a state dict (a dict of tensors)")
    return dict(obj)
