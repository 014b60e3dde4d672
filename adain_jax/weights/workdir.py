"""Reading a training workdir's latest decoder (for ``load_params(DIR)``, ``infer.py
--checkpoint``), and the workdir layout that ``adain_jax.training`` writes::

    DIR/config.json                 the run's settings (adain_jax.training.config),
                                    among them the decoder variant (fusion, decoder_norm)
    DIR/encoder.safetensors         the frozen VGG encoder the run trains against
    DIR/checkpoints/<step>/state    decoder params, Adam state, step (orbax StandardSave)
    DIR/checkpoints/<step>/data     the data iterator's state (JSON)

The encoder is never in a checkpoint: it is saved once, as a weights file, so a workdir is
self-contained.
"""

from __future__ import annotations

import errno
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from adain_jax.io import files
from adain_jax.io.messages import one_line
from adain_jax.nn.models import PAPER, DecoderVariant, decoder_shapes

CHECKPOINTS = "checkpoints"
ENCODER_FILE = "encoder.safetensors"
STATE_ITEM, DATA_ITEM = "state", "data"


class CheckpointError(RuntimeError, ValueError):
    """A workdir without a usable checkpoint: bad input, so also a ``ValueError`` (every
    command reports those as one line)."""


def encoder_path(workdir: str | os.PathLike) -> Path:
    """``DIR/encoder.safetensors``."""
    return Path(workdir) / ENCODER_FILE


def checkpoints_dir(workdir: str | os.PathLike) -> Path:
    """``DIR/checkpoints``, absolute (orbax wants absolute paths)."""
    return Path(workdir).absolute() / CHECKPOINTS


def newest_that_restores(
    steps: list[int],
    restore: Callable[[int], Any],
    on_damaged: Callable[[int, str], None],
) -> tuple[int, Any] | None:
    """``(step, restore(step))`` for the newest of ``steps`` whose restore succeeds.

    A checkpoint that fails (orbax and tensorstore raise many types for damaged files) is
    passed to ``on_damaged(step, reason)`` with the reason on one line, and the next older one
    is tried. ``None`` when none restores. A failure of this machine, not of the files (out of
    memory, of file descriptors), is raised as it is: every checkpoint would fail the same way
    and be taken for damaged.
    """
    for step in sorted(steps, reverse=True):
        try:
            return step, restore(step)
        except Exception as e:  # noqa: BLE001 - any failure of a damaged checkpoint
            if _out_of_resources(e):
                raise
            # Python reprs in the libraries' text (<bound method ... at 0x...>) say nothing here
            reason = re.sub(r"(?:<\.\.\.>)+>*", "<...>", _REPR.sub("<...>", one_line(e)))
            on_damaged(step, one_line(reason, 200))
    return None


_REPR = re.compile(r"<(?:bound method|built-in|function|[\w.]+ object)[^<>]*>?")


def _out_of_resources(e: BaseException) -> bool:
    """Whether ``e`` (or what caused it) says the machine ran short: memory (host or device),
    file descriptors."""
    while e is not None:
        if isinstance(e, MemoryError) or "RESOURCE_EXHAUSTED" in str(e):
            return True
        if isinstance(e, OSError) and e.errno in (errno.ENOMEM, errno.EMFILE, errno.ENFILE):
            return True
        e = e.__cause__ or e.__context__
    return False


def is_workdir(path: str | os.PathLike) -> bool:
    """Whether ``path`` looks like a training workdir (has ``checkpoints/``)."""
    return (Path(path) / CHECKPOINTS).is_dir()


def checkpoint_steps(path: str | os.PathLike) -> list[int]:
    """The steps of a workdir's checkpoints (its ``checkpoints/<step>`` folders), sorted; none
    when it has no ``checkpoints/``."""
    folder = Path(path) / CHECKPOINTS
    return sorted(int(p.name) for p in folder.glob("*") if p.name.isdigit())


def workdir_variant(workdir: str | os.PathLike) -> DecoderVariant:
    """The decoder variant a workdir trains: ``fusion`` and ``decoder_norm`` of its
    ``config.json`` (the paper's model when absent: a workdir older than the variants)."""
    path = Path(workdir) / "config.json"
    try:
        config = files.read_json_object(path) if path.is_file() else {}
    except files.JsonFileError as e:
        raise CheckpointError(str(e)) from None
    except OSError as e:
        raise CheckpointError(f"{path}: unreadable ({one_line(e)})") from None
    variant = DecoderVariant(
        config.get("fusion", PAPER.fusion), config.get("decoder_norm", PAPER.norm)
    )
    try:
        return variant.check()
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from None


def latest_decoder_params(workdir: str | os.PathLike) -> dict:
    """The latest checkpointed decoder of a training workdir (only the decoder is read).

    Returns:
      ``{"decoder": {layer: {"kernel": HWIO, "bias": [C]}, ...} float32 numpy (the variant's
      layers, ``workdir_variant``: norm layers, running statistics), "vgg": str path of the
      encoder weights the run used}``.

    A checkpoint that does not restore (damaged files) is reported in one line on stderr and
    the next older one is used; the workdir is not changed.

    Raises:
      CheckpointError: no encoder file, no checkpoint, or none that restores.
    """
    # orbax takes ~1-3 s to import: only a workdir read pays it, not `import adain_jax`.
    import orbax.checkpoint as ocp

    workdir = Path(workdir)
    variant = workdir_variant(workdir)
    enc = encoder_path(workdir)
    if not enc.is_file():
        raise CheckpointError(f"{workdir}: training workdir without {ENCODER_FILE}")
    options = ocp.CheckpointManagerOptions(create=False)
    with ocp.CheckpointManager(checkpoints_dir(workdir), options=options) as manager:
        steps = sorted(manager.all_steps(), reverse=True)
        if not steps:
            raise CheckpointError(f"{workdir}: no checkpoint yet in {CHECKPOINTS}/")
        cpu = jax.sharding.SingleDeviceSharding(jax.local_devices(backend="cpu")[0])
        target = {
            "decoder": jax.tree.map(
                lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=cpu),
                decoder_shapes(variant),
            )
        }
        args = ocp.args.Composite(
            **{
                STATE_ITEM: ocp.args.PyTreeRestore(
                    item=target,
                    restore_args=ocp.checkpoint_utils.construct_restore_args(target),
                    partial_restore=True,
                )
            }
        )
        found = newest_that_restores(
            steps,
            lambda step: manager.restore(step, args=args),
            lambda step, reason: print(
                f"warning: checkpoint {step} of {workdir} does not restore ({reason})",
                file=sys.stderr,
            ),
        )
        if found is None:
            raise CheckpointError(f"{workdir}: none of the checkpoints {steps} restores")
        if found[0] != max(steps):
            print(f"note: using checkpoint {found[0]} of {workdir} instead", file=sys.stderr)
        restored = found[1]
    decoder = jax.tree.map(lambda a: np.asarray(a, np.float32), restored[STATE_ITEM]["decoder"])
    return {"decoder": decoder, "vgg": str(enc)}
