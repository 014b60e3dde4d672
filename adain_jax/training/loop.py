"""The training run: workdir, resume, the step loop, checkpoints, signals, logging.

``train(cfg)`` is what ``python train.py`` runs (``adain_jax.cli.train`` parses the flags into a
``TrainConfig``). Re-running it with the same workdir resumes from the latest checkpoint and
continues bit-identically to an uninterrupted run: the step is deterministic and the data
iterator's state is checkpointed with the model.

The loop never waits for the device between steps: step N+1 is dispatched before step N's metrics
are read (logged, checked for NaN). A step whose state is saved, sampled or evaluated has its
metrics read first, so a non-finite step is never saved.

Faults: one run per workdir (``training.lock``); a failed write (checkpoint, metrics, TensorBoard,
samples; e.g. a full disk) ends the run at once with one line and ``EXIT_IO``, the earlier
checkpoints untouched; a checkpoint that does not restore is moved aside and the next older one
used; after the first SIGINT/SIGTERM the process ends within ``stop_timeout_s()`` seconds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.sharding import Mesh

from adain_jax.io.messages import one_line
from adain_jax.training import checkpointing, data, evaluate
from adain_jax.training import step as train_lib
from adain_jax.training.config import (
    RunError,
    TrainConfig,
    check_config,
    config_dict,
    is_tfds,
    read_config,
    write_config,
)
from adain_jax.training.faults import (
    EXIT_IO,
    EXIT_NONFINITE,
    EXIT_OK,
    EXIT_SIGNAL,
    Stopper,
    WriteFailed,
    writing,
)
from adain_jax.training.lock import WorkdirLock
from adain_jax.training.reporting import Dispatched, NonFinite, Reporter
from adain_jax.weights import convert, pretrained
from adain_jax.weights import safetensors_io as weights_io
from adain_jax.weights.params import load_decoder
from adain_jax.weights.workdir import checkpoint_steps, encoder_path


def params_sha256(params: dict) -> str:
    """Hash of a params tree's names, shapes and float32 values."""
    h = hashlib.sha256()
    for layer in sorted(params):
        for leaf in sorted(params[layer]):
            value = np.ascontiguousarray(np.asarray(params[layer][leaf], np.float32))
            h.update(f"{layer}/{leaf}{value.shape}".encode())
            h.update(value.tobytes())
    return h.hexdigest()


def load_encoder(cfg: TrainConfig, resuming: bool = False) -> tuple[dict, str]:
    """The run's encoder params and where they came from: ``--vgg``, else the workdir's
    ``encoder.safetensors`` when ``resuming``, else torchvision's VGG-19 (download; the built-in
    VGG-16 encoder, with one line on stderr, when its server cannot be reached). ``--vgg
    builtin`` names the built-in encoder."""
    workdir_encoder = encoder_path(cfg.workdir)
    if cfg.vgg == pretrained.BUILTIN:
        source = str(pretrained.builtin_file("encoder"))
    elif cfg.vgg is not None:
        source = cfg.vgg
    elif resuming and workdir_encoder.is_file():
        source = str(workdir_encoder)
    else:
        source = str(pretrained.vgg19_or_builtin())
    return convert.load_network(source, "encoder"), source


def _held_out(cfg: TrainConfig) -> tuple[list, list] | None:
    """The fixed sample/eval pairs: first ``num_samples`` images of the sample folders (default:
    the training folders), at ``crop_size``; ``None`` for TFDS sources without sample folders."""
    c_dir = cfg.sample_content_dir or (None if is_tfds(cfg.content) else cfg.content)
    s_dir = cfg.sample_style_dir or (None if is_tfds(cfg.style) else cfg.style)
    if c_dir is None or s_dir is None:
        return None
    contents = evaluate.load_eval_images(c_dir, cfg.crop_size, cfg.num_samples)
    styles = evaluate.load_eval_images(s_dir, cfg.crop_size, cfg.num_samples)
    return contents, styles  # (load_eval_images raises when a folder has no readable image)


def _load_init_decoder(cfg: TrainConfig) -> dict:
    """``--init-decoder``'s params, the error naming the flag (a bad input: ``RunError``)."""
    try:
        return load_decoder(cfg.init_decoder, cfg.variant())
    except (OSError, ValueError) as e:
        raise RunError(f"--init-decoder: {one_line(e)}") from None


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
    held_out: tuple[list, list] | None  # host images (the sample grid)
    held_out_pairs: tuple[jax.Array, jax.Array] | None  # every (content, style), replicated
    is_main: bool
    init_decoder: dict | None  # --init-decoder's params, read before any file is written

    @property
    def ckpt_dir(self) -> Path:
        return Path(self.cfg.workdir) / "checkpoints"

    @property
    def multi_process(self) -> bool:
        return jax.process_count() > 1

    def next_batch(self, stopper: Stopper) -> dict:
        """The next global batch; with several processes, also ``stop``: bool ``[B]``."""
        rows = next(self.iterator)
        if self.multi_process:
            count = len(rows["content"])
            rows["stop"] = np.full((count,), stopper.signum is not None, dtype=bool)
        return train_lib.shard_batch(rows, self.mesh)


