"""Research formulations of the reflection-padded 3x3 convolution (not used by the package).

Each is a function ``(x, kernel, bias) -> y`` with the contract of
``adain_jax.nn.conv.reflect_conv``, so it can be passed as a layer's
``conv_impl`` (``adain_jax.nn.forward.encode(..., conv_impl=FORMULATIONS[name])``):

- ``"winograd"`` / ``"winograd4"``: Winograd F(2x2, 3x3) / F(4x4, 3x3)
  (Lavin & Gray 2016) as ``16`` / ``36`` batched matmuls
  ``[tiles, Cin] @ [Cin, Cout]``, the input and output transforms written as
  small einsums (``transforms="einsum"``, compiles fast) or unrolled
  elementwise sums (``"combine"``: ~10% faster runs, 2-5x longer compiles
  for F4). 2.25x / 4x fewer multiplies than the direct convolution; float32
  error ~1e-6 / ~1e-5 relative per layer. Slower than ``"direct"`` end to
  end on the 2-core AVX-512 CPU measured (transform memory traffic).
- ``"im2col"``: the nine shifted copies concatenated on the channel axis and
  one ``[N*H*W, 9*Cin] @ [9*Cin, Cout]`` matmul.

``FORMULATIONS`` maps every name, the product's ``"direct"`` and ``"valid"``
included, to such a function. 1x1 convolutions run ``"direct"``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from adain_jax.nn import conv
from adain_jax.nn.conv import reflect_pad


class _Winograd:
    """Transform matrices of Winograd F(m x m, 3 x 3): tile size ``t = m + 2``."""

    def __init__(self, bt: list[list[float]], g: list[list[float]], at: list[list[float]]):
        self.bt = np.asarray(bt, np.float64)  # [t, t] input transform B^T
        self.g = np.asarray(g, np.float64)  # [t, 3] kernel transform G
        self.at = np.asarray(at, np.float64)  # [m, t] output transform A^T
        self.m, self.t = self.at.shape


# Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2016),
# interpolation points 0, 1, -1 (F2) and 0, +-1, +-2 (F4).
_F2 = _Winograd(
    bt=[[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
    g=[[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]],
    at=[[1, 1, 1, 0], [0, 1, -1, -1]],
)
_F4 = _Winograd(
    bt=[
        [4, 0, -5, 0, 1, 0],
        [0, -4, -4, 1, 1, 0],
        [0, 4, -4, -1, 1, 0],
        [0, -2, -1, 2, 1, 0],
        [0, 2, -1, -2, 1, 0],
        [0, 4, 0, -5, 0, 1],
    ],
    g=[
        [1 / 4, 0, 0],
        [-1 / 6, -1 / 6, -1 / 6],
        [-1 / 6, 1 / 6, -1 / 6],
        [1 / 24, 1 / 12, 1 / 6],
        [1 / 24, -1 / 12, 1 / 6],
        [0, 0, 1],
    ],
    at=[[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
)


def _im2col(x: Array, kernel: Array) -> Array:
    k, _, cin, cout = kernel.shape
    n, h, w, _ = x.shape
    xp = reflect_pad(x, k // 2)
    cols = jnp.concatenate([xp[:, i : i + h, j : j + w] for i in range(k) for j in range(k)], -1)
    return jnp.einsum("nhwc,co->nhwo", cols, kernel.reshape(k * k * cin, cout))


def _combine(matrix: np.ndarray, terms: list[Array]) -> list[Array]:
    """``out[i] = sum_j matrix[i, j] * terms[j]`` with zero coefficients skipped."""
    out = []
    for row in matrix:
        acc = None
        for coef, term in zip(row, terms, strict=True):
            if coef == 0:
                continue
            if coef == 1:
                scaled = term
            elif coef == -1:
                scaled = -term
            else:
                scaled = term * jnp.asarray(coef, term.dtype)
            acc = scaled if acc is None else acc + scaled
        out.append(acc)
    return out


def winograd_kernel(kernel: Array, tiles: int = 2) -> Array:
    """Winograd-domain kernel ``G g G^T``: ``[3, 3, Cin, Cout] -> [t*t, Cin, Cout]``.

    ``tiles`` is the output tile side m (2 or 4); ``t = m + 2``. Computed in
    float32 at highest precision and cast back to the kernel's dtype.
    """
    f = {2: _F2, 4: _F4}[tiles]
    g = jnp.asarray(f.g, jnp.float32)
    u = jnp.einsum(
        "ai,ijco,bj->abco",
        g,
        kernel.astype(jnp.float32),
        g,
        precision=jax.lax.Precision.HIGHEST,
    )
    return u.reshape(f.t * f.t, *kernel.shape[2:]).astype(kernel.dtype)


def _winograd(x: Array, kernel: Array, f: _Winograd, transforms: str = "einsum") -> Array:
    m, t = f.m, f.t
    n, h, w, cin = x.shape
    cout = kernel.shape[-1]
    nh, nw = -(-h // m), -(-w // m)
    # Reflect-pad by one, then zero-pad bottom/right so the tiles cover the
    # image; outputs computed from the zeros are cropped at the end.
    xp = reflect_pad(x, 1)
    xp = jnp.pad(xp, ((0, 0), (0, nh * m - h), (0, nw * m - w), (0, 0)))
    # Tile (i, j) starts at padded pixel (m*i, m*j): view a of the strided
    # row slices holds row m*i + a of every tile (then the same for columns).
    if transforms == "einsum":
        bt = jnp.asarray(f.bt, x.dtype)
        at = jnp.asarray(f.at, x.dtype)
        rows = jnp.stack([xp[:, a : a + m * (nh - 1) + 1 : m] for a in range(t)])
        rows = jnp.einsum("ab,bnhwc->anhwc", bt, rows)  # [t, N, nh, Wp, Cin]
        cols = jnp.stack([rows[:, :, :, b : b + m * (nw - 1) + 1 : m] for b in range(t)], 1)
        v = jnp.einsum("ab,tbnhwc->tanhwc", bt, cols).reshape(t * t, n * nh * nw, cin)
    else:
        rows = [xp[:, a : a + m * (nh - 1) + 1 : m] for a in range(t)]  # [N, nh, Wp, Cin]
        tiles = []
        for r in _combine(f.bt, rows):
            cols = [r[:, :, b : b + m * (nw - 1) + 1 : m] for b in range(t)]
            tiles.extend(_combine(f.bt, cols))
        v = jnp.stack(tiles).reshape(t * t, n * nh * nw, cin)
    u = winograd_kernel(kernel, m).astype(x.dtype)
    prod = jnp.einsum("tpc,tco->tpo", v, u).reshape(t, t, n, nh, nw, cout)
    # Output transform A^T M A: y[i, j, n, ti, tj, o] is pixel (m*ti + i, m*tj + j).
    if transforms == "einsum":
        y = jnp.einsum("ia,jb,abnhwo->nhiwjo", at, at, prod)
    else:
        out_rows = _combine(f.at, [prod[a] for a in range(t)])  # m x [t, N, nh, nw, Cout]
        y = jnp.stack([jnp.stack(_combine(f.at, [r[b] for b in range(t)])) for r in out_rows])
        y = y.transpose(2, 3, 0, 4, 1, 5)
    y = y.reshape(n, nh * m, nw * m, cout)
    return y[:, :h, :w, :]


def _formulation(name: str) -> Callable[[Array, Array, Array], Array]:
    def run(x: Array, kernel: Array, bias: Array) -> Array:
        if kernel.shape[0] == 1:
            return conv.reflect_conv(x, kernel, bias, impl="direct")
        if name == "im2col":
            return _im2col(x, kernel) + bias
        return _winograd(x, kernel, _F2 if name == "winograd" else _F4) + bias

    run.__name__ = run.__qualname__ = name
    return run


FORMULATIONS: dict[str, Callable[[Array, Array, Array], Array]] = {
    "direct": functools.partial(conv.reflect_conv, impl="direct"),
    "valid": functools.partial(conv.reflect_conv, impl="valid"),
    **{name: _formulation(name) for name in ("winograd", "winograd4", "im2col")},
}


def conv_impl(name: str) -> conv.ConvImpl:
    """What to pass as ``conv_impl`` for formulation ``name`` (product names stay strings)."""
    if name not in FORMULATIONS:
        raise ValueError(f"unknown convolution {name!r}; choose from {tuple(FORMULATIONS)}")
    return name if name in conv.IMPLEMENTATIONS else FORMULATIONS[name]
