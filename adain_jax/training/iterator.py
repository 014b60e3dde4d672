"""The checkpointable reader of the input pipeline (``training.data`` builds it).

``PairIterator`` reads the batched grain dataset with ``.to_iter_dataset().mp_prefetch``; every
batch is a pure function of its index, so the iterator state is just the number of batches
consumed (``get_state``), which restores exactly, also into a pipeline with a different number of
workers or processes.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from typing import Any

import grain
import numpy as np

from adain_jax.training.sources import DataError, warn_unreadable

STATE_VERSION = 1


class PairIterator(Iterator[dict]):
    """Endless iterator of ``{"content", "style"}`` batches, checkpointable.

    Each batch: ``np.uint8 [B, crop, crop, 3]`` arrays (RGB, [0, 255]), ``B`` the per-process
    batch. ``get_state()`` returns a small JSON-able dict; ``set_state`` continues with exactly
    the batches an uninterrupted iterator would yield (with any ``num_workers``).

    Unreadable files are replaced by the next readable one in the shuffled order, with one
    ``BadImageWarning`` per file (per process that runs this iterator, whatever
    ``num_workers``). ``skipped`` counts the samples of the batches yielded so far whose own
    record was unreadable and replaced (exact, independent of ``num_workers``, restored by
    ``set_state``); ``bad_files`` holds the distinct bad names seen.
    """

    def __init__(
        self,
        batched: grain.MapDataset,
        descriptions: dict[str, Any],
        *,
        num_workers: int = 0,
        prefetch: int = 2,
    ) -> None:
        self._batched = batched
        self._num_workers, self._prefetch = num_workers, prefetch
        self._descriptions = descriptions
        self._next_batch = 0
        self._iterator = None
        self.skipped = 0
        self.bad_files: set[str] = set()
        self._lock = threading.Lock()

    def _start(self) -> None:
        ds = self._batched[self._next_batch :]
        read = grain.ReadOptions(num_threads=self._prefetch, prefetch_buffer_size=self._prefetch)
        it_ds = ds.to_iter_dataset(read)
        if self._num_workers > 0:
            from absl import flags  # grain's worker processes read absl flags (grain issue 1355)

            if not flags.FLAGS.is_parsed():
                flags.FLAGS.mark_as_parsed()
            it_ds = it_ds.mp_prefetch(
                grain.MultiprocessingOptions(
                    num_workers=self._num_workers, per_worker_buffer_size=self._prefetch
                )
            )
        self._iterator = iter(it_ds)

    def __iter__(self) -> PairIterator:
        return self

    def __next__(self) -> dict:
        with self._lock:
            if self._iterator is None:
                self._start()
            batch = next(self._iterator)
            self._next_batch += 1
            self.skipped += batch["replaced"]
            for name, reason in batch["bad"]:
                if name not in self.bad_files:
                    self.bad_files.add(name)
                    warn_unreadable(name, reason)
            # Plain arrays: workers hand over shared-memory views, which must not outlive it.
            return {"content": np.array(batch["content"]), "style": np.array(batch["style"])}

    def get_state(self) -> dict:
        """JSON-able state: batches consumed, skip count and the sources' description.

        ``next_batch`` is the same on every process of a multi-host run (all step in lockstep),
        so process 0's state restores every process (``skipped`` is then process 0's count).
        With orbax: ``ocp.args.JsonSave(it.get_state())`` / ``ocp.args.JsonRestore()``, then
        ``it.set_state(restored)``.
        """
        return {
            "version": STATE_VERSION,
            "next_batch": self._next_batch,
            "skipped": self.skipped,
            **self._descriptions,
        }

    def set_state(self, state: dict) -> None:
        """Continue after the batch recorded in ``state`` (from ``get_state``); raises
        ``DataError`` when ``state`` is not one; warns when the sources' description differs."""
        if state.get("version") != STATE_VERSION or "next_batch" not in state:
            raise DataError(f"not a PairIterator state (version {STATE_VERSION}): {state!r}")
        changed = [
            f"{key} {state[key]!r} -> {value!r}"
            for key, value in self._descriptions.items()
            if key in state and state[key] != value
        ]
        if changed:
            warnings.warn(
                "the data differs from when the iterator state was saved; the batch order "
                "will not continue the earlier run exactly: " + "; ".join(changed),
                stacklevel=2,
            )
        with self._lock:
            self.close()
            self._next_batch = int(state["next_batch"])
            self.skipped = int(state.get("skipped", 0))

    def close(self) -> None:
        """Stop worker processes (also done when the iterator is garbage-collected)."""
        iterator, self._iterator = self._iterator, None
        if iterator is not None and hasattr(iterator, "close"):
            iterator.close()

    def __enter__(self) -> PairIterator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
