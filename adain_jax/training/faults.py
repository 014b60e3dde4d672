"""How a training run ends when something goes wrong: exit statuses, write failures turned into
one line, and a bounded shutdown after SIGINT/SIGTERM/SIGHUP."""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import sys
import threading

# Exit statuses (README "Training"): the one table of every command, re-exported here.
from adain_jax.io.messages import (  # noqa: F401
    EXIT_BUSY,
    EXIT_INTERNAL,
    EXIT_IO,
    EXIT_NO_CHECKPOINT,
    EXIT_NONFINITE,
    EXIT_OK,
    EXIT_PEER_LOST,
    EXIT_SIGNAL,
    EXIT_USAGE,
    one_line,
    stop_signals,
)

STOP_TIMEOUT_ENV = "ADAIN_JAX_STOP_TIMEOUT"  # seconds from the first signal to a forced exit


def stop_timeout_s() -> float:
    """``$ADAIN_JAX_STOP_TIMEOUT`` (default 120 s): the bound on a signalled shutdown.

    Raises:
      ValueError: not a positive number of seconds (checked before training: the signal
        handler reads it again).
    """
    text = os.environ.get(STOP_TIMEOUT_ENV, "120")
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise ValueError(f"{STOP_TIMEOUT_ENV}={text[:40]!r}: expected a positive number of seconds")
    return value


class WriteFailed(Exception):
    """A file of the run could not be written; the message names it and the OS error."""


# tensorstore's (under orbax) OS error: '... Failed writing: "PATH": ... [os_error_code='28']'.
_TS_PATH = re.compile(r'Failed (?:writing|to write)[^"]*"([^"]+)"')
_TS_CODE = re.compile(r"os_error_code='(\d+)'")


def _one_line_os_error(e: BaseException) -> str:
    """``path: strerror`` of the first OS error in ``e``'s chain (a Python ``OSError`` or one
    reported by tensorstore), else ``e`` on one line."""
    seen = e
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            name = seen.filename or ""
            return f"{name}: {seen.strerror}" if name else seen.strerror
        code = _TS_CODE.search(str(seen))
        if code:
            path = _TS_PATH.search(str(seen))
            reason = os.strerror(int(code.group(1)))
            return f"{path.group(1)}: {reason}" if path else reason
        seen = seen.__cause__ or seen.__context__
    return one_line(e, 300)


@contextlib.contextmanager
def writing(what: str):
    """Turn any failure to write ``what`` into one ``WriteFailed`` line."""
    try:
        yield
    except (OSError, ValueError, RuntimeError) as e:  # orbax wraps OSErrors in the other two
        if not isinstance(e, OSError | ValueError) and is_peer_lost(e):
            raise  # a collective of the save failed: not the disk
        raise WriteFailed(f"cannot write {what} ({_one_line_os_error(e)})") from e


def is_peer_lost(error: BaseException) -> bool:
    """Whether ``error`` is a failed cross-process collective or runtime call of a multi-process
    run (another process died or was stopped): ``EXIT_PEER_LOST``."""
    import jax

    return jax.process_count() > 1 and isinstance(error, jax.errors.JaxRuntimeError)


class Stopper:
    """SIGINT/SIGTERM/SIGHUP (``stop_signals``) set a flag; the loop saves at the next step
    boundary and exits. A watchdog
    then ends the process after ``stop_timeout_s()`` even if the loop is stuck (a hung file
    system); a second signal ends it at once."""

    def __init__(self):
        self.signum: int | None = None
        self._previous = {}

    def __enter__(self) -> Stopper:
        for sig in stop_signals():
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:  # a second signal: stop waiting, die the default way
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        self.signum = signum
        name = signal.Signals(signum).name
        print(f"\n{name}: saving a checkpoint at the end of this step", file=sys.stderr)
        timeout = stop_timeout_s()

        def force_exit() -> None:
            print(
                f"error: {name}: not stopped after {timeout:g} s; exiting without saving",
                file=sys.stderr,
                flush=True,
            )
            os._exit(EXIT_SIGNAL[signum])

        watchdog = threading.Timer(timeout, force_exit)
        watchdog.daemon = True
        watchdog.start()

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
