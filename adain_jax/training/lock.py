"""One run per workdir: an advisory lock held for the life of the process.

``train.py`` takes an exclusive ``fcntl`` lock on ``<workdir>/.lock`` before it touches anything
else in the workdir. The kernel releases the lock when the process ends in any way (exit, crash,
``kill -9``), so a dead run never leaves a stale lock; the pid and host written in the file only
serve the message.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

LOCK_FILE = ".lock"


class WorkdirBusyError(RuntimeError):
    """Another live process holds the workdir's lock."""


class WorkdirLock:
    """``with WorkdirLock(workdir):`` holds the lock (or raises ``WorkdirBusyError``)."""

    def __init__(self, workdir: str | os.PathLike):
        self.path = Path(workdir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock without waiting; raises ``WorkdirBusyError`` naming the holder (pid, host,
        start time), ``OSError`` when the lock file cannot be created."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 256).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise WorkdirBusyError(
                f"{self.path.parent}: already in use by {holder}; "
                "one run per workdir (use another --workdir, or stop that run)"
            ) from None
        os.ftruncate(fd, 0)
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {started}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (the file stays; it is harmless without a holder)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WorkdirLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
