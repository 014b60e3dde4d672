"""Speed of the train step alone (``adain_jax.training.step.make_train_step``).

Synthetic uint8 batches already on the device (no input pipeline), random
weights, the paper's batch 8 x 256 px by default, float32 and bfloat16
convolutions, all devices in the data mesh. Prints a table of steps/s and
images/s (content-style pairs per second) with the device. ``--torch`` adds
the same step written in PyTorch (the port's ``net.Net`` losses + Adam,
float32, on the CPU) for comparison.

    python benchmarks/train.py [--batch-size 8] [--size 256] [--steps 20] [--torch]

``--malloc tuned`` (the default) runs the process with the glibc settings
``train.py`` uses (``adain_jax.cli.malloc_tuning``), ``--malloc default`` without;
they apply to the torch row too. ``--dtypes`` with no value times torch alone.

The input pipeline's own throughput: ``benchmarks/input_pipeline.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # adain_jax, tests (torch ref)

from adain_jax.training import step as train_lib  # noqa: E402
from adain_jax.training.config import TrainConfig  # noqa: E402
from adain_jax.weights.params import init_params  # noqa: E402
from benchmarks.common import (  # noqa: E402
    add_malloc_flag,
    apply_malloc_flag,
    cpu_model,
    format_ms,
    malloc_mode,
    median,
    time_calls,
)

# train.py's defaults (the paper's lr, loss weights, batch and crop size).
DEFAULTS = TrainConfig(workdir="", content="", style="")


def device_name() -> str:
    d = jax.devices()[0]
    if d.platform == "cpu":
        return f"{jax.device_count()} x CPU ({cpu_model()}, {os.cpu_count()} cores)"
    return f"{jax.device_count()} x {getattr(d, 'device_kind', d.platform)}"


def make_jax_step(
    dtype: str, batch: int, size: int, seed: int = 0
) -> tuple[Callable[[], dict], Callable[[], str]]:
    """``(run, compiled_hlo)``: ``run()`` runs one real train step on a fixed synthetic batch
    and returns its metrics; ``compiled_hlo()`` is the step's optimized HLO text.

    ``params`` are random (``init_params``); the state is updated in place
    (donated) at each call.
    """
    mesh = train_lib.make_mesh()
    step_fn = train_lib.make_train_step(mesh)
    hp = train_lib.put_replicated(DEFAULTS.hyperparams(), mesh)
    params = init_params(jax.random.key(seed))
    vgg = train_lib.put_replicated(params["encoder"], mesh)
    box = {"state": train_lib.init_state(params["decoder"], mesh)}
    images = np.random.default_rng(seed).integers(0, 256, (2, batch, size, size, 3), np.uint8)
    data = train_lib.shard_batch({"content": images[0], "style": images[1]}, mesh)

    def run() -> dict:
        box["state"], metrics = step_fn(box["state"], vgg, data, hp, dtype)
        return metrics

    def compiled_hlo() -> str:
        return step_fn.lower(box["state"], vgg, data, hp, dtype).compile().as_text()

    return run, compiled_hlo


def seconds_per_call(fn: Callable[[], object], steps: int, warmup: int) -> tuple[float, float]:
    """(median seconds of ``steps`` timed calls after ``warmup`` untimed ones, seconds of the
    first call: tracing + compilation + one run)."""
    first = time_calls({"fn": fn}, 1)["fn"][0]
    for _ in range(warmup - 1):
        jax.block_until_ready(fn())
    return median(time_calls({"fn": fn}, steps)["fn"]), first


def torch_step(batch: int, size: int) -> Callable[[], float]:
    """The same step in PyTorch float32 on the CPU (the port's training code)."""
    import torch

    from benchmarks.vs_torch import TorchTrainer
    from tests import torch_reference as ref

    torch.manual_seed(0)
    trainer = TorchTrainer(ref.randomize(ref.vgg_normalised(), 1), ref.randomize(ref.decoder(), 2))
    content = torch.rand(batch, 3, size, size)
    style = torch.rand(batch, 3, size, size)
    return lambda: trainer.step(content, style)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--batch-size", type=int, default=DEFAULTS.batch_size, help="global batch (pairs)"
    )
    p.add_argument("--size", type=int, default=DEFAULTS.crop_size, help="crop size in px")
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument(
        "--warmup", type=int, default=2, help="untimed steps (the first compiles), at least 1"
    )
    p.add_argument(
        "--dtypes", nargs="*", default=["float32", "bfloat16"], help="none: only --torch"
    )
    p.add_argument("--torch", action="store_true", help="also time the PyTorch step on the CPU")
    add_malloc_flag(p, default="tuned")
    args = p.parse_args()
    apply_malloc_flag(args.malloc)
    if args.warmup < 1 or args.steps < 1 or args.batch_size < 1:
        sys.exit("train benchmark: --warmup, --steps and --batch-size must be positive")
    rows = []
    for dtype in args.dtypes:
        step, _ = make_jax_step(dtype, args.batch_size, args.size)
        sec, first = seconds_per_call(step, args.steps, args.warmup)
        rows.append((f"adain-jax {dtype}", device_name(), sec, first))
    if args.torch:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        sec, first = seconds_per_call(
            torch_step(args.batch_size, args.size), args.steps, args.warmup
        )
        rows.append(
            (
                f"PyTorch {torch.__version__} float32",
                f"CPU ({cpu_model()}), {torch.get_num_threads()} threads",
                sec,
                first,
            )
        )
    print(
        f"train step, batch {args.batch_size} x {args.size} px, median of {args.steps} steps; "
        f"malloc: {malloc_mode()}"
    )
    print("| step | device | ms/step | steps/s | images/s | first step s |")
    print("|---|---|---:|---:|---:|---:|")
    for name, device, sec, first in rows:
        print(
            f"| {name} | {device} | {format_ms(sec)} | {1 / sec:.3g} "
            f"| {args.batch_size / sec:.3g} | {first:.1f} |"
        )


if __name__ == "__main__":
    main()
