"""adain-jax's own weight format: one safetensors file per network.

A file holds the params tree of the encoder or the decoder (any decoder variant:
``adain_jax.nn.models``), flattened as ``"<layer>/<leaf>"``: ``kernel`` (HWIO) and ``bias`` of a
conv, ``scale`` and ``bias`` of a norm layer, plus a BatchNorm layer's running ``mean`` and
``var``; float32 (or float16), with header metadata ``adain_jax.format = "1"``,
``adain_jax.network`` (``encoder`` or ``decoder``) and ``adain_jax.source`` (the file it was
converted from). A weights directory holds ``encoder.safetensors`` and ``decoder.safetensors``.
"""

from __future__ import annotations

import math
import os
import struct

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from adain_jax.io import files
from adain_jax.io.messages import describe, one_line

SUFFIX = ".safetensors"
FORMAT_VERSION = "1"
NETWORKS = ("encoder", "decoder")
# The header of a real weights file is a few KB; refuse to parse anything far larger.
MAX_HEADER_BYTES = 1 << 20
# Tensor dtypes accepted from a file (all are converted to float32).
ALLOWED_DTYPES = ("F32", "F16")
MAX_NDIM = 8  # a kernel has 4
# The leaves a layer may hold, in the order a layer lists them.
LEAVES = ("kernel", "scale", "bias", "mean", "var")


class WeightsFormatError(ValueError):
    """A file that is not an adain-jax weights file."""


def file_name(network: str) -> str:
    """``encoder.safetensors`` or ``decoder.safetensors``."""
    return network + SUFFIX


def save(
    path: str | os.PathLike,
    network: str,
    params: dict,
    source: str = "",
    *,
    storage_dtype: type = np.float32,
) -> None:
    """Write ``params`` (``{layer: {leaf: array}}``, leaves ``LEAVES``) atomically to ``path``,
    stored as ``storage_dtype`` (float32, or float16 for half the size; read back as float32).
    Raises ``ValueError`` for another dtype, ``WeightsFormatError`` for NaN or infinite values."""
    path = os.fspath(path)
    if np.dtype(storage_dtype) not in (np.dtype(np.float32), np.dtype(np.float16)):
        raise ValueError(f"storage dtype {np.dtype(storage_dtype)}: expected float32 or float16")
    flat = {
        f"{layer}/{leaf}": np.ascontiguousarray(np.asarray(value, storage_dtype))
        for layer, leaves in params.items()
        for leaf, value in leaves.items()
    }
    for name, value in flat.items():  # ``load`` refuses them: never write such a file
        if not np.all(np.isfinite(value)):
            where = f"{source}: " if source else ""
            kind = np.dtype(storage_dtype).name
            raise WeightsFormatError(
                f"{where}tensor {name!r} holds NaN or infinite values (as {kind}); "
                f"not writing {path}"
            )
    metadata = {
        "adain_jax.format": FORMAT_VERSION,
        "adain_jax.network": network,
        "adain_jax.source": source,
    }
    with files.atomic_path(path) as tmp:
        save_file(flat, str(tmp), metadata=metadata)


def check_header(path: str | os.PathLike) -> dict:
    """Read and check a safetensors header before the library maps the file.

    The header (an 8-byte little-endian length, then JSON) is bounded by ``MAX_HEADER_BYTES``
    and the file size; every tensor must have an allowed dtype, a shape whose byte size equals
    its ``[begin, end)`` range, and that range must lie inside the file. So nothing is allocated
    from a size the file claims before it has been checked against the bytes really there.

    Returns:
      The parsed header (tensor entries and ``__metadata__``).

    Raises:
      WeightsFormatError: naming the file and the problem.
    """
    path = os.fspath(path)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise WeightsFormatError(f"{path}: not a safetensors file (only {size} bytes)")
        (length,) = struct.unpack("<Q", head)
        if length > size - 8:  # the first 8 bytes are no length: never print them
            raise WeightsFormatError(
                f"{path}: not a safetensors file (its header claims more bytes than the "
                f"file's {size})"
            )
        if length > MAX_HEADER_BYTES:
            raise WeightsFormatError(
                f"{path}: safetensors header of {length} bytes, over the bound of "
                f"{MAX_HEADER_BYTES >> 20} MiB (a weights file's is a few KB)"
            )
        raw = f.read(length)
    try:
        header = files.parse_json_object(raw, "header")
    except files.JsonFileError as e:
        problem = str(e).removeprefix("header: ")
        if problem.startswith("not JSON"):
            problem = "header is not JSON" + problem.removeprefix("not JSON")
        else:
            problem = f"header: {problem}"
        raise WeightsFormatError(f"{path}: not a safetensors file ({problem})") from None
    data_bytes = size - 8 - length
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        _check_entry(path, name, entry, data_bytes)
    return header


def _check_entry(path: str, name: str, entry, data_bytes: int) -> None:
    name = describe(name, 80)
    if not isinstance(entry, dict):
        raise WeightsFormatError(f"{path}: tensor {name} has no header entry")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in ALLOWED_DTYPES:
        raise WeightsFormatError(
            f"{path}: tensor {name} has dtype {describe(dtype)}; expected one of {ALLOWED_DTYPES}"
        )
    valid_shape = (
        isinstance(shape, list)
        and len(shape) <= MAX_NDIM
        and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**31 for d in shape)
    )
    valid_offsets = (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
    )
    if not (valid_shape and valid_offsets):
        raise WeightsFormatError(f"{path}: tensor {name} has a malformed shape or offsets")
    begin, end = offsets
    nbytes = math.prod(shape) * (4 if dtype == "F32" else 2)  # exact: at most 8 x 31 bits
    if not 0 <= begin <= end <= data_bytes or end - begin != nbytes:
        raise WeightsFormatError(
            f"{path}: tensor {name} claims bytes [{describe(begin)}, {describe(end)}) for shape "
            f"{shape} but the file holds {data_bytes} data bytes"
        )


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The header metadata of a weights file (the header is checked first)."""
    metadata = check_header(path).get("__metadata__") or {}
    if not isinstance(metadata, dict):
        raise WeightsFormatError(f"{os.fspath(path)}: malformed safetensors metadata")
    return {str(k): str(v) for k, v in metadata.items()}


def load(path: str | os.PathLike) -> tuple[str, dict]:
    """Read a weights file.

    Returns:
      ``(network, params)`` with ``params`` ``{layer: {leaf: array}}`` float32 (``LEAVES``).

    Raises:
      FileNotFoundError: no such file.
      WeightsFormatError: not a safetensors file, or not one of adain-jax's.
    """
    path = files.require_file(path)
    metadata = read_metadata(path)
    network = metadata.get("adain_jax.network")
    if metadata.get("adain_jax.format") != FORMAT_VERSION or network not in NETWORKS:
        raise WeightsFormatError(f"{path}: not an adain-jax weights file (no adain_jax metadata)")
    try:
        flat = load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        message = one_line(e)
        raise WeightsFormatError(f"{path}: not a readable safetensors file ({message})") from None
    params: dict[str, dict[str, np.ndarray]] = {}
    for key, value in flat.items():
        layer, _, leaf = key.partition("/")
        if not layer or leaf not in LEAVES:
            raise WeightsFormatError(f"{path}: unexpected tensor name {key!r}")
        value = np.asarray(value, np.float32)
        if not np.all(np.isfinite(value)):
            raise WeightsFormatError(f"{path}: tensor {key!r} holds NaN or infinite values")
        params.setdefault(layer, {})[leaf] = value
    return network, params
