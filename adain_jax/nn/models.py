"""The AdaIN networks as Flax Linen modules (NHWC).

Layer names follow the paper (``conv1_1`` ...) so that converted weights load
by name. ``VGGEncoder`` maps RGB images in [0, 1] to the four loss taps;
``Decoder`` maps relu4_1-sized features back to an RGB image.

Both take an optional ``sizes`` (int ``[N, 2]``): each image's valid size in
a batch padded at the bottom/right (see ``adain_jax.nn.layers``).
``make_decoder`` is the one place a decoder is built (``init_decoder``,
``decoder_shapes``, ``adain_jax.nn.forward.decode``): a decoder variant
plugs in there.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import Array

from adain_jax.nn import conv
from adain_jax.nn.layers import ReflectConv, max_pool_ceil, pooled_sizes, upsample_nearest_2x

Dtype = Any
# Compute dtypes by name (flags, configs): convolutions run in it, statistics in float32.
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}

# (name, output channels) of the encoder's 3x3 convs; "pool" marks a max-pool.
ENCODER_LAYERS: tuple[tuple[str, int] | str, ...] = (
    ("conv1_1", 64),
    ("conv1_2", 64),
    "pool",
    ("conv2_1", 128),
    ("conv2_2", 128),
    "pool",
    ("conv3_1", 256),
    ("conv3_2", 256),
    ("conv3_3", 256),
    ("conv3_4", 256),
    "pool",
    ("conv4_1", 512),
)
TAP_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1")

# The decoder mirrors the encoder; "up" marks nearest x2 upsampling. Its last
# conv (conv1_1, 64 -> 3) has no activation.
DECODER_LAYERS: tuple[tuple[str, int] | str, ...] = (
    ("conv4_1", 256),
    "up",
    ("conv3_4", 256),
    ("conv3_3", 256),
    ("conv3_2", 256),
    ("conv3_1", 128),
    "up",
    ("conv2_2", 128),
    ("conv2_1", 64),
    "up",
    ("conv1_2", 64),
    ("conv1_1", 3),
)

FEATURE_CHANNELS = 512
# relu4_1 is 1/8 of the input size (three ceil-mode pools).
DOWNSAMPLE = 8


class EncoderTaps(NamedTuple):
    """The VGG-19 activations the losses use, each ``[N, h, w, C]``."""

    relu1_1: Array
    relu2_1: Array
    relu3_1: Array
    relu4_1: Array


class VGGEncoder(nn.Module):
    """VGG-19 from its input 1x1 conv up to relu4_1, reflection padded, ceil-mode pools.

    Input: RGB ``[N, H, W, 3]`` in [0, 1] and optionally ``sizes``, int
    ``[N, 2]``, each image's ``(H, W)`` inside a padded batch. The leading
    1x1 conv (``conv0``) holds the input normalisation of the weight source
    (Caffe BGR*255 minus means for ``vgg_normalised``; ImageNet mean/std for
    torchvision). Output: ``EncoderTaps`` with relu1_1 ``[N, H, W, 64]``,
    relu2_1 ``[N, ceil(H/2), ., 128]``, relu3_1 ``[N, ceil(H/4), ., 256]`` and
    relu4_1 ``[N, ceil(H/8), ., 512]`` in ``dtype`` (with ``sizes``: valid on
    ``ceil(sizes / 2**k)`` cells of each tap).
    """

    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    conv_impl: conv.ConvImpl = conv.DEFAULT_IMPL

    @nn.compact
    def __call__(self, images: Array, sizes: Array | None = None) -> EncoderTaps:
        def layer(features: int, kernel_size: int, name: str) -> ReflectConv:
            return ReflectConv(
                features, kernel_size, self.dtype, self.param_dtype, self.conv_impl, name=name
            )

        x = layer(3, 1, "conv0")(images)
        taps = {}
        for spec in ENCODER_LAYERS:
            if spec == "pool":
                x = max_pool_ceil(x, sizes)
                sizes = None if sizes is None else pooled_sizes(sizes)
                continue
            name, features = spec
            x = nn.relu(layer(features, 3, name)(x, sizes))
            if name in TAP_LAYERS:
                taps["relu" + name[4:]] = x
        return EncoderTaps(**taps)


class Decoder(nn.Module):
    """Maps ``[N, h, w, 512]`` features to an RGB image ``[N, 8h, 8w, 3]``.

    The output is not clipped: it is roughly in [0, 1] for a trained decoder.
    Returned in float32 whatever the compute ``dtype``. With ``sizes`` (int
    ``[N, 2]`` valid feature cells of each image in a padded batch) image n
    is valid on its ``8 * sizes[n]`` pixels.
    """

    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    conv_impl: conv.ConvImpl = conv.DEFAULT_IMPL

    @nn.compact
    def __call__(self, features: Array, sizes: Array | None = None) -> Array:
        x = features
        last = DECODER_LAYERS[-1]
        for spec in DECODER_LAYERS:
            if spec == "up":
                x = upsample_nearest_2x(x)
                sizes = None if sizes is None else 2 * jnp.asarray(sizes, jnp.int32)
                continue
            name, out = spec
            x = ReflectConv(out, 3, self.dtype, self.param_dtype, self.conv_impl, name=name)(
                x, sizes
            )
            if spec is not last:
                x = nn.relu(x)
        return x.astype(jnp.float32)


def make_decoder(
    *, dtype: Dtype = jnp.float32, conv_impl: conv.ConvImpl = conv.DEFAULT_IMPL
) -> nn.Module:
    """THE decoder module (``Decoder``): a decoder variant plugs in here, and
    ``init_decoder``, ``decoder_shapes`` and ``adain_jax.nn.forward.decode`` follow."""
    return Decoder(dtype=dtype, conv_impl=conv_impl)


def init_decoder(rng: Array) -> dict:
    """Random decoder params (Flax default initialisers), float32, from a PRNG key."""
    feats = jnp.zeros((1, 2, 2, FEATURE_CHANNELS), jnp.float32)
    return make_decoder().init(rng, feats)["params"]


def init_encoder(rng: Array) -> dict:
    """Random ``VGGEncoder`` params (Flax default initialisers), float32, from a PRNG key."""
    images = jnp.zeros((1, 2 * DOWNSAMPLE, 2 * DOWNSAMPLE, 3), jnp.float32)
    return VGGEncoder().init(rng, images)["params"]


def decoder_shapes() -> dict:
    """``jax.ShapeDtypeStruct`` tree of the decoder params (nothing computed)."""
    return jax.eval_shape(init_decoder, jax.random.key(0))
