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

# Exit 0 if the lock is free (taking and dropping it), 1 naming the holder if it is not.
TAKE = """
import sys
from adain_jax.training.lock import WorkdirBusyError, WorkdirLock
try:
    WorkdirLock(sys.argv[1]).acquire()
except WorkdirBusyError as e:
    print(e)
    sys.exit(1)
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
    """Held, another process is refused; released (the holder still alive), it gets in."""
    take = [sys.executable, "-c", TAKE, str(tmp_path)]
    lock = WorkdirLock(tmp_path)
    lock.acquire()
    busy = subprocess.run(take, capture_output=True, text=True)
    assert busy.returncode == 1 and "already in use by pid" in busy.stdout, busy
    lock.release()
    free = subprocess.run(take, capture_output=True, text=True)
    assert free.returncode == 0, free
    with WorkdirLock(tmp_path) as again:  # and this process can take it back
        assert f"pid {os.getpid()}" in again.path.read_text()