def train(cfg: TrainConfig, *, locked: bool = False) -> int:
    """Run (or resume) training; returns the process exit status. ``locked``: the caller already
    holds the workdir's lock (``adain_jax.cli.train`` takes it before importing JAX); otherwise
    process 0 takes it here.

    Raises ``RunError``/``ValueError``/``OSError`` for bad settings or inputs, ``WorkdirBusyError``
    when another run holds the workdir, ``WriteFailed`` when a file of the run cannot be written
    (the CLI prints each as one line).
    """
    lock = not locked and jax.process_index() == 0  # one lock per run: process 0 holds it
    with WorkdirLock(cfg.workdir) if lock else contextlib.nullcontext():
        return _train_locked(cfg)


def _train_locked(cfg: TrainConfig) -> int:
    # A workdir without a checkpoint resumes nothing: the settings of a start that failed (out of
    # memory at step 1, a bad --init-decoder) do not bind the next one.
    resuming = bool(checkpoint_steps(cfg.workdir))
    saved = read_config(cfg.workdir) if resuming else None
    check_config(cfg, saved, None)  # cheap checks first
    mesh = train_lib.make_mesh()
    # This process's rows of each global batch: the same global batches for any topology.
    first, rows = train_lib.process_rows(mesh, cfg.batch_size)
    iterator = data.make_pair_iterator(
        cfg.content,
        cfg.style,
        _pipeline_config(cfg),
        shard_index=first // rows,
        shard_count=cfg.batch_size // rows,
    )
    try:
        run = _prepare(cfg, saved, iterator, mesh, resuming)
    except BaseException:
        iterator.close()
        raise
    try:
        status = _resume_and_loop(run)
        with writing(f"a checkpoint in {run.ckpt_dir}"):
            run.ckpt.wait_until_finished()
            run.ckpt.check_for_errors()
        return status
    finally:
        iterator.close()
        with contextlib.suppress(Exception):  # an error is already on its way out
            run.ckpt.close()


def _prepare(
    cfg: TrainConfig, saved: dict | None, iterator: data.PairIterator, mesh: Mesh, resuming: bool
) -> _Run:
    """Held-out images, the encoder, ``--init-decoder``, then ``config.json``, the compiled step:
    the run's pieces. Every input is read before the workdir is written."""
    wants_held_out = bool(cfg.sample_every or cfg.eval_every)
    held_out = _held_out(cfg) if wants_held_out else None
    if held_out is None and wants_held_out:
        print(
            "note: no samples or held-out losses for TFDS sources without "
            "--sample-content-dir and --sample-style-dir",
            file=sys.stderr,
        )
    encoder_np, encoder_source = load_encoder(cfg, resuming)
    encoder_sha = params_sha256(encoder_np)
    notes = check_config(cfg, saved, encoder_sha)
    init_decoder = None if resuming or cfg.init_decoder is None else _load_init_decoder(cfg)
    is_main = jax.process_index() == 0
    if is_main:
        workdir = Path(cfg.workdir)
        with writing(f"the workdir {workdir}"):
            workdir.mkdir(parents=True, exist_ok=True)
            if not resuming or not encoder_path(workdir).is_file():  # atomically
                source = os.path.basename(encoder_source)
                weights_io.save(encoder_path(workdir), "encoder", encoder_np, source=source)
            config = config_dict(cfg, encoder_sha)
            config["encoder_source"] = (saved or {}).get("encoder_source", encoder_source)
            if saved is not None and "init_decoder" in saved:  # the start of the run it resumes
                config["init_decoder"] = saved["init_decoder"]
            write_config(workdir, config)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)

    return _Run(
        cfg=cfg,
        ckpt=checkpointing.Checkpointer(cfg.workdir, keep=cfg.keep),
        iterator=iterator,
        mesh=mesh,
        step_fn=train_lib.make_train_step(mesh),
        vgg=train_lib.put_replicated(encoder_np, mesh),
        hparams=train_lib.put_replicated(cfg.hyperparams(), mesh),
        held_out=held_out,
        held_out_pairs=None
        if held_out is None
        else train_lib.put_replicated(evaluate.all_pairs(*held_out), mesh),
        is_main=is_main,
        init_decoder=init_decoder,
    )


