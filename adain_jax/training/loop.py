"""The training run: workdir, resume, the step loop, checkpoints, signals, logging.

``train(cfg)`` is what ``python train.py`` runs (``adain_jax.cli.train`` parses
the flags into a ``TrainConfig``). Re-running it with the same workdir resumes
from the latest checkpoint and continues bit-identically to an uninterrupted
run: the step is deterministic and the data iterator's state is checkpointed
with the model.

The loop never waits for the device between steps: step N+1 is dispatched
before step N's metrics are read (logged, checked for NaN). A step whose
state is saved, sampled or evaluated has its metrics read first, so a
non-finite step is never saved.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh
from tqdm import tqdm

from adain_jax.nn.models import init_decoder
from adain_jax.training import checkpointing, data, evaluate, monitoring
from adain_jax.training import step as train_lib
from adain_jax.training.config import (
    TrainConfig,
    check_config,
    config_dict,
    is_tfds,
    read_config,
    write_config,
)
from adain_jax.weights import convert, pretrained

# Exit statuses: finished; a bad setting or input; non-finite loss; stopped by a signal.
EXIT_OK, EXIT_USAGE, EXIT_NONFINITE = 0, 2, 1
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}


def params_sha256(params: dict) -> str:
    """Hash of a params tree's names, shapes and float32 values."""
    h = hashlib.sha256()
    for layer in sorted(params):
        for leaf in sorted(params[layer]):
            value = np.ascontiguousarray(np.asarray(params[layer][leaf], np.float32))
            h.update(f"{layer}/{leaf}{value.shape}".encode())
            h.update(value.tobytes())
    return h.hexdigest()


def load_encoder(cfg: TrainConfig) -> tuple[dict, str]:
    """The run's encoder params and where they came from: ``--vgg``, else the
    workdir's ``encoder.safetensors`` (resume), else torchvision's VGG-19 (download)."""
    workdir_encoder = checkpointing.encoder_path(cfg.workdir)
    if cfg.vgg is not None:
        source = cfg.vgg
    elif workdir_encoder.is_file():
        source = str(workdir_encoder)
    else:
        source = str(pretrained.torchvision_vgg19())
    return convert.load_network(source, "encoder"), source


class _Stopper:
    """SIGINT/SIGTERM set a flag; the loop saves at the next step boundary and exits."""

    def __init__(self):
        self.signum: int | None = None
        self._previous = {}

    def __enter__(self) -> _Stopper:
        for sig in EXIT_SIGNAL:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:  # a second signal: stop waiting, die the default way
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        self.signum = signum
        name = signal.Signals(signum).name
        print(f"\n{name}: saving a checkpoint at the end of this step", file=sys.stderr)

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _held_out(cfg: TrainConfig) -> tuple[list, list] | None:
    """The fixed sample/eval pairs: first ``num_samples`` images of the sample
    folders (default: the training folders), at ``crop_size``."""
    c_dir = cfg.sample_content_dir or (None if is_tfds(cfg.content) else cfg.content)
    s_dir = cfg.sample_style_dir or (None if is_tfds(cfg.style) else cfg.style)
    if c_dir is None or s_dir is None:
        return None
    contents = data.load_eval_images(c_dir, cfg.crop_size, cfg.num_samples)
    styles = data.load_eval_images(s_dir, cfg.crop_size, cfg.num_samples)
    if not contents or not styles:
        return None
    return contents, styles


def _pipeline_config(cfg: TrainConfig) -> data.PipelineConfig:
    """``PipelineConfig`` from the run's settings of the same names (the rest: its defaults)."""
    names = {f.name for f in dataclasses.fields(data.PipelineConfig)}
    values = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name in names}
    if cfg.num_workers is None:
        values["num_workers"] = data.default_num_workers()
    return data.PipelineConfig(**values)


@dataclasses.dataclass
class _Run:
    """The pieces of one run, built once by ``train``."""

    cfg: TrainConfig
    ckpt: checkpointing.Checkpointer
    iterator: data.PairIterator
    mesh: Mesh
    step_fn: Callable
    vgg: dict  # the frozen encoder, replicated
    hparams: dict  # TrainConfig.hyperparams(), replicated
    encoder_np: dict  # the frozen encoder, host arrays (held-out evaluation)
    held_out: tuple[list, list] | None
    is_main: bool

    def next_batch(self) -> dict:
        return train_lib.shard_batch(next(self.iterator), self.mesh)

    def held_out_due(self, step: int, final: bool) -> tuple[bool, bool]:
        """(sample, eval) at ``step``: every --sample-every / --eval-every, and at the end."""
        if self.held_out is None:
            return False, False
        cfg = self.cfg
        do_sample = bool(cfg.sample_every) and (step % cfg.sample_every == 0 or final)
        do_eval = bool(cfg.eval_every) and (step % cfg.eval_every == 0 or final)
        return do_sample, do_eval


