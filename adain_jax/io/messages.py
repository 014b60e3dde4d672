"""One-line error messages for users: every command prints failures as ``error: <line>``."""

from __future__ import annotations


def one_line(error: BaseException | str, limit: int | None = None) -> str:
    """``error`` as a single line of at most ``limit`` characters.

    An ``OSError`` with a file name reads ``"<file>: <reason>"`` (not Python's
    ``"[Errno 2] ...: '<file>'"``); an exception without text gives its type name;
    whitespace runs (newlines of multi-line messages) become one space.
    """
    if isinstance(error, OSError) and error.filename and error.strerror:
        text = f"{error.filename}: {error.strerror}"
    else:
        text = str(error) or (type(error).__name__ if isinstance(error, BaseException) else "")
    text = " ".join(text.split())
    return text if limit is None else text[:limit]
