"""Shared helpers of the benchmark scripts: machine description, timing, random params."""

from __future__ import annotations

import functools
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence

import jax
import numpy as np

from adain_jax.cli import malloc_tuning
from adain_jax.controls import transfer


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


def stylize_fn(conv_impl: str = "direct") -> Callable:
    """``adain_jax.stylize`` with the convolution formulation ``conv_impl`` (a name of
    ``adain_jax.nn.conv.IMPLEMENTATIONS``) in every layer; jitted."""
    return functools.partial(transfer.stylize, conv_impl=conv_impl)


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
