"""The AdaIN networks as Flax Linen modules (NHWC).

Layer names follow the paper (``conv1_1`` ...) so that converted weights load
by name. ``VGGEncoder`` maps RGB images in [0, 1] to the four loss taps;
``Decoder`` maps relu4_1-sized features back to an RGB image.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import Array

from adain_jax.nn.layers import ReflectConv, max_pool_ceil, upsample_nearest_2x

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

    Input: RGB ``[N, H, W, 3]`` in [0, 1]. The leading 1x1 conv (``conv0``)
    holds the input normalisation of the weight source (Caffe BGR*255 minus
    means for ``vgg_normalised``; ImageNet mean/std for torchvision).
    Output: ``EncoderTaps`` with relu1_1 ``[N, H, W, 64]``, relu2_1
    ``[N, ceil(H/2), ., 128]``, relu3_1 ``[N, ceil(H/4), ., 256]`` and relu4_1
    ``[N, ceil(H/8), ., 512]`` in ``dtype``.
    """

    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, images: Array) -> EncoderTaps:
        x = ReflectConv(3, 1, self.dtype, self.param_dtype, name="conv0")(images)
        taps = {}
        for layer in ENCODER_LAYERS:
            if layer == "pool":
                x = max_pool_ceil(x)
                continue
            name, features = layer
            x = nn.relu(ReflectConv(features, 3, self.dtype, self.param_dtype, name=name)(x))
            if name in TAP_LAYERS:
                taps["relu" + name[4:]] = x
        return EncoderTaps(**taps)


class Decoder(nn.Module):
    """Maps ``[N, h, w, 512]`` features to an RGB image ``[N, 8h, 8w, 3]``.

    The output is not clipped: it is roughly in [0, 1] for a trained decoder.
    Returned in float32 whatever the compute ``dtype``.
    """

    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, features: Array) -> Array:
        x = features
        last = DECODER_LAYERS[-1]
        for layer in DECODER_LAYERS:
            if layer == "up":
                x = upsample_nearest_2x(x)
                continue
            name, out = layer
            x = ReflectConv(out, 3, self.dtype, self.param_dtype, name=name)(x)
            if layer is not last:
                x = nn.relu(x)
        return x.astype(jnp.float32)


def init_decoder(rng: Array) -> dict:
    """Random ``Decoder`` params (Flax default initialisers): ``{layer: {"kernel": HWIO
    float32, "bias": [C] float32}}``. THE decoder init (training, checkpoint shapes)."""
    features = jnp.zeros((1, 2, 2, FEATURE_CHANNELS), jnp.float32)
    return Decoder().init(rng, features)["params"]


def decoder_shapes() -> dict:
    """``init_decoder``'s tree as ``jax.ShapeDtypeStruct`` leaves (nothing computed)."""
    return jax.eval_shape(init_decoder, jax.random.key(0))
