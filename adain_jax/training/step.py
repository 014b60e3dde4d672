"""The decoder's training state and its one jit-compiled, data-parallel train step.

State is a plain dict (big_vision style)::

    {"decoder": Decoder params (float32), "opt": optax Adam moments, "step": int32 []}

The decoder may be any variant (``nn.models.DecoderVariant``; read from the params' structure). A
BatchNorm decoder's running statistics live in ``state["decoder"]`` (``nn.models.split_stats``):
the forward pass updates them, Adam never sees them.

The step is compiled for a compute dtype and a mesh only: the learning rate, its decay and the
loss weights are a small argument of float32 scalars (``TrainConfig.hyperparams()``), so changing
them never recompiles. The frozen VGG encoder params are a separate argument: never in the
optimizer state, never checkpointed. The step consumes no randomness (all of it lives in the data
pipeline, seeded and checkpointed with the model), so resuming continues bit-identically.

Sharding: one mesh axis ``data`` over all devices of all processes; the batch is split on it
(``P('data')``), state and encoder params are replicated (``P()``); XLA inserts the gradient
all-reduce.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from adain_jax.nn.models import (
    DTYPES,
    PAPER,
    DecoderVariant,
    decoder_shapes,
    init_decoder,
    merge_stats,
    split_stats,
)
from adain_jax.training import losses

State = dict
# Setting it (host:port of process 0) turns on multi-process training without --distributed.
COORDINATOR_ENV = "JAX_COORDINATOR_ADDRESS"


def lr_schedule(lr: float, decay: float) -> optax.Schedule:
    """``step -> lr / (1 + decay * step)`` (the authors' and the port's inverse decay)."""
    return lambda step: lr / (1.0 + decay * jnp.asarray(step, jnp.float32))


def make_optimizer() -> optax.GradientTransformation:
    """Adam's update direction (betas 0.9/0.999, eps 1e-8, as torch's default); the step scales
    it by ``-lr_schedule(lr, lr_decay)(step)``, as ``optax.adam(schedule)`` does."""
    return optax.scale_by_adam()


def make_mesh() -> Mesh:
    """A 1-D mesh ``("data",)`` over every device of every process; Auto axis type: only the
    step's inputs and outputs are pinned, XLA propagates the rest."""
    return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P("data"))


def _fresh_state(decoder: Mapping) -> State:
    return {
        "decoder": decoder,
        "opt": make_optimizer().init(split_stats(decoder)[0]),
        "step": jnp.zeros((), jnp.int32),
    }


def abstract_state(mesh: Mesh, variant: DecoderVariant = PAPER) -> State:
    """Shapes, dtypes and shardings of the state of a ``variant`` decoder (``eval_shape``:
    nothing computed); the restore target and ``init_state``'s output shardings."""
    sharding = replicated(mesh)
    shapes = jax.eval_shape(_fresh_state, decoder_shapes(variant))
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), shapes)


def init_state(init: jax.Array | Mapping, mesh: Mesh, variant: DecoderVariant = PAPER) -> State:
    """The step-0 state, replicated over ``mesh``, built by one jitted function whose
    ``out_shardings`` come from ``abstract_state`` (big_vision's init).

    ``init``: a PRNG key (a random ``variant`` decoder, ``nn.models.init_decoder``, initialised
    on the devices) or decoder params (host arrays identical on every process, e.g.
    ``--init-decoder``'s; their own variant).
    """
    if isinstance(init, Mapping):
        shardings = replicated(mesh)
        fresh, init = _fresh_state, put_replicated(dict(init), mesh)
    else:
        shardings = jax.tree.map(lambda s: s.sharding, abstract_state(mesh, variant))
        fresh = lambda rng: _fresh_state(init_decoder(rng, variant))  # noqa: E731
    return jax.jit(fresh, out_shardings=shardings)(init)


def put_replicated(tree: Any, mesh: Mesh) -> Any:
    """Host arrays (identical on every process) -> float32 arrays replicated over ``mesh``."""
    sharding = replicated(mesh)
    return jax.tree.map(
        lambda a: jax.make_array_from_process_local_data(sharding, np.asarray(a, np.float32)),
        tree,
    )


def process_rows(mesh: Mesh, batch_size: int) -> tuple[int, int]:
    """``(first, count)``: the rows of a global batch of ``batch_size`` that this process's
    devices hold under ``batch_sharding(mesh)`` (one contiguous block per process)."""
    index_map = batch_sharding(mesh).addressable_devices_indices_map((batch_size,))
    spans = sorted({(sl[0].start or 0, sl[0].stop or batch_size) for sl in index_map.values()})
    first, stop = spans[0][0], spans[-1][1]
    if any(a[1] != b[0] for a, b in zip(spans, spans[1:], strict=False)):
        raise ValueError(f"this process's rows of the batch are not contiguous: {spans}")
    return first, stop - first


