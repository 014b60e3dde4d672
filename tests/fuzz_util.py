"""A small seeded mutation fuzzer: byte flips, truncations, insertions, deletions.

Reusable for any reader: ``for data in mutations(valid_bytes, n, seed): ...``
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

_INTERESTING = (b"\x00", b"\xff", b"\x7f", b"\x80", b"\x00\x00\x00\x80", b"\xff\xff\xff\xff")


def mutations(data: bytes, n: int, seed: int) -> Iterator[bytes]:
    """Yield ``n`` mutants of ``data``, the same ones for the same ``seed``.

    Each mutant applies 1-4 random edits: flip bits of a byte, overwrite with a
    boundary value (0, 0xff, 0x7f, 0x80, int32 min, -1), insert random bytes,
    delete a span, duplicate a span, or truncate.
    """
    rng = random.Random(seed)
    for _ in range(n):
        out = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            _mutate(out, rng)
        yield bytes(out)


def _mutate(out: bytearray, rng: random.Random) -> None:
    """Apply one random edit to ``out`` in place."""
    if not out:
        out.extend(rng.randbytes(rng.randint(1, 8)))
        return
    i = rng.randrange(len(out))
    kind = rng.randrange(6)
    if kind == 0:
        out[i] ^= 1 << rng.randrange(8)
    elif kind == 1:
        value = rng.choice(_INTERESTING)
        out[i : i + len(value)] = value
    elif kind == 2:
        out[i:i] = rng.randbytes(rng.randint(1, 16))
    elif kind == 3:
        del out[i : i + rng.randint(1, 64)]
    elif kind == 4:
        j = rng.randrange(len(out))
        out[i:i] = out[j : j + rng.randint(1, 64)]
    else:
        del out[i:]


def fuzz_readers(
    path: Path,
    data: bytes,
    readers: Sequence[Callable[[Path], object]],
    n: int,
    seed: int,
    error: type[Exception],
) -> dict[str, int]:
    """Write ``n`` mutants of ``data`` to ``path`` and read each with every reader: each
    read loads, or raises ``error`` with one line starting with the path, within 2 s;
    anything else fails the test. Returns how many reads loaded and how many were refused."""
    counts = {"loaded": 0, "refused": 0}
    for i, mutant in enumerate(mutations(data, n, seed)):
        path.write_bytes(mutant)
        for reader in readers:
            start = time.perf_counter()
            try:
                reader(path)
                counts["loaded"] += 1
            except error as e:
                assert str(e).startswith(f"{path}: ") and "\n" not in str(e), (i, str(e))
                counts["refused"] += 1
            except Exception as e:  # noqa: BLE001 - anything else is the bug being fuzzed for
                pytest.fail(f"mutant {i} (seed {seed}) raised {type(e).__name__}: {e}")
            assert time.perf_counter() - start < 2.0, f"mutant {i} (seed {seed}) was slow"
    return counts
