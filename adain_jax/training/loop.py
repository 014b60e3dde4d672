"""The training run: workdir, resume, the step loop, checkpoints, signals, logging.

``train(cfg)`` is what ``python train.py`` runs (``adain_jax.cli.train`` parses
the flags into a ``RunConfig``). Re-running it with the same workdir resumes
from the latest checkpoint and continues bit-identically to an uninterrupted
run: the step is deterministic and the data iterator's state is checkpointed
with the model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path

import jax
import numpy as np

from adain_jax.io import files
from adain_jax.training import checkpointing, evaluate, monitoring
from adain_jax.training import step as train_lib
from adain_jax.weights import convert

CONFIG_FILE = "config.json"
# Settings a run cannot change on resume: they define the model or the data stream.
FIXED_KEYS = (
    "encoder_sha256",
    "dtype",
    "batch_size",
    "image_size",
    "crop_size",
    "seed",
    "content",
    "style",
)
# Exit statuses: finished; a bad setting or input; non-finite loss; stopped by a signal.
EXIT_OK, EXIT_USAGE, EXIT_NONFINITE = 0, 2, 1
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}


class RunError(ValueError):
    """A problem with the run's settings or workdir (printed as one line)."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """All settings of a run (see ``python train.py --help``)."""

    workdir: str
    content: str  # image folder or "tfds:NAME[:SPLIT]"
    style: str
    vgg: str | None = None
    batch_size: int = 8
    image_size: int = 512
    crop_size: int = 256
    max_steps: int = 160_000
    lr: float = 1e-4
    lr_decay: float = 5e-5
    content_weight: float = 1.0
    style_weight: float = 10.0
    seed: int = 0
    save_every: int = 1000
    keep: int = 3
    log_every: int = 50
    sample_every: int = 1000
    eval_every: int = 1000
    num_samples: int = 4
    sample_content_dir: str | None = None
    sample_style_dir: str | None = None
    num_workers: int | None = None
    dtype: str = "float32"
    progress: bool = True

    def step_config(self) -> train_lib.StepConfig:
        return train_lib.StepConfig(
            lr=self.lr,
            lr_decay=self.lr_decay,
            content_weight=self.content_weight,
            style_weight=self.style_weight,
            dtype=self.dtype,
        )


def params_sha256(params: dict) -> str:
    """Hash of a params tree's names, shapes and float32 values."""
    h = hashlib.sha256()
    for layer in sorted(params):
        for leaf in sorted(params[layer]):
            value = np.ascontiguousarray(np.asarray(params[layer][leaf], np.float32))
            h.update(f"{layer}/{leaf}{value.shape}".encode())
            h.update(value.tobytes())
    return h.hexdigest()


def _write_json(path: Path, obj: dict) -> None:
    with files.atomic_open(path) as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def _source_key(source: str) -> str:
    return source if source.startswith("tfds:") else str(Path(source).resolve())


def check_config(cfg: RunConfig, saved: dict | None, encoder_sha: str | None) -> list[str]:
    """Compare a resumed run's settings with ``config.json``.

    Returns notes on changed free settings; raises ``RunError`` naming the
    first changed fixed setting. ``encoder_sha=None`` skips the encoder check.
    """
    if saved is None:
        return []
    current = _config_dict(cfg, encoder_sha or saved.get("encoder_sha256"))
    for key in FIXED_KEYS:
        if key in saved and saved[key] != current[key]:
            flag = "--" + key.replace("_", "-")
            what = "encoder weights (--vgg)" if key == "encoder_sha256" else flag
            raise RunError(
                f"{cfg.workdir}: resuming with a different {what} "
                f"({_short(saved[key])} in config.json, now {_short(current[key])}); "
                "use the original setting or a new --workdir"
            )
    ignore = {"vgg", "progress", "encoder_source", *FIXED_KEYS}
    return [
        f"--{k.replace('_', '-')} changed on resume: {saved[k]!r} -> {current[k]!r}"
        for k in sorted(current)
        if k not in ignore and k in saved and saved[k] != current[k]
    ]


def _short(value) -> str:
    return repr(value[:12] + "...") if isinstance(value, str) and len(value) == 64 else repr(value)


def _config_dict(cfg: RunConfig, encoder_sha: str | None) -> dict:
    d = dataclasses.asdict(cfg)
    d["content"], d["style"] = _source_key(cfg.content), _source_key(cfg.style)
    d["encoder_sha256"] = encoder_sha
    return d


def read_config(workdir: str | os.PathLike) -> dict | None:
    path = Path(workdir) / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise RunError(f"{path}: unreadable ({e})") from None


