"""Shared helpers of the benchmark scripts: machine description, timing, random params."""

from __future__ import annotations

import functools
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from adain_jax.cli import malloc_tuning
from adain_jax.nn import forward, ops
from benchmarks import conv_formulations


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_line() -> str:
    """One line naming the JAX device, the CPU, its core count and the malloc settings."""
    dev = jax.devices()[0]
    return (
        f"device: {dev.platform} ({dev.device_kind}) x{jax.device_count()}; "
        f"CPU: {cpu_model()}, {os.cpu_count()} cores; jax {jax.__version__}; "
        f"malloc: {malloc_mode()}"
    )


def malloc_mode() -> str:
    """``tuned`` when this process runs with ``adain_jax.cli.malloc_tuning.SETTINGS``, else
    ``default``."""
    return "tuned" if malloc_tuning.tuned() else "default"


def add_malloc_flag(parser, default: str) -> None:
    """``--malloc {tuned,default}``: glibc malloc settings of the whole process (both sides of
    a comparison), see ``adain_jax.cli.malloc_tuning``."""
    parser.add_argument(
        "--malloc",
        choices=("tuned", "default"),
        default=default,
        help="glibc malloc settings for this whole process (adain_jax.cli.malloc_tuning; "
        f"train.py runs tuned); default {default}",
    )


def apply_malloc_flag(mode: str) -> None:
    """Re-run this command with the ``--malloc`` settings (replaces the process) unless
    they are already in force."""
    if mode == malloc_mode():
        return
    if mode == "tuned":
        if not malloc_tuning.wanted():
            sys.exit("--malloc tuned: needs Linux with glibc")
        malloc_tuning.reexec({**os.environ, **malloc_tuning.SETTINGS})
    malloc_tuning.reexec({k: v for k, v in os.environ.items() if k not in malloc_tuning.SETTINGS})


def parse_list(text: str, kind: Callable, flag: str) -> list:
    """Comma-separated values of ``flag``; a bad value exits with one line on stderr."""
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except (ValueError, KeyError) as e:
        sys.exit(f"{flag}: cannot parse {text!r} ({e})")
    if not values:
        sys.exit(f"{flag}: empty list")
    return values


def stylize_fn(conv: str = "direct") -> Callable:
    """``adain_jax.stylize``'s computation, jitted, with the convolution formulation ``conv``
    (a name of ``benchmarks.conv_formulations.FORMULATIONS``) in every layer."""
    impl = conv_formulations.conv_impl(conv)

    @functools.partial(jax.jit, static_argnames=("dtype",))
    def stylize(params, content, style, alpha=1.0, *, dtype=jnp.float32):
        height, width = content.shape[1:3]
        cf = forward.encode(params, content, dtype=dtype, conv_impl=impl).relu4_1
        sf = forward.encode(params, style, dtype=dtype, conv_impl=impl).relu4_1
        target = ops.blend(cf, ops.adain(cf, sf), alpha)
        image = forward.decode(params, target, dtype=dtype, conv_impl=impl)
        return jnp.clip(image[:, :height, :width], 0.0, 1.0)

    return stylize


def time_calls(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each zero-argument function, calls interleaved round-robin.

    Interleaving spreads the noise of a shared machine evenly over the
    contenders; report medians (or minimums) per function.
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(fn())
            times[name].append(time.perf_counter() - start)
    return times


def format_ms(seconds: float) -> str:
    """Milliseconds, 3 decimals under 10 ms, 1 above."""
    ms = seconds * 1e3
    return f"{ms:.3f}" if ms < 10 else f"{ms:.1f}"


def median(values: Sequence[float]) -> float:
    return float(np.median(np.asarray(values)))
