"""What a researcher watches: scalars (TensorBoard + ``metrics.jsonl``) and image grids.

Only process 0 writes (``MetricsWriter(enabled=jax.process_index() == 0)``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from adain_jax.io import files
from adain_jax.io.images import to_uint8

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
SAMPLES_DIR = "samples"


def pair_grid(contents: Sequence[np.ndarray], styles: Sequence[np.ndarray], outputs) -> np.ndarray:
    """A contents x styles grid, uint8 ``[(1 + C) * s, (1 + S) * s, 3]``.

    Top row: the styles; left column: the contents; cell ``(i, j)``: the output
    for content ``i`` and style ``j``. All images float ``[s, s, 3]`` in [0, 1];
    ``outputs[i * len(styles) + j]`` (or ``outputs[i][j]``).
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


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write a uint8 ``[H, W, 3]`` image to ``path`` atomically (temp file + rename)."""
    with files.atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def truncate_jsonl(path: Path, after_step: int) -> None:
    """Drop lines logged after ``after_step`` (a resumed run logs them again)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= after_step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by kill -9
    with files.atomic_open(path) as f:
        f.write("".join(line + "\n" for line in kept))


class MetricsWriter:
    """Scalars to ``DIR/metrics.jsonl`` (one JSON object per log step) and TensorBoard
    event files in ``DIR/tensorboard``; images to TensorBoard.

    ``resume_step``: on resume, records after it (from the interrupted run)
    are dropped from both, so every step appears once.
    """

    def __init__(self, workdir: str | os.PathLike, resume_step: int = 0, enabled: bool = True):
        self.enabled = enabled
        self._tb = None
        if not enabled:
            return
        workdir = Path(workdir)
        self._jsonl_path = workdir / METRICS_FILE
        truncate_jsonl(self._jsonl_path, resume_step)
        self._jsonl = open(self._jsonl_path, "a")  # noqa: SIM115 (closed in close())
        from tensorboardX import SummaryWriter

        self._tb = SummaryWriter(
            str(workdir / TENSORBOARD_DIR), purge_step=resume_step + 1 if resume_step else None
        )

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        record = {"step": int(step), **{k: float(v) for k, v in values.items()}}
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()
        for name, value in values.items():
            self._tb.add_scalar(name, float(value), int(step))

    def image(self, step: int, name: str, image: np.ndarray) -> None:
        """Log a uint8 ``[H, W, 3]`` image."""
        if self.enabled:
            self._tb.add_image(name, image, int(step), dataformats="HWC")

    def flush(self) -> None:
        if self.enabled:
            self._tb.flush()

    def close(self) -> None:
        if self.enabled:
            self._jsonl.close()
            self._tb.close()
