"""Command line of ``python train.py`` (``adain-jax train``): flags, their validation, the run.

Every flag is checked before any work starts; a bad one is one line on stderr naming it, exit
status 2. Exit statuses: 0 finished (or already past ``--max-steps``), 1 non-finite loss (the last
good checkpoint is kept), 2 bad flags or inputs, 65 checkpoints exist but none restores (they are
moved to ``DIR/damaged_checkpoints``), 69 a multi-process run lost another of its processes (re-run
the command on every host; ``docs/multi-host.md``), 70 an internal error (a bug: the traceback is
printed), 74 a file could not be written or read (a full disk; the earlier checkpoints are kept:
free space and re-run), 75 another run holds the workdir, 130 / 143 / 129 stopped by SIGINT /
SIGTERM / SIGHUP after saving a checkpoint (re-run the same command to resume).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

# Light modules only: flags, the workdir lock and the cheap checks run before JAX, orbax
# and grain are imported (``_run`` imports them).
from adain_jax.cli import compile_cache, helptext
from adain_jax.cli.exits import fail
from adain_jax.cli.weight_flags import add_version_flag
from adain_jax.io.messages import (
    EXIT_BUSY,
    EXIT_INTERNAL,
    EXIT_IO,
    EXIT_NO_CHECKPOINT,
    EXIT_PEER_LOST,
    EXIT_SIGNAL,
    EXIT_USAGE,
    one_line,
    path_flag,
)
from adain_jax.training import config as config_lib
from adain_jax.training.config import RunError, TrainConfig
from adain_jax.training.faults import WriteFailed, is_peer_lost, stop_timeout_s
from adain_jax.training.lock import LOCK_FILE, WorkdirBusyError, WorkdirLock


def build_parser(prog: str = "train.py") -> argparse.ArgumentParser:
    """The flags: one per ``TrainConfig`` field (``adain_jax.training.config``), and
    ``--distributed`` (process setup, not a setting of the run)."""
    p = helptext.parser(
        prog,
        "Train an AdaIN decoder (Huang & Belongie 2017) with the paper's defaults. "
        "Re-running the same command resumes from the latest checkpoint in --workdir.",
        epilog="Exit status: 0 finished, 1 a non-finite loss, 2 a bad flag or input, 65 no "
        "checkpoint restores, 69 a lost process, 70 an internal error, 74 a failed read or "
        "write, 75 the workdir is in use, 129/130/143 stopped by a signal. At the end it prints "
        "what it wrote; stylize with: infer.py --checkpoint DIR.",
    )
    for f in config_lib.FIELDS:
        flag = config_lib.flag(f.name)
        if f.metadata["source"]:  # --NAME-dir FOLDER | --NAME-tfds NAME[:SPLIT]
            group = p.add_mutually_exclusive_group(required=True)
            group.add_argument(f"{flag}-dir", type=path_flag, help=f.metadata["help"])
            group.add_argument(f"{flag}-tfds", metavar="NAME[:SPLIT]", help=f.metadata["tfds_help"])
            continue
        kwargs = dict(f.metadata["argparse"])
        if f.default is dataclasses.MISSING:
            kwargs["required"] = True
        else:
            kwargs["default"] = f.default
            if "action" not in kwargs and f.default is not None:
                kwargs.setdefault("type", type(f.default))
        p.add_argument(flag, dest=f.name, help=f.metadata["help"], **kwargs)
    p.add_argument(
        "--distributed", action="store_true", help="multi-host: jax.distributed.initialize()"
    )
    add_version_flag(p)
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Validate the flags (no JAX, no I/O beyond existence checks) and build the config."""
    values = {}
    for f in config_lib.FIELDS:
        if f.metadata["source"]:
            flag = config_lib.flag(f.name)
            folder, tfds = getattr(args, f"{f.name}_dir"), getattr(args, f"{f.name}_tfds")
            values[f.name] = folder or config_lib.tfds_source(tfds, f"{flag}-tfds")
        else:
            values[f.name] = getattr(args, f.name)
    cfg = TrainConfig(**values)
    config_lib.validate(cfg)
    try:
        stop_timeout_s()  # read again by the signal handler, where a bad value would lose work
    except ValueError as e:
        raise RunError(e) from None
    return cfg


