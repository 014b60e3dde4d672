"""Training input pipeline: endless, shuffled content/style image pairs (grain).

Each stream (content, style) is built as::

    grain.MapDataset.range(num_records)
        .seed(stream_seed).shuffle().repeat()         # per-epoch reshuffle, forever
    -> decode (Pillow; a bad file is replaced by the next good one in the shuffled order)
    -> .random_map(random crop)                       # rng from (seed, index): reproducible

and the two streams are zipped, each process keeps its rows of every global batch
(``_ProcessRows``) and batches them; ``training.iterator.PairIterator`` reads them
(checkpointable: every batch is a pure function of its index, so the output is identical for any
``num_workers``).

Multi-process runs: the GLOBAL batch at every step is the same whatever the number of processes.
Global batch ``b`` holds the pairs ``b * B ... (b + 1) * B - 1`` of the one zipped stream
(``B = batch_size``); process ``k`` of ``n`` decodes only rows ``k * B / n ... (k + 1) * B / n - 1``
of it. Every process sees every file (the shuffle and crops depend on the seed only), so a run may
resume with a different number of processes.

Sources and the crop (``training.sources``): a folder (``io.images.find_images``: recursive, the 8
image extensions) or ``"tfds:NAME[:SPLIT]"`` (the ``tfds`` extra). Pixels are read by
``adain_jax.io.images`` exactly as for inference (crops stored with ``images.to_uint8``), except
that ``jpeg_draft`` lets large JPEGs decode at 1/2, 1/4 or 1/8 scale.

Usage::

    cfg = PipelineConfig(batch_size=8, num_workers=default_num_workers())
    with make_pair_iterator("tfds:coco/2017:train", "wikiart/", cfg) as it:
        it.set_state(saved)                 # optional: resume
        batch = next(it)                    # {"content", "style"}: uint8 [B, 256, 256, 3]
        saved = it.get_state()              # JSON-able dict, store with the checkpoint

Programs using ``num_workers > 0`` must guard their entry point with
``if __name__ == "__main__":`` (grain spawns its workers).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence
from typing import Any

import grain
import numpy as np
from grain.experimental import ZipMapDataset

from adain_jax.io.messages import shown_path
from adain_jax.training.iterator import PairIterator
from adain_jax.training.sources import (
    DataError,
    open_source,
    random_resized_crop,
    unreadable_reason,
)

Source = str | os.PathLike


def default_num_workers() -> int:
    """Worker processes for decoding: 0 on 1-2 cores, else ``min(cores - 1, 8)``.

    With 1-2 usable cores, decoding in the training process (``prefetch`` threads; Pillow releases
    the GIL while decoding and resizing) was as fast as or faster than worker processes in
    ``benchmarks/input_pipeline.py``, without their start-up cost. With more cores, one stays
    with the training process (it feeds the accelerator) and the rest decode, up to 8. Check that
    benchmark's sizing rule (pipeline pairs/s above train steps/s x batch) on the machine that
    trains.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return 0 if cores <= 2 else min(cores - 1, 8)


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Input pipeline settings.

    Attributes:
      batch_size: GLOBAL batch; each process yields ``batch_size // jax.process_count()``.
      image_size: the shorter side is resized to this (aspect kept; 0 keeps the original size),
        then ...
      crop_size: ... a random ``crop_size x crop_size`` window is cut; images whose shorter side
        would be smaller than the crop are upscaled to it first.
      seed: the content and style streams derive their own shuffle/crop seeds from it.
      num_workers: grain worker processes; 0 decodes in the calling process (with ``prefetch``
        threads). See ``default_num_workers()``.
      prefetch: batches buffered ahead per process (and decoding threads when in-process).
      jpeg_draft: let JPEG decoding downscale by 1/2, 1/4, 1/8 when the file is at least that
        much larger than needed (much faster for large photos).
    """

    batch_size: int = 8
    image_size: int = 512
    crop_size: int = 256
    seed: int = 0
    num_workers: int = 0
    prefetch: int = 2
    jpeg_draft: bool = True

    def __post_init__(self) -> None:
        minimum = dict(batch_size=1, crop_size=1, prefetch=1, image_size=0, num_workers=0)
        for name, least in minimum.items():
            if (value := getattr(self, name)) < least:
                raise DataError(f"PipelineConfig.{name} must be >= {least}, got {value}")

    @property
    def draft_size(self) -> int:
        """The size a JPEG may decode down to (1/2, 1/4, 1/8 scale; 0: full size)."""
        return max(self.image_size, self.crop_size) if self.jpeg_draft and self.image_size else 0


class _DecodedDataset(grain.MapDataset):
    """Decodes the record at each index of ``parent`` (an endless shuffled index stream).

    Element: ``{"image": PIL.Image (RGB), "bad": tuple[(name, reason), ...], "replaced": bool}``:
    a record that fails is replaced by the record at the next index of ``parent``
    (deterministic; the next one if that fails too, ...); ``bad`` names the unreadable records
    met doing so and ``replaced`` says whether this index's own record was unreadable.
    """

    def __init__(self, parent: grain.MapDataset, reader: Any, draft: int, lookahead: int) -> None:
        super().__init__(parent)
        self._reader = reader
        self._draft = draft  # PipelineConfig.draft_size
        self._lookahead = lookahead
        self._known_bad: dict[int, str] = {}  # per process; bad files stay bad

    def __len__(self) -> int:
        return len(self._parent)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.slice(index)
        bad = []
        for offset in range(self._lookahead):
            record = self._parent[index + offset]
            reason = self._known_bad.get(record)
            if reason is None:
                try:
                    image = self._reader.load(record, self._draft)
                except DataError:
                    raise
                except Exception as e:  # noqa: BLE001 - any decoder failure skips the file
                    reason = unreadable_reason(self._reader.name(record), e)
                    self._known_bad[record] = reason
                else:
                    return {"image": image, "bad": tuple(bad), "replaced": offset > 0}
            bad.append((self._reader.name(record), reason))
        name, reason = bad[0]
        example = f"{shown_path(name)}: {reason}"
        raise DataError(f"{self._reader.description}: no readable image (e.g. {example})")

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_known_bad"] = {}
        return state

    def __str__(self) -> str:
        return f"_DecodedDataset({self._reader.description})"


def _random_crop(cfg: PipelineConfig, element: dict, rng: np.random.Generator) -> dict:
    """``random_map`` transform: ``element["image"]``, a ``PIL.Image``, -> its random resized
    crop, ``uint8 [crop, crop, 3]`` (``random_resized_crop``)."""
    crop = random_resized_crop(element["image"], cfg.image_size, cfg.crop_size, rng)
    return {**element, "image": crop}


def _collate(pairs: Sequence[tuple[dict, dict]]) -> dict:
    return {
        "content": np.stack([c["image"] for c, _ in pairs]),
        "style": np.stack([s["image"] for _, s in pairs]),
        "bad": [b for c, s in pairs for b in c["bad"] + s["bad"]],
        "replaced": sum(int(c["replaced"]) + int(s["replaced"]) for c, s in pairs),
    }


def _stream(reader: Any, cfg: PipelineConfig, stream: int) -> grain.MapDataset:
    seed = np.random.SeedSequence([cfg.seed, stream]).generate_state(1, dtype=np.uint32)[0]
    indices = grain.MapDataset.range(len(reader))
    endless = indices.seed(int(seed)).shuffle().repeat()
    # 2n - 1 indices from any start hold one whole epoch: a window that straddles two
    # shuffled epochs can miss a readable file that each epoch holds.
    decoded = _DecodedDataset(endless, reader, cfg.draft_size, lookahead=2 * len(indices) - 1)
    return decoded.random_map(functools.partial(_random_crop, cfg))


class _ProcessRows(grain.MapDataset):
    """Element ``i``: the ``i % rows``-th of this process's ``rows`` rows of global batch
    ``i // rows``, i.e. element ``(i // rows) * batch + first + i % rows`` of ``parent``."""

    def __init__(self, parent: grain.MapDataset, batch: int, first: int, rows: int) -> None:
        super().__init__(parent)
        self._batch, self._first, self._rows = batch, first, rows

    def __len__(self) -> int:
        return len(self._parent) // self._batch * self._rows

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.slice(index)
        batch, row = divmod(index, self._rows)
        return self._parent[batch * self._batch + self._first + row]

    def __str__(self) -> str:
        return f"_ProcessRows(batch={self._batch}, first={self._first}, rows={self._rows})"


