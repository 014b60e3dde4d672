"""Download files once into a cache, atomically, with a progress bar and integrity checks."""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from adain_jax.io import files

CACHE_ENV = "ADAIN_JAX_CACHE"
_CHUNK = 1 << 20
# Larger than any published weight file (torchvision's VGG-19: 548 MB): a server that sends more
# (or announces more) is stopped before it fills the disk.
MAX_DOWNLOAD_BYTES = 1 << 30


class DownloadError(RuntimeError):
    """A download that failed or produced a file that did not pass its check.

    ``reason`` is what went wrong; the message may add a ``hint`` (how to work offline), worded
    by each caller for its own users (API arguments or flags). ``unreachable``: the server could
    not be reached at all (no network, refused, DNS, timeout), not a wrong answer (HTTP error,
    bad digest).
    """

    def __init__(self, reason: str, hint: str = "", *, unreachable: bool = False):
        super().__init__(f"{reason}; {hint}" if hint else reason)
        self.reason = reason
        self.unreachable = unreachable

    def with_hint(self, hint: str) -> DownloadError:
        """The same error with ``hint`` in place of any earlier one."""
        return DownloadError(self.reason, hint, unreachable=self.unreachable)


def cache_dir() -> Path:
    """``$ADAIN_JAX_CACHE``, else ``$XDG_CACHE_HOME/adain_jax``, else ``~/.cache/adain_jax``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "adain_jax"


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    sha256_prefix: str | None = None,
    validate: Callable[[Path], object] | None = None,
    progress: bool = True,
    timeout_s: float = 30.0,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
) -> Path:
    """Return ``dest``, downloading ``url`` to it first if it is not there yet.

    The body goes to a temporary file beside ``dest`` and is renamed into place only after it is
    complete and has passed its checks, so an interrupted or corrupt download never leaves a
    file at ``dest``.

    Args:
      url: http(s) or file URL.
      dest: final path in the cache.
      sha256: the file's full expected sha256 (hex), checked before ``validate`` runs, so a
        file that does not match is never parsed.
      sha256_prefix: expected leading hex digits of the file's sha256.
      validate: called with the temporary path; raises if the content is bad (its return value
        is ignored).
      progress: show a tqdm bar (bytes) on stderr.
      timeout_s: socket timeout in seconds.
      max_bytes: the largest body accepted, announced (``Content-Length``) or received.

    Raises:
      DownloadError: network failure, short or oversized body, or a failed check.
    """
    dest = Path(dest)
    if dest.is_file():
        return dest
    tmp = files.temp_path_beside(dest, suffix=".part")
    try:
        with open(tmp, "wb") as out:
            _download(url, out, progress, timeout_s, dest.name, max_bytes)
        if sha256 is not None or sha256_prefix is not None:
            digest = sha256_of(tmp)
        if sha256 is not None and digest != sha256.lower():
            raise DownloadError(
                f"{url}: sha256 {digest} does not match the expected {sha256.lower()}"
                " (corrupt or substituted download; deleted, not parsed)"
            )
        if sha256_prefix is not None and not digest.startswith(sha256_prefix):
            raise DownloadError(
                f"{url}: sha256 {digest[:12]}... does not start with {sha256_prefix}"
                " (corrupt download)"
            )
        if validate is not None:
            try:
                validate(tmp)
            except Exception as e:  # the validator names what is wrong
                raise DownloadError(f"{url}: downloaded file is not valid: {e}") from None
        files.commit(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _download(url: str, out, progress: bool, timeout_s: float, label: str, max_bytes: int) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "adain-jax"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            total = response.headers.get("Content-Length")
            total = int(total) if total is not None else None
            if total is not None and total > max_bytes:
                raise DownloadError(
                    f"{url}: announces {total} bytes, over the {max_bytes}-byte bound"
                )
            received = 0
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"downloading {label}",
                disable=not progress,
            ) as bar:
                while chunk := response.read(_CHUNK):
                    received += len(chunk)
                    if received > max_bytes:
                        raise DownloadError(f"{url}: over the {max_bytes}-byte bound (stopped)")
                    out.write(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as e:
        raise DownloadError(f"could not download {url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as e:
        # HTTPException: e.g. IncompleteRead of a chunked body cut short.
        reason = getattr(e, "reason", None) or e
        # No answer at all: refused, no route or name, timed out (not a disk error).
        unreachable = isinstance(e, (TimeoutError, ConnectionError)) or (
            isinstance(e, urllib.error.URLError) and isinstance(reason, OSError)
        )
        raise DownloadError(
            f"could not download {url}: {reason}", unreachable=unreachable
        ) from None
    if total is not None and received != total:
        raise DownloadError(f"{url}: got {received} of {total} bytes (connection dropped)")
