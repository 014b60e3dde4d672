"""The stylize functions: one style (``stylize``), K styles mixed or by region
(``stylize_mix``), cached statistics (``stylize_with_stats``), all on the one pass ``render``.

Jit boundaries and the parameter order (params, content, style(s) or stats, alpha, keyword-only
options): docs/design.md.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from adain_jax.controls.masks import check_mask, resize_labels, resize_labels_within
from adain_jax.controls.stats import (
    StyleStats,
    check_alpha,
    check_stats,
    encode_style,
    is_concrete,
    normalize_weights,
    require_adain_fusion,
    stack_stats,
)
from adain_jax.controls.targets import apply_coefficients, target_coefficients
from adain_jax.nn import ops
from adain_jax.nn.conv import DEFAULT_IMPL
from adain_jax.nn.forward import (
    as_batch,
    check_batches,
    check_image_size,
    check_params,
    decode,
    dtype_of,
    encode,
    feature_sizes,
    fuse,
)
from adain_jax.nn.layers import Dtype, valid_cells
from adain_jax.nn.models import MIN_IMAGE_SIZE, decoder_variant


def render(
    params: dict,
    content: Array,
    target: Callable[[Array, Array | None], Any],
    *,
    has_aux: bool = False,
    sizes: Array | None = None,
    dtype: Dtype = jnp.float32,
    conv_impl: str = DEFAULT_IMPL,
) -> Any:
    """THE stylize pass every stylize function runs (traced; call it under ``jax.jit``).

    Encodes ``content`` float ``[N, H, W, 3]``, asks ``target(feat, cells)`` for the decoder's
    input from the relu4_1 features ``[N, h, w, 512]`` (``cells``: int ``[N, 2]`` valid feature
    cells with ``sizes``, else ``None``), decodes it, crops to ``H x W`` and clips to [0, 1].
    ``sizes``: int ``[N, 2]`` or ``[1, 2]``, each image's valid size in a batch padded at the
    bottom/right (``adain_jax.nn.forward.encode``). ``has_aux``: ``target`` returns
    ``(decoder_input, aux)`` and ``render`` ``(image, aux)``, as in ``jax.grad``.

    Returns float32 ``[N, H, W, 3]`` in [0, 1] (with ``has_aux``: ``(image, aux)``).
    """
    height, width = content.shape[1:3]
    feat = encode(params, content, dtype=dtype, sizes=sizes, conv_impl=conv_impl).relu4_1
    cells = None if sizes is None else feature_sizes(sizes)
    fused, aux = target(feat, cells) if has_aux else (target(feat, cells), None)
    image = decode(params, fused, dtype=dtype, sizes=cells, conv_impl=conv_impl)
    image = jnp.clip(image[:, :height, :width, :], 0.0, 1.0)
    return (image, aux) if has_aux else image


def stylize(
    params: dict,
    content: Array,
    style: Array,
    alpha: Array | float = 1.0,
    *,
    dtype: Dtype = jnp.float32,
    conv_impl: str = DEFAULT_IMPL,
) -> Array:
    """Render ``content`` in the style of ``style`` (Huang & Belongie, eq. 11).

    ``T(c, s) = g((1 - alpha) f(c) + alpha AdaIN(f(c), f(s)))``; for a decoder of the
    concat variant ``g(concat(f(c), f(s)))`` (``adain_jax.nn.forward.fuse``), where a
    concrete ``alpha`` other than 1 raises ``ValueError`` (a traced one is ignored).
    Compiled once per shape, dtype, conv_impl and decoder variant; composes with
    ``jax.jit`` (``jax.jit(stylize).lower(...)`` gives the ahead-of-time form).

    Args:
      params: ``{"encoder", "decoder"}`` from ``load_params``.
      content: RGB float ``[H, W, 3]`` or ``[N, H, W, 3]`` in [0, 1]; each side at least 9 px.
      style: RGB float ``[Hs, Ws, 3]`` or ``[N or 1, Hs, Ws, 3]`` in [0, 1]; any size; a single
        style serves the whole content batch.
      alpha: content-style trade-off in [0, 1] (1 = full style); a scalar or one value per
        content image ``[N]``. Traced: changing it does not recompile.
      dtype: compute dtype of the convolutions (``jnp.float32`` or ``jnp.bfloat16``);
        statistics are always float32.
      conv_impl: convolution formulation (``adain_jax.nn.conv``), static.

    Autodiff: reverse mode (``jax.grad``, ``jax.vjp``) works with respect to every argument.
    Forward mode (``jax.jvp``, ``jax.jacfwd``) is NOT supported: the channel statistics and the
    CPU convolution have hand-written reverse-mode gradients (``jax.custom_vjp``, for memory
    and speed), which JAX cannot differentiate forward; use ``jax.vjp`` instead.

    Returns:
      float32 image with the content's shape, clipped to [0, 1].

    Raises (at trace time): ``TypeError`` for integer images (divide uint8 by 255),
    ``ValueError`` for bad shapes, a style batch other than 1 or N, an ``alpha`` that is not a
    scalar or ``[N]`` (or, when concrete, outside [0, 1]), sides under 9 px, a ``dtype`` other
    than float32 or bfloat16, or ``params`` without an encoder or decoder. Image values are not
    checked (floats in 0..255 cannot be told from shapes): pass [0, 1].
    """
    check_params(params)
    alpha = check_alpha(alpha)
    if is_concrete(alpha) and not np.all(np.asarray(alpha) == 1.0):
        require_adain_fusion(params, "alpha other than 1")
    content, style = (
        np.asarray(x) if isinstance(x, (list, tuple)) else x for x in (content, style)
    )
    return _stylize(params, content, style, alpha, dtype=dtype, conv_impl=conv_impl)


@functools.partial(jax.jit, static_argnames=("dtype", "conv_impl"))
def _stylize(params, content, style, alpha=1.0, *, dtype=jnp.float32, conv_impl=DEFAULT_IMPL):
    single = jnp.ndim(content) == 3
    content = as_batch(content, "content")
    style = as_batch(style, "style")
    check_image_size(*content.shape[1:3], "content")
    check_image_size(*style.shape[1:3], "style")
    check_batches(content.shape[0], style.shape[0], jnp.shape(alpha))
    style_feat = encode(params, style, dtype=dtype, conv_impl=conv_impl).relu4_1
    alpha = jnp.asarray(alpha, jnp.float32).reshape(-1, 1, 1, 1)

    def target(feat: Array, _: None) -> Array:
        if decoder_variant(params["decoder"]).fusion == "adain":
            return ops.blend(feat, ops.adain(feat, style_feat), alpha)
        return fuse(params, feat, style_feat)

    image = render(params, content, target, dtype=dtype, conv_impl=conv_impl)
    return image[0] if single else image


def stylize_checked(
    params: dict,
    content: Array,
    stats: StyleStats,
    alpha: Array | float,
    weights: Array | None,
    mask: Array | None,
    sizes: Array | None = None,
    dtype: Dtype = jnp.float32,
    conv_impl: str = DEFAULT_IMPL,
) -> Array:
    """``stylize_with_stats`` without its argument checks, for callers that checked once
    (``infer.py``'s back-ends: a mask is checked when it is read, not at every call).

    ``content`` float ``[N, H, W, 3]``; ``weights`` ``[K]`` (>= 0, normalised here; equal if
    ``None``), ignored with a ``mask``: int labels ``0..K-1``, ``[Hm, Wm]`` or ``[N, Hm, Wm]``;
    ``sizes`` int ``[N, 2]``, ``[1, 2]`` or ``None``. Returns float32 ``[N, H, W, 3]`` in [0, 1].
    """
    weights = normalize_weights(weights, stats.num_styles) if mask is None else None
    return _stylize_checked(params, content, stats, alpha, weights, mask, sizes, dtype, conv_impl)


@functools.partial(jax.jit, static_argnames=("dtype", "conv_impl"))
def _stylize_checked(params, content, stats, alpha, weights, mask, sizes, dtype, conv_impl):
    def target(feat: Array, cells: Array | None) -> Array:
        h, w = feat.shape[1:3]
        labels, valid = None, None
        if cells is not None:
            valid = valid_cells(cells, h, w)
            labels = None if mask is None else resize_labels_within(mask, cells, h, w)
        elif mask is not None:
            labels = resize_labels(mask, h, w)
        scale, shift = target_coefficients(feat, stats, weights, labels, valid)
        return apply_coefficients(feat, scale, shift, alpha, labels)

    return render(params, content, target, sizes=sizes, dtype=dtype, conv_impl=conv_impl)


def stylize_with_stats(
    params: dict,
    content: Array,
    stats: StyleStats,
    alpha: Array | float = 1.0,
    *,
    weights: Array | Sequence[float] | None = None,
    mask: Array | None = None,
    sizes: Array | None = None,
    dtype: Dtype = jnp.float32,
    conv_impl: str = DEFAULT_IMPL,
) -> Array:
    """Stylize against cached style statistics (``encode_style``).

    Args:
      params: ``{"encoder", "decoder"}``.
      content: RGB float ``[H, W, 3]`` or ``[N, H, W, 3]`` in [0, 1], sides >= 9 px.
      stats: K >= 1 styles, shared by every content image.
      alpha: content-style trade-off in [0, 1], scalar or ``[N]``.
      weights: ``[K]`` interpolation weights, normalised to sum 1 (equal if ``None``); used
        without ``mask``.
      mask: int region labels ``[Hm, Wm]`` or ``[N, Hm, Wm]`` in ``0..K-1``, any size (resized
        to the relu4_1 grid by nearest neighbour); region k takes style k.
      sizes: optional int ``[N, 2]`` (traced): ``content`` is a batch ``[N, Hb, Wb, 3]`` of
        images padded at the bottom/right (``pad_to_bucket``) and ``sizes[n]`` is image n's
        ``(H, W)`` (each at least 9 px); ``[1, 2]``: one size for every image. Each image is
        stylized exactly as unpadded (its own reflection borders, content statistics over its
        own relu4_1 cells, a mask stretched over its own area): crop output n to ``sizes[n]``.
        One compilation serves every mix of sizes in a padded shape.
      dtype: compute dtype of the convolutions.
      conv_impl: convolution formulation (``adain_jax.nn.conv``), static.

    Returns:
      float32 image with the content's shape, clipped to [0, 1]. Compiled once per shape and
      dtype; ``alpha``, ``weights``, ``sizes`` and the mask's values are traced.

    Raises:
      TypeError: ``stats`` not ``StyleStats``, integer images.
      ValueError: a concat decoder, bad shapes or ``sizes`` (concrete: outside [9, padded]), sides
        under 9 px, a concrete ``alpha`` outside [0, 1], bad weights or mask labels.
    """
    check_params(params)
    require_adain_fusion(params, "style statistics (mixing, masks, tiling, stylize_with_stats)")
    check_stats(stats)
    alpha = check_alpha(alpha)
    single = jnp.ndim(content) == 3
    content = as_batch(content, "content")
    check_image_size(*content.shape[1:3], "content")
    check_batches(content.shape[0], 1, jnp.shape(alpha))
    if sizes is not None:
        if single:
            raise ValueError("sizes needs a batch [N, Hb, Wb, 3] of padded contents")
        _check_sizes(sizes, content.shape)
        sizes = jnp.asarray(sizes, jnp.int32)
    mask = check_mask(mask, stats, content.shape[0])
    out = stylize_checked(params, content, stats, alpha, weights, mask, sizes, dtype, conv_impl)
    return out[0] if single else out


def _check_sizes(sizes: Array, shape: tuple[int, ...]) -> None:
    """``ValueError`` unless ``sizes`` is integer ``[N, 2]`` or ``[1, 2]`` for a padded batch of
    ``shape`` ``[N, Hb, Wb, 3]`` and, when concrete, each size is within ``[9, (Hb, Wb)]``."""
    n, hb, wb = shape[:3]
    dims = np.shape(sizes)
    if len(dims) != 2 or dims[1] != 2 or dims[0] not in (1, n):
        raise ValueError(f"sizes must be [N, 2] or [1, 2] for {n} contents, got shape {dims}")
    dtype = dtype_of(sizes)
    if not jnp.issubdtype(dtype, jnp.integer):
        raise ValueError(f"sizes must be integers (px), got dtype {dtype}")
    if is_concrete(sizes):
        s = np.asarray(sizes)
        if (s < MIN_IMAGE_SIZE).any() or (s[:, 0] > hb).any() or (s[:, 1] > wb).any():
            raise ValueError(
                f"sizes must be between {MIN_IMAGE_SIZE} px and the padded {hb}x{wb}, got "
                f"{s.tolist()[:8]}"
            )


def stylize_mix(
    params: dict,
    content: Array,
    styles: Array | Sequence[Array],
    alpha: Array | float = 1.0,
    *,
    weights: Array | Sequence[float] | None = None,
    mask: Array | None = None,
    dtype: Dtype = jnp.float32,
) -> Array:
    """Stylize with several styles: interpolation (``weights``) or spatial control (``mask``).

    Args:
      params: ``{"encoder", "decoder"}``.
      content: RGB float ``[H, W, 3]`` or ``[N, H, W, 3]`` in [0, 1].
      styles: ``[K, Hs, Ws, 3]`` or a sequence of K images ``[Hs_k, Ws_k, 3]`` (sizes may
        differ) in [0, 1].
      alpha: in [0, 1]; applies after mixing.
      weights: ``[K]`` floats >= 0, normalised to sum 1 (equal if ``None``).
      mask: int labels ``[Hm, Wm]`` (or ``[N, Hm, Wm]``) in ``0..K-1``; region k gets style k
        and content statistics of region k only (the authors' semantics); overrides
        ``weights``. Use ``labels_from_mask_image`` for mask images.
      dtype: compute dtype.

    Returns:
      float32 image with the content's shape, in [0, 1]. Raises as ``stylize_with_stats``.
    """
    if not isinstance(styles, (list, tuple)) and not hasattr(styles, "shape"):
        styles = list(styles)  # a generator of images
    if isinstance(styles, (list, tuple)):
        if any(np.ndim(s) != 3 for s in styles):
            shapes = [tuple(np.shape(s)) for s in styles]
            raise ValueError(f"styles must be a sequence of [Hs, Ws, 3] images, got {shapes}")
        stats = stack_stats([encode_style(params, s, dtype=dtype) for s in styles])
    else:
        stats = encode_style(params, styles, dtype=dtype)
    return stylize_with_stats(
        params, content, stats, alpha, weights=weights, mask=mask, dtype=dtype
    )
