"""Checkpoints of a training workdir (orbax), and reading its latest decoder.

Layout of a workdir ``DIR``::

    DIR/config.json                 the run's settings (adain_jax.cli.train)
    DIR/encoder.safetensors         the frozen VGG encoder the run trains against
    DIR/checkpoints/<step>/state    decoder params, Adam state, step (orbax StandardSave)
    DIR/checkpoints/<step>/data     the data iterator's state (JSON)

The encoder is never in a checkpoint: it is saved once, as a weights file, so
a workdir is self-contained (``adain_jax.load_params(DIR)``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from adain_jax.nn import models
from adain_jax.weights import safetensors_io as weights_io

CHECKPOINTS = "checkpoints"
ENCODER_FILE = "encoder.safetensors"


class CheckpointError(RuntimeError):
    """A workdir without a usable checkpoint."""


class Checkpointer:
    """Saves and restores ``(state, data iterator state)`` pairs under ``DIR/checkpoints``.

    Saves are asynchronous: ``save`` returns once the arrays are copied off the
    device (so the state may be donated right after), and the files are
    written in the background; a checkpoint directory appears only when
    complete. Keeps the ``keep`` newest checkpoints.
    """

    def __init__(self, workdir: str | os.PathLike, keep: int = 3, async_save: bool = True):
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            create=True,
            enable_async_checkpointing=async_save,
        )
        self._manager = ocp.CheckpointManager(
            Path(workdir).absolute() / CHECKPOINTS, options=options
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state: Any, data_state: dict) -> None:
        """Save ``state`` (a pytree of arrays) and the JSON-able ``data_state`` as ``step``."""
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state)
            ),
            force=True,
        )

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict]:
        """``(state, data_state)`` of ``step`` (default: the latest), arrays placed as
        ``abstract_state``'s ``jax.ShapeDtypeStruct`` shardings say."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise CheckpointError("no checkpoint to restore")
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()
            ),
        )
        return restored.state, dict(restored.data)

    def wait_until_finished(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def encoder_path(workdir: str | os.PathLike) -> Path:
    return Path(workdir) / ENCODER_FILE


def latest_decoder_params(workdir: str | os.PathLike) -> dict:
    """The latest checkpointed decoder of a training workdir.

    Returns:
      ``{"decoder": {layer: {"kernel": HWIO, "bias": [C]}} float32 numpy,
      "vgg": str path of the encoder weights the run used}``.

    Raises:
      CheckpointError: no checkpoint or no encoder file in ``workdir``.
    """
    workdir = Path(workdir)
    enc = encoder_path(workdir)
    if not enc.is_file():
        raise CheckpointError(f"{workdir}: training workdir without {ENCODER_FILE}")
    directory = (workdir / CHECKPOINTS).absolute()
    options = ocp.CheckpointManagerOptions(create=False)
    with ocp.CheckpointManager(directory, options=options) as manager:
        step = manager.latest_step()
        if step is None:
            raise CheckpointError(f"{workdir}: no checkpoint yet in {CHECKPOINTS}/")
        cpu = jax.sharding.SingleDeviceSharding(jax.local_devices(backend="cpu")[0])
        decoder_target = jax.tree.map(
            lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=cpu),
            models.decoder_shapes(),
        )
        restored = manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.PyTreeRestore(
                    item={"decoder": decoder_target},
                    restore_args=ocp.checkpoint_utils.construct_restore_args(
                        {"decoder": decoder_target}
                    ),
                    partial_restore=True,
                )
            ),
        )
    decoder = jax.tree.map(lambda a: np.asarray(a, np.float32), restored.state["decoder"])
    return {"decoder": decoder, "vgg": str(enc)}


def save_encoder(workdir: str | os.PathLike, params: dict, source: str) -> Path:
    """Write the run's encoder to ``DIR/encoder.safetensors`` (atomically); return its path."""
    path = encoder_path(workdir)
    weights_io.save(path, "encoder", params, source=source)
    return path
