"""The AdaIN networks as Flax Linen modules (NHWC).

Layer names follow the paper (``conv1_1`` ...) so that converted weights load by name.
``VGGEncoder`` maps RGB images in [0, 1] to the four loss taps; ``Decoder`` maps relu4_1-sized
features back to an RGB image. Both take an optional ``sizes`` (int ``[N, 2]``): each image's valid
size in a batch padded at the bottom/right (``adain_jax.nn.layers``). ``make_decoder`` is the one
place a decoder is built (``init_decoder``, ``decoder_shapes``, ``adain_jax.nn.forward.decode``).

Decoder variants of the paper's section 7.2 (``DecoderVariant``): ``fusion`` ``adain`` (the
paper's model) or ``concat`` (Enc-Concat-Dec: content and style relu4_1 concatenated, 1024 channels
in); ``norm`` ``none`` (the paper's), ``batch`` or ``instance`` (a norm layer with learned
scale/offset after each conv but the last). The variant travels WITH the params: ``decoder_variant``
reads it from the tree's structure, static under ``jax.jit`` (docs/experiments.md). A decoder
params tree is one dict ``{layer: {leaf: array}}``: convs ``{"kernel", "bias"}``, norm layers
``norm_<conv>`` ``{"scale", "bias"}`` plus, for BatchNorm, the running ``{"mean", "var"}`` (Flax's
``batch_stats`` collection, merged in by layer; ``decoder_variables`` splits it back for
``Module.apply``).
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import Array

from adain_jax.nn import conv, ops
from adain_jax.nn.layers import (
    Dtype,
    ReflectConv,
    max_pool_ceil,
    pooled_sizes,
    upsample_nearest_2x,
    valid_cells,
)

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
# VGG-16 up to relu4_1 is VGG-19 without conv3_4 (block 3 has three convs).
VGG16_LAYERS: tuple[tuple[str, int] | str, ...] = tuple(
    spec for spec in ENCODER_LAYERS if spec != ("conv3_4", 256)
)
# The encoder architectures by name; a params tree's travels with it (``encoder_arch``).
ENCODER_ARCHS: dict[str, tuple[tuple[str, int] | str, ...]] = {
    "vgg19": ENCODER_LAYERS,
    "vgg16": VGG16_LAYERS,
}
TAP_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1")

# The decoder mirrors the encoder; "up" marks nearest x2 upsampling. Its last conv (conv1_1,
# 64 -> 3) has no activation.
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

from adain_jax.nn.names import (  # noqa: E402 - re-exported: the sizes need no JAX
    DOWNSAMPLE,
    FEATURE_CHANNELS,
    MIN_IMAGE_SIZE,  # noqa: F401
    PAPER,
    DecoderVariant,
)

NORM_PREFIX = "norm_"
# Flax convention: running = BN_MOMENTUM * running + (1 - BN_MOMENTUM) * batch statistic
# (= PyTorch's momentum 0.1). The running variance is the biased batch variance (Flax's
# rule; PyTorch stores the unbiased one).
BN_MOMENTUM = 0.9
STAT_LEAVES = ("mean", "var")


class EncoderTaps(NamedTuple):
    """The VGG-19 activations the losses use, each ``[N, h, w, C]``."""

    relu1_1: Array
    relu2_1: Array
    relu3_1: Array
    relu4_1: Array


class VGGEncoder(nn.Module):
    """VGG-19 (or VGG-16: ``arch``) from its input 1x1 conv up to relu4_1, reflection padded,
    ceil-mode pools.

    Input: RGB ``[N, H, W, 3]`` in [0, 1] and optionally ``sizes``, int ``[N, 2]``, each image's
    ``(H, W)`` inside a padded batch. The leading 1x1 conv (``conv0``) holds the input
    normalisation of the weight source (Caffe BGR*255 minus means for ``vgg_normalised``; ImageNet
    mean/std for torchvision). Output: ``EncoderTaps`` with relu1_1 ``[N, H, W, 64]``, relu2_1
    ``[N, ceil(H/2), ., 128]``, relu3_1 ``[N, ceil(H/4), ., 256]`` and relu4_1 ``[N, ceil(H/8), .,
    512]`` in ``dtype`` (with ``sizes``: valid on ``ceil(sizes / 2**k)`` cells of each tap).
    """

    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    conv_impl: str = conv.DEFAULT_IMPL
    arch: str = "vgg19"  # a key of ENCODER_ARCHS

    @nn.compact
    def __call__(self, images: Array, sizes: Array | None = None) -> EncoderTaps:
        def layer(features: int, kernel_size: int, name: str) -> ReflectConv:
            return ReflectConv(
                features, kernel_size, self.dtype, self.param_dtype, self.conv_impl, name=name
            )

        x = layer(3, 1, "conv0")(images)
        taps = {}
        for spec in ENCODER_ARCHS[self.arch]:
            if spec == "pool":
                x = max_pool_ceil(x, sizes)
                sizes = None if sizes is None else pooled_sizes(sizes)
                continue
            name, features = spec
            x = nn.relu(layer(features, 3, name)(x, sizes))
            if name in TAP_LAYERS:
                taps["relu" + name[4:]] = x
        return EncoderTaps(**taps)


class InstanceNorm(nn.Module):
    """Per-sample, per-channel normalisation over the spatial axes (biased variance, ``ops.EPS`` as
    torch's ``InstanceNorm2d``), then a learned ``scale``/``bias`` ``[C]``; statistics in float32.
    With ``sizes`` (int ``[N, 2]``) the statistics cover each image's valid cells only."""

    @nn.compact
    def __call__(self, x: Array, sizes: Array | None = None) -> Array:
        c = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (c,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
        valid = None if sizes is None else valid_cells(sizes, *x.shape[1:3])
        mean, var = ops.moments(x, valid)
        y = (x.astype(jnp.float32) - mean) * jax.lax.rsqrt(var + ops.EPS) * scale + bias
        return y.astype(x.dtype)


class Decoder(nn.Module):
    """Maps ``[N, h, w, C]`` features (C = 512; 1024 for the concat variant) to an RGB image
    ``[N, 8h, 8w, 3]``, float32 whatever the compute ``dtype``, unclipped (roughly [0, 1] for a
    trained decoder).

    With ``sizes`` (int ``[N, 2]`` valid feature cells of each image in a padded batch) image n is
    valid on its ``8 * sizes[n]`` pixels. ``norm``: ``none``, ``batch`` (``train``: batch
    statistics, updating the ``batch_stats`` collection; else the running ones) or ``instance``,
    after each conv but the last.
    """

    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    conv_impl: str = conv.DEFAULT_IMPL
    norm: str = "none"

    @nn.compact
    def __call__(self, features: Array, sizes: Array | None = None, train: bool = False) -> Array:
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
            if spec is last:
                break
            if self.norm == "batch":
                x = nn.BatchNorm(
                    use_running_average=not train,
                    momentum=BN_MOMENTUM,
                    epsilon=ops.EPS,  # as torch's BatchNorm2d
                    use_fast_variance=False,  # E[(x - mean)^2]: no float32 cancellation
                    dtype=jnp.float32,
                    name=NORM_PREFIX + name,
                )(x.astype(jnp.float32)).astype(self.dtype)
            elif self.norm == "instance":
                x = InstanceNorm(name=NORM_PREFIX + name)(x, sizes)
            x = nn.relu(x)
        return x.astype(jnp.float32)


def make_decoder(
    variant: DecoderVariant = PAPER,
    *,
    dtype: Dtype = jnp.float32,
    conv_impl: str = conv.DEFAULT_IMPL,
) -> nn.Module:
    """THE decoder module (``Decoder``) of a variant (``init_decoder``, ``decoder_shapes`` and
    ``forward.decode`` build it here). The fusion only changes the input channels; ``forward.fuse``
    applies it before."""
    variant.check()
    return Decoder(dtype=dtype, conv_impl=conv_impl, norm=variant.norm)


def decoder_variant(decoder_params: dict) -> DecoderVariant:
    """The variant a decoder params tree is (static: structure and shapes only); raises
    ``ValueError`` for a tree that is no decoder's."""
    try:
        in_channels = decoder_params["conv4_1"]["kernel"].shape[2]
    except (KeyError, TypeError, IndexError, AttributeError):
        raise ValueError("not decoder params: no conv4_1 kernel") from None
    if in_channels not in (FEATURE_CHANNELS, 2 * FEATURE_CHANNELS):
        raise ValueError(f"decoder conv4_1 takes {in_channels} channels; expected 512 or 1024")
    fusion = "concat" if in_channels == 2 * FEATURE_CHANNELS else "adain"
    norms = [v for k, v in decoder_params.items() if k.startswith(NORM_PREFIX)]
    norm = "none" if not norms else "batch" if "mean" in norms[0] else "instance"
    return DecoderVariant(fusion, norm)


def decoder_variables(decoder_params: dict) -> dict:
    """The one params dict -> Flax variables ``{"params", "batch_stats"}`` (the BatchNorm layers'
    running statistics move to ``batch_stats``)."""
    params, stats = split_stats(decoder_params)
    return {"params": params, "batch_stats": stats} if stats else {"params": params}


def split_stats(decoder_params: dict) -> tuple[dict, dict]:
    """``(trainable, running statistics)`` of a decoder params tree (stats ``{}`` but BN)."""
    params, stats = {}, {}
    for layer, leaves in decoder_params.items():
        params[layer] = {k: v for k, v in leaves.items() if k not in STAT_LEAVES}
        held = {k: v for k, v in leaves.items() if k in STAT_LEAVES}
        if held:
            stats[layer] = held
    return params, stats


def merge_stats(params: dict, stats: dict) -> dict:
    """Inverse of ``split_stats``: the one decoder params tree."""
    return {layer: {**leaves, **stats.get(layer, {})} for layer, leaves in params.items()}


def init_decoder(rng: Array, variant: DecoderVariant = PAPER) -> dict:
    """Random float32 decoder params of ``variant`` from a PRNG key (Flax default initialisers;
    norm scale 1, offset 0, running mean 0 and variance 1)."""
    feats = jnp.zeros((1, 2, 2, variant.in_channels), jnp.float32)
    variables = make_decoder(variant).init(rng, feats)
    return merge_stats(variables["params"], variables.get("batch_stats", {}))


def encoder_arch(encoder_params: dict) -> str:
    """``"vgg19"`` or ``"vgg16"``: an encoder params tree's architecture (static: VGG-16 has no
    ``conv3_4``)."""
    return "vgg19" if "conv3_4" in encoder_params else "vgg16"


def init_encoder(rng: Array, arch: str = "vgg19") -> dict:
    """Random float32 ``VGGEncoder`` params of ``arch`` (Flax default initialisers) from a key."""
    images = jnp.zeros((1, 2 * DOWNSAMPLE, 2 * DOWNSAMPLE, 3), jnp.float32)
    return VGGEncoder(arch=arch).init(rng, images)["params"]


def decoder_shapes(variant: DecoderVariant = PAPER) -> dict:
    """``jax.ShapeDtypeStruct`` tree of the decoder params of ``variant`` (nothing computed)."""
    return jax.eval_shape(lambda rng: init_decoder(rng, variant), jax.random.key(0))
