"""Reflection-padded stride-1 convolution, the one convolution AdaIN uses.

Every convolution goes through ``reflect_conv``; its static ``impl`` (one of ``IMPLEMENTATIONS``;
the Flax layers' ``conv_impl`` field, so the jit cache sees it) picks the formulation:

- ``"direct"`` (the default): on XLA:CPU the reflection-padded input is convolved with ``SAME``
  zero padding and the one-pixel border cropped: 2-4x faster than ``VALID`` there for a few % more
  FLOPs (docs/speed.md); the zeros only reach the cropped border, so it is the same convolution
  bit for bit. Its custom VJP (input gradient: a ``SAME`` convolution; kernel gradient:
  cache-sized matmuls over bands of rows) is 2-4x faster than autodiff's; reverse mode only (use
  ``"valid"`` for ``jax.jvp``/``jacfwd``). On GPU/TPU: the plain ``VALID`` convolution,
  differentiated by JAX.
- ``"valid"``: the textbook ``VALID`` convolution of the padded input, differentiated by JAX on
  every backend (slow on XLA:CPU; the tests' reference; supports forward mode).

1x1 convolutions always run the plain ``VALID`` convolution.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array

from adain_jax.nn.names import known
from adain_jax.nn.ops import positions

_DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")

IMPLEMENTATIONS = ("direct", "valid")
DEFAULT_IMPL = "direct"


def reflect_pad(x: Array, pad: int) -> Array:
    """Reflection-pad the two spatial axes of ``[..., H, W, C]`` by ``pad`` on each side.

    Symbolic sizes (exports) take a gather: ``jnp.pad`` can only reflect a symbolic axis that its
    constraints prove longer than ``pad``, and a converter's dynamic dimensions carry none.
    """
    if known(*x.shape[-3:-1]):
        widths = [(0, 0)] * (x.ndim - 3) + [(pad, pad), (pad, pad), (0, 0)]
        return jnp.pad(x, widths, mode="reflect")
    return _reflect_take(_reflect_take(x, pad, x.ndim - 3), pad, x.ndim - 2)


def _reflect_take(x: Array, pad: int, axis: int) -> Array:
    n = x.shape[axis]
    i = jnp.abs(positions(n + 2 * pad) - pad)
    return jnp.take(x, jnp.where(i > n - 1, 2 * (n - 1) - i, i), axis=axis)


def reflect_conv(x: Array, kernel: Array, bias: Array, *, impl: str = DEFAULT_IMPL) -> Array:
    """Same-size convolution with reflection padding.

    Args:
      x: ``[N, H, W, Cin]``; H and W must exceed ``k // 2`` for reflection.
      kernel: ``[k, k, Cin, Cout]`` (HWIO), k = 1 or 3.
      bias: ``[Cout]``.
      impl: ``"direct"`` or ``"valid"`` (module docstring); static. Both agree to float rounding
        (bit for bit in float32 on the CPU).

    Returns:
      ``[N, H, W, Cout]`` in the dtype of ``x``.

    Raises:
      ValueError: an unknown formulation name.
    """
    if impl not in IMPLEMENTATIONS:
        raise ValueError(f"unknown convolution {impl!r}; choose from {IMPLEMENTATIONS}")
    k = kernel.shape[0]
    if k == 1:
        y = _conv(x, kernel, "VALID")
    elif impl == "direct" and jax.default_backend() == "cpu":
        y = _reflect_conv_same(x, kernel)
    else:
        y = _conv(reflect_pad(x, k // 2), kernel, "VALID")
    return y + bias


def _conv(x: Array, kernel: Array, padding: str) -> Array:
    return jax.lax.conv_general_dilated(
        x, kernel, (1, 1), padding, dimension_numbers=_DIMENSION_NUMBERS
    )


def _reflect_conv_same_impl(x: Array, kernel: Array) -> Array:
    # XLA:CPU's fast SAME path; its zeros only reach the cropped border (module docstring).
    p = kernel.shape[0] // 2
    return _conv(reflect_pad(x, p), kernel, "SAME")[:, p:-p, p:-p, :]


@jax.custom_vjp
def _reflect_conv_same(x: Array, kernel: Array) -> Array:
    return _reflect_conv_same_impl(x, kernel)


def _reflect_conv_same_fwd(x: Array, kernel: Array) -> tuple[Array, tuple[Array, Array]]:
    return _reflect_conv_same_impl(x, kernel), (x, kernel)


def _reflect_conv_same_bwd(res: tuple[Array, Array], dy: Array) -> tuple[Array, Array]:
    # Autodiff's transposed convolutions miss XLA:CPU's fast path (the kernel gradient ran 4-5x
    # slower than the forward); these formulations hit it.
    x, kernel = res
    k = kernel.shape[0]
    p = k // 2
    # Input gradient: the padded input's gradient is the SAME correlation of the zero-padded
    # output gradient with the flipped, in/out-swapped kernel; the reflection pad's transpose
    # folds the border back in.
    dy_pad = jnp.pad(dy, ((0, 0), (p, p), (p, p), (0, 0)))
    dxp = _conv(dy_pad, jnp.flip(kernel, (0, 1)).swapaxes(2, 3), "SAME")
    _, pad_vjp = jax.vjp(lambda a: reflect_pad(a, p), x)
    (dx,) = pad_vjp(dxp.astype(x.dtype))
    return dx, _kernel_grad(reflect_pad(x, p), dy, k).astype(kernel.dtype)


# Rows of all images per step of the kernel-gradient loop: about this many pixels, so that one
# step's operands stay in the CPU's L2 cache.
KERNEL_GRAD_BAND_PIXELS = 2048


def _kernel_grad(xp: Array, dy: Array, k: int) -> Array:
    """``dk[i, j] = sum_{n,y,x} xp[n, y+i, x+j]^T dy[n, y, x]``, float32 ``[k, k, Cin, Cout]``.

    A loop over bands of ``r`` output rows (all images at once, so a batch sharded over devices
    stays sharded): the band's ``k*k`` shifted copies side by side on the channel axis, one
    ``[k*k*Cin, N*r*W] @ [N*r*W, Cout]`` matmul, accumulated. Each band's copies and operands fit
    in cache; the whole-tensor form (one matmul per tap over shifted full-size copies) was memory
    bound, 10-40% slower per layer on the 2-core CPU measured.
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
