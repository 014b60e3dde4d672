"""Size and speed of the exported stylize next to ``adain_jax.stylize`` (CPU, random weights
of the pretrained model's shapes, so the file sizes are those of a real export).

For each ``--sizes`` (square px, one content, style of the same size): ``adain_jax.stylize``
(jit, compile excluded), the StableHLO artifact (``jax.export.deserialize(...).call``, one
artifact for every size, first call compiles) and, with ``--onnx``, the ONNX file in
onnxruntime (also one file, dynamic sizes). Prints a Markdown table::

    python -m benchmarks.export --sizes 256,512
    python -m benchmarks.export --sizes 256 --onnx
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
import time

import jax
import numpy as np

import adain_jax
from adain_jax.inference import export
from benchmarks.common import machine_line, median, parse_list


def _timed(fn, repeats: int) -> tuple[float, float]:
    """(first call s, median of ``repeats`` later calls s)."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return first, median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="256,512", help="square image sizes in px")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per row")
    parser.add_argument("--onnx", action="store_true", help="also convert and time ONNX")
    args = parser.parse_args(argv)
    sizes = parse_list(args.sizes, int, "--sizes")
    params = adain_jax.init_params(jax.random.PRNGKey(0))
    tmp = tempfile.mkdtemp()
    start = time.perf_counter()
    blob = export.export_stablehlo(params)
    print(machine_line())
    print(f"StableHLO export: {time.perf_counter() - start:.1f} s, {len(blob) / 2**20:.1f} MiB")
    exported = jax.export.deserialize(blob)
    session, onnx_bytes = None, 0
    if args.onnx:
        import onnxruntime as ort

        start = time.perf_counter()
        path = os.path.join(tmp, "adain.onnx")
        with open(path, "wb") as f:
            f.write(export.export_onnx(params))
        print(f"ONNX export: {time.perf_counter() - start:.1f} s")
        session, onnx_bytes = ort.InferenceSession(path), os.path.getsize(path)
    print("\n| size | runtime | first call s | per call s | file MiB |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for size in sizes:
        c = rng.random((1, size, size, 3), dtype=np.float32)
        s = rng.random((1, size, size, 3), dtype=np.float32)
        a = np.array(1.0, np.float32)
        stylize = functools.partial(adain_jax.stylize, params)
        _row(size, "adain_jax.stylize", stylize, (c, s, a), None, args.repeats)
        _row(size, "StableHLO (jax.export)", exported.call, (c, s, a), len(blob), args.repeats)
        if session is not None:
            feeds = {"content": c, "style": s, "alpha": a}
            run = (["image"], feeds)
            _row(size, "ONNX (onnxruntime)", session.run, run, onnx_bytes, args.repeats)


def _row(size: int, name: str, fn, fn_args: tuple, nbytes: int | None, repeats: int) -> None:
    """Time ``fn(*fn_args)`` (results blocked on) and print one table row."""
    first, per = _timed(lambda: jax.block_until_ready(fn(*fn_args)), repeats)
    mib = "-" if nbytes is None else f"{nbytes / 2**20:.1f}"
    print(f"| {size} | {name} | {first:.2f} | {per:.3f} | {mib} |", flush=True)


if __name__ == "__main__":
    main()
