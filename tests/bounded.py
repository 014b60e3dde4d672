"""Run a snippet in a child process under a memory cap and a timeout, and measure it.

Hostile-input tests run the reader on a bomb here: if a bound regresses, the child
fails on its address-space cap (``MemoryError``) or is killed at the timeout, instead
of taking the test machine's memory or hanging the suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Peak RSS from VmHWM: the child's own address space (``ru_maxrss`` would include the
# parent's RSS at fork time).
_REPORT = """
import json as _json
_peak = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print("@@" + _json.dumps({"result": result, "peak_mb": int(_peak) / 1024}))
"""


def run_bounded(
    code: str, *, mem_mb: int = 3072, timeout_s: float = 60, env: dict | None = None
) -> dict:
    """Run ``code`` (which sets ``result`` to something JSON-able) in a fresh Python.

    The child's address space is capped at ``mem_mb`` MiB (``RLIMIT_AS``; importing
    JAX takes ~1 GiB of it) and it is killed after ``timeout_s`` seconds.

    Returns:
      ``{"result", "peak_mb" (the child's peak RSS), "seconds"}``.

    Raises:
      AssertionError: the child failed, was killed or printed no result (with its stderr).
    """
    limit = mem_mb << 20
    # The child caps itself first thing (no preexec_fn: forking a JAX process warns).
    cap = f"import resource\nresource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))\n"
    child_env = {**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})}
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-c", cap + textwrap.dedent(code) + _REPORT],
            cwd=ROOT,
            env=child_env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        raise AssertionError(f"still running after {timeout_s} s (not bounded)") from None
    seconds = time.perf_counter() - start
    lines = [line for line in done.stdout.splitlines() if line.startswith("@@")]
    assert done.returncode == 0 and lines, (
        f"child failed ({done.returncode}): {done.stderr[-3000:]}"
    )
    report = json.loads(lines[-1][2:])
    return {**report, "seconds": seconds}
