"""The persistent XLA compilation cache that every command turns on (``enable()``, once its flags
are checked, before it compiles anything): compiled executables are kept in
``$ADAIN_JAX_CACHE/xla`` (``download.cache_dir()/xla``), so a second process that compiles the
same computation (same shapes, dtypes, flags, jax version and device) loads it instead.

``$ADAIN_JAX_XLA_CACHE``: ``off`` (or ``0``, ``false``, ``no``) turns the cache off; a directory
replaces the default one. ``$JAX_COMPILATION_CACHE_DIR``, when set, wins: JAX's own cache is used
as configured.

Safety: entries are written to a temporary file and renamed into place, so a concurrent process
reads either nothing or a whole entry, and two processes writing the same key both succeed (the
last rename wins; the bytes are the same computation). A cache that cannot be created, read or
written (a full disk, a read-only directory) is one ``warning:`` line on stderr, once per process;
the command goes on compiling as if there were no cache. Uses JAX's cache hooks
(``jax._src.compilation_cache``); where they are missing (another jax version), JAX's own file
cache is configured instead.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

CACHE_ENV = "ADAIN_JAX_XLA_CACHE"
JAX_ENV = "JAX_COMPILATION_CACHE_DIR"
OFF_VALUES = ("off", "0", "false", "no")
SUBDIR = "xla"
# Computations that compile faster than this are not written (JAX's default is 1 s, which on a
# fast machine keeps the small pre- and post-processing calls out); $ADAIN_JAX_MIN_COMPILE_S
# overrides it (tests: 0).
MIN_COMPILE_S = 0.05
MIN_COMPILE_ENV = "ADAIN_JAX_MIN_COMPILE_S"
_SUFFIX = "-cache"  # the file names of JAX's own LRU cache: the two can share a folder

_lock = threading.Lock()
_enabled: Path | None = None
_warned: set[str] = set()


def cache_path() -> Path | None:
    """The directory the cache would use, or ``None`` when it is turned off."""
    value = os.environ.get(CACHE_ENV, "").strip()
    if value.lower() in OFF_VALUES:
        return None
    if value:
        return Path(value).expanduser()
    from adain_jax.weights.download import cache_dir

    return cache_dir() / SUBDIR


def warn(message: str) -> None:
    """One ``warning:`` line on stderr, the first time the cache fails in this process."""
    if _warned:
        return
    _warned.add(message)
    print(
        f"warning: {message} (compiling without the cache; {CACHE_ENV}=off turns it off)",
        file=sys.stderr,
        flush=True,
    )


def _reason(e: OSError) -> str:
    return e.strerror or type(e).__name__


class FileCache:
    """JAX's cache interface (``get``, ``put``, ``clear``) over one directory, written atomically
    (temporary file + rename) and never raising on an I/O error."""

    def __init__(self, path: Path):
        self._path = path
        self.writable = True

    def _entry(self, key: str) -> Path:
        return self._path / f"{key}{_SUFFIX}"

    def get(self, key: str) -> bytes | None:
        """The entry's bytes, or ``None`` (missing or unreadable: then it compiles)."""
        try:
            return self._entry(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            warn(f"cannot read the compilation cache {self._path}: {_reason(e)}")
            return None

    def put(self, key: str, value: bytes) -> None:
        """Write an entry atomically; after a failed write, stop writing (one warning)."""
        if not self.writable:
            return
        target = self._entry(key)
        tmp = self._path / f".{key}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(value)
            os.replace(tmp, target)
        except OSError as e:
            self.writable = False
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            warn(f"cannot write the compilation cache {self._path}: {_reason(e)}")

    def clear(self) -> None:
        """Remove every entry."""
        for entry in self._path.glob(f"*{_SUFFIX}"):
            entry.unlink(missing_ok=True)


def enable() -> Path | None:
    """Turn the persistent cache on (once per process); returns its directory, or ``None`` when
    it is off or cannot be used (one warning). Imports JAX."""
    global _enabled
    with _lock:
        if _enabled is not None:
            return _enabled
        import jax

        if os.environ.get(JAX_ENV):  # the user's own JAX cache settings
            _enabled = Path(os.environ[JAX_ENV])
            return _enabled
        path = cache_path()
        if path is None:
            return None
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            warn(f"cannot create the compilation cache {path}: {_reason(e)}")
            return None
        jax.config.update("jax_compilation_cache_dir", str(path))
        min_s = float(os.environ.get(MIN_COMPILE_ENV) or MIN_COMPILE_S)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", min_s)
        _install(FileCache(path))
        _enabled = path
        return path


def _install(cache: FileCache) -> None:
    """Make ``cache`` JAX's persistent cache (else JAX's own cache serves the folder)."""
    try:
        from jax._src import compilation_cache as cc
    except ImportError:
        return
    hooks = ("_cache", "_cache_initialized", "_cache_initialized_mutex")
    if not all(hasattr(cc, n) for n in hooks):
        return
    with cc._cache_initialized_mutex:
        if cc._cache is None:
            cc._cache = cache
            cc._cache_initialized = True