def make_pair_iterator(
    content: Source,
    style: Source,
    cfg: PipelineConfig,
    *,
    shard_index: int | None = None,
    shard_count: int | None = None,
) -> PairIterator:
    """Endless shuffled content/style pair batches (see ``PairIterator``).

    Args:
      content, style: a folder (searched recursively) or ``"tfds:NAME[:SPLIT]"``.
      cfg: pipeline settings; ``cfg.batch_size`` is global.
      shard_index, shard_count: which rows of each global batch this process yields (default
        ``jax.process_index()`` / ``jax.process_count()``): the ``cfg.batch_size // shard_count``
        rows from ``shard_index * rows``. The shards of all processes, concatenated in
        ``shard_index`` order, are the global batch.

    Raises:
      DataError: a missing or empty source, or a batch not divisible by the shards.
    """
    if shard_index is None or shard_count is None:
        import jax

        shard_index = jax.process_index() if shard_index is None else shard_index
        shard_count = jax.process_count() if shard_count is None else shard_count
    if not 0 <= shard_index < shard_count:
        raise DataError(f"shard_index {shard_index} not in [0, {shard_count})")
    if cfg.batch_size % shard_count:
        raise DataError(
            f"batch size {cfg.batch_size} is not divisible by the {shard_count} processes"
        )
    readers = {"content": open_source(content), "style": open_source(style)}
    streams = [_stream(readers[name], cfg, i) for i, name in enumerate(("content", "style"))]
    rows = cfg.batch_size // shard_count
    mine = _ProcessRows(ZipMapDataset(streams), cfg.batch_size, shard_index * rows, rows)
    batched = mine.batch(rows, drop_remainder=True, batch_fn=_collate)
    descriptions = {f"{name}_images": len(reader) for name, reader in readers.items()} | {
        "seed": cfg.seed,
        "batch_size": cfg.batch_size,
        "image_size": cfg.image_size,
        "crop_size": cfg.crop_size,
    }
    return PairIterator(batched, descriptions, num_workers=cfg.num_workers, prefetch=cfg.prefetch)
