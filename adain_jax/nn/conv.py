"""Reflection-padded stride-1 convolution, the one convolution AdaIN uses.

Every convolution of the encoder and the decoder goes through
``reflect_conv``. It has several numerically equivalent formulations; which
one runs is chosen when the function is traced:

- ``"direct"``: ``lax.conv_general_dilated``. On CPU the reflection-padded
  input is convolved with ``SAME`` zero padding and the one-pixel border of
  the result is cropped: XLA:CPU runs a ``SAME`` convolution 2-4x faster than
  the equivalent ``VALID`` one (measured, see README "Speed"); the cropped
  border is the only place the zeros reach, so the result is the same
  convolution, bit for bit (a few % more FLOPs). Its gradient is a custom
  VJP (input gradient: a ``SAME`` convolution; kernel gradient: a loop of
  cache-sized matmuls over bands of rows), 2-4x faster than autodiff's
  here. Reverse mode only: use ``"valid"`` for ``jax.jvp``/``jacfwd``. On
  other backends ``"direct"`` is the plain ``VALID`` convolution.
- ``"valid"``: the textbook form, ``VALID`` convolution of the padded input,
  differentiated by JAX (slow on XLA:CPU; the reference in tests).
- ``"winograd"`` / ``"winograd4"``: Winograd F(2x2, 3x3) / F(4x4, 3x3)
  (Lavin & Gray 2016) as ``16`` / ``36`` batched matmuls
  ``[tiles, Cin] @ [Cin, Cout]``, the input and output transforms written as
  small einsums. 2.25x / 4x fewer multiplies than the direct convolution;
  float32 error ~1e-6 / ~1e-5 relative per layer. Slower than ``"direct"``
  end to end on the 2-core AVX-512 CPU measured (transform memory traffic).
- ``"im2col"``: the nine shifted copies concatenated on the channel axis and
  one ``[N*H*W, 9*Cin] @ [9*Cin, Cout]`` matmul.

``"auto"`` (the default) runs ``AUTO_CPU_FLOAT32`` (``"direct"``, the
fastest measured) for float32 3x3 convolutions with at least
``MIN_WINOGRAD_CHANNELS`` input and output channels on the CPU backend, and
``"direct"`` otherwise (cuDNN-class GPU/TPU convolutions need no help;
bfloat16 Winograd transforms would lose too much precision). The environment
variable ``ADAIN_JAX_CONV`` (read at trace time: set it before the first
call at a shape) or the ``impl`` argument force one formulation; 1x1
convolutions always run ``"direct"``.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

_DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")

IMPLEMENTATIONS = ("auto", "direct", "valid", "winograd", "winograd4", "im2col")
ENV_VAR = "ADAIN_JAX_CONV"
# Below this many input or output channels the matmuls are too thin to pay
# for Winograd's transforms (conv1_1 has 3 inputs, the decoder's last conv 3 outputs).
MIN_WINOGRAD_CHANNELS = 16
# What "auto" runs for float32 3x3 convolutions on the CPU backend (measured
# fastest there, see README "Speed").
AUTO_CPU_FLOAT32 = "direct"
# Winograd transforms as small einsums ("einsum": compiles fast) or as unrolled
# elementwise sums ("combine": ~10% faster runs, 2-5x longer compiles for F4).
WINOGRAD_TRANSFORMS = os.environ.get("ADAIN_JAX_WINOGRAD_TRANSFORMS", "einsum")


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


def reflect_pad(x: Array, pad: int) -> Array:
    """Reflection-pad the two spatial axes of ``[..., H, W, C]`` by ``pad`` on each side."""
    widths = [(0, 0)] * (x.ndim - 3) + [(pad, pad), (pad, pad), (0, 0)]
    return jnp.pad(x, widths, mode="reflect")


def resolve_impl(impl: str | None, kernel_shape: tuple[int, ...], dtype) -> str:
    """The formulation ``reflect_conv`` runs for this kernel shape and compute dtype.

    ``impl`` None reads ``$ADAIN_JAX_CONV`` (default ``"auto"``). Raises
    ``ValueError`` for an unknown name.
    """
    if impl is None:
        impl = os.environ.get(ENV_VAR, "auto") or "auto"
    if impl not in IMPLEMENTATIONS:
        raise ValueError(
            f"{ENV_VAR} / impl: unknown convolution {impl!r}; choose from {IMPLEMENTATIONS}"
        )
    k, _, cin, cout = kernel_shape
    if k == 1:
        return "direct"
    if impl != "auto":
        return impl
    if (
        jax.default_backend() == "cpu"
        and jnp.dtype(dtype) == jnp.float32
        and min(cin, cout) >= MIN_WINOGRAD_CHANNELS
    ):
        return AUTO_CPU_FLOAT32
    return "direct"


def reflect_conv(x: Array, kernel: Array, bias: Array, *, impl: str | None = None) -> Array:
    """Same-size convolution with reflection padding.

    Args:
      x: ``[N, H, W, Cin]``; H and W must exceed ``k // 2`` for reflection.
      kernel: ``[k, k, Cin, Cout]`` (HWIO), k = 1 or 3.
      bias: ``[Cout]``.
      impl: formulation (see module docstring); None reads ``$ADAIN_JAX_CONV``,
        default ``"auto"``. All agree to float rounding (~1e-6 relative for
        float32, ~1e-5 for ``"winograd4"``).

    Returns:
      ``[N, H, W, Cout]`` in the dtype of ``x``.
    """
    name = resolve_impl(impl, kernel.shape, x.dtype)
    if name in ("direct", "valid"):
        y = _direct(x, kernel, same_trick=name == "direct")
    elif name == "im2col":
        y = _im2col(x, kernel)
    else:
        y = _winograd(x, kernel, _F2 if name == "winograd" else _F4)
    return y + bias


def _conv(x: Array, kernel: Array, padding: str) -> Array:
    return jax.lax.conv_general_dilated(
        x, kernel, (1, 1), padding, dimension_numbers=_DIMENSION_NUMBERS
    )


def _direct(x: Array, kernel: Array, same_trick: bool = True) -> Array:
    k = kernel.shape[0]
    if k == 1:
        return _conv(x, kernel, "VALID")
    if same_trick and jax.default_backend() == "cpu":
        return _reflect_conv_same(x, kernel)
    return _conv(reflect_pad(x, k // 2), kernel, "VALID")


def _reflect_conv_same_impl(x: Array, kernel: Array) -> Array:
    # XLA:CPU's SAME convolution is its fast path; the zeros it pads with
    # only reach the border that is cropped, so this is the VALID convolution
    # of the reflection-padded input.
    p = kernel.shape[0] // 2
    return _conv(reflect_pad(x, p), kernel, "SAME")[:, p:-p, p:-p, :]


@jax.custom_vjp
def _reflect_conv_same(x: Array, kernel: Array) -> Array:
    return _reflect_conv_same_impl(x, kernel)


def _reflect_conv_same_fwd(x: Array, kernel: Array) -> tuple[Array, tuple[Array, Array]]:
    return _reflect_conv_same_impl(x, kernel), (x, kernel)


def _reflect_conv_same_bwd(res: tuple[Array, Array], dy: Array) -> tuple[Array, Array]:
    # Autodiff's transposed convolutions miss XLA:CPU's fast path (the kernel
    # gradient ran 4-5x slower than the forward); these formulations hit it.
    x, kernel = res
    k = kernel.shape[0]
    p = k // 2
    # Input gradient: the padded input's gradient is the SAME correlation of
    # the zero-padded output gradient with the flipped, in/out-swapped
    # kernel; the reflection pad's transpose folds the border back in.
    dy_pad = jnp.pad(dy, ((0, 0), (p, p), (p, p), (0, 0)))
    dxp = _conv(dy_pad, jnp.flip(kernel, (0, 1)).swapaxes(2, 3), "SAME")
    _, pad_vjp = jax.vjp(lambda a: reflect_pad(a, p), x)
    (dx,) = pad_vjp(dxp.astype(x.dtype))
    return dx, _kernel_grad(reflect_pad(x, p), dy, k).astype(kernel.dtype)


# Rows of all images per step of the kernel-gradient loop: about this many
# pixels, so that one step's operands stay in the CPU's L2 cache.
KERNEL_GRAD_BAND_PIXELS = 2048


def _kernel_grad(xp: Array, dy: Array, k: int) -> Array:
    """``dk[i, j] = sum_{n,y,x} xp[n, y+i, x+j]^T dy[n, y, x]``, float32 ``[k, k, Cin, Cout]``.

    A loop over bands of ``r`` output rows (all images at once, so a batch
    sharded over devices stays sharded): the band's ``k*k`` shifted copies
    side by side on the channel axis, one ``[k*k*Cin, N*r*W] @ [N*r*W, Cout]``
    matmul, accumulated. Each band's copies and operands fit in cache; the
    whole-tensor form (one matmul per tap over shifted full-size copies) was
    memory bound, 10-40% slower per layer on the 2-core CPU measured.
    """
    n, h, w, cout = dy.shape
    cin = xp.shape[-1]
    limit = max(1, KERNEL_GRAD_BAND_PIXELS // (n * w))
    rows = max(r for r in range(1, min(limit, h) + 1) if h % r == 0)

    def band(b: Array, acc: Array) -> Array:
        xs = jax.lax.dynamic_slice_in_dim(xp, b * rows, rows + k - 1, axis=1)
        ds = jax.lax.dynamic_slice_in_dim(dy, b * rows, rows, axis=1).reshape(-1, cout)
        shifted = [xs[:, i : i + rows, j : j + w, :] for i in range(k) for j in range(k)]
        cols = jnp.concatenate(shifted, axis=-1).reshape(-1, k * k * cin)
        return acc + jnp.matmul(cols.T, ds, preferred_element_type=jnp.float32)

    acc = jnp.zeros((k * k * cin, cout), jnp.float32)
    return jax.lax.fori_loop(0, h // rows, band, acc).reshape(k, k, cin, cout)


_reflect_conv_same.defvjp(_reflect_conv_same_fwd, _reflect_conv_same_bwd)


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


def _winograd(x: Array, kernel: Array, f: _Winograd) -> Array:
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
    if WINOGRAD_TRANSFORMS == "einsum":
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
    if WINOGRAD_TRANSFORMS == "einsum":
        y = jnp.einsum("ia,jb,abnhwo->nhiwjo", at, at, prod)
    else:
        out_rows = _combine(f.at, [prod[a] for a in range(t)])  # m x [t, N, nh, nw, Cout]
        y = jnp.stack([jnp.stack(_combine(f.at, [r[b] for b in range(t)])) for r in out_rows])
        y = y.transpose(2, 3, 0, 4, 1, 5)
    y = y.reshape(n, nh * m, nw * m, cout)
    return y[:, :h, :w, :]
