"""Colour preservation (Gatys et al., "Preserving Color in Neural Artistic Style Transfer",
2016; the AdaIN authors' ``-preserveColor``): the content's colours with the style's texture.

- ``match_color`` (CORAL, the authors' method; docs/design.md): the style image recoloured to the
  content's RGB mean and covariance before stylizing. Unlike the authors' ``coral``
  (``lib/utils.lua``) covariances are means over pixels, not sums (which make the result depend
  on the two images' pixel counts), so the output's mean and covariance equal the content's
  exactly before clipping.
- luminance only (``luminance_inputs``, ``recombine_luminance``): the network sees the two
  luminances; the output's is recombined with the content's chrominance in YIQ (NTSC 1953).

All functions take float RGB ``[..., H, W, 3]`` in [0, 1] and compute in float32.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import Array

from adain_jax.nn.forward import check_float_image
from adain_jax.nn.names import known
from adain_jax.nn.ops import EPS

# NTSC RGB -> YIQ (rows: Y, I, Q). NumPy, not jnp: a module-level jnp array would start the
# XLA backend at import time, before ``jax.distributed.initialize`` (multi-host training).
_RGB_TO_YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]],
    np.float32,
)


def _check_rgb(**images: Array) -> None:
    """``TypeError`` for integer images, ``ValueError`` unless each is ``[..., H, W, 3]``."""
    for name, x in images.items():
        check_float_image(x if hasattr(x, "dtype") else np.asarray(x), name)
        if np.ndim(x) < 3 or (known(np.shape(x)[-1]) and np.shape(x)[-1] != 3):
            raise ValueError(f"{name} must be RGB [..., H, W, 3], got shape {np.shape(x)}")


def _pixels(x: Array) -> Array:
    x = jnp.asarray(x, jnp.float32)
    return x.reshape(*x.shape[:-3], -1, 3)


def _sym_sqrt(m: Array, inverse: bool = False) -> Array:
    """(Inverse) square root of symmetric PSD ``[..., 3, 3]`` by eigendecomposition."""
    vals, vecs = jnp.linalg.eigh(m)
    d = jnp.sqrt(jnp.maximum(vals, EPS))
    d = 1.0 / d if inverse else d
    return jnp.einsum("...ij,...j,...kj->...ik", vecs, d, vecs)


def rgb_mean_cov(image: Array) -> tuple[Array, Array]:
    """Channel mean ``[..., 3]`` and biased covariance ``[..., 3, 3]`` of RGB ``[..., H, W, 3]``."""
    p = _pixels(image)
    mean = jnp.mean(p, axis=-2)
    centred = p - mean[..., None, :]
    cov = jnp.einsum("...pi,...pj->...ij", centred, centred) / p.shape[-2]
    return mean, cov


def _sd_corr(cov: Array) -> tuple[Array, Array]:
    """Channel std ``[..., 3]`` and correlation ``[..., 3, 3]`` (EPS on the diagonal) of ``cov``."""
    sd = jnp.sqrt(jnp.diagonal(cov, axis1=-2, axis2=-1) + EPS)
    return sd, cov / (sd[..., :, None] * sd[..., None, :]) + EPS * jnp.eye(3, dtype=jnp.float32)


def match_color(content: Array, style: Array, *, clip: bool = True) -> Array:
    """The style image recoloured to the content's RGB mean and covariance.

    Args:
      content: ``[..., H, W, 3]`` float in [0, 1] (the colours to take); leading axes
        broadcast against the style's.
      style: ``[..., Hs, Ws, 3]`` float in [0, 1] (the image to recolour).
      clip: clip the result to [0, 1] (the exact-statistics property holds before clipping).

    Returns:
      float32 ``[..., Hs, Ws, 3]``: the STYLE image, recoloured.
    """
    _check_rgb(content=content, style=style)
    s = _pixels(style)
    s_mean, s_cov = rgb_mean_cov(style)
    c_mean, c_cov = rgb_mean_cov(content)
    s_sd, s_corr = _sd_corr(s_cov)
    c_sd, c_corr = _sd_corr(c_cov)
    transfer = _sym_sqrt(c_corr) @ _sym_sqrt(s_corr, inverse=True)
    z = (s - s_mean[..., None, :]) / s_sd[..., None, :]
    out = jnp.einsum("...ij,...pj->...pi", transfer, z) * c_sd[..., None, :]
    out = out + c_mean[..., None, :]
    out = out.reshape(*out.shape[:-2], *jnp.shape(style)[-3:])
    return jnp.clip(out, 0.0, 1.0) if clip else out


def rgb_to_yiq(image: Array) -> Array:
    """RGB ``[..., 3]`` -> YIQ ``[..., 3]`` (Y in [0, 1]), float32."""
    return jnp.einsum("ij,...j->...i", _RGB_TO_YIQ, jnp.asarray(image, jnp.float32))


def yiq_to_rgb(image: Array) -> Array:
    """YIQ ``[..., 3]`` -> RGB ``[..., 3]`` (unclipped), float32."""
    return jnp.einsum("ij,...j->...i", jnp.linalg.inv(_RGB_TO_YIQ), jnp.asarray(image, jnp.float32))


def luminance_inputs(content: Array, style: Array) -> tuple[Array, Array]:
    """Grey RGB images of the two luminances for the network.

    The style's luminance is shifted and scaled to the content's luminance mean and std (Gatys
    et al.), then both are replicated to 3 channels.

    Returns:
      ``(content_grey, style_grey)``, float32 ``[..., H, W, 3]`` in [0, 1].
    """
    _check_rgb(content=content, style=style)
    yc = rgb_to_yiq(content)[..., :1]
    ys = rgb_to_yiq(style)[..., :1]
    axes = (-3, -2, -1)
    mc, sc = jnp.mean(yc, axes, keepdims=True), jnp.std(yc, axes, keepdims=True)
    ms, ss = jnp.mean(ys, axes, keepdims=True), jnp.std(ys, axes, keepdims=True)
    ys = (ys - ms) * (sc / (ss + EPS)) + mc
    grey = lambda y: jnp.broadcast_to(jnp.clip(y, 0.0, 1.0), (*y.shape[:-1], 3))  # noqa: E731
    return grey(yc), grey(ys)


def recombine_luminance(stylized: Array, content: Array) -> Array:
    """Luminance (Y) of ``stylized`` with the chrominance (I, Q) of ``content``, RGB in [0, 1];
    both ``[..., H, W, 3]`` of one size."""
    _check_rgb(stylized=stylized, content=content)
    a, b = tuple(np.shape(stylized)[-3:]), tuple(np.shape(content)[-3:])
    if known(*a, *b) and a != b:
        raise ValueError(
            f"stylized {np.shape(stylized)} and content {np.shape(content)} differ in size"
        )
    y = rgb_to_yiq(stylized)[..., :1]
    iq = rgb_to_yiq(content)[..., 1:]
    return jnp.clip(yiq_to_rgb(jnp.concatenate([y, iq], axis=-1)), 0.0, 1.0)
