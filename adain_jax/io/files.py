"""Atomic file writing: every file the project writes goes through here.

A file is written under a temporary name in its destination directory and
renamed into place only when complete, so a crash, a full disk or a killed
process never leaves a half-written file at the destination. The finished
file gets the permissions the umask gives an ordinary new file (``mkstemp``
alone would leave it owner-only, 0600).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def _umask() -> int:
    # os.umask can only be read by setting it; restore it at once.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temp_path_beside(path: str | os.PathLike, suffix: str = ".tmp") -> Path:
    """Create an empty temporary file in ``path``'s directory (made if missing).

    The name starts with ``.<name>.`` so that it is hidden and recognisable;
    ``suffix`` keeps an extension libraries may look at (e.g. ``.mp4``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    return Path(tmp)


def commit(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Give ``tmp`` the umask's permissions and rename it onto ``path`` (atomic)."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``.

    On an exception the temporary file is removed and ``path`` is untouched.
    """
    tmp = temp_path_beside(path, suffix)
    try:
        yield tmp
        commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """``open`` a temporary file for writing; on success it replaces ``path``."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as f:
        yield f
