"""Portable artifacts of ``stylize``: a ``jax.export`` (StableHLO) file and an ONNX file.

``portable_stylize(params)`` is the function both formats hold: ``(content
[N, H, W, 3], style [1, Hs, Ws, 3], alpha []) -> image [N, H, W, 3]``, all
float32, images in [0, 1], the weights baked in as constants. Any ``H, W, Hs,
Ws >= 9`` run through one artifact: inside it each image is padded at the
bottom/right to a multiple of 8 px (repeating its last row/column) and run
with its valid size (``stylize_with_stats(..., sizes=)``, the padded-bucket
path of ``infer.py``), so the ceil-mode pools and reflection pads see shapes
whose halvings are exact; the result is the unpadded ``stylize`` up to float
rounding (measured in ``tests/inference/test_export.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import Array

from adain_jax.controls.buckets import valid_cells
from adain_jax.controls.masks import region_stats
from adain_jax.controls.stats import StyleStats
from adain_jax.controls.transfer import stylize_with_stats
from adain_jax.nn import conv
from adain_jax.nn.forward import encode, feature_sizes
from adain_jax.nn.models import DOWNSAMPLE

MIN_SIDE = DOWNSAMPLE + 1  # relu4_1 must be at least 2x2 to reflect-pad it
INPUT_NAMES = ("content", "style", "alpha")
OUTPUT_NAME = "image"


def _pad_to_multiple(images: Array) -> tuple[Array, Array]:
    """``[N, H, W, 3]`` -> ``([N, Hp, Wp, 3], sizes int32 [N, 2])``, Hp, Wp the multiples of
    8 at or above H, W; the padding repeats the last row/column (its values are don't-care:
    the layers overwrite them from ``sizes``). Works on symbolic H, W."""
    n, h, w, _ = images.shape
    hp, wp = -(-h // DOWNSAMPLE) * DOWNSAMPLE, -(-w // DOWNSAMPLE) * DOWNSAMPLE
    rows = jnp.minimum(jnp.arange(hp), h - 1)
    cols = jnp.minimum(jnp.arange(wp), w - 1)
    padded = images[:, rows][:, :, cols]
    sizes = jnp.broadcast_to(jnp.array([h, w], jnp.int32), (n, 2))
    return padded, sizes


def style_stats_padded(
    params: dict, style: Array, *, conv_impl: conv.ConvImpl = conv.DEFAULT_IMPL
) -> StyleStats:
    """``StyleStats`` (K = 1) of one style ``[1, Hs, Ws, 3]``, run padded to multiples of 8
    with its valid size; equals ``encode_style`` up to float rounding."""
    padded, sizes = _pad_to_multiple(style)
    feat = encode(params, padded, sizes=sizes, conv_impl=conv_impl).relu4_1
    h, w = feat.shape[1:3]
    valid = valid_cells(feature_sizes(sizes), h, w)
    mean, std = region_stats(feat, jnp.where(valid, 0, -1), 1)  # [1, 1, C]
    return StyleStats(mean.reshape(1, 1, 1, -1), std.reshape(1, 1, 1, -1))


def portable_stylize(
    params: dict, *, conv_impl: conv.ConvImpl = conv.DEFAULT_IMPL
) -> Callable[[Array, Array, Array], Array]:
    """``(content [N, H, W, 3], style [1, Hs, Ws, 3], alpha []) -> [N, H, W, 3]`` float32 with
    ``params`` closed over (baked in as constants when exported)."""

    def run(content: Array, style: Array, alpha: Array) -> Array:
        stats = style_stats_padded(params, style, conv_impl=conv_impl)
        padded, sizes = _pad_to_multiple(content)
        h, w = content.shape[1:3]
        out = stylize_with_stats(params, padded, stats, alpha, sizes=sizes, conv_impl=conv_impl)
        return out[:, :h, :w, :]

    return run


def symbolic_args() -> tuple[jax.ShapeDtypeStruct, ...]:
    """Abstract inputs with symbolic ``N, H, W, Hs, Ws`` (each side >= 9)."""
    n, h, w, hs, ws = jax.export.symbolic_shape(
        "N, H, W, Hs, Ws", constraints=tuple(f"{d} >= {MIN_SIDE}" for d in ("H", "W", "Hs", "Ws"))
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


def export_onnx(
    params: dict,
    size: tuple[int, int],
    style_size: tuple[int, int],
    batch: int = 1,
) -> bytes:
    """``portable_stylize(params)`` as one self-contained ONNX model (``jax2onnx``; the
    weights inside, no external data file): inputs ``content [batch, H, W, 3]`` (``H, W =
    size``), ``style [1, Hs, Ws, 3]`` (``style_size``), ``alpha []``; output ``image [batch,
    H, W, 3]``. Fixed sizes: jax2onnx 0.17 fails on a symbolic batch or size here
    (docs/deploy.md). The convolutions are the plain ``"valid"`` formulation (no custom VJP
    in the graph).

    Raises ``ImportError`` without ``jax2onnx``; the converter's errors pass through.
    """
    import jax2onnx  # optional dependency: the [export] extra

    model = jax2onnx.to_onnx(
        portable_stylize(params, conv_impl="valid"),
        [(batch, *size, 3), (1, *style_size, 3), ()],
        input_names=list(INPUT_NAMES),
        output_names=[OUTPUT_NAME],
        model_name="adain_stylize",
        return_mode="proto",
    )
    return model.SerializeToString()
