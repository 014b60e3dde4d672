"""Read PyTorch ``.pth`` state dicts into NumPy without importing torch.

Both of torch's serialisations are supported: the zip archive written since PyTorch 1.6 and
the older "legacy" stream (used by the 2018 AdaIN release files). The files are treated as
hostile input:

* Every pickle record goes through a restricted unpickler. The main record resolves only the
  globals a tensor state dict needs (as ``torch.load(weights_only=True)`` does); the legacy
  stream's other records (magic number, protocol, sys info, storage keys) resolve no global and
  no persistent id at all. The allowed globals are inert objects: ``BUILD`` cannot set
  attributes on them, so a file cannot change the reader.
* Tensors are described while unpickling and built afterwards, only once each one's offset,
  sizes and strides are checked against its storage and each storage's byte count against the
  archive member or legacy record that holds it. Sizes are bounded before anything is read or
  allocated.
* Zip member names must be plain relative paths, with one ``data.pkl``.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
from typing import Any, BinaryIO

import numpy as np

from adain_jax.io import files
from adain_jax.io.messages import describe, one_line
from adain_jax.weights.torch_records import (
    LEGACY_MAGIC,
    LEGACY_PROTOCOL,
    MALFORMED_FILE_ERRORS,
    MAX_RECORD_BYTES,
    STATE_DICT_GLOBALS,
    STORAGE_KEY,
    RecordUnpickler,
    StorageRef,
    StorageType,
    TorchFileError,
    build_all,
    is_int,
    load_data,
    state_dict_specs,
)


def _storage_ref(pid: Any, path: str, legacy: bool) -> StorageRef:
    """Check a persistent id ``('storage', type, key, location, numel[, view])``."""
    length = 6 if legacy else 5
    if not (isinstance(pid, tuple) and len(pid) == length and pid[0] == "storage"):
        raise TorchFileError(f"{path}: unexpected persistent id (not a tensor storage)")
    storage_type, key, numel = pid[1], pid[2], pid[4]
    if not isinstance(storage_type, StorageType):
        raise TorchFileError(f"{path}: storage of an unknown type")
    if not (isinstance(key, str) and STORAGE_KEY.fullmatch(key)):
        raise TorchFileError(f"{path}: storage key {describe(key)} is not a plain name")
    if not (is_int(numel) and numel >= 0):
        raise TorchFileError(f"{path}: storage {key} has a bad element count")
    view = None
    if legacy and pid[5] is not None:
        meta = pid[5]
        if not (isinstance(meta, tuple) and len(meta) == 3 and all(map(is_int, meta[1:]))):
            raise TorchFileError(f"{path}: storage {key} has a bad view")
        _, view_offset, view_numel = meta
        if view_offset < 0 or view_numel < 0 or view_offset + view_numel > numel:
            raise TorchFileError(f"{path}: storage {key} has a view past its end")
        view = (view_offset, view_numel)
    return StorageRef(key, storage_type, numel, view)


class _Storages:
    """The storages a main record references, checked for consistency and size."""

    def __init__(self, path: str, legacy: bool, max_bytes: int):
        self.path, self.legacy, self.max_bytes = path, legacy, max_bytes
        self.refs: dict[str, StorageRef] = {}

    def load(self, pid: Any) -> StorageRef:
        ref = _storage_ref(pid, self.path, self.legacy)
        seen = self.refs.setdefault(ref.key, ref)
        if (seen.storage_type, seen.numel) != (ref.storage_type, ref.numel):
            raise TorchFileError(f"{self.path}: storage {ref.key} declared twice differently")
        if self.nbytes(ref.key) > self.max_bytes:
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
            raise TorchFileError(
                f"{path}: zip member name {describe(name, 80)} is not a plain relative path"
            )
        seen.add(name)


def _read_member(archive: zipfile.ZipFile, name: str, path: str, size: int, limit: int) -> bytes:
    """Read member ``name`` after checking its declared size against ``size``/``limit``."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise TorchFileError(f"{path}: zip archive lacks {name}") from None
    if info.compress_type != zipfile.ZIP_STORED:
        # torch stores members uncompressed; compressed ones could add up to far more
        # than the archive (each is bounded by it, their sum is not).
        raise TorchFileError(
            f"{path}: zip member {name} is compressed (method {info.compress_type}); "
            "torch files store their members uncompressed"
        )
    if info.file_size > limit:
        raise TorchFileError(
            f"{path}: zip member {name} is larger than the archive or its bound ({limit} bytes)"
        )
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
        data_pkl = _read_member(archive, pickles[0], path, -1, min(file_size, MAX_RECORD_BYTES))
        obj = RecordUnpickler(io.BytesIO(data_pkl), path, STATE_DICT_GLOBALS, storages.load).load()
        state_dict = state_dict_specs(obj, path)
        arrays = {}
        total = 0
        for key in sorted({spec.storage.key for spec in state_dict.values()}):
            name = f"{prefix}data/{key}"
            total += storages.nbytes(key)
            if total > file_size:  # members that share (overlap) the archive's bytes
                raise TorchFileError(f"{path}: storages claim more bytes than the file holds")
            raw = _read_member(archive, name, path, storages.nbytes(key), file_size)
            arrays[key] = storages.array(key, raw, byteorder)
    return build_all(state_dict, arrays, path, file_size)


