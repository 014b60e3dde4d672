"""Checkpoints of a training workdir (orbax): ``(state, data iterator state)`` pairs.

The workdir layout (``DIR/checkpoints/<step>/{state,data}``, ``DIR/encoder.safetensors``) and
reading a workdir's latest decoder live in ``adain_jax.weights.workdir`` (inference needs them
without the training half).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp

from adain_jax.weights.workdir import (
    DATA_ITEM,
    STATE_ITEM,
    CheckpointError,
    checkpoints_dir,
    newest_that_restores,
)


class Checkpointer:
    """Saves and restores ``(state, data iterator state)`` pairs under ``DIR/checkpoints``.

    Saves are asynchronous: ``save`` returns once the arrays are copied off the device (so the
    state may be donated right after), and the files are written in the background; a
    checkpoint directory appears only when complete. Keeps the ``keep`` newest checkpoints.
    """

    def __init__(self, workdir: str | os.PathLike, keep: int = 3):
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=True
        )
        self._manager = ocp.CheckpointManager(checkpoints_dir(workdir), options=options)

    def all_steps(self) -> list[int]:
        """The steps of the complete checkpoints, oldest first."""
        return sorted(self._manager.all_steps())

    def check_for_errors(self) -> None:
        """Raise the error of a background save that failed (e.g. ``OSError`` ENOSPC)."""
        self._manager.check_for_errors()

    def reload(self) -> None:
        """Re-read the checkpoint directory (after a checkpoint was moved aside)."""
        self._manager.reload()

    def save(self, step: int, state: Any, data_state: dict) -> None:
        """Save ``state`` (a pytree of arrays) and the JSON-able ``data_state`` as ``step``."""
        items = {STATE_ITEM: ocp.args.StandardSave(state), DATA_ITEM: ocp.args.JsonSave(data_state)}
        self._manager.save(step, args=ocp.args.Composite(**items), force=True)

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict]:
        """``(state, data_state)`` of ``step`` (default: the latest), arrays placed as
        ``abstract_state``'s ``jax.ShapeDtypeStruct`` shardings say."""
        step = self._manager.latest_step() if step is None else step
        if step is None:
            raise CheckpointError("no checkpoint to restore")
        items = {
            STATE_ITEM: ocp.args.StandardRestore(abstract_state),
            DATA_ITEM: ocp.args.JsonRestore(),
        }
        restored = self._manager.restore(step, args=ocp.args.Composite(**items))
        return restored[STATE_ITEM], dict(restored[DATA_ITEM])

    def wait_until_finished(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


DAMAGED = "damaged_checkpoints"


class NoCheckpointRestores(CheckpointError):
    """Checkpoints exist but none of them restores."""


def restore_latest_good(
    ckpt: Checkpointer,
    workdir: str | os.PathLike,
    abstract_state: Any,
    move: bool = True,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> tuple[int, Any, dict] | None:
    """Restore the newest checkpoint that restores; damaged newer ones are reported in one line
    each and moved aside (``move``; process 0 only in a multi-host run).

    Returns ``(step, state, data_state)``, or ``None`` when there is no checkpoint; raises
    ``NoCheckpointRestores`` (a ``CheckpointError``) when there are checkpoints but none restores.
    """

    def damaged(step: int, reason: str) -> None:
        where = ""
        if move:  # to DIR/damaged_checkpoints/<step>-<time>, never deleted: worth a look
            target = Path(workdir).absolute() / DAMAGED / f"{step}-{time.strftime('%Y%m%d-%H%M%S')}"
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(checkpoints_dir(workdir) / str(step), target)
            where = f"; moved aside to {target}"
        log(f"warning: checkpoint {step} does not restore ({reason}){where}")
        ckpt.reload()

    steps = ckpt.all_steps()
    found = newest_that_restores(steps, lambda step: ckpt.restore(abstract_state, step), damaged)
    if found is not None:
        step, (state, data_state) = found
        return step, state, data_state
    if steps:
        raise NoCheckpointRestores(
            f"{checkpoints_dir(workdir)}: none of the checkpoints {steps} restores "
            f"(moved to {Path(workdir).absolute() / DAMAGED}); re-running starts from step 0"
        )
    return None
