"""What a researcher watches: scalars (TensorBoard + ``metrics.jsonl``) and image grids.

Only process 0 writes (``MetricsWriter(enabled=jax.process_index() == 0)``). Every write happens
in the calling thread and raises ``OSError`` at once when it fails (a full disk): there is no
background writer whose death could leave the training loop blocked on a full queue.
"""

from __future__ import annotations

import json
import os
import time
import uuid
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from tensorboardX import event_file_writer as _tb_events
from tensorboardX import summary as _tb_summary
from tensorboardX.proto import event_pb2 as _tb_event_pb2

from adain_jax.io import files
from adain_jax.io.images import to_uint8

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
SAMPLES_DIR = "samples"


def pair_grid(contents: Sequence[np.ndarray], styles: Sequence[np.ndarray], outputs) -> np.ndarray:
    """A contents x styles grid, uint8 ``[(1 + C) * s, (1 + S) * s, 3]``.

    Top row: the styles; left column: the contents; cell ``(i, j)``: the output for content
    ``i`` and style ``j``, ``outputs[i * len(styles) + j]`` (or ``outputs[i][j]``). All images
    float ``[s, s, 3]`` in [0, 1].
    """
    size = contents[0].shape[0]
    n_c, n_s = len(contents), len(styles)
    outputs = np.asarray(outputs, np.float32).reshape(n_c, n_s, size, size, 3)
    grid = np.ones(((1 + n_c) * size, (1 + n_s) * size, 3), np.float32)
    for j, style in enumerate(styles):
        grid[:size, (1 + j) * size : (2 + j) * size] = style
    for i, content in enumerate(contents):
        row = slice((1 + i) * size, (2 + i) * size)
        grid[row, :size] = content
        for j in range(n_s):
            grid[row, (1 + j) * size : (2 + j) * size] = outputs[i, j]
    return to_uint8(grid)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """The records of a ``metrics.jsonl``; lines that are not JSON objects (cut by ``kill -9``,
    or damaged bytes) are dropped, with one warning counting them."""
    records, dropped = [], 0
    for raw in Path(path).read_bytes().splitlines():
        try:
            record = json.loads(raw.decode("utf-8"))
        except ValueError:  # also UnicodeDecodeError
            record = None
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
        else:
            dropped += 1
    if dropped:
        warnings.warn(f"{path}: dropped {dropped} damaged line(s)", stacklevel=2)
    return records


def truncate_jsonl(path: Path, after_step: int) -> None:
    """Drop records logged after ``after_step`` (a resumed run logs them again)."""
    if not path.is_file():
        return
    kept = [r for r in read_jsonl(path) if r["step"] <= after_step]
    with files.atomic_open(path) as f:
        f.write("".join(json.dumps(r) + "\n" for r in kept))


class MetricsWriter:
    """Scalars to ``DIR/metrics.jsonl`` (one JSON object per log step) and TensorBoard event
    files in ``DIR/tensorboard``; images to TensorBoard. ``resume_step``: on resume, records
    after it (from the interrupted run) are dropped from both, so every step appears once."""

    def __init__(self, workdir: str | os.PathLike, resume_step: int = 0, enabled: bool = True):
        self.enabled = enabled
        self._tb = None
        if not enabled:
            return
        workdir = Path(workdir)
        self._jsonl_path = workdir / METRICS_FILE
        truncate_jsonl(self._jsonl_path, resume_step)
        self._jsonl = open(self._jsonl_path, "a")  # noqa: SIM115 (closed in close())
        self._tb = _EventFile(workdir / TENSORBOARD_DIR, purge_step=resume_step + 1)

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        """Append one record to ``metrics.jsonl`` and the scalars to TensorBoard."""
        if not self.enabled:
            return
        record = {"step": int(step), **{k: float(v) for k, v in values.items()}}
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()
        for name, value in values.items():
            self._tb.write(step, _tb_summary.scalar(name, float(value)))
        self._tb.flush()

    def image(self, step: int, name: str, image: np.ndarray) -> None:
        """Log a uint8 ``[H, W, 3]`` image."""
        if self.enabled:
            self._tb.write(step, _tb_summary.image(name, image, dataformats="HWC"))

    def flush(self) -> None:
        if self.enabled:
            self._tb.flush()

    def close(self) -> None:
        """Close the files; a failure to flush them (a full disk) is not raised again."""
        if self.enabled:
            for f in (self._jsonl, self._tb):
                try:
                    f.close()
                except OSError:
                    pass


class _EventFile:
    """A TensorBoard event file written synchronously (tensorboardX's record format)."""

    def __init__(self, logdir: Path, purge_step: int):
        logdir.mkdir(parents=True, exist_ok=True)
        # tensorboardX names the file by the second and opens it "wb": a run resumed within
        # the second of the one before would truncate its events. A random suffix keeps both.
        unique = f".{uuid.uuid4().hex[:8]}"
        self._writer = _tb_events.EventsWriter(str(logdir / "events"), filename_suffix=unique)
        if purge_step > 1:  # TensorBoard drops the older run's events from this step on
            start = _tb_event_pb2.SessionLog(status=_tb_event_pb2.SessionLog.START)
            self._writer.write_event(_tb_event_pb2.Event(step=purge_step, session_log=start))

    def write(self, step: int, summary) -> None:
        event = _tb_event_pb2.Event(summary=summary, step=int(step), wall_time=time.time())
        self._writer.write_event(event)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