@dataclasses.dataclass
class _Dispatched:
    """A step whose metrics are still on the device."""

    step: int
    metrics: dict  # device scalars (train_lib.make_train_step)
    skipped: int  # the data pipeline's skipped-image count when its batch was fetched
    final: bool  # the last step of this process (the end or a signal)


class _NonFinite(Exception):
    """A step's loss, gradients or updated params are not finite."""


class _Reporter:
    """Reads dispatched steps' metrics: NaN guard, scalars, progress bar, plain log lines."""

    def __init__(self, run: _Run, start: int):
        cfg = run.cfg
        self.run, self.start = run, start
        self.writer = monitoring.MetricsWriter(cfg.workdir, resume_step=start, enabled=run.is_main)
        self.bar = tqdm(
            total=cfg.max_steps,
            initial=start,
            unit="step",
            disable=not (run.is_main and cfg.progress),
            dynamic_ncols=True,
            file=sys.stderr,
        )
        self._timer_step, self._timer = start, time.perf_counter()

    def read(self, d: _Dispatched) -> None:
        """Wait for ``d``'s metrics, then log them. Raises ``_NonFinite``."""
        m = jax.device_get(d.metrics)
        if not m["finite"]:
            raise _NonFinite(d.step, m)
        if d.step == self.start + 1:  # rates exclude the first step (compilation)
            self._timer_step, self._timer = d.step, time.perf_counter()
        cfg = self.run.cfg
        if d.step % cfg.log_every == 0 or d.final:
            self._log(d, m)
        self.bar.update(1)

    def _log(self, d: _Dispatched, m: dict) -> None:
        now = time.perf_counter()
        rate = (d.step - self._timer_step) / max(now - self._timer, 1e-9)
        self._timer_step, self._timer = d.step, now
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
            content=f"{m['content']:.3f}",
            style=f"{m['style']:.3f}",
            total=f"{m['total']:.3f}",
            refresh=False,
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
        contents, styles = run.held_out
        params = {"encoder": run.encoder_np, "decoder": jax.device_get(state["decoder"])}
        res = evaluate.evaluate_pairs(
            params,
            run.encoder_np,
            contents,
            styles,
            chunk=len(contents) * len(styles),
            dtype=run.cfg.dtype,
        )
        if do_eval:
            self.writer.scalars(
                step,
                {
                    "eval/content": float(np.mean(res.content)),
                    "eval/style": float(np.mean(res.style)),
                },
            )
        if do_sample and self.writer.enabled:
            grid = monitoring.pair_grid(contents, styles, res.outputs)
            path = Path(run.cfg.workdir) / monitoring.SAMPLES_DIR / f"step_{step:06d}.png"
            monitoring.write_png(path, grid)
            self.writer.image(step, "samples", grid)
            self.writer.flush()

    def close(self) -> None:
        self.bar.close()
        self.writer.close()


def train(cfg: TrainConfig) -> int:
    """Run (or resume) training; returns the process exit status.

    Raises ``RunError``/``ValueError``/``OSError`` for bad settings or inputs
    (the CLI prints them as one line).
    """
    saved = read_config(cfg.workdir)
    check_config(cfg, saved, None)  # cheap checks first
    iterator = data.make_pair_iterator(
        cfg.content,
        cfg.style,
        _pipeline_config(cfg),
        shard_index=jax.process_index(),
        shard_count=jax.process_count(),
    )
    try:
        run = _prepare(cfg, saved, iterator)
    except BaseException:
        iterator.close()
        raise
    try:
        return _resume_and_loop(run)
    finally:
        iterator.close()
        run.ckpt.wait_until_finished()
        run.ckpt.close()


