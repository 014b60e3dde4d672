"""The one map from failures to exit statuses, used by every command: each prints a failure
as one line ``error: <line>`` on stderr (no traceback) and returns its status
(``adain_jax.io.messages``: 2 bad flags, 1 a failure while running, 130 interrupted; 143 and
129 stopped by SIGTERM and SIGHUP, which end a command the way Ctrl-C does: no temporary file
left behind).
Training adds its own statuses for its own failures (``adain_jax.cli.train``)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator

from adain_jax.io.messages import (
    EXIT_RUNTIME,
    EXIT_SIGNAL,
    EXIT_USAGE,
    UsageError,
    current_file,
    one_line,
    stop_signals,
)

__all__ = [
    "EXIT_RUNTIME",
    "EXIT_USAGE",
    "Stopped",
    "UsageError",
    "fail",
    "keep_interrupts",
    "run",
    "signals_as_interrupts",
    "warnings_as_lines",
]


def fail(error: BaseException | str, status: int) -> int:
    """Print ``error: <error on one line>`` (``one_line``) to stderr; returns ``status``."""
    print(f"error: {one_line(error)}", file=sys.stderr)
    return status


def warnings_as_lines() -> None:
    """Show each Python warning as one line ``warning: <text>`` on stderr, as the commands'
    own warnings read (not Python's file, line number and source line), once per process.
    A warning raised while a file is read (``messages.reading``: a library's, as Pillow's
    about a corrupt EXIF block) starts with that file's name."""
    shown = set()

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = one_line(str(message))
        where = current_file()
        if where is not None and where not in text:
            text = f"{where}: {text}"
        if text not in shown:
            shown.add(text)
            print(f"warning: {text}", file=file or sys.stderr)

    warnings.showwarning = show


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread as Ctrl-C raises ``KeyboardInterrupt``, so
    the same clean-up runs (``finally`` blocks remove temporary files)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise ``Stopped`` (an ignored SIGHUP stays ignored:
    ``nohup``); the previous handlers return on the way out. Off the main thread,
    where Python cannot set handlers, nothing changes."""

    def stop(signum, frame):
        raise Stopped(signum)

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in stop_signals():
            if sig != signal.SIGINT:  # already KeyboardInterrupt
                previous[sig] = signal.signal(sig, stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def keep_interrupts() -> None:
    """Make a Ctrl-C that lands in a garbage-collector callback (JAX registers one) interrupt
    the command: Python only reports ("Exception ignored in ...") an exception raised there,
    and the job would run on and exit 0. The signal is sent again, to land elsewhere. Installed
    once per process, however many commands run in it."""
    previous = sys.unraisablehook
    if getattr(previous, "keeps_interrupts", False):
        return

    def hook(unraisable) -> None:
        if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
            # A moment later, from another thread: raised here, it would be dropped again.
            signum = getattr(unraisable.exc_value, "signum", signal.SIGINT)
            again = threading.Timer(0.05, os.kill, (os.getpid(), signum))
            again.daemon = True
            again.start()
        else:
            previous(unraisable)

    hook.keeps_interrupts = True
    sys.unraisablehook = hook


def run(body: Callable[[], int], hint: str | None = None) -> int:
    """``body()``'s exit status, or the status of what it raised:

    - ``UsageError`` (a bad flag): ``EXIT_USAGE``;
    - ``OSError`` (a missing file), ``ValueError`` (``ImageError``, ``WeightsError``,
      ``CheckpointError``, ...), ``DownloadError``, a JAX runtime error (out of device
      memory) and ``MemoryError``: ``EXIT_RUNTIME``; ``hint`` (how to need less memory)
      follows the two out-of-memory lines;
    - ``KeyboardInterrupt``: 130; SIGTERM and SIGHUP (``signals_as_interrupts``): 143 and 129.
      Anything else is a bug: its traceback.
    """
    try:
        with signals_as_interrupts():
            return body()
    except UsageError as e:  # as raised: its text is one line, naming the flag
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, ValueError, RuntimeError) as e:
        jax = sys.modules.get("jax")  # never imports JAX: an error before it cannot be JAX's
        if jax is not None and isinstance(e, jax.errors.JaxRuntimeError):
            more = f" ({hint})" if hint else ""
            return fail(f"{one_line(e, 300)}{more}", EXIT_RUNTIME)
        if not isinstance(e, (OSError, ValueError)):
            from adain_jax.weights.download import DownloadError

            if not isinstance(e, DownloadError):
                raise  # another RuntimeError: a bug
        return fail(e, EXIT_RUNTIME)
    except MemoryError:
        more = f" ({hint}, or a lower ADAIN_JAX_MAX_PIXELS)" if hint else ""
        return fail(f"out of memory{more}", EXIT_RUNTIME)
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", signal.SIGINT)
        if signum == signal.SIGINT:
            return fail("interrupted", EXIT_SIGNAL[signum])
        return fail(f"stopped by {signal.Signals(signum).name}", EXIT_SIGNAL[signum])
