"""Portable artifacts of ``stylize``: a ``jax.export`` (StableHLO) file and an ONNX file.

``portable_stylize(params)`` is the function both formats hold: ``(content [N, H, W, 3], style
[1, Hs, Ws, 3], alpha []) -> image [N, H, W, 3]``, all float32, images in [0, 1], the weights baked
in as constants. Any ``H, W, Hs, Ws >= 9`` run through one artifact: inside it each image is padded
at the bottom/right to a multiple of 8 px (repeating its last row/column) and run with its valid
size (``stylize_with_stats(..., sizes=)``, the padded-bucket path of ``infer.py``), so the
ceil-mode pools and reflection pads see shapes whose halvings are exact; the result is the unpadded
``stylize`` up to float rounding (measured in ``tests/inference/test_export.py``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array

from adain_jax.controls.stats import encode_style_padded
from adain_jax.controls.transfer import stylize_with_stats
from adain_jax.nn import conv
from adain_jax.nn.models import DOWNSAMPLE, MIN_IMAGE_SIZE
from adain_jax.nn.names import round_up
from adain_jax.nn.ops import positions

INPUT_NAMES = ("content", "style", "alpha")
OUTPUT_NAME = "image"


def _pad_to_multiple(images: Array) -> tuple[Array, Array]:
    """``[N, H, W, 3]`` -> ``([N, Hp, Wp, 3], sizes int32 [1, 2])``, Hp, Wp the multiples of 8 at
    or above H, W, and ``(H, W)`` shared by the batch; the padding repeats the last row/column
    (don't-care values: the layers overwrite them from ``sizes``)."""
    _, h, w, _ = images.shape
    padded = _take_edge(images, round_up(h, DOWNSAMPLE), round_up(w, DOWNSAMPLE))
    return padded, jnp.array([[h, w]], jnp.int32)


def _take_edge(images: Array, height: Any, width: Any) -> Array:
    """``[N, H, W, C] -> [N, height, width, C]``: a crop, or a pad at the bottom/right that repeats
    the last row/column. Gathers with ``positions``, so the sizes may be symbolic (a converter may
    drop a slice to a symbolic end)."""
    rows = jnp.minimum(positions(height), images.shape[1] - 1)
    cols = jnp.minimum(positions(width), images.shape[2] - 1)
    return jnp.take(jnp.take(images, rows, axis=1), cols, axis=2)


def portable_stylize(
    params: dict, *, conv_impl: str = conv.DEFAULT_IMPL
) -> Callable[[Array, Array, Array], Array]:
    """``(content [N, H, W, 3], style [1, Hs, Ws, 3], alpha []) -> [N, H, W, 3]`` float32 with
    ``params`` closed over (constants when exported)."""

    def run(content: Array, style: Array, alpha: Array) -> Array:
        padded_style, style_size = _pad_to_multiple(style)
        stats = encode_style_padded(params, padded_style, style_size, conv_impl=conv_impl)
        padded, sizes = _pad_to_multiple(content)
        out = stylize_with_stats(params, padded, stats, alpha, sizes=sizes, conv_impl=conv_impl)
        return _take_edge(out, *content.shape[1:3])

    return run


def symbolic_args() -> tuple[jax.ShapeDtypeStruct, ...]:
    """Abstract inputs with symbolic ``N, H, W, Hs, Ws`` (each side >= 9)."""
    sides = ("H", "W", "Hs", "Ws")
    n, h, w, hs, ws = jax.export.symbolic_shape(
        "N, H, W, Hs, Ws", constraints=tuple(f"{d} >= {MIN_IMAGE_SIZE}" for d in sides)
    )
    f32 = jnp.float32
    return (
        jax.ShapeDtypeStruct((n, h, w, 3), f32),
        jax.ShapeDtypeStruct((1, hs, ws, 3), f32),
        jax.ShapeDtypeStruct((), f32),
    )


def export_stablehlo(params: dict) -> bytes:
    """The serialized ``jax.export.Exported`` of ``portable_stylize(params)`` (CPU)."""
    exported = jax.export.export(jax.jit(portable_stylize(params)))(*symbolic_args())
    return bytes(exported.serialize())


def export_onnx(params: dict) -> bytes:
    """``portable_stylize(params)`` as one self-contained ONNX model (``jax2onnx``; the weights
    inside, no external data file) with dynamic sizes: inputs ``content [N, H, W, 3]``, ``style [1,
    Hs, Ws, 3]``, ``alpha []``; output ``image [N, H, W, 3]``. The convolutions are the plain
    ``"valid"`` formulation (no custom VJP in the graph). Raises ``ImportError`` without
    ``jax2onnx``; the converter's errors pass through.
    """
    import jax2onnx  # optional dependency: the [export] extra

    with _shared_symbolic_scopes(), _quiet_logger("onnx_ir"):
        model = jax2onnx.to_onnx(
            portable_stylize(params, conv_impl="valid"),
            [("N", "H", "W", 3), (1, "Hs", "Ws", 3), ()],
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            model_name="adain_stylize",
            return_mode="proto",
        )
    return model.SerializeToString()


@contextlib.contextmanager
def _shared_symbolic_scopes() -> Iterator[None]:
    """Deep copies of a symbolic dimension share its ``jax.export.SymbolicScope``.

    jax2onnx 0.17 deep-copies gather parameters; copying a dimension copies its scope, which fails
    once the scope has cached bounds (``AttributeError: 'SymbolicScope' object has no attribute
    '_normalization_rules'``) and would give a scope that no longer compares equal to the original.
    A scope is fixed once built, so sharing it is safe. No public hook exists (jax2onnx uses
    copy.deepcopy, jax.export has no copy protocol): hence a class patch, scoped to the conversion
    and restored after it.
    """
    cls = jax.export.SymbolicScope
    saved = cls.__dict__.get("__deepcopy__")
    cls.__deepcopy__ = lambda self, memo: self
    try:
        yield
    finally:
        if saved is None:
            del cls.__deepcopy__
        else:
            cls.__deepcopy__ = saved


@contextlib.contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    """Raise logger ``name`` to ERROR for the block (onnx_ir warns once per untyped shape constant:
    hundreds of lines that say nothing to the user)."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
