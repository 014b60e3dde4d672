"""Latency of ``adain_jax.stylize`` (compile excluded and reported separately).

For every combination of ``--sizes`` (square px), ``--batches`` (content
images per call; one style image of the same size serves the batch) and
``--dtypes`` (compute dtype of the convolutions), with random weights:
first-call time (trace + compile + one run) and the median of ``--repeats``
timed calls. Prints a Markdown table headed by the device and CPU model::

    python -m benchmarks.stylize                      # 256/512/1024 x 1/8 x f32/bf16
    python -m benchmarks.stylize --sizes 256,512 --batches 1 --dtypes float32

The convolution is the product's (``direct``); ``benchmarks.vs_torch --conv valid`` times
the other one.
"""

from __future__ import annotations

import argparse
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import adain_jax
from benchmarks.common import machine_line, median, parse_list

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="256,512,1024", help="square image sizes in px")
    parser.add_argument("--batches", default="1,8", help="content images per call")
    parser.add_argument("--dtypes", default="float32,bfloat16", help="float32 and/or bfloat16")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per configuration")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sizes = parse_list(args.sizes, int, "--sizes")
    batches = parse_list(args.batches, int, "--batches")
    dtypes = parse_list(args.dtypes, lambda d: DTYPES[d] and d, "--dtypes")
    if min(sizes) < 9:
        sys.exit("stylize: --sizes: each size must be at least 9 px")
    if min(batches) < 1 or args.repeats < 1:
        sys.exit("stylize: --batches and --repeats must be positive")

    params = adain_jax.init_params(jax.random.key(args.seed))
    rng = np.random.default_rng(args.seed)
    print(machine_line())
    print("\n| size px | batch | dtype | ms / call | images / s | first call s |")
    print("|---|---|---|---|---|---|")
    for dtype in dtypes:
        for size in sizes:
            for batch in batches:
                content = jnp.asarray(rng.random((batch, size, size, 3), dtype=np.float32))
                style = jnp.asarray(rng.random((1, size, size, 3), dtype=np.float32))

                def call(content=content, style=style, dtype=dtype):
                    return adain_jax.stylize(params, content, style, dtype=DTYPES[dtype])

                start = time.perf_counter()
                jax.block_until_ready(call())
                first = time.perf_counter() - start
                times = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    jax.block_until_ready(call())
                    times.append(time.perf_counter() - start)
                t = median(times)
                print(
                    f"| {size} | {batch} | {dtype} | {t * 1e3:.1f} | {batch / t:.2f} "
                    f"| {first:.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
