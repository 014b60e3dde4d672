"""glibc ``malloc`` settings that let XLA:CPU reuse its large buffers from step to step.

XLA:CPU (and the YNNPACK/Eigen kernels it calls) allocates every large buffer of a step anew with
``malloc`` and frees it at the end. With glibc's defaults each block over 32 MiB is a fresh
``mmap``: the kernel zero-fills every page on first touch and takes the pages back on ``free``. A
training step at batch 8 x 256 px touched ~10 GB of fresh pages that way (~2.6 million page
faults, ~5 s of kernel time per step on a 2-core machine; measured effect: README "Speed").

The settings serve every block from the one main heap and never shrink it, so a step reuses the
pages of the last one: ``MALLOC_MMAP_MAX_=0`` (no ``mmap`` blocks), ``MALLOC_ARENA_MAX=1`` (no
per-thread arenas: those are ``mmap``-ed heaps of at most 64 MiB, released when empty) and
``MALLOC_TRIM_THRESHOLD_=-1`` (never give the heap back). The process keeps its peak memory until
it exits, which suits a training process. glibc reads them once, at process start, and they only
work if set before any thread has allocated (numpy starts threads on import), hence a re-exec.
"""

from __future__ import annotations

import os
import platform
import sys

ENV_VAR = "ADAIN_JAX_MALLOC"
SETTINGS = {"MALLOC_MMAP_MAX_": "0", "MALLOC_ARENA_MAX": "1", "MALLOC_TRIM_THRESHOLD_": "-1"}


def wanted() -> bool:
    """True on Linux with glibc unless ``$ADAIN_JAX_MALLOC`` is ``default``."""
    if os.environ.get(ENV_VAR, "tuned") == "default":
        return False
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def reexec_with_tuned_malloc() -> None:
    """Re-run this very command (``sys.orig_argv``) with ``SETTINGS`` in the environment; does
    nothing when they are already set or ``wanted()`` is False. Call it first thing in an entry
    point: the process is replaced."""
    if wanted() and not tuned():
        reexec({**os.environ, **SETTINGS})


def tuned() -> bool:
    """True when this process runs with ``SETTINGS``."""
    return all(os.environ.get(k) == v for k, v in SETTINGS.items())


def reexec(env: dict[str, str]) -> None:
    """Replace this process by the same command (``sys.orig_argv``) run with ``env``."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
