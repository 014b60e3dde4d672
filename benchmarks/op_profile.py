"""Where the time goes: time per compiled XLA op of ``stylize`` or of the train step.

Runs the job under ``jax.profiler.trace``, reads the trace back
(``jax.profiler.ProfileData``) and sums the duration of each XLA op: the
GPU's "XLA Ops" timeline on a GPU, the XLA:CPU executor threads' op events
on the CPU (there ops may overlap on different threads, so the shares are of
the summed op time, not of wall time). Each op is described from the
compiled HLO (its opcode, output shape, and the heavy opcodes fused into it)
and put in a category: ``conv``, ``dot`` (matmuls), ``reduce``, ``other``.
Prints a category table and the top ``--top`` ops::

    python -m benchmarks.op_profile --job stylize --size 512 --dtype bfloat16
    python -m benchmarks.op_profile --job train --batch 8 --size 256
"""

from __future__ import annotations

import argparse
import collections
import glob
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax.profiler import ProfileData

import adain_jax
from benchmarks import train as train_bench
from benchmarks.common import machine_line

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# Events of the XLA:CPU runtime itself, not ops.
_CPU_RUNTIME_EVENTS = ("ThunkExecutor", "SlinkyThreadPool", "ThreadpoolListener", "Thunk")
_HEAVY_OPCODES = ("convolution", "dot", "reduce", "reduce-window", "scatter", "gather")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+) = (\([^=]*?\)|\S+?) ([a-z][\w-]*)\(")
_CUSTOM_CALL_TARGET = re.compile(r'custom_call_target="([^"]+)"')
_CALLS = re.compile(r"calls=%?([\w.\-]+)")
_COMPUTATION = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")


def op_times(
    fn: Callable[[], object], calls: int, save_trace: str | None = None
) -> tuple[dict[str, float], dict[str, int]]:
    """Summed nanoseconds and event counts per XLA op name over ``calls`` calls of ``fn``.

    ``save_trace``: also copy the raw ``.xplane.pb`` there.
    """
    with tempfile.TemporaryDirectory() as log_dir:
        with jax.profiler.trace(log_dir):
            for _ in range(calls):
                jax.block_until_ready(fn())
        (path,) = glob.glob(f"{log_dir}/**/*.xplane.pb", recursive=True)
        if save_trace:
            shutil.copyfile(path, save_trace)
        profile = ProfileData.from_file(path)
    total: dict[str, float] = collections.Counter()
    count: dict[str, int] = collections.Counter()
    for name, ns in _op_events(profile):
        total[name] += ns
        count[name] += 1
    if not total:
        layout = {p.name: [line.name for line in p.lines] for p in profile.planes}
        print(f"op_profile: no op events found; planes and lines: {layout}", file=sys.stderr)
    return dict(total), dict(count)


def _op_events(profile: ProfileData) -> Iterator[tuple[str, float]]:
    """(op name, ns) of each executed op: the GPU's "XLA Ops" line (or its kernels named by
    their ``hlo_op`` stat), else XLA:CPU's executor threads."""
    gpu = [p for p in profile.planes if p.name.startswith("/device:GPU")]
    for plane in gpu:
        lines = [line for line in plane.lines if line.name == "XLA Ops"]
        if lines:
            for event in lines[0].events:
                yield event.name, event.duration_ns
            continue
        for line in plane.lines:
            if not line.name.startswith("Stream"):
                continue
            for event in line.events:
                stats = dict(event.stats)
                yield str(stats.get("hlo_op", event.name)), event.duration_ns
    if gpu:
        return
    for plane in profile.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_XLA"):
                continue
            for event in line.events:
                if not event.name.startswith(_CPU_RUNTIME_EVENTS):
                    yield event.name, event.duration_ns


def describe_ops(hlo_text: str) -> dict[str, tuple[str, str]]:
    """HLO op name -> (category, description) from compiled HLO text."""
    computations: dict[str, set[str]] = collections.defaultdict(set)
    calls: dict[str, str] = {}
    ops: dict[str, tuple[str, str, str]] = {}
    current = ""
    for line in hlo_text.splitlines():
        head = _COMPUTATION.match(line)
        if head and "=" not in line.split("{")[0]:
            current = head.group(1)
            continue
        m = _INSTRUCTION.match(line)
        if not m:
            continue
        name, shape, opcode = m.groups()
        computations[current].add(opcode)
        called = _CALLS.search(line)
        if called:
            calls[name] = called.group(1)
        target = _CUSTOM_CALL_TARGET.search(line)
        if target:  # GPU library calls: cuDNN convolutions, cuBLAS matmuls
            t = target.group(1).lower()
            opcode = (
                "convolution" if "conv" in t else "dot" if ("gemm" in t or "blas" in t) else opcode
            )
            computations[current].add(opcode)
        ops[name] = (opcode, shape, line)
    described = {}
    for name, (opcode, shape, _) in ops.items():
        inner = computations.get(calls.get(name, ""), set())
        heavy = sorted((inner | {opcode}) & set(_HEAVY_OPCODES))
        if "convolution" in heavy:
            category = "conv"
        elif "dot" in heavy:
            category = "dot"
        elif heavy:
            category = "reduce"
        else:
            category = "other"
        fused = f" [{', '.join(heavy)}]" if heavy and opcode == "fusion" else ""
        described[name] = (category, f"{opcode} {shape}{fused}")
    return described


def stylize_job(size: int, dtype: str) -> tuple[Callable[[], object], str]:
    params = adain_jax.init_params(jax.random.key(0))
    rng = np.random.default_rng(0)
    content = jnp.asarray(rng.random((1, size, size, 3), dtype=np.float32))
    style = jnp.asarray(rng.random((1, size, size, 3), dtype=np.float32))
    compute = DTYPES[dtype]
    hlo = adain_jax.stylize.lower(params, content, style, dtype=compute).compile().as_text()
    return lambda: adain_jax.stylize(params, content, style, dtype=compute), hlo


def train_job(batch: int, size: int, dtype: str) -> tuple[Callable[[], object], str]:
    run, compiled_hlo = train_bench.make_jax_step(dtype, batch, size)
    return run, compiled_hlo()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--job", choices=("stylize", "train"), default="stylize")
    parser.add_argument("--size", type=int, default=512, help="square px")
    parser.add_argument("--batch", type=int, default=8, help="train batch (pairs)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    parser.add_argument("--calls", type=int, default=5, help="profiled calls (after 2 warm-ups)")
    parser.add_argument("--top", type=int, default=25, help="ops listed")
    parser.add_argument("--save-trace", help="also write the raw .xplane.pb here")
    args = parser.parse_args(argv)
    if args.size < 9 or args.batch < 1 or args.calls < 1:
        sys.exit("op_profile: --size must be >= 9, --batch and --calls positive")
    if args.job == "stylize":
        fn, hlo = stylize_job(args.size, args.dtype)
        what = f"stylize 1x{args.size} px {args.dtype}"
    else:
        fn, hlo = train_job(args.batch, args.size, args.dtype)
        what = f"train step {args.batch}x{args.size} px {args.dtype}"
    for _ in range(2):
        jax.block_until_ready(fn())
    start = time.perf_counter()
    for _ in range(args.calls):
        jax.block_until_ready(fn())
    wall_ms = (time.perf_counter() - start) / args.calls * 1e3
    total, count = op_times(fn, args.calls, args.save_trace)
    described = describe_ops(hlo)
    op_ms = sum(total.values()) / args.calls / 1e6

    print(machine_line())
    print(f"{what}: {wall_ms:.3f} ms per call (wall), {op_ms:.3f} ms of ops per call\n")
    by_category: dict[str, float] = collections.Counter()
    for name, ns in total.items():
        by_category[described.get(name, ("other", ""))[0]] += ns
    print("| category | ms / call | share |")
    print("|---|---:|---:|")
    for category, ns in sorted(by_category.items(), key=lambda kv: -kv[1]):
        ms = ns / args.calls / 1e6
        print(f"| {category} | {ms:.3f} | {ms / op_ms:.1%} |")
    print("\n| op | ms / call | runs / call | share | what |")
    print("|---|---:|---:|---:|---|")
    for name, ns in sorted(total.items(), key=lambda kv: -kv[1])[: args.top]:
        ms = ns / args.calls / 1e6
        desc = described.get(name, ("", "?"))[1]
        print(f"| {name} | {ms:.3f} | {count[name] / args.calls:.3g} | {ms / op_ms:.1%} | {desc} |")


if __name__ == "__main__":
    main()
