"""Command line of ``python train.py``: flags, their validation, the run.

Every flag is checked before any work starts; a bad one ends the program
with one line on stderr naming it, and exit status 2. Exit statuses:
0 finished (or already past ``--max-steps``), 1 non-finite loss (the last
good checkpoint is kept), 2 bad flags or inputs, 65 checkpoints exist but none
restores (they are moved to ``DIR/damaged_checkpoints``), 70 an internal error
(a bug: the traceback is printed), 74 a file could not be written or read (a
full disk; the earlier checkpoints are kept: free space and re-run), 75 another
run holds the workdir, 130 / 143 stopped by SIGINT / SIGTERM after saving a
checkpoint (re-run the same command to resume), 69 a multi-process run lost another of
its processes (re-run the command on every host; ``docs/multi-host.md``).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import traceback
from collections.abc import Sequence

import jax

from adain_jax.io.messages import one_line
from adain_jax.training import checkpointing, data
from adain_jax.training import config as config_lib
from adain_jax.training import loop as trainer
from adain_jax.training import step as train_lib
from adain_jax.training.config import RunError, TrainConfig
from adain_jax.training.faults import (
    EXIT_BUSY,
    EXIT_INTERNAL,
    EXIT_IO,
    EXIT_NO_CHECKPOINT,
    EXIT_PEER_LOST,
    EXIT_SIGNAL,
    EXIT_USAGE,
    WriteFailed,
    is_peer_lost,
)
from adain_jax.training.lock import WorkdirBusyError
from adain_jax.weights import convert, download
from adain_jax.weights import safetensors_io as weights_io
from adain_jax.weights.torch_pickle import TorchFileError

# What a bad input raises: printed as one line, exit status 2.
EXPECTED_ERRORS = (
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


def _help(field: dataclasses.Field) -> str | None:
    text = field.metadata["help"]
    if field.default is dataclasses.MISSING or isinstance(field.default, bool):
        return text
    if text is not None and "default" in text:
        return text
    return f"{text} (default: %(default)s)" if text else "default: %(default)s"


def build_parser(prog: str = "train.py") -> argparse.ArgumentParser:
    """The flags: one per ``TrainConfig`` field (``adain_jax.training.config``), and
    ``--distributed`` (process setup, not a setting of the run)."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="Train an AdaIN decoder (Huang & Belongie 2017) with the paper's defaults. "
        "Re-running the same command resumes from the latest checkpoint in --workdir.",
    )
    for f in config_lib.FIELDS:
        flag = config_lib.flag(f.name)
        if f.metadata["source"]:  # --NAME-dir FOLDER | --NAME-tfds NAME[:SPLIT]
            group = p.add_mutually_exclusive_group(required=True)
            group.add_argument(f"{flag}-dir", help=f.metadata["help"])
            group.add_argument(f"{flag}-tfds", metavar="NAME[:SPLIT]", help=f.metadata["tfds_help"])
            continue
        kwargs = dict(f.metadata["argparse"])
        if f.default is dataclasses.MISSING:
            kwargs["required"] = True
        else:
            kwargs["default"] = f.default
            if "action" not in kwargs and f.default is not None:
                kwargs.setdefault("type", type(f.default))
        p.add_argument(flag, dest=f.name, help=_help(f), **kwargs)
    p.add_argument(
        "--distributed", action="store_true", help="multi-host: jax.distributed.initialize()"
    )
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
    return cfg


def _check_devices(cfg: TrainConfig) -> None:
    devices, processes = jax.device_count(), jax.process_count()
    if cfg.batch_size % devices:
        raise RunError(f"--batch-size {cfg.batch_size}: must be divisible by the {devices} devices")
    if cfg.batch_size % processes:
        raise RunError(
            f"--batch-size {cfg.batch_size}: must be divisible by the {processes} processes"
        )


def main(argv: Sequence[str] | None = None, *, prog: str = "train.py") -> int:
    """Parse, validate, run. Returns the exit status (see the module docstring)."""
    args = build_parser(prog).parse_args(argv)
    try:
        cfg = config_from_args(args)
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    # orbax logs each failed background write with a long traceback; the loop reports
    # it in one line instead (training.faults).
    logging.getLogger("absl").setLevel(logging.CRITICAL)
    distributed = train_lib.maybe_initialize_distributed(args.distributed)
    status = _run(cfg)
    if distributed and status not in (0, *EXIT_SIGNAL.values()):
        # The other processes may wait for this one in a collective: end at once, so the
        # distributed runtime ends them too (within its heartbeat timeout), not a hang.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


def _run(cfg: TrainConfig) -> int:
    """Train; every failure becomes its exit status (one line, or a traceback for a bug)."""
    try:
        _check_devices(cfg)
        return trainer.train(cfg)
    except WorkdirBusyError as e:
        return _fail(e, EXIT_BUSY)
    except WriteFailed as e:
        return _fail(e, EXIT_IO)
    except checkpointing.NoCheckpointRestores as e:
        return _fail(e, EXIT_NO_CHECKPOINT)
    except EXPECTED_ERRORS as e:
        return _fail(e, EXIT_USAGE)
    except OSError as e:  # e.g. an unwritable cache or workdir
        where = f"{e.filename}: " if e.filename else ""
        return _fail(f"{where}{e.strerror or e}", EXIT_IO)
    except jax.errors.JaxRuntimeError as e:
        if not is_peer_lost(e):
            traceback.print_exc()
            return EXIT_INTERNAL
        reason = str(e).strip().splitlines()[0][:300]
        return _fail(
            f"lost another process of this multi-process run ({reason}); re-run the same "
            "command on every host to resume from the last checkpoint",
            EXIT_PEER_LOST,
        )
    except KeyboardInterrupt:  # before the loop's handlers are installed
        print("interrupted before training started", file=sys.stderr)
        return 130
    except Exception:  # a bug: keep the traceback, but not the status of a NaN
        traceback.print_exc()
        return EXIT_INTERNAL


def _fail(error, status: int) -> int:
    print(f"error: {one_line(error)}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
