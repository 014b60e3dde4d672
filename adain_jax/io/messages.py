"""How a failure reaches the user: one line ``error: <line>`` and an exit status, the same
for every command (``adain_jax.cli.exits`` maps exceptions to the statuses)."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

# Exit statuses of every command (README): done; a failure while running (a bad image or
# weight file, a failed download; in training a non-finite loss); bad flags or inputs.
# Training's own: no checkpoint restores, a lost process of a multi-process run, an
# internal error (a bug), a failed read or write, another run holds the workdir, a signal.
EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2
EXIT_NONFINITE = EXIT_RUNTIME
EXIT_NO_CHECKPOINT, EXIT_PEER_LOST, EXIT_INTERNAL, EXIT_IO, EXIT_BUSY = 65, 69, 70, 74, 75
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}
if hasattr(signal, "SIGHUP"):  # not on Windows; a closed terminal
    EXIT_SIGNAL[signal.SIGHUP] = 129


def stop_signals() -> list[int]:
    """The signals that stop a command (``EXIT_SIGNAL``'s), less SIGHUP where this process was
    started ignoring it (``nohup``: closing the terminal must not stop the job)."""
    hup = getattr(signal, "SIGHUP", None)
    return [s for s in EXIT_SIGNAL if s != hup or signal.getsignal(s) is not signal.SIG_IGN]


class UsageError(Exception):
    """Bad command-line flags or inputs (``EXIT_USAGE``); the message names the flag."""


_reading = threading.local()


@contextlib.contextmanager
def reading(name: str) -> Iterator[None]:
    """While inside, ``current_file()`` in this thread is ``name`` (a ``shown_path``): the file
    a library's warnings raised meanwhile are about (Pillow's "Corrupt EXIF data")."""
    before = getattr(_reading, "name", None)
    _reading.name = name
    try:
        yield
    finally:
        _reading.name = before


def current_file() -> str | None:
    """The file this thread is ``reading``, or ``None``."""
    return getattr(_reading, "name", None)


def path_flag(text: str) -> str:
    """The argparse ``type`` of every flag naming a file or folder: ``text`` as given, refused
    when empty (``--workdir "$UNSET"``), which ``Path`` would read as the current directory."""
    if not text:
        raise argparse.ArgumentTypeError("empty path")
    return text


def one_line(error: BaseException | str, limit: int | None = None) -> str:
    """``error`` as a single line of at most ``limit`` characters.

    An ``OSError`` with a file name reads ``"<file>: <reason>"`` (not Python's ``"[Errno 2] ...:
    '<file>'"``); an exception without text gives its type name; whitespace runs (newlines of
    multi-line messages) become one space.
    """
    if isinstance(error, OSError) and error.filename and error.strerror:
        text = f"{error.filename}: {error.strerror}"
    else:
        text = str(error) or (type(error).__name__ if isinstance(error, BaseException) else "")
    text = " ".join(text.split())
    return text if limit is None else text[:limit]


def shown_path(path: str | os.PathLike) -> str:
    """``path`` for a message line: control characters (a newline in a file name, an
    escape sequence) written as Python escapes (``\\n``, ``\\x1b``), so one file is
    always one line and cannot rewrite the terminal; other text as it is."""
    text = os.fsdecode(path)
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def describe(value: Any, limit: int = 40) -> str:
    """An untrusted value named for a message without ``repr``: an int of up to 12 digits or a
    string of up to ``limit`` characters as itself, anything else by type and length. (The repr
    of a memo-shared nested list from a pickle of a few hundred bytes has 2^depth elements; a
    huge int's ``str`` is quadratic.)"""
    if type(value) is int and -(10**12) < value < 10**12:
        return str(value)
    if isinstance(value, str | bytes) and len(value) <= limit:
        return shown_path(repr(value)) if isinstance(value, str) else repr(value)
    kind = type(value).__name__
    try:
        return f"a {kind} of length {len(value)}"
    except TypeError:
        return f"a {kind}"