def main(argv: Sequence[str] | None = None, *, prog: str = "train.py") -> int:
    """Parse, validate, lock the workdir, run. Returns the exit status (see the module docstring).
    Bad flags and a busy workdir are reported before JAX is imported; a run that fails before
    writing anything leaves no workdir behind."""
    args = build_parser(prog).parse_args(argv)
    try:
        cfg = config_from_args(args)
    except RunError as e:
        return fail(e, EXIT_USAGE)
    workdir = Path(cfg.workdir)
    # The folders this run creates (the workdir and missing parents), innermost first.
    created = [p for p in (workdir, *workdir.parents) if not p.exists()]
    lock = None
    # One process of several may run here: then the lock waits for JAX, which says which
    # process is process 0.
    if not (args.distributed or os.environ.get("JAX_COORDINATOR_ADDRESS")):
        lock = WorkdirLock(workdir)
        try:
            lock.acquire()
        except WorkdirBusyError as e:
            return fail(e, EXIT_BUSY)
        except OSError as e:
            return fail(f"--workdir {workdir}: {one_line(e)}", EXIT_IO)
    try:
        status = _train(args, cfg, lock)
    finally:
        if lock is not None:
            lock.release()
        _remove_if_empty(created)
    if status == 0:
        print(_finished_line(workdir))
    return status


def _train(args: argparse.Namespace, cfg: TrainConfig, lock: WorkdirLock | None) -> int:
    # orbax logs each failed background write with a long traceback; the loop reports it in one
    # line instead (training.faults).
    logging.getLogger("absl").setLevel(logging.CRITICAL)
    compile_cache.enable()
    from adain_jax.training import step as train_lib

    distributed = train_lib.maybe_initialize_distributed(args.distributed)
    status = _run(cfg, locked=lock is not None)
    if distributed and status not in (0, *EXIT_SIGNAL.values()):
        # The other processes may wait for this one in a collective: end at once, so the
        # distributed runtime ends them too (within its heartbeat timeout), not a hang.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


def _remove_if_empty(created: list[Path]) -> None:
    """Remove the folders this run created (innermost first) while nothing but the workdir's
    lock file is in them."""
    try:
        for folder in created:
            if {p.name for p in folder.iterdir()} > {LOCK_FILE}:
                return
            (folder / LOCK_FILE).unlink(missing_ok=True)
            folder.rmdir()
    except OSError:
        pass


def _finished_line(workdir: Path) -> str:
    """What a finished run wrote and how to use it."""
    from adain_jax.weights.workdir import checkpoint_steps  # JAX is imported by now

    steps = checkpoint_steps(workdir)
    latest = f"checkpoints/{steps[-1]}" if steps else "checkpoints"
    samples = ", samples/" if (workdir / "samples").is_dir() else ""  # none: --sample-every 0
    return (
        f"wrote {workdir}/ ({latest}, encoder.safetensors, metrics.jsonl{samples}); "
        f"stylize with: python infer.py --checkpoint {workdir} --content C --style S"
    )


def _run(cfg: TrainConfig, locked: bool = False) -> int:
    """Train; every failure becomes its exit status (one line, or a traceback for a bug).
    ``locked``: this process already holds the workdir lock."""
    import jax

    from adain_jax.training import checkpointing, data
    from adain_jax.training import loop as trainer
    from adain_jax.weights import convert, download
    from adain_jax.weights import safetensors_io as weights_io
    from adain_jax.weights.torch_pickle import TorchFileError

    # What a bad input raises: printed as one line, exit status 2.
    expected = (
        RunError,
        data.DataError,
        TorchFileError,
        FileNotFoundError,
        PermissionError,
        download.DownloadError,
        checkpointing.CheckpointError,
        convert.WeightsError,
        weights_io.WeightsFormatError,
    )
    try:
        for n, what in ((jax.device_count(), "devices"), (jax.process_count(), "processes")):
            if cfg.batch_size % n:
                raise RunError(
                    f"--batch-size {cfg.batch_size}: must be divisible by the {n} {what}"
                )
        return trainer.train(cfg, locked=locked)
    except WorkdirBusyError as e:
        return fail(e, EXIT_BUSY)
    except WriteFailed as e:
        return fail(e, EXIT_IO)
    except checkpointing.NoCheckpointRestores as e:
        return fail(e, EXIT_NO_CHECKPOINT)
    except Exception as e:
        if isinstance(e, expected):
            return fail(e, EXIT_USAGE)
        if isinstance(e, OSError):  # e.g. an unwritable cache or workdir
            where = f"{e.filename}: " if e.filename else ""
            return fail(f"{where}{e.strerror or e}", EXIT_IO)
        if isinstance(e, jax.errors.JaxRuntimeError) and is_peer_lost(e):
            reason = str(e).strip().splitlines()[0][:300]
            return fail(
                f"lost another process of this multi-process run ({reason}); re-run the "
                "same command on every host to resume from the last checkpoint",
                EXIT_PEER_LOST,
            )
        # a bug: keep the traceback, but not the status of a NaN
        traceback.print_exc()
        return EXIT_INTERNAL
    except KeyboardInterrupt:  # before the loop's handlers are installed
        print("interrupted before training started", file=sys.stderr)
        return 130
