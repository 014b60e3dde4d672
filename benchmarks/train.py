"""Speed of the train step alone (``adain_jax.train_lib.make_train_step``).

Synthetic uint8 batches already on the device (no input pipeline), random
weights, the paper's batch 8 x 256 px by default, float32 and bfloat16
convolutions, all devices in the data mesh. Prints a table of steps/s and
images/s (content-style pairs per second) with the device. ``--torch`` adds
the same step written in PyTorch (the port's ``net.Net`` losses + Adam,
float32, on the CPU) for comparison.

    python benchmarks/train.py [--batch-size 8] [--size 256] [--steps 20] [--torch]

The input pipeline's own throughput: ``benchmarks/input_pipeline.py``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # adain_jax, tests (torch ref)

from adain_jax import train_lib  # noqa: E402
from adain_jax.params import init_params  # noqa: E402


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name() -> str:
    d = jax.devices()[0]
    if d.platform == "cpu":
        return f"{jax.device_count()} x CPU ({cpu_name()}, {os.cpu_count()} cores)"
    return f"{jax.device_count()} x {getattr(d, 'device_kind', d.platform)}"


def time_jax(dtype: str, batch: int, size: int, steps: int, warmup: int) -> float:
    """Seconds per step (median over ``steps`` timed steps)."""
    mesh = train_lib.make_mesh()
    step_fn = train_lib.make_train_step(dtype, mesh)
    hp = train_lib.put_replicated(train_lib.StepConfig().hyperparams(), mesh)
    params = init_params(jax.random.key(0), 64)
    vgg = train_lib.put_replicated(params["encoder"], mesh)
    state = train_lib.init_state(params["decoder"], mesh)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, batch, size, size, 3), dtype=np.uint8)
    data = train_lib.shard_batch({"content": images[0], "style": images[1]}, mesh)
    for _ in range(warmup):
        state, metrics = step_fn(state, vgg, data, hp)
    jax.block_until_ready(metrics)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        state, metrics = step_fn(state, vgg, data, hp)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def time_torch(batch: int, size: int, steps: int, warmup: int) -> float:
    """The same step in PyTorch float32 on the CPU (the port's training code)."""
    import torch
    import torch.nn.functional as F

    from tests import torch_reference as ref
    from tests.torch_train_reference import _encode_taps, _style_loss

    torch.manual_seed(0)
    vgg = ref.randomize(ref.vgg_normalised(), 1)[:31].eval()
    dec = ref.randomize(ref.decoder(), 2)
    for p in vgg.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(dec.parameters(), lr=1e-4)
    content = torch.rand(batch, 3, size, size)
    style = torch.rand(batch, 3, size, size)

    def step():
        style_feats = _encode_taps(vgg, style)
        with torch.no_grad():
            t = ref.adain(vgg(content), style_feats[-1])
        g_feats = _encode_taps(vgg, dec(t))
        loss = F.mse_loss(g_feats[-1], t) + 10 * sum(
            _style_loss(a, b) for a, b in zip(g_feats, style_feats, strict=True)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-size", type=int, default=8, help="global batch (pairs)")
    p.add_argument("--size", type=int, default=256, help="crop size in px")
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps (compilation)")
    p.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    p.add_argument("--torch", action="store_true", help="also time the PyTorch step on the CPU")
    args = p.parse_args()
    rows = []
    for dtype in args.dtypes:
        sec = time_jax(dtype, args.batch_size, args.size, args.steps, args.warmup)
        rows.append((f"adain-jax {dtype}", device_name(), sec))
    if args.torch:
        import torch

        sec = time_torch(args.batch_size, args.size, args.steps, args.warmup)
        rows.append(
            (
                f"PyTorch {torch.__version__} float32",
                f"CPU ({cpu_name()}), {torch.get_num_threads()} threads",
                sec,
            )
        )
    print(f"train step, batch {args.batch_size} x {args.size} px, median of {args.steps} steps")
    print("| step | device | ms/step | steps/s | images/s |")
    print("|---|---|---:|---:|---:|")
    for name, device, sec in rows:
        print(
            f"| {name} | {device} | {sec * 1e3:.0f} | {1 / sec:.3g} | {args.batch_size / sec:.3g} |"
        )


if __name__ == "__main__":
    main()
