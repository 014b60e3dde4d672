"""Scaling of the train step over devices and processes (CPU, tiny sizes).

Times ``benchmarks/train.py``'s step (synthetic batch, random weights, float32) with the
same GLOBAL batch on 1, 2 and 4 devices in one process and on 2 processes x 2 devices
(``jax.distributed`` on 127.0.0.1, gloo collectives). Forced CPU devices share the
machine's cores, so the point is the overhead of the data-parallel step and of the
cross-process all-reduce, and that nothing is serialized, not absolute speed. Each
configuration runs in its own processes (``XLA_FLAGS`` is read when JAX starts).

    python benchmarks/scaling.py [--batch-size 8] [--size 64] [--steps 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the repository's packages

from tests.local_cluster import free_port, process_env  # noqa: E402

CONFIGS = ((1, 1), (1, 2), (1, 4), (2, 2))  # (processes, devices per process)


def _worker(args: argparse.Namespace) -> None:
    """One process of one configuration: time the step, print a JSON line (process 0)."""
    from adain_jax.training import step as train_lib

    train_lib.maybe_initialize_distributed(False)  # on when JAX_COORDINATOR_ADDRESS is set
    import jax

    from benchmarks.train import make_jax_step, seconds_per_call

    run, _ = make_jax_step("float32", args.batch_size, args.size)
    seconds, first = seconds_per_call(run, args.steps, warmup=2)
    if jax.process_index() == 0:
        print(json.dumps({"seconds": seconds, "first": first, "devices": jax.device_count()}))


def _measure(processes: int, devices: int, args: argparse.Namespace) -> dict:
    port = free_port()
    cmd = [sys.executable, __file__, "--worker", f"--batch-size={args.batch_size}"]
    cmd += [f"--size={args.size}", f"--steps={args.steps}"]
    procs = []
    for index in range(processes):
        env = process_env(os.environ, devices=devices, processes=processes, index=index, port=port)
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True))
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"{processes} x {devices}: a worker failed")
    return json.loads(outs[0].strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-size", type=int, default=8, help="global batch (pairs)")
    p.add_argument("--size", type=int, default=64, help="crop size (px)")
    p.add_argument("--steps", type=int, default=10, help="timed steps (median)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        _worker(args)
        return
    sys.path.insert(0, str(ROOT))
    from benchmarks.common import cpu_model

    print(
        f"CPU: {cpu_model()}, {os.cpu_count()} cores; global batch {args.batch_size} x "
        f"{args.size} px, float32, median of {args.steps} steps"
    )
    print(f"{'processes x devices':>20} {'ms/step':>9} {'pairs/s':>8} {'vs 1x1':>7} {'first':>7}")
    base = None
    for processes, devices in CONFIGS:
        r = _measure(processes, devices, args)
        base = base or r["seconds"]
        print(
            f"{f'{processes} x {devices}':>20} {r['seconds'] * 1e3:9.1f} "
            f"{args.batch_size / r['seconds']:8.1f} {base / r['seconds']:6.2f}x "
            f"{r['first']:6.1f}s",
            flush=True,
        )


if __name__ == "__main__":
    main()