def _prepare(cfg: TrainConfig, saved: dict | None, iterator: data.PairIterator) -> _Run:
    """Held-out images, the encoder, ``config.json``, the compiled step: the run's pieces."""
    wants_held_out = bool(cfg.sample_every or cfg.eval_every)
    held_out = _held_out(cfg) if wants_held_out else None
    if held_out is None and wants_held_out:
        print(
            "note: no samples or held-out losses for TFDS sources without "
            "--sample-content-dir and --sample-style-dir",
            file=sys.stderr,
        )
    encoder_np, encoder_source = load_encoder(cfg)
    encoder_sha = params_sha256(encoder_np)
    notes = check_config(cfg, saved, encoder_sha)
    is_main = jax.process_index() == 0
    if is_main:
        workdir = Path(cfg.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        if not checkpointing.encoder_path(workdir).is_file():
            checkpointing.save_encoder(workdir, encoder_np, os.path.basename(encoder_source))
        config = config_dict(cfg, encoder_sha)
        config["encoder_source"] = (saved or {}).get("encoder_source", encoder_source)
        write_config(workdir, config)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)

    mesh = train_lib.make_mesh()
    return _Run(
        cfg=cfg,
        ckpt=checkpointing.Checkpointer(cfg.workdir, keep=cfg.keep),
        iterator=iterator,
        mesh=mesh,
        step_fn=train_lib.make_train_step(cfg.dtype, mesh),
        vgg=train_lib.put_replicated(encoder_np, mesh),
        hparams=train_lib.put_replicated(cfg.hyperparams(), mesh),
        encoder_np=encoder_np,
        held_out=held_out,
        is_main=is_main,
    )


def _resume_and_loop(run: _Run) -> int:
    """Restore the latest checkpoint (or initialise), then run the steps."""
    cfg = run.cfg
    start = run.ckpt.latest_step() or 0
    if start:
        state, data_state = run.ckpt.restore(train_lib.abstract_state(run.mesh))
        run.iterator.set_state(data_state)
        print(f"resuming from step {start} ({Path(cfg.workdir) / 'checkpoints'})", file=sys.stderr)
    else:
        state = train_lib.init_state(init_decoder(jax.random.key(cfg.seed)), run.mesh)
    if start >= cfg.max_steps:
        print(f"already at step {start} >= --max-steps {cfg.max_steps}; nothing to do")
        return EXIT_OK
    reporter = _Reporter(run, start)
    try:
        with _Stopper() as stopper:
            return _loop(run, reporter, stopper, state, start)
    finally:
        reporter.close()


def _loop(run: _Run, reporter: _Reporter, stopper: _Stopper, state: Any, start: int) -> int:
    """Steps ``start + 1 ...`` until --max-steps or a signal; returns the exit status.

    Each iteration dispatches step N, fetches the next batch, then reads step
    N-1's metrics (the device is busy with N meanwhile). Steps that are saved,
    sampled or evaluated, and the last one, are read before anything uses their state.
    """
    cfg, iterator = run.cfg, run.iterator
    step, last_saved = start, start or None
    pending: _Dispatched | None = None  # a step whose metrics are not read yet
    batch = run.next_batch()
    try:
        while True:
            state, metrics = run.step_fn(state, run.vgg, batch, run.hparams)
            step += 1
            final = stopper.signum is not None or step >= cfg.max_steps
            data_state = None  # the iterator's state after `step` batches
            if not final:  # fetch the next batch while the device computes
                data_state = iterator.get_state()
                try:
                    batch = run.next_batch()
                except Exception:
                    if stopper.signum is None:
                        raise
                    final = True  # Ctrl-C also reached the decoding workers
            if pending is not None:
                reporter.read(pending)
            pending = _Dispatched(step, metrics, iterator.skipped, final)
            do_sample, do_eval = run.held_out_due(step, final)
            do_save = step % cfg.save_every == 0 or final
            if not (do_sample or do_eval or do_save):
                continue
            reporter.read(pending)  # its state is used: its metrics must be finite
            pending = None
            if do_sample or do_eval:
                reporter.held_out(step, state, do_sample, do_eval)
            if do_save:
                run.ckpt.save(step, state, data_state or iterator.get_state())
                last_saved = step
            if final:
                break
    except _NonFinite as e:
        bad_step, m = e.args
        kept = f"step {last_saved}" if last_saved else "none"
        print(
            f"error: non-finite loss at step {bad_step} (content {m['content']:.4g}, "
            f"style {m['style']:.4g}, grad norm {m['grad_norm']:.4g}); stopped "
            f"without saving it. Last good checkpoint: {kept} in "
            f"{Path(cfg.workdir) / 'checkpoints'}; lower --lr or check the data.",
            file=sys.stderr,
        )
        return EXIT_NONFINITE
    if stopper.signum is not None:
        print(f"stopped at step {step}; checkpoint saved", file=sys.stderr)
        return EXIT_SIGNAL[stopper.signum]
    return EXIT_OK