def load_encoder(cfg: RunConfig) -> tuple[dict, str]:
    """The run's encoder params and where they came from: ``--vgg``, else the
    workdir's ``encoder.safetensors`` (resume), else torchvision's VGG-19 (download)."""
    workdir_encoder = checkpointing.encoder_path(cfg.workdir)
    if cfg.vgg is not None:
        source = cfg.vgg
    elif workdir_encoder.is_file():
        source = str(workdir_encoder)
    else:
        from adain_jax.weights import pretrained

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


def _held_out(cfg: RunConfig) -> tuple[list, list] | None:
    """The fixed sample/eval pairs: first ``num_samples`` images of the sample
    folders (default: the training folders), at ``crop_size``."""
    from adain_jax.training import data

    c_dir = cfg.sample_content_dir or (None if cfg.content.startswith("tfds:") else cfg.content)
    s_dir = cfg.sample_style_dir or (None if cfg.style.startswith("tfds:") else cfg.style)
    if c_dir is None or s_dir is None:
        return None
    contents = data.load_eval_images(c_dir, cfg.crop_size, cfg.num_samples)
    styles = data.load_eval_images(s_dir, cfg.crop_size, cfg.num_samples)
    if not contents or not styles:
        return None
    return contents, styles


def train(cfg: RunConfig) -> int:
    """Run (or resume) training; returns the process exit status.

    Raises ``RunError``/``ValueError``/``OSError`` for bad settings or inputs
    (the CLI prints them as one line).
    """
    from adain_jax.training import data

    workdir = Path(cfg.workdir)
    is_main = jax.process_index() == 0
    saved = read_config(workdir)
    check_config(cfg, saved, None)  # cheap checks first

    pipeline = data.PipelineConfig(
        batch_size=cfg.batch_size,
        image_size=cfg.image_size,
        crop_size=cfg.crop_size,
        seed=cfg.seed,
        num_workers=data.default_num_workers() if cfg.num_workers is None else cfg.num_workers,
    )
    iterator = data.make_pair_iterator(
        cfg.content,
        cfg.style,
        pipeline,
        shard_index=jax.process_index(),
        shard_count=jax.process_count(),
    )
    held_out = _held_out(cfg) if (cfg.sample_every or cfg.eval_every) else None
    if held_out is None and (cfg.sample_every or cfg.eval_every):
        print(
            "note: no samples or held-out losses for TFDS sources without "
            "--sample-content-dir and --sample-style-dir",
            file=sys.stderr,
        )

    encoder_np, encoder_source = load_encoder(cfg)
    encoder_sha = params_sha256(encoder_np)
    notes = check_config(cfg, saved, encoder_sha)
    if is_main:
        workdir.mkdir(parents=True, exist_ok=True)
        if not checkpointing.encoder_path(workdir).is_file():
            checkpointing.save_encoder(workdir, encoder_np, os.path.basename(encoder_source))
        config = _config_dict(cfg, encoder_sha)
        config["encoder_source"] = (saved or {}).get("encoder_source", encoder_source)
        _write_json(workdir / CONFIG_FILE, config)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)

    mesh = train_lib.make_mesh()
    step_cfg = cfg.step_config()
    step_fn = train_lib.make_train_step(cfg.dtype, mesh)
    vgg = train_lib.put_replicated(encoder_np, mesh)
    hparams = train_lib.put_replicated(step_cfg.hyperparams(), mesh)

    ckpt = checkpointing.Checkpointer(workdir, keep=cfg.keep)
    try:
        return _loop(cfg, ckpt, iterator, mesh, hparams, step_fn, vgg, encoder_np, held_out)
    finally:
        iterator.close()
        ckpt.wait_until_finished()
        ckpt.close()


