"""One run per workdir: the lock refuses a second holder and dies with its process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from adain_jax.training.lock import WorkdirBusyError, WorkdirLock

HOLD = """
import sys, time
from adain_jax.training.lock import WorkdirLock
lock = WorkdirLock(sys.argv[1]); lock.acquire()
print("locked", flush=True)
time.sleep(60)
"""


def _hold_in_child(workdir) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(workdir)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_holder_is_refused_naming_the_first(tmp_path):
    proc = _hold_in_child(tmp_path)
    try:
        with pytest.raises(WorkdirBusyError, match=f"pid {proc.pid} on "):
            WorkdirLock(tmp_path).acquire()
    finally:
        proc.kill()
        proc.wait()


def test_lock_of_a_killed_process_is_free_at_once(tmp_path):
    proc = _hold_in_child(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    start = time.monotonic()
    with WorkdirLock(tmp_path) as lock:
        assert f"pid {os.getpid()}" in lock.path.read_text()
    assert time.monotonic() - start < 1.0


def test_release_lets_the_next_run_in(tmp_path):
    with WorkdirLock(tmp_path):
        pass
    with WorkdirLock(tmp_path):
        pass
