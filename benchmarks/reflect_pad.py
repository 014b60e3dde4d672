"""Reflection padding + 3x3 convolution: formulations timed as a chain of layers.

Each candidate computes ``relu(reflect_conv(x) + b)`` ``--depth`` times in
one jitted call (one launch: dispatch overhead amortized), at each
``--shapes`` entry ``HxWxC`` (batch ``--batch``). The candidates:

- ``pad``: ``jnp.pad(mode="reflect")`` then a ``VALID`` convolution (the textbook form);
- ``pad_same_crop``: the pad, a ``SAME`` convolution of the padded input and a crop of
  its border (``adain_jax.nn.conv``'s ``direct`` formulation on the CPU);
- ``pad_hw``: the same pad done as two concatenations, rows then columns;
- ``zero_dus``: a zero pad (``lax.pad``) whose border ring is then overwritten in place
  with the reflected rows and columns;
- ``same_border``: a ``SAME`` (zero-padded) convolution, then its one-pixel output border
  recomputed from reflection-padded strips (top/bottom and left/right batched) and
  written in place: no full-size padded copy;
- ``same_only``: the ``SAME`` convolution alone, a lower bound (not the same function).

``--backward`` times the forward pass plus the gradients w.r.t. the input and the kernels.

Each result is checked against ``pad`` (max abs difference printed)::

    python -m benchmarks.reflect_pad --shapes 512x512x64,256x256x128,128x128x256
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from adain_jax.nn.conv import reflect_pad
from benchmarks.common import machine_line, median, parse_list

_DN = ("NHWC", "HWIO", "NHWC")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def conv(x: jax.Array, k: jax.Array, padding: str) -> jax.Array:
    return jax.lax.conv_general_dilated(x, k, (1, 1), padding, dimension_numbers=_DN)


def pad_reflect(x: jax.Array) -> jax.Array:
    return reflect_pad(x, 1)


def pad_hw(x: jax.Array) -> jax.Array:
    x = jnp.concatenate([x[:, 1:2], x, x[:, -2:-1]], axis=1)
    return jnp.concatenate([x[:, :, 1:2], x, x[:, :, -2:-1]], axis=2)


def pad_zero_dus(x: jax.Array) -> jax.Array:
    z = jnp.zeros((), x.dtype)
    p = jax.lax.pad(x, z, ((0, 0, 0), (1, 1, 0), (1, 1, 0), (0, 0, 0)))
    p = p.at[:, 0, 1:-1].set(x[:, 1]).at[:, -1, 1:-1].set(x[:, -2])
    return p.at[:, :, 0].set(p[:, :, 2]).at[:, :, -1].set(p[:, :, -3])


def same_border(x: jax.Array, k: jax.Array, b: jax.Array) -> jax.Array:
    """``relu(reflect_conv(x) + b)`` as a SAME conv with its border rows/columns recomputed."""
    act = lambda v: jax.nn.relu(v + b)  # noqa: E731
    y = act(conv(x, k, "SAME"))
    # Rows 0 and H-1 from 3-row reflection-padded strips, batched.
    rows = jnp.concatenate([pad_reflect(x[:, :2])[:, :3], pad_reflect(x[:, -2:])[:, -3:]], 0)
    top, bottom = jnp.split(act(conv(rows, k, "VALID")), 2, axis=0)
    # Columns 0 and W-1 (rows 1..H-2: the corners are already in the rows).
    cols = jnp.concatenate(
        [pad_reflect(x[:, :, :2])[:, :, :3], pad_reflect(x[:, :, -2:])[:, :, -3:]], 0
    )
    left, right = jnp.split(act(conv(cols, k, "VALID"))[:, 1:-1], 2, axis=0)
    y = y.at[:, :1].set(top).at[:, -1:].set(bottom)
    return y.at[:, 1:-1, :1].set(left).at[:, 1:-1, -1:].set(right)


CANDIDATES: dict[str, Callable] = {
    "pad": lambda x, k, b: jax.nn.relu(conv(pad_reflect(x), k, "VALID") + b),
    "pad_same_crop": lambda x, k, b: jax.nn.relu(
        conv(pad_reflect(x), k, "SAME")[:, 1:-1, 1:-1] + b
    ),
    "pad_hw": lambda x, k, b: jax.nn.relu(conv(pad_hw(x), k, "VALID") + b),
    "zero_dus": lambda x, k, b: jax.nn.relu(conv(pad_zero_dus(x), k, "VALID") + b),
    "same_border": same_border,
    "same_only": lambda x, k, b: jax.nn.relu(conv(x, k, "SAME") + b),
}


def chain(layer: Callable, depth: int, backward: bool = False) -> Callable:
    """The jitted chain; ``backward``: forward + gradient of ``sum(out * out)`` w.r.t. the
    input and the kernels (returns the input gradient)."""

    def run(x, ks, bs):
        for i in range(depth):
            x = layer(x, ks[i], bs[i])
        return x

    if not backward:
        return jax.jit(run)

    def grads(x, ks, bs):
        loss = lambda x, ks: jnp.sum(jnp.square(run(x, ks, bs).astype(jnp.float32)))  # noqa: E731
        dx, dks = jax.grad(loss, argnums=(0, 1))(x, ks)
        return dx, dks

    return jax.jit(lambda x, ks, bs: grads(x, ks, bs)[0])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default="512x512x64,256x256x128,128x128x256,64x64x512")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--depth", type=int, default=8, help="layers per jitted call")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bfloat16")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--backward", action="store_true", help="time forward + gradients")
    args = parser.parse_args(argv)
    shapes = parse_list(args.shapes, lambda s: tuple(int(v) for v in s.split("x")), "--shapes")
    names = parse_list(args.candidates, lambda n: CANDIDATES[n] and n, "--candidates")
    dtype = DTYPES[args.dtype]
    print(machine_line())
    mode = "forward + backward" if args.backward else "forward"
    print(f"batch {args.batch}, {args.depth} layers per call, {args.dtype}, {mode}\n")
    print("| shape | candidate | us / layer | max abs diff vs pad |")
    print("|---|---|---:|---:|")
    rng = np.random.default_rng(0)
    for h, w, c in shapes:
        x = jnp.asarray(rng.standard_normal((args.batch, h, w, c)), dtype)
        ks = jnp.asarray(
            rng.standard_normal((args.depth, 3, 3, c, c)) * (2 / (9 * c)) ** 0.5, dtype
        )
        bs = jnp.asarray(rng.standard_normal((args.depth, c)) * 0.05, dtype)
        want = None
        for name in names:
            fn = chain(CANDIDATES[name], args.depth, args.backward)
            got = np.asarray(fn(x, ks, bs), np.float32)
            if want is None:
                want = got
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                jax.block_until_ready(fn(x, ks, bs))
                times.append(time.perf_counter() - start)
            us = median(times) / args.depth * 1e6
            diff = float(np.max(np.abs(got - want)))
            print(f"| {h}x{w}x{c} | {name} | {us:.1f} | {diff:.2e} |", flush=True)


if __name__ == "__main__":
    main()
