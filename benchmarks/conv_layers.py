"""Per-layer speed of each ``reflect_conv`` formulation (forward, and forward + backward).

For AdaIN's typical 3x3 layer shapes, every formulation is timed on the
same inputs, calls interleaved round-robin; the table gives the median ms
and GFLOP/s (2 x multiply-adds of the direct convolution, so Winograd's
saved multiplies show as a higher rate)::

    python -m benchmarks.conv_layers --repeats 5
"""

from __future__ import annotations

import argparse
import sys

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import machine_line, median, parse_list, time_calls
from benchmarks.conv_formulations import FORMULATIONS

# (batch, height = width, in channels, out channels): the encoder/decoder at 512 px.
SHAPES = ((1, 256, 64, 64), (1, 128, 128, 128), (1, 64, 256, 256), (1, 32, 512, 256))


def _contenders(impl: str, x, k, b, dy):
    """Zero-argument callables: the forward, and forward + backward (``jax.vjp``)."""

    def conv_fn(x, k):
        return FORMULATIONS[impl](x, k, b)

    f = jax.jit(conv_fn)
    g = jax.jit(lambda x, k, dy: jax.vjp(conv_fn, x, k)[1](dy))
    return (lambda: f(x, k)), (lambda: g(x, k, dy))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--conv",
        default="valid,direct,winograd,winograd4,im2col",
        help="comma-separated formulations",
    )
    args = parser.parse_args(argv)
    impls = parse_list(args.conv, str, "--conv")
    if any(i not in FORMULATIONS for i in impls) or args.repeats < 1:
        sys.exit(f"conv_layers: --conv takes {tuple(FORMULATIONS)}; --repeats must be >= 1")
    print(machine_line().rsplit(";", 1)[0])
    print("\n| N x H x W x Cin -> Cout | pass | " + " | ".join(impls) + " |")
    print("|---|---|" + "---|" * len(impls))
    for n, hw, cin, cout in SHAPES:
        rng = np.random.default_rng(0)
        x = jnp.asarray(rng.standard_normal((n, hw, hw, cin), np.float32))
        k = jnp.asarray(rng.standard_normal((3, 3, cin, cout), np.float32) * 0.03)
        b = jnp.zeros(cout)
        dy = jnp.asarray(rng.standard_normal((n, hw, hw, cout), np.float32))
        fwd, both = {}, {}
        for impl in impls:
            fwd[impl], both[impl] = _contenders(impl, x, k, b, dy)
            jax.block_until_ready(both[impl]())
        gflop = 2 * n * hw * hw * 9 * cin * cout / 1e9
        for name, fns, mult in (("fwd", fwd, 1), ("fwd+bwd", both, 3)):
            times = time_calls(fns, args.repeats)
            cells = [
                f"{median(times[i]) * 1e3:.1f} ms ({mult * gflop / median(times[i]):.0f})"
                for i in impls
            ]
            print(f"| {n}x{hw}x{hw}x{cin} -> {cout} | {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