# ---------------------------------------------------------------- legacy format
def _check_legacy_header(f: BinaryIO, path: str) -> None:
    """Read the magic number, protocol and sys-info records (plain data only)."""
    try:
        magic = load_data(f, path)
        protocol = load_data(f, path)
        sys_info = load_data(f, path)
    except TorchFileError:
        raise
    except Exception as e:
        raise TorchFileError(f"{path}: not a PyTorch file ({one_line(e, 200)})") from None
    if not (is_int(magic) and magic == LEGACY_MAGIC):
        raise TorchFileError(f"{path}: not a PyTorch file (bad magic number)")
    if not (is_int(protocol) and protocol == LEGACY_PROTOCOL):
        raise TorchFileError(f"{path}: not a PyTorch file (unknown protocol {describe(protocol)})")
    if isinstance(sys_info, dict) and sys_info.get("little_endian") is False:
        raise TorchFileError(f"{path}: big-endian legacy files are not supported")


def _load_legacy(path: str) -> Any:
    file_size = os.path.getsize(path)
    with open(path, "rb") as f:
        _check_legacy_header(f, path)
        storages = _Storages(path, legacy=True, max_bytes=file_size)
        obj = RecordUnpickler(f, path, STATE_DICT_GLOBALS, storages.load).load()
        state_dict = state_dict_specs(obj, path)
        keys = load_data(f, path)
        if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
            raise TorchFileError(f"{path}: storage keys record is not a list of names")
        if sorted(keys) != sorted(storages.refs) or len(set(keys)) != len(keys):
            raise TorchFileError(f"{path}: storage keys do not match the storages used")
        arrays = {key: _read_legacy_storage(f, path, key, storages, file_size) for key in keys}
    return build_all(state_dict, arrays, path, file_size)


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
def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load a PyTorch ``state_dict`` file as ``{key: numpy array}``.

    Args:
      path: a file written by ``torch.save(module.state_dict(), path)``, in the zip or the
        legacy format. A ``{"state_dict": ...}`` or ``{"model": ...}`` wrapper is unwrapped.

    Raises:
      FileNotFoundError: the file does not exist.
      TorchFileError: the file is not a torch pickle, is truncated, holds something other than
        tensors (no code in it runs), is not a dict of tensors, or has a tensor that does not
        fit its storage.
    """
    path = files.require_file(path)
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
        raise TorchFileError(one_line(str(e))) from None
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        NotImplementedError,  # a zip compression method zipfile lacks
        *MALFORMED_FILE_ERRORS,
    ) as e:
        raise TorchFileError(
            one_line(f"{path}: unreadable or truncated torch file ({one_line(e, 300)})", 400)
        ) from None
