"""Running this checkout's commands in a child process, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def checkout_env() -> dict[str, str]:
    """The test's environment with this checkout first on the import path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python ARGS...`` (``-m adain_jax ...`` or a script) in ``cwd``, output captured."""
    cmd = [sys.executable, *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=checkout_env())


def convert_refuses(hostile: Path, tmp_path: Path) -> str:
    """``adain-jax convert --decoder HOSTILE`` fails with status 1 and one ``error:`` line
    naming the file, without a traceback or an output; returns that line."""
    out = tmp_path / "out"
    proc = run(
        ["-m", "adain_jax", "convert", "--decoder", str(hostile), "--out", str(out)], tmp_path
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith(f"error: {hostile}") and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists() or not any(out.iterdir())
    return proc.stderr
