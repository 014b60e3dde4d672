"""adain-jax's own weight format: one safetensors file per network.

A file holds the Flax ``params`` of the encoder or the decoder, flattened as
``"<layer>/kernel"`` (HWIO float32) and ``"<layer>/bias"``, with header
metadata ``adain_jax.format = "1"``, ``adain_jax.network`` (``encoder`` or
``decoder``) and ``adain_jax.source`` (the file it was converted from).
A weights directory holds ``encoder.safetensors`` and ``decoder.safetensors``.
"""

from __future__ import annotations

import os

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file

from adain_jax.io import files

SUFFIX = ".safetensors"
FORMAT_VERSION = "1"
NETWORKS = ("encoder", "decoder")


class WeightsFormatError(ValueError):
    """A file that is not an adain-jax weights file."""


def file_name(network: str) -> str:
    """``encoder.safetensors`` or ``decoder.safetensors``."""
    return network + SUFFIX


def save(path: str | os.PathLike, network: str, params: dict, source: str = "") -> None:
    """Write ``params`` (``{layer: {"kernel", "bias"}}``) atomically to ``path``."""
    path = os.fspath(path)
    flat = {
        f"{layer}/{leaf}": np.ascontiguousarray(np.asarray(value, np.float32))
        for layer, leaves in params.items()
        for leaf, value in leaves.items()
    }
    metadata = {
        "adain_jax.format": FORMAT_VERSION,
        "adain_jax.network": network,
        "adain_jax.source": source,
    }
    with files.atomic_path(path) as tmp:
        save_file(flat, str(tmp), metadata=metadata)


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The header metadata of a weights file."""
    with safe_open(os.fspath(path), framework="numpy") as f:
        return dict(f.metadata() or {})


def load(path: str | os.PathLike) -> tuple[str, dict]:
    """Read a weights file.

    Returns:
      ``(network, params)`` with ``params`` ``{layer: {"kernel", "bias"}}`` float32.

    Raises:
      FileNotFoundError: no such file.
      WeightsFormatError: not a safetensors file, or not one of adain-jax's.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        metadata = read_metadata(path)
        flat = load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsFormatError(f"{path}: not a readable safetensors file ({e})") from None
    network = metadata.get("adain_jax.network")
    if metadata.get("adain_jax.format") != FORMAT_VERSION or network not in NETWORKS:
        raise WeightsFormatError(f"{path}: not an adain-jax weights file (no adain_jax metadata)")
    params: dict[str, dict[str, np.ndarray]] = {}
    for key, value in flat.items():
        layer, _, leaf = key.partition("/")
        params.setdefault(layer, {})[leaf] = value
    return network, params