def _resume_and_loop(run: _Run) -> int:
    """Restore the latest checkpoint (or initialise), then run the steps."""
    cfg = run.cfg
    restored = checkpointing.restore_latest_good(
        run.ckpt, cfg.workdir, train_lib.abstract_state(run.mesh, cfg.variant()), move=run.is_main
    )
    if restored is not None:
        start, state, data_state = restored
        run.iterator.set_state(data_state)
        print(f"resuming from step {start} ({run.ckpt_dir})", file=sys.stderr)
    else:
        start = 0
        init = run.init_decoder  # None when resuming found only damaged checkpoints
        if init is None:  # --init-decoder's, or a random decoder
            init = _load_init_decoder(cfg) if cfg.init_decoder else jax.random.key(cfg.seed)
        state = train_lib.init_state(init, run.mesh, cfg.variant())
    if start >= cfg.max_steps:
        print(f"already at step {start} >= --max-steps {cfg.max_steps}; nothing to do")
        return EXIT_OK
    reporter = Reporter(run, start)
    try:
        with Stopper() as stopper:
            return _loop(run, reporter, stopper, state, start)
    finally:
        reporter.close()


def _loop(run: _Run, reporter: Reporter, stopper: Stopper, state: Any, start: int) -> int:
    """Steps ``start + 1 ...`` until --max-steps or a signal; returns the exit status.

    Each iteration dispatches step N, fetches the next batch, then reads step N-1's metrics (the
    device is busy with N meanwhile). Steps that are saved, sampled or evaluated, and the last
    one, are read before anything uses their state.
    """
    cfg, iterator = run.cfg, run.iterator
    step, last_saved = start, start or None
    pending: Dispatched | None = None  # a step whose metrics are not read yet
    # Several processes stop at the same step: each batch carries "signalled?" of every
    # process (``batch["stop"]``) and all stop after the first step whose any() was yes.
    asked = None  # metrics["stop"] of the previous step (multi-process runs)
    batch = run.next_batch(stopper)
    if run.multi_process:  # compile first, then start the collectives together
        run.step_fn.lower(state, run.vgg, batch, run.hparams, cfg.dtype).compile()
        # Gloo (CPU collectives) gives up when the processes reach their first collective more
        # than 30 s apart (one compiles while another loads the compilation cache): meet at a
        # barrier of the distributed runtime's key-value service (orbax's public wrapper; jax
        # has none), no device collective.
        ocp.multihost.get_barrier_sync_fn()(
            key=f"adain_jax/first_step/{start}", timeout_ms=3_600_000
        )
    try:
        while True:
            state, metrics = run.step_fn(state, run.vgg, batch, run.hparams, cfg.dtype)
            step += 1
            if run.multi_process:
                stop = asked is not None and bool(asked)  # waits for the previous step only
                asked = metrics["stop"]
            else:
                stop = stopper.signum is not None
            final = stop or step >= cfg.max_steps
            data_state = None  # the iterator's state after `step` batches
            skipped = iterator.skipped  # of those batches: the next fetch adds its own
            if not final:  # fetch the next batch while the device computes
                data_state = iterator.get_state()
                try:
                    batch = run.next_batch(stopper)
                except Exception:
                    if stopper.signum is None:
                        raise
                    final = True  # Ctrl-C also reached the decoding workers
            if pending is not None:
                reporter.read(pending)
            with writing(f"a checkpoint in {run.ckpt_dir}"):
                run.ckpt.check_for_errors()  # a background save that failed ends the run now
            pending = Dispatched(step, metrics, skipped, final)
            do_sample, do_eval = (  # every --sample-every / --eval-every, and at the end
                run.held_out is not None and bool(every) and (step % every == 0 or final)
                for every in (cfg.sample_every, cfg.eval_every)
            )
            do_save = step % cfg.save_every == 0 or final
            if not (do_sample or do_eval or do_save):
                continue
            reporter.read(pending)  # its state is used: its metrics must be finite
            pending = None
            if do_sample or do_eval:
                reporter.held_out(step, state, do_sample, do_eval)
            if do_save:
                with writing(f"a checkpoint in {run.ckpt_dir}"):
                    run.ckpt.save(step, state, data_state or iterator.get_state())
                last_saved = step
            if final:
                break
    except NonFinite as e:
        bad_step, m = e.args
        kept = f"step {last_saved}" if last_saved else "none"
        print(
            f"error: non-finite loss at step {bad_step} (content {m['content']:.4g}, "
            f"style {m['style']:.4g}, grad norm {m['grad_norm']:.4g}); stopped "
            f"without saving it. Last good checkpoint: {kept} in {run.ckpt_dir}; "
            "lower --lr or check the data.",
            file=sys.stderr,
        )
        return EXIT_NONFINITE
    except WriteFailed as e:
        kept = f"step {last_saved}" if last_saved else "none"
        print(
            f"error: {e}; stopped at step {step}. Last checkpoint: {kept} in {run.ckpt_dir}; "
            "free space (or fix the path) and re-run the same command to resume",
            file=sys.stderr,
        )
        return EXIT_IO
    if stopper.signum is not None:
        print(f"stopped at step {step}; checkpoint saved", file=sys.stderr)
        return EXIT_SIGNAL[stopper.signum]
    if step < cfg.max_steps:  # another process was signalled
        print(
            f"stopped at step {step} (another process was signalled); checkpoint saved",
            file=sys.stderr,
        )
        return EXIT_SIGNAL[signal.SIGTERM]
    return EXIT_OK
