"""THE forward pass: ``encode`` and ``decode``, used by every caller of the networks.

Stylization (``adain_jax.controls``), tiling, padded size buckets, evaluation and the training
losses all run the networks through these two; padded batches pass ``sizes``, not another path.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from adain_jax.nn import conv, ops
from adain_jax.nn.layers import Dtype
from adain_jax.nn.models import (
    DOWNSAMPLE,
    MIN_IMAGE_SIZE,
    EncoderTaps,
    VGGEncoder,
    decoder_variables,
    decoder_variant,
    encoder_arch,
    make_decoder,
    merge_stats,
    split_stats,
)
from adain_jax.nn.names import DTYPE_NAMES, FEATURE_CHANNELS, ceil_div, known


def encode(
    params: dict,
    images: Array,
    *,
    dtype: Dtype = jnp.float32,
    sizes: Array | None = None,
    conv_impl: str = conv.DEFAULT_IMPL,
) -> EncoderTaps:
    """VGG taps (relu1_1 ... relu4_1) of RGB images.

    Args:
      params: ``{"encoder": ..., ...}``; its structure names the architecture (VGG-19 or
        VGG-16: ``adain_jax.nn.models.encoder_arch``).
      images: float ``[N, H, W, 3]`` in [0, 1].
      dtype: compute dtype of the convolutions (float32 or bfloat16); the taps come back in it.
      sizes: optional int ``[N, 2]``, the ``(height, width)`` of each image in a batch padded at
        the bottom/right; each image is then encoded as if unpadded (reflection at its own border)
        on its valid cells, ``ceil(sizes / 2**k)`` of tap k (k = 0..3). Traced.
      conv_impl: convolution formulation (``adain_jax.nn.conv``), static.

    Returns:
      ``EncoderTaps``; relu4_1 is ``[N, ceil(H/8), ceil(W/8), 512]``.
    """
    check_dtype(dtype)
    images = as_batch(images, "images", single=False)
    encoder = network(params, "encoder")
    module = VGGEncoder(dtype=dtype, conv_impl=conv_impl, arch=encoder_arch(encoder))
    return module.apply({"params": encoder}, images, sizes)


def decode(
    params: dict,
    features: Array,
    *,
    dtype: Dtype = jnp.float32,
    sizes: Array | None = None,
    conv_impl: str = conv.DEFAULT_IMPL,
) -> Array:
    """Decode relu4_1-sized features to an image (any variant; BatchNorm uses running statistics).

    Args:
      params: ``{"decoder": ..., ...}``; its structure names the variant
        (``adain_jax.nn.models.decoder_variant``).
      features: ``[N, h, w, 512]`` (``[N, h, w, 1024]`` for the concat variant: ``fuse``'s
        output), any float dtype.
      dtype: compute dtype of the convolutions.
      sizes: optional int ``[N, 2]``: valid feature cells of each image in a padded batch; image
        n is then valid on its ``8 * sizes[n]`` pixels.
      conv_impl: convolution formulation, static.

    Returns:
      float32 RGB ``[N, 8h, 8w, 3]``, unclipped (roughly [0, 1]).
    """
    check_dtype(dtype)
    variant = decoder_variant(network(params, "decoder"))
    check_features(features, variant)
    module = make_decoder(variant, dtype=dtype, conv_impl=conv_impl)
    return module.apply(decoder_variables(params["decoder"]), features, sizes)


def decode_train(
    params: dict, features: Array, *, dtype: Dtype = jnp.float32
) -> tuple[Array, dict]:
    """``decode`` in training mode: BatchNorm normalises with the batch's statistics
    (biased variance) and updates its running ones.

    Returns:
      ``(image, decoder)``: the float32 image ``[N, 8h, 8w, 3]`` and the decoder params
      with the updated running statistics (unchanged for the other variants).
    """
    check_dtype(dtype)
    dec = network(params, "decoder")
    variant = decoder_variant(dec)
    check_features(features, variant)
    module = make_decoder(variant, dtype=dtype)
    if variant.norm != "batch":
        return module.apply(decoder_variables(dec), features), dec
    image, updates = module.apply(
        decoder_variables(dec), features, None, True, mutable=["batch_stats"]
    )
    return image, merge_stats(split_stats(dec)[0], updates["batch_stats"])


def fuse(params: dict, content_feat: Array, style_feat: Array) -> Array:
    """The decoder's input from content and style relu4_1 features, as the variant fuses.

    ``adain``: ``AdaIN(content_feat, style_feat)``, float32 ``[N, h, w, 512]``.
    ``concat`` (Enc-Concat-Dec): the channel concatenation ``[content, style]``, float32 ``[N, h,
    w, 1024]``; a style grid that differs from the content's is first resized to it by nearest
    neighbour (``ops.resize_nearest``, half-pixel centres), so any style size works.
    ``style_feat`` broadcasts over the content batch.
    """
    if decoder_variant(params["decoder"]).fusion == "adain":
        return ops.adain(content_feat, style_feat)
    n, h, w, _ = content_feat.shape
    style = ops.resize_nearest(style_feat, h, w)
    style = jnp.broadcast_to(style, (n, *style.shape[1:]))
    return jnp.concatenate([content_feat.astype(jnp.float32), style.astype(jnp.float32)], axis=-1)


def network(params: dict, name: str) -> dict:
    """``params[name]`` (``"encoder"`` or ``"decoder"``); ``ValueError`` naming what is missing
    (``params`` is the ``{"encoder", "decoder"}`` dict of ``load_params``)."""
    if not isinstance(params, Mapping) or name not in params:  # a dict, or a Flax FrozenDict
        got = f"{name!r} missing" if isinstance(params, Mapping) else f"got {type(params).__name__}"
        raise ValueError(
            f'params must be the {{"encoder", "decoder"}} dict of load_params/init_params; {got}'
        )
    return params[name]


def check_params(params: dict) -> None:
    """``network`` for both networks: the stylize functions need the two."""
    network(params, "encoder")
    network(params, "decoder")


def check_dtype(dtype: Dtype) -> None:
    """``ValueError`` unless ``dtype`` is a compute dtype of the convolutions (float32 or
    bfloat16): any other ran without an error to a black, white or NaN image."""
    try:
        name = jnp.dtype(dtype).name
    except TypeError:
        name = repr(dtype)
    if name not in DTYPE_NAMES:
        raise ValueError(f"dtype {name}: the convolutions compute in {' or '.join(DTYPE_NAMES)}")


def check_features(features: Array, variant) -> None:
    """``ValueError`` unless ``features`` is ``[N, h, w, C]`` with the ``C`` the decoder
    ``variant`` takes (512; 1024 for concat)."""
    channels = FEATURE_CHANNELS * (2 if variant.fusion == "concat" else 1)
    shape = np.shape(features)
    if len(shape) != 4 or (known(shape[-1]) and shape[-1] != channels):
        raise ValueError(
            f"features must be [N, h, w, {channels}] for this decoder, got shape {shape}"
        )


def as_batch(x: Array, name: str, *, single: bool = True) -> Array:
    """``[H, W, 3]`` or ``[N, H, W, 3]`` float images as ``[N, H, W, 3]`` (``single=False``:
    only ``[N, H, W, 3]``).

    Raises (naming ``name``, at trace time):
      TypeError: integer or boolean images (e.g. uint8 0..255): the networks expect floats in
        [0, 1].
      ValueError: any other shape.
    """
    x = x if isinstance(x, np.ndarray) else jnp.asarray(x)  # NumPy stays on the host (tiling)
    check_float_image(x, name)
    ranks = (3, 4) if single else (4,)
    if x.ndim not in ranks or x.shape[-1] != 3:
        want = "[H, W, 3] or [N, H, W, 3]" if single else "[N, H, W, 3]"
        raise ValueError(f"{name} must be {want}, got shape {x.shape}")
    return x if x.ndim == 4 else x[None]


def dtype_of(x: Array) -> np.dtype:
    """The dtype of an array, a tracer or a (nested) list of numbers."""
    return jnp.result_type(x) if hasattr(x, "dtype") else np.asarray(x).dtype


def check_float_image(x: Array, name: str) -> None:
    """Raise ``TypeError`` (naming ``name`` and the fix) unless ``x`` (a JAX or NumPy array)
    holds floats: an integer or
    boolean image (uint8 0..255) would run as values far outside [0, 1] without an error."""
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"{name} has dtype {x.dtype}; images must be floats in [0, 1] "
            f"(for 8-bit images: {name}.astype(np.float32) / 255)"
        )


def check_batches(contents: int, styles: int, alpha_shape: tuple[int, ...]) -> None:
    """Raise ``ValueError`` unless the style batch is 1 or ``contents`` and ``alpha`` is a
    scalar or one value per content (shapes are known at trace time)."""
    if styles not in (1, contents):
        raise ValueError(
            f"style has a batch of {styles} for {contents} content image(s); give one style "
            f"for all, or one per content ({contents})"
        )
    alpha_shape = tuple(alpha_shape)  # a converter may trace jnp.shape to an array
    if len(alpha_shape) > 1 or (alpha_shape and alpha_shape[0] not in (1, contents)):
        raise ValueError(
            f"alpha has shape {alpha_shape}; give a scalar or one value per content [{contents}]"
        )


def check_image_size(height: int, width: int, name: str = "image") -> None:
    """Raise ``ValueError`` for images too small for relu4_1's reflection padding.

    Symbolic sizes pass when their constraints decide it (``jax.export``'s ``H >= 9``) and also
    when nothing bounds them (a converter's dynamic dimensions): such an artifact fails at run time
    on a too-small image, as the network itself would.
    """
    try:
        too_small = height < MIN_IMAGE_SIZE or width < MIN_IMAGE_SIZE  # no min(): symbolic
    except jax.errors.InconclusiveDimensionOperation:
        return
    if too_small:
        raise ValueError(
            f"{name} is {height}x{width}; each side must be at least {MIN_IMAGE_SIZE} px"
        )


def feature_size(height: int, width: int) -> tuple[int, int]:
    """relu4_1 grid size of an ``height x width`` image (three ceil-mode pools)."""
    return ceil_div(height, DOWNSAMPLE), ceil_div(width, DOWNSAMPLE)


def feature_sizes(sizes: Array) -> Array:
    """relu4_1 valid cells, int32 ``[N, 2]``, of images of ``sizes`` ``[N, 2]``."""
    return ceil_div(jnp.asarray(sizes, jnp.int32), DOWNSAMPLE)
