"""Throughput and memory of the runtime controls (directory jobs, video, tiled 16 MP).

Each case runs in its own subprocess so its peak RSS (``resource.getrusage``
``ru_maxrss``) is its own. Random weights (speed and memory do not depend on
the values). Usage::

    python benchmarks/controls.py                 # every case, table at the end
    python benchmarks/controls.py --case tiled --size 4096 [--max-tile 1024]
    python benchmarks/controls.py --case dirjob --size 512 --n 8 --batch 4
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def random_params(seed: int = 0) -> dict:
    """He-scaled random parameters with the real shapes (fast: no Flax init run)."""
    import jax

    import adain_jax

    shapes = jax.eval_shape(lambda k: adain_jax.init_params(k), jax.random.key(0))
    rng = np.random.default_rng(seed)

    def make(path, leaf):
        if path[-1].key == "bias":
            return np.zeros(leaf.shape, np.float32)
        fan_in = int(np.prod(leaf.shape[:-1]))
        return (rng.standard_normal(leaf.shape) * (2 / fan_in) ** 0.5).astype(np.float32)

    return jax.tree.map(jax.numpy.asarray, jax.tree_util.tree_map_with_path(make, shapes))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def case_untiled(size: int) -> dict:
    """One untiled stylize at size x size (peak memory per pixel)."""
    import adain_jax

    params = random_params()
    content = np.random.default_rng(0).random((1, size, size, 3), dtype=np.float32)
    style = np.random.default_rng(1).random((1, 256, 256, 3), dtype=np.float32)
    t = time.perf_counter()
    np.asarray(adain_jax.stylize(params, content, style))
    first = time.perf_counter() - t
    return {"first_call_s": first}


def case_tiled(size: int, max_tile: int | None) -> dict:
    """A size x size image through tiling.stylize_tiled (default: automatic max_tile)."""
    import adain_jax.controls as controls
    from adain_jax.controls import tiling

    params = random_params()
    content = np.random.default_rng(0).random((size, size, 3), dtype=np.float32)
    style = np.random.default_rng(1).random((512, 512, 3), dtype=np.float32)
    stats = controls.encode_style(params, style)
    tile = max_tile or tiling.auto_max_tile()
    t = time.perf_counter()
    out = tiling.stylize_tiled(params, content, stats, max_tile=tile)
    elapsed = time.perf_counter() - t
    assert out.shape == content.shape
    return {"max_tile": tile, "seconds": elapsed}


def case_batch(size: int, n: int, batch: int) -> dict:
    """n same-size contents x one cached style, ``batch`` per call (a directory job's core)."""
    import adain_jax.controls as controls

    params = random_params()
    rng = np.random.default_rng(0)
    contents = rng.random((batch, size, size, 3), dtype=np.float32)
    stats = controls.encode_style(params, rng.random((size, size, 3), dtype=np.float32))
    np.asarray(controls.stylize_with_stats(params, contents, stats))  # compile
    t = time.perf_counter()
    for _ in range(n // batch):
        np.asarray(controls.stylize_with_stats(params, contents, stats))
    elapsed = time.perf_counter() - t
    return {"images_per_s": (n // batch) * batch / elapsed}


def case_dirjob(size: int, n: int, batch: int) -> dict:
    """A directory job as infer.py runs it: n JPEG contents of mixed sizes (shorter side
    ``size``, longer side ``size`` .. ``size + 128``) x 2 styles, read, stylized, written.
    Timed on a second run with --overwrite (compilation excluded)."""
    from PIL import Image

    from adain_jax.inference import paths, plan, run

    params = random_params()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "c").mkdir()
        (root / "s").mkdir()
        for i in range(n):
            w = size + int(rng.integers(0, 129))
            pixels = (rng.random((size, w, 3)) * 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / "c" / f"{i:03d}.jpg", quality=90)
        styles = []
        for k in range(2):
            pixels = (rng.random((size, size, 3)) * 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / "s" / f"s{k}.jpg")
            styles.append((root / "s" / f"s{k}.jpg",))
        pairs = [
            paths.Pair(c, st, root / "out" / paths.output_name(c, st, ".jpg"))
            for c in sorted((root / "c").iterdir())
            for st in styles
        ]
        opts = plan.JobOptions(content_size=size, style_size=size, batch_size=batch, progress=False)
        quiet = lambda msg: None  # noqa: E731
        run.run_job(params, plan.make_plan(opts, pairs), log=quiet)  # compiles
        again = plan.make_plan(dataclasses.replace(opts, overwrite=True), pairs)
        t = time.perf_counter()
        summary = run.run_job(params, again, log=quiet)
        elapsed = time.perf_counter() - t
    assert len(summary.written) == len(pairs), summary
    return {"images_per_s": len(pairs) / elapsed, "outputs": len(pairs)}


def case_video(size: int, frames: int, batch: int) -> dict:
    """Stylize a generated size x size clip (H.264 in and out), frames/s including I/O."""
    from fractions import Fraction

    import adain_jax.controls as controls
    from adain_jax.io import images as image_io
    from adain_jax.io import video

    params = random_params()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.mp4", Path(tmp) / "out.mp4"
        writer = video.VideoWriter(src, Fraction(24), size, size)
        for _ in range(frames):
            writer.write(image_io.to_uint8(rng.random((1, size, size, 3))))
        writer.close()
        stats = controls.encode_style(params, rng.random((size, size, 3), dtype=np.float32))
        # compile outside the timing
        warm = np.zeros((batch, size, size, 3), np.float32)
        np.asarray(controls.stylize_with_stats(params, warm, stats))
        t = time.perf_counter()
        fn = lambda frames: controls.stylize_with_stats(params, frames, stats)  # noqa: E731
        n = video.transform_video(src, dst, fn, batch_size=batch, progress=False)
        elapsed = time.perf_counter() - t
    return {"frames_per_s": n / elapsed}


def run_case(args: argparse.Namespace) -> None:
    if args.case == "untiled":
        result = case_untiled(args.size)
    elif args.case == "tiled":
        result = case_tiled(args.size, args.max_tile)
    elif args.case == "batch":
        result = case_batch(args.size, args.n, args.batch)
    elif args.case == "dirjob":
        result = case_dirjob(args.size, args.n, args.batch)
    else:
        result = case_video(args.size, args.n, args.batch)
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


CASES = [
    ("batch", ["--size", "512", "--n", "16", "--batch", "4"]),
    ("dirjob", ["--size", "512", "--n", "4", "--batch", "4"]),
    ("video", ["--size", "512", "--n", "8", "--batch", "4"]),
    ("untiled", ["--size", "1024"]),
    ("tiled", ["--size", "4096"]),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=["untiled", "tiled", "batch", "dirjob", "video"])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--max-tile", type=int, default=None)
    args = parser.parse_args()
    if args.case:
        run_case(args)
        return
    import jax

    device = jax.devices()[0]
    print(
        f"device: {device.platform} {device.device_kind}; {os.cpu_count()} CPUs; "
        f"{platform.processor() or platform.machine()}"
    )
    print("| case | args | result | peak RSS (MB) |\n|---|---|---|---|")
    for case, extra in CASES:
        cmd = [sys.executable, __file__, "--case", case, *extra]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(f"| {case} | {' '.join(extra)} | failed: {proc.stderr.strip()[-200:]} | |")
            continue
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        rss = result.pop("peak_rss_mb")
        shown = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()
        )
        print(f"| {case} | {' '.join(extra)} | {shown} | {rss:.0f} |", flush=True)


if __name__ == "__main__":
    main()
