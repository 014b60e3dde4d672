"""Style statistics, the runtime controls' style cache: ``encode_style`` gives ``StyleStats``
(relu4_1 channel mean/std) once, so many contents against one style cost only their own encoder
and decoder. K styles mix with weights normalised to sum 1 (``normalize_weights``): AdaIN is
affine in the style statistics, so the mix is AdaIN with the weighted mean of means and stds.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from adain_jax.nn import ops
from adain_jax.nn.conv import DEFAULT_IMPL
from adain_jax.nn.forward import as_batch, check_image_size, encode, feature_sizes, network
from adain_jax.nn.layers import Dtype, valid_cells
from adain_jax.nn.models import decoder_variant
from adain_jax.nn.names import FEATURE_CHANNELS, check_style_weights, known


class StyleStats(NamedTuple):
    """Channel statistics of K styles' relu4_1 features (a pytree).

    Attributes:
      mean: float32 ``[K, 1, 1, 512]``.
      std: float32 ``[K, 1, 1, 512]`` (biased variance + ``ops.EPS``, square-rooted).
    """

    mean: Array
    std: Array

    @property
    def num_styles(self) -> int:
        return self.mean.shape[0]


@functools.partial(jax.jit, static_argnames=("dtype",))
def encode_style(params: dict, style: Array, *, dtype: Dtype = jnp.float32) -> StyleStats:
    """Encode style images once into ``StyleStats``.

    Args:
      params: ``{"encoder", ...}``.
      style: RGB float ``[Hs, Ws, 3]`` (one style) or ``[K, Hs, Ws, 3]`` (K styles of one size)
        in [0, 1]; each side at least 9 px (else ``ValueError``).
      dtype: compute dtype of the convolutions.

    Returns:
      ``StyleStats`` with ``K`` (1 for a single image) leading entries.
    """
    style = as_batch(style, "style")
    check_image_size(*style.shape[1:3], "style")
    mean, std = ops.channel_mean_std(encode(params, style, dtype=dtype).relu4_1)
    return StyleStats(mean, std)


@functools.partial(jax.jit, static_argnames=("dtype", "conv_impl"))
def encode_style_padded(
    params: dict,
    style: Array,
    size: Array,
    *,
    dtype: Dtype = jnp.float32,
    conv_impl: str = DEFAULT_IMPL,
) -> StyleStats:
    """``encode_style`` of one style padded to a bucket shape (``pad_to_bucket``), the same
    statistics as the unpadded image's: one compilation serves every style size of a bucket.

    Args:
      params: ``{"encoder", ...}``.
      style: RGB float ``[Hb, Wb, 3]`` in [0, 1], the style reflect-padded at the bottom and
        right.
      size: int ``[2]`` (traced): the style's own ``(H, W)``, each at least 9 px.
      dtype: compute dtype of the convolutions.
      conv_impl: convolution formulation (``adain_jax.nn.conv``), static.

    Returns:
      ``StyleStats`` with one style: relu4_1 channel mean and std over its valid cells.
    """
    style = as_batch(style, "style")
    sizes = jnp.asarray(size, jnp.int32).reshape(1, 2)
    feat = encode(params, style, dtype=dtype, sizes=sizes, conv_impl=conv_impl).relu4_1
    valid = valid_cells(feature_sizes(sizes), *feat.shape[1:3])
    return StyleStats(*ops.channel_mean_std(feat, valid=valid))


def check_stats(stats: StyleStats) -> None:
    """``TypeError`` unless ``stats`` is ``StyleStats``; ``ValueError`` unless its mean and std
    are both ``[K, 1, 1, 512]`` with K >= 1 (shapes: checked at trace time too)."""
    if not isinstance(stats, StyleStats):
        raise TypeError(f"stats must be StyleStats (from encode_style), got {type(stats).__name__}")
    mean, std = tuple(np.shape(stats.mean)), tuple(np.shape(stats.std))
    if not known(*mean, *std):
        return  # a converter's traced shapes
    if len(mean) != 4 or mean != std or mean[1:] != (1, 1, FEATURE_CHANNELS):
        raise ValueError(
            f"stats must hold a mean and a std of shape [K, 1, 1, {FEATURE_CHANNELS}], got "
            f"{mean} and {std}"
        )
    if mean[0] < 1:
        raise ValueError("stats hold no style (K = 0)")


def check_alpha(alpha: Array | float | Sequence[float]) -> Array | float:
    """``alpha`` (a list or tuple as a float32 array); ``ValueError`` for concrete values outside
    [0, 1] (nan included), ``TypeError`` for ``None`` or non-numbers. Traced values pass."""
    if isinstance(alpha, (list, tuple)):
        alpha = np.asarray(alpha, np.float32)
    if alpha is None:
        raise TypeError("alpha must be a number in [0, 1] or one per content [N], got None")
    if not is_concrete(alpha):
        return alpha
    a = np.asarray(alpha)
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise TypeError(f"alpha must be a real number in [0, 1], got dtype {a.dtype}")
    if not np.all((a >= 0) & (a <= 1)):
        raise ValueError(f"alpha must be in [0, 1], got {a.ravel()[:8].tolist()}")
    return alpha


def stack_stats(stats: Sequence[StyleStats]) -> StyleStats:
    """Concatenate ``StyleStats`` along the style axis (in order); ``ValueError`` for none."""
    stats = list(stats)  # a generator is read once
    if not stats:
        raise ValueError("need at least one style")
    for s in stats:
        check_stats(s)
    return StyleStats(
        jnp.concatenate([s.mean for s in stats]), jnp.concatenate([s.std for s in stats])
    )


def is_concrete(x: Any) -> bool:
    """Whether ``x`` is a value known now (not ``None``, holding no tracer under ``jax.jit``)."""
    leaves = jax.tree.leaves(x)  # a list of weights may hold tracers
    return x is not None and not any(isinstance(v, jax.core.Tracer) for v in leaves)


def normalize_weights(weights: Array | Sequence[float] | None, num_styles: int) -> Array:
    """Interpolation weights as float32 ``[K]`` summing to 1 (equal if ``None``).

    Raises ``ValueError`` (when the values are concrete) for a wrong count, negative or
    non-finite weights or a zero sum.
    """
    if weights is None:
        return jnp.full((num_styles,), 1.0 / num_styles, jnp.float32)
    if is_concrete(weights):
        check_style_weights(weights, num_styles)
    w = jnp.asarray(weights, jnp.float32)
    if known(*w.shape) and w.shape != (num_styles,):  # traced values: the shape is known
        raise ValueError(f"style weights must be [{num_styles}], got shape {w.shape}")
    return w / jnp.sum(w)


def require_adain_fusion(params: dict, what: str) -> None:
    """``ValueError`` (one line) when ``params``' decoder is the concat variant, which ``what``
    (a runtime control built on AdaIN's statistics) does not apply to."""
    if decoder_variant(network(params, "decoder")).fusion != "adain":
        raise ValueError(
            f"{what} does not apply to this decoder (Enc-Concat-Dec: it concatenates the "
            "content and style features instead of AdaIN); stylize one content with one "
            "style at alpha 1"
        )
