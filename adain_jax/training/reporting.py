"""Reading the dispatched steps' metrics: the NaN guard, scalars, the progress bar, plain log
lines, and the held-out samples and losses."""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tqdm import tqdm

from adain_jax.io.png import write_png
from adain_jax.training import evaluate, monitoring
from adain_jax.training.faults import writing


@dataclasses.dataclass
class Dispatched:
    """A step whose metrics are still on the device."""

    step: int
    metrics: dict  # device scalars (train_lib.make_train_step)
    skipped: int  # the data pipeline's skipped-image count when its batch was fetched
    final: bool  # the last step of this process (the end or a signal)


class NonFinite(Exception):
    """A step's loss, gradients or updated params are not finite."""


class Reporter:
    """Reads dispatched steps' metrics: NaN guard, scalars, progress bar, plain log lines."""

    def __init__(self, run: Any, start: int):
        cfg = run.cfg
        self.run, self.start = run, start
        with writing(f"the logs in {cfg.workdir}"):
            self.writer = monitoring.MetricsWriter(
                cfg.workdir, resume_step=start, enabled=run.is_main
            )
        self.bar = tqdm(
            total=cfg.max_steps,
            initial=start,
            unit="step",
            disable=not (run.is_main and cfg.progress),
            dynamic_ncols=True,
            file=sys.stderr,
        )
        self._timer_step, self._timer = start, time.perf_counter()

    def read(self, d: Dispatched) -> None:
        """Wait for ``d``'s metrics, then log them. Raises ``NonFinite``."""
        m = jax.device_get(d.metrics)
        if not m["finite"]:
            raise NonFinite(d.step, m)
        if d.step == self.start + 1:  # rates exclude the first step (compilation)
            self._timer_step, self._timer = d.step, time.perf_counter()
        if d.step % self.run.cfg.log_every == 0 or d.final:
            self._log(d, m)
        self.bar.update(1)

    def _log(self, d: Dispatched, m: dict) -> None:
        now = time.perf_counter()
        rate = (d.step - self._timer_step) / max(now - self._timer, 1e-9)
        self._timer_step, self._timer = d.step, now
        with writing(f"the metrics in {self.run.cfg.workdir}"):
            self.writer.scalars(
                d.step,
                {
                    "loss/content": m["content"],
                    "loss/style": m["style"],
                    "loss/total": m["total"],
                    "lr": m["lr"],
                    "grad_norm": m["grad_norm"],
                    "steps_per_sec": rate,
                    "images_per_sec": rate * self.run.cfg.batch_size,
                    "data/skipped_images": d.skipped,
                },
            )
        self.bar.set_postfix(
            {k: f"{m[k]:.3f}" for k in ("content", "style", "total")}, refresh=False
        )
        if self.run.is_main and not self.run.cfg.progress:  # plain lines for batch-job logs
            print(
                f"step {d.step}: content {m['content']:.4g} style {m['style']:.4g} "
                f"total {m['total']:.4g} lr {m['lr']:.3g} {rate:.3g} steps/s",
                flush=True,
            )

    def held_out(self, step: int, state: dict, do_sample: bool, do_eval: bool) -> None:
        """A PNG grid of the held-out pairs and/or their losses, for ``state``."""
        run = self.run
        params = {"encoder": run.vgg, "decoder": state["decoder"]}
        out = evaluate.predict(params, run.vgg, *run.held_out_pairs, dtype=run.cfg.dtype)
        res = evaluate.PairResults(*jax.device_get(out))
        with writing(f"the samples and metrics in {run.cfg.workdir}"):
            if do_eval:
                self.writer.scalars(
                    step,
                    {
                        "eval/content": float(np.mean(res.content)),
                        "eval/style": float(np.mean(res.style)),
                    },
                )
            if do_sample and self.writer.enabled:
                grid = monitoring.pair_grid(*run.held_out, res.outputs)
                path = Path(run.cfg.workdir) / monitoring.SAMPLES_DIR / f"step_{step:06d}.png"
                write_png(path, grid)
                self.writer.image(step, "samples", grid)
                self.writer.flush()

    def close(self) -> None:
        self.bar.close()
        self.writer.close()