def _loop(cfg, ckpt, iterator, mesh, hparams, step_fn, vgg, encoder_np, held_out) -> int:
    from tqdm import tqdm

    is_main = jax.process_index() == 0
    start = ckpt.latest_step() or 0
    if start:
        state, data_state = ckpt.restore(train_lib.abstract_state(mesh))
        iterator.set_state(data_state)
        print(f"resuming from step {start} ({Path(cfg.workdir) / 'checkpoints'})", file=sys.stderr)
    else:
        state = train_lib.init_state(train_lib.init_decoder(cfg.seed), mesh)
    if start >= cfg.max_steps:
        print(f"already at step {start} >= --max-steps {cfg.max_steps}; nothing to do")
        return EXIT_OK

    writer = monitoring.MetricsWriter(cfg.workdir, resume_step=start, enabled=is_main)
    bar = tqdm(
        total=cfg.max_steps,
        initial=start,
        unit="step",
        disable=not (is_main and cfg.progress),
        dynamic_ncols=True,
        file=sys.stderr,
    )
    step, last_saved = start, start or None
    status = EXIT_OK
    batch = train_lib.shard_batch(next(iterator), mesh)
    timer_step, timer = step, time.perf_counter()
    try:
        with _Stopper() as stopper:
            while True:
                state, metrics = step_fn(state, vgg, batch, hparams)
                step += 1
                stop = stopper.signum is not None or step >= cfg.max_steps
                next_data_state = None  # the iterator's state after `step` batches
                if not stop:  # fetch the next batch while the device computes
                    next_data_state = iterator.get_state()
                    try:
                        batch = train_lib.shard_batch(next(iterator), mesh)
                    except Exception:
                        if stopper.signum is None:
                            raise
                        stop = True  # Ctrl-C also reached the decoding workers
                m = jax.device_get(metrics)
                if not m["finite"]:
                    kept = f"step {last_saved}" if last_saved else "none"
                    print(
                        f"error: non-finite loss at step {step} (content {m['content']:.4g}, "
                        f"style {m['style']:.4g}, grad norm {m['grad_norm']:.4g}); stopped "
                        f"without saving it. Last good checkpoint: {kept} in "
                        f"{Path(cfg.workdir) / 'checkpoints'}; lower --lr or check the data.",
                        file=sys.stderr,
                    )
                    return EXIT_NONFINITE
                if step == start + 1:  # rates exclude the first step (compilation)
                    timer_step, timer = step, time.perf_counter()
                if step % cfg.log_every == 0 or stop:
                    now = time.perf_counter()
                    rate = (step - timer_step) / max(now - timer, 1e-9)
                    timer_step, timer = step, now
                    writer.scalars(
                        step,
                        {
                            "loss/content": m["content"],
                            "loss/style": m["style"],
                            "loss/total": m["total"],
                            "lr": m["lr"],
                            "grad_norm": m["grad_norm"],
                            "steps_per_sec": rate,
                            "images_per_sec": rate * cfg.batch_size,
                            "data/skipped_images": iterator.skipped,
                        },
                    )
                    bar.set_postfix(
                        content=f"{m['content']:.3f}",
                        style=f"{m['style']:.3f}",
                        total=f"{m['total']:.3f}",
                        refresh=False,
                    )
                    if is_main and not cfg.progress:  # plain lines for batch-job logs
                        print(
                            f"step {step}: content {m['content']:.4g} style {m['style']:.4g} "
                            f"total {m['total']:.4g} lr {m['lr']:.3g} {rate:.3g} steps/s",
                            flush=True,
                        )
                bar.update(1)
                if held_out is not None:
                    _held_out_logs(cfg, step, state, encoder_np, held_out, writer, stop)
                if step % cfg.save_every == 0 or stop:
                    current = next_data_state if next_data_state else iterator.get_state()
                    ckpt.save(step, state, current)
                    last_saved = step
                if stop:
                    if stopper.signum is not None:
                        status = EXIT_SIGNAL[stopper.signum]
                        print(f"stopped at step {step}; checkpoint saved", file=sys.stderr)
                    break
    finally:
        bar.close()
        writer.close()
    return status


def _held_out_logs(cfg, step, state, encoder_np, held_out, writer, final) -> None:
    """Every --sample-every: a PNG grid; every --eval-every: the held-out losses."""
    do_sample = cfg.sample_every and (step % cfg.sample_every == 0 or final)
    do_eval = cfg.eval_every and (step % cfg.eval_every == 0 or final)
    if not (do_sample or do_eval):
        return
    contents, styles = held_out
    params = {"encoder": encoder_np, "decoder": jax.device_get(state["decoder"])}
    res = evaluate.evaluate_pairs(
        params, encoder_np, contents, styles, chunk=len(contents) * len(styles), dtype=cfg.dtype
    )
    if do_eval:
        writer.scalars(
            step,
            {"eval/content": float(np.mean(res.content)), "eval/style": float(np.mean(res.style))},
        )
    if do_sample and writer.enabled:
        grid = monitoring.pair_grid(contents, styles, res.outputs)
        monitoring.write_png(
            Path(cfg.workdir) / monitoring.SAMPLES_DIR / f"step_{step:06d}.png", grid
        )
        writer.image(step, "samples", grid)
        writer.flush()
