"""Atomic file writing (every file the project writes) and the bounded JSON reader.

A file is written under a temporary name in its destination directory and renamed into place
only when complete, so a crash, a full disk or a killed process never leaves a half-written
file; it then gets the permissions the umask gives an ordinary new file (``mkstemp`` alone
would leave it 0600). ``read_json_object``: the one reader of JSON files the package reads back
(``config.json``, safetensors headers), bounded in size and nesting, one error line each.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from adain_jax.io.messages import shown_path

MAX_JSON_BYTES = 16 << 20
MAX_JSON_DEPTH = 64  # a settings file or a header nests 2-3 levels


class JsonFileError(ValueError):
    """A JSON file (or header) that is not a readable, bounded JSON object."""


def _umask() -> int:
    # os.umask can only be read by setting it; restore it at once.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def require_file(path: str | os.PathLike, expected: str = "a file") -> str:
    """``path`` as a string once it names a regular file (links followed), else one line
    naming it: ``FileNotFoundError`` (``"no such file"``), ``IsADirectoryError`` (``"is a
    directory, expected <expected>"``) or ``OSError`` (a named pipe, socket or device, which
    reading could block on or never end)."""
    path = os.fspath(path)
    if os.path.isfile(path):
        return path
    shown = shown_path(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{shown}: is a directory, expected {expected}")
    if os.path.exists(path):
        raise OSError(f"{shown}: not a regular file (a named pipe, socket or device)")
    if os.path.islink(path):
        raise FileNotFoundError(f"{shown}: a symbolic link to nothing (a loop or a missing target)")
    raise FileNotFoundError(f"{shown}: no such file")


def folder_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` is not a folder to read (``"no such directory"``, ``"not a directory"``),
    or ``None`` when it is one."""
    if os.path.isdir(path):
        return None
    return "not a directory" if os.path.exists(path) else "no such directory"


def unwritable_folder(folder: str | os.PathLike) -> Path | None:
    """What stops files being made in ``folder``: the folder, or its nearest existing ancestor
    when it is still to be made, if this process may not create files there (``os.access``:
    permissions, a read-only mount); else ``None``. Nothing is written; a write can still fail
    (a full disk)."""
    folder = Path(os.path.abspath(folder))
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        return folder
    return None


def temp_path_beside(path: str | os.PathLike, suffix: str = ".tmp") -> Path:
    """Create an empty temporary file in ``path``'s directory (made if missing); its name starts
    with ``.<name>.`` (hidden, recognisable; at most 100 bytes of the name) and ends with
    ``suffix``, an extension libraries may look at (e.g. ``.mp4``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.name  # shortened, so a final name of up to 255 bytes has a temporary one
    while len(os.fsencode(name)) > 100:
        name = name[:-1]
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{name}.", suffix=suffix)
    except OSError as e:  # named after the folder: the temporary name means nothing to a user
        raise type(e)(e.errno, e.strerror, str(path.parent)) from None
    os.close(fd)
    return Path(tmp)


def commit(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Give ``tmp`` the umask's permissions and rename it onto ``path`` (atomic).

    Raises:
      OSError: the rename failed (``path`` is a directory, ...), naming ``path``, not ``tmp``.
    """
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        os.replace(tmp, path)
    except OSError as e:
        raise type(e)(e.errno, e.strerror, str(path)) from None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on an exception it is
    removed and ``path`` is untouched."""
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


def _depth(text: str) -> int:
    """The deepest bracket nesting of JSON ``text`` (brackets inside strings skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def parse_json_object(raw: bytes | str, where: str) -> dict:
    """``raw`` parsed as a JSON object, nested at most ``MAX_JSON_DEPTH`` deep.

    Raises:
      JsonFileError: ``"<where>: <problem>"`` on one line: not UTF-8 or not JSON, nested too
        deep (checked before parsing: the parser would recurse), or not an object at the top.
    """
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise JsonFileError(f"{where}: not JSON (not UTF-8 text)") from None
    depth = _depth(text) if text.count("[") + text.count("{") > MAX_JSON_DEPTH else 0
    if depth > MAX_JSON_DEPTH:
        raise JsonFileError(f"{where}: JSON nested {depth} deep (at most {MAX_JSON_DEPTH})")
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError, MemoryError) as e:
        reason = e.msg if isinstance(e, json.JSONDecodeError) else type(e).__name__
        raise JsonFileError(f"{where}: not JSON ({reason})") from None
    if not isinstance(value, dict):
        raise JsonFileError(f"{where}: JSON {type(value).__name__}, expected an object")
    return value


def read_json_object(path: str | os.PathLike, max_bytes: int = MAX_JSON_BYTES) -> dict:
    """``parse_json_object`` of the file ``path``, at most ``max_bytes`` long.

    Raises:
      OSError: the file cannot be read.
      JsonFileError: too large, or not a bounded JSON object (naming the file).
    """
    path = Path(path)
    with open(path, "rb") as f:
        raw = f.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise JsonFileError(f"{path}: over {max_bytes} bytes, not a settings file")
    return parse_json_object(raw, str(path))
