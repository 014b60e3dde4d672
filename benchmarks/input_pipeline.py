"""Throughput of the training input pipeline alone (``adain_jax.training.data``), no accelerator.

Writes synthetic JPEG folders (photo-like: smooth gradients plus noise) at 640x480 and
1600x1200 to a temporary directory and reads them as content and style with the
training defaults (shorter side -> 512, random 256 x 256 crop, batch 8), for several
``num_workers`` with and without JPEG draft decoding. Prints a table of pairs/s
(content+style pairs, i.e. training samples) and decoded images/s (2 per pair).

Sizing rule: the pipeline must deliver more pairs/s than the train step consumes,
``pairs/s > steps/s * batch_size`` (see ``benchmarks/train.py`` for steps/s), with
some margin for other work on the host; otherwise the accelerator waits for data. Add
workers (``PipelineConfig.num_workers``; the default ``default_num_workers()`` leaves
one core to the trainer) or cores until it does; draft decoding is on by default.

    python benchmarks/input_pipeline.py [--workers 0 1 2] [--batches 12]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from adain_jax.training import data  # noqa: E402
from benchmarks.common import cpu_model  # noqa: E402


def write_jpegs(folder: Path, count: int, width: int, height: int, seed: int) -> None:
    """``count`` photo-like JPEGs (quality 90) of ``width x height``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    for i in range(count):
        phase = rng.uniform(0, 2 * np.pi, 3)
        freq = rng.uniform(2, 8, 3) * 2 * np.pi
        channels = [
            127 + 100 * np.sin(freq[c] * (x / width + 0.5 * y / height) + phase[c])
            for c in range(3)
        ]
        image = np.stack(channels, -1) + rng.normal(0, 12, (height, width, 3))
        image = np.clip(image, 0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / f"img{i:04d}.jpg", quality=90)


def measure(folder: Path, cfg: data.PipelineConfig, batches: int) -> tuple[float, float]:
    """(first-batch seconds including worker start, pairs/s over ``batches`` more)."""
    start = time.perf_counter()
    with data.make_pair_iterator(folder, folder, cfg, shard_index=0, shard_count=1) as it:
        next(it)
        first = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(batches):
            next(it)
        elapsed = time.perf_counter() - start
    return first, batches * cfg.batch_size / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = {0, 1, 2, data.default_num_workers()} | {n for n in (4, 8) if n < (cores or 1)}
    parser.add_argument("--workers", type=int, nargs="+", default=sorted(workers))
    parser.add_argument("--batches", type=int, default=12, help="timed batches per setting")
    parser.add_argument("--num-images", type=int, default=48, help="JPEGs per size")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--crop-size", type=int, default=256)
    args = parser.parse_args()

    print(f"CPU: {cpu_model()} ({cores} usable cores)")
    print(
        f"batch {args.batch_size} pairs, shorter side -> {args.image_size}, "
        f"crop {args.crop_size}; default_num_workers() = {data.default_num_workers()}"
    )
    header = (
        f"{'source JPEGs':>14} {'workers':>7} {'draft':>5} {'pairs/s':>8} "
        f"{'images/s':>8} {'1st batch s':>11}"
    )
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for width, height in ((640, 480), (1600, 1200)):
            folder = Path(tmp) / f"{width}x{height}"
            write_jpegs(folder, args.num_images, width, height, seed=width)
            for workers in args.workers:
                for draft in (True, False):
                    cfg = data.PipelineConfig(
                        batch_size=args.batch_size,
                        image_size=args.image_size,
                        crop_size=args.crop_size,
                        num_workers=workers,
                        jpeg_draft=draft,
                    )
                    first, pairs = measure(folder, cfg, args.batches)
                    print(
                        f"{f'{width}x{height}':>14} {workers:>7} {'yes' if draft else 'no':>5} "
                        f"{pairs:>8.1f} {2 * pairs:>8.1f} {first:>11.2f}",
                        flush=True,
                    )


if __name__ == "__main__":  # required: grain's worker processes are spawned
    main()