def shard_batch(batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """This process's rows ``{"content", "style"}`` (uint8 ``[B_local, h, w, 3]``) -> global."""
    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


def train_step(state: State, vgg: dict, batch: dict, hp: dict, dtype: str) -> tuple[State, dict]:
    """One Adam step of the decoder (pure; ``make_train_step`` compiles it).

    Args:
      state: ``{"decoder", "opt", "step"}``.
      vgg: the frozen encoder params.
      batch: ``{"content", "style"}`` uint8 ``[B, h, w, 3]`` (h, w multiples of 8); converted
        to float32 in [0, 1] here. Multi-process runs add ``"stop"``, bool ``[B]`` (each
        process fills its rows with "was I signalled?").
      hp: ``TrainConfig.hyperparams()`` (float32 scalars).
      dtype: the convolutions' compute dtype, a key of ``DTYPES``.

    Returns:
      ``(new_state, metrics)``; ``metrics``: float32 scalars ``content``, ``style``, ``total``
      (the weighted losses of the params *before* the update), ``lr`` (the rate applied in
      this update), ``grad_norm`` (global L2 norm), and the bool ``finite``: loss, gradients
      and updated params all finite (a state after a non-finite step must not be saved); with
      ``batch["stop"]``, ``stop``: its ``any``, so the processes agree on when to stop inside
      the step's own collectives (a separate small collective program, run concurrently with
      the step, can deadlock CPU gloo collectives).
    """
    stop = batch.get("stop")
    content = batch["content"].astype(jnp.float32) / 255.0
    style = batch["style"].astype(jnp.float32) / 255.0

    trainable, stats = split_stats(state["decoder"])

    def loss_fn(trainable):
        parts, _, decoder = losses.train_losses(
            vgg,
            merge_stats(trainable, stats),
            content,
            style,
            content_weight=hp["content_weight"],
            style_weight=hp["style_weight"],
            dtype=DTYPES[dtype],
        )
        return parts.total, (parts, split_stats(decoder)[1])

    grads, (parts, new_stats) = jax.grad(loss_fn, has_aux=True)(trainable)
    direction, opt = make_optimizer().update(grads, state["opt"], trainable)
    lr = lr_schedule(hp["lr"], hp["lr_decay"])(state["step"])
    trainable = optax.apply_updates(trainable, jax.tree.map(lambda u: -lr * u, direction))
    decoder = merge_stats(trainable, new_stats)
    finite = jnp.isfinite(parts.total) & jnp.all(
        jnp.array([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves((grads, decoder))])
    )
    new_state = {"decoder": decoder, "opt": opt, "step": state["step"] + 1}
    metrics = {**parts._asdict(), "lr": lr, "grad_norm": optax.tree.norm(grads), "finite": finite}
    if stop is not None:  # any process signalled: the same answer in every process
        metrics["stop"] = jnp.any(stop)
    return new_state, metrics


def make_train_step(mesh: Mesh) -> Callable[[State, dict, dict, dict, str], tuple[State, dict]]:
    """``train_step`` jit-compiled for ``mesh``: ``(state, vgg, batch, hparams, dtype) ->
    (state, metrics)``, ``dtype`` static; the batch sharded on ``data``, the rest replicated.

    ``state`` is donated. The batch is not: no output has its shape and dtype (uint8), so XLA
    could not reuse its buffer and JAX would only warn at each compilation. Nothing is cached
    here: a later run in the process with an equal mesh gets JAX's own compiled executable back.
    """
    repl = replicated(mesh)
    return jax.jit(
        train_step,
        static_argnums=4,
        in_shardings=(repl, repl, batch_sharding(mesh), repl),
        out_shardings=(repl, repl),
        donate_argnames=("state",),
    )


HEARTBEAT_ENV = "ADAIN_JAX_HEARTBEAT_TIMEOUT"  # seconds until a silent process counts as dead


def maybe_initialize_distributed(requested: bool) -> bool:
    """``jax.distributed.initialize()`` if requested or ``JAX_COORDINATOR_ADDRESS`` is set.

    Must run before any other JAX call (nothing in ``adain_jax`` touches the XLA backend at
    import time). Returns whether it initialised. On Cloud TPU, SLURM and Open MPI,
    ``--distributed`` alone lets JAX detect the cluster; elsewhere set
    ``JAX_COORDINATOR_ADDRESS`` (host:port of process 0), ``JAX_NUM_PROCESSES`` and
    ``JAX_PROCESS_ID`` on every host. CPU collectives use gloo unless
    ``JAX_CPU_COLLECTIVES_IMPLEMENTATION`` says otherwise (multi-process CPU runs need one; GPUs
    and TPUs do not use it). A process that stops answering (killed, its host lost) is declared
    dead after ``$ADAIN_JAX_HEARTBEAT_TIMEOUT`` seconds (default 100, JAX's); the other
    processes then end with an error.
    """
    if not requested and not os.environ.get(COORDINATOR_ENV):
        return False
    kwargs: dict[str, Any] = {}
    for env, arg in (("JAX_NUM_PROCESSES", "num_processes"), ("JAX_PROCESS_ID", "process_id")):
        if os.environ.get(env):
            kwargs[arg] = int(os.environ[env])
    if os.environ.get(HEARTBEAT_ENV):
        kwargs["heartbeat_timeout_seconds"] = max(1, round(float(os.environ[HEARTBEAT_ENV])))
    if not os.environ.get("JAX_CPU_COLLECTIVES_IMPLEMENTATION"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**kwargs)
    return True
