"""The optimization baseline of the paper's section 7.1 (Gatys et al.): the output image itself is
optimized against the VGG loss network.

Objectives (``objective``), with ``f`` the loss encoder's taps:

* ``gatys``: ``content_weight * MSE(f(x) at relu4_1, f(c) at relu4_1)`` + ``style_weight * sum
  over relu1_1..relu4_1 of MSE(G(f(x)), G(f(s)))`` with the Gram matrix ``G(F) = F^T F / (h w)``
  of each sample's ``[h w, C]`` features (per layer 4x Gatys et al.'s ``E_l`` with the ``1 / (4
  N^2 M^2)`` factor, equal layer weights; the content layer is relu4_1 as in the AdaIN paper, not
  conv4_2);
* ``adain``: the AdaIN paper's loss (``adain_jax.training.losses``): content vs the target
  ``AdaIN(f(c), f(s))``, mean/std style loss.

Pixels stay in [0, 1]: the optimized variable is ``z`` with ``x = sigmoid(z)`` (content init: ``z
= logit(clip(c, 1e-3, 1 - 1e-3))``; noise init: ``z ~ N(0, 1)``). Optimizers: ``optax.lbfgs()``
(its zoom line search, memory 10; the default) or ``optax.adam(lr)``. The steps run in a
``jax.lax.scan`` compiled once per chunk length (``optimize`` calls it in chunks so a progress bar
can move); ``optimize_pairs`` ``vmap``s the whole loop over pairs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import Array

from adain_jax.experiments.choices import INITS, OBJECTIVES, OPTIMIZERS
from adain_jax.nn import forward, ops
from adain_jax.nn.models import EncoderTaps
from adain_jax.training import losses

__all__ = ["INITS", "OBJECTIVES", "OPTIMIZERS"]  # and the functions below
_EDGE = 1e-3  # content init: logit of pixels clipped to [1e-3, 1 - 1e-3]


class Settings(NamedTuple):
    """Static settings of one optimization (hashable: a ``jax.jit`` static argument)."""

    objective: str = "gatys"
    optimizer: str = "lbfgs"
    init: str = "content"
    content_weight: float = 1.0
    style_weight: float = 10.0
    lr: float = 0.05  # Adam's step in logit space


DEFAULT = Settings()


def gram(x: Array) -> Array:
    """Gram matrices ``[N, C, C]`` (float32) of features ``[N, h, w, C]``, divided by h*w."""
    n, h, w, c = x.shape
    f = x.astype(jnp.float32).reshape(n, h * w, c)
    return jnp.einsum("npc,npd->ncd", f, f) / (h * w)


def gram_style_loss(out_taps: EncoderTaps, style_grams: tuple[Array, ...]) -> Array:
    """Sum over the four taps of the mean squared Gram difference, float32 scalar."""
    return sum(
        jnp.mean(jnp.square(gram(o) - g)) for o, g in zip(out_taps, style_grams, strict=True)
    )


def make_objective(
    encoder: dict, content: Array, style: Array, settings: Settings, dtype: Any = jnp.float32
) -> Callable[[Array], tuple[Array, Array, Array]]:
    """``image [1, H, W, 3] -> (total, content loss, style loss)`` for one pair (images ``[1, H, W,
    3]`` / ``[1, Hs, Ws, 3]`` in [0, 1]); the targets are encoded once."""
    params = {"encoder": encoder}
    c_taps = forward.encode(params, content, dtype=dtype)
    s_taps = forward.encode(params, style, dtype=dtype)
    cw, sw = settings.content_weight, settings.style_weight
    if settings.objective == "gatys":
        target = c_taps.relu4_1
        style_loss = functools.partial(gram_style_loss, style_grams=tuple(gram(t) for t in s_taps))
    else:
        target = ops.adain(c_taps.relu4_1, s_taps.relu4_1)
        style_loss = functools.partial(losses.style_loss, style_taps=s_taps)

    def objective(image: Array) -> tuple[Array, Array, Array]:
        taps = forward.encode(params, image, dtype=dtype)
        lc, ls = losses.content_loss(taps.relu4_1, target), style_loss(taps)
        return cw * lc + sw * ls, lc, ls

    return objective


def _optimizer(settings: Settings) -> optax.GradientTransformationExtraArgs:
    return optax.lbfgs() if settings.optimizer == "lbfgs" else optax.adam(settings.lr)


def init_variable(content: Array, settings: Settings, key: Array) -> Array:
    """The unconstrained start ``z`` (``x = sigmoid(z)``) from the content or noise."""
    if settings.init == "noise":
        return jax.random.normal(key, content.shape, jnp.float32)
    c = jnp.clip(content.astype(jnp.float32), _EDGE, 1.0 - _EDGE)
    return jnp.log(c) - jnp.log1p(-c)


def _chunk(encoder, content, style, z, opt_state, *, settings, steps, dtype):
    """``steps`` optimizer steps from ``(z, opt_state)``; returns the new pair and the per-step
    ``(total, content, style)`` of the image *before* each step, ``[steps, 3]``."""
    objective = make_objective(encoder, content, style, settings, dtype)
    value = lambda z: objective(jax.nn.sigmoid(z))[0]  # noqa: E731
    opt = _optimizer(settings)
    value_and_grad = optax.value_and_grad_from_state(value)

    def step(carry, _):
        z, state = carry
        parts = objective(jax.nn.sigmoid(z))
        if settings.optimizer == "lbfgs":
            v, g = value_and_grad(z, state=state)
            updates, state = opt.update(g, state, z, value=v, grad=g, value_fn=value)
        else:
            g = jax.grad(value)(z)
            updates, state = opt.update(g, state, z)
        return (optax.apply_updates(z, updates), state), jnp.stack(parts)

    (z, opt_state), log = jax.lax.scan(step, (z, opt_state), None, length=steps)
    return z, opt_state, log


_chunk_jit = jax.jit(_chunk, static_argnames=("settings", "steps", "dtype"))


def optimize(
    encoder: dict,
    content: Array,
    style: Array,
    *,
    steps: int,
    settings: Settings = DEFAULT,
    seed: int = 0,
    dtype: Any = jnp.float32,
    chunk: int | None = None,
    on_chunk: Callable[[int, Array, Array], None] | None = None,
) -> tuple[Array, Array]:
    """Optimize one image against one content/style pair.

    Args:
      encoder: the loss network's params (``VGGEncoder``).
      content: RGB float ``[H, W, 3]`` in [0, 1] (the output has its size).
      style: RGB float ``[Hs, Ws, 3]`` in [0, 1].
      steps: optimizer steps (L-BFGS: each may evaluate the loss several times).
      settings: objective, optimizer, init, loss weights.
      chunk: steps per compiled call (default: all in one); ``on_chunk(done, log, image)`` after
        each, with the chunk's log and the image ``[H, W, 3]`` after ``done`` steps (progress
        bars; snapshots along one trajectory).

    Returns:
      ``(image [H, W, 3] float32 in [0, 1], log [steps, 3])``: the log holds ``(total, content,
      style)`` before each step.
    """
    c, s = jnp.asarray(content)[None], jnp.asarray(style)[None]
    z = init_variable(c, settings, jax.random.key(seed))
    opt_state = _optimizer(settings).init(z)
    chunk = steps if chunk is None else max(1, min(chunk, steps))
    logs, done = [], 0
    while done < steps:
        n = min(chunk, steps - done)
        z, opt_state, log = _chunk_jit(
            encoder, c, s, z, opt_state, settings=settings, steps=n, dtype=dtype
        )
        done += n
        logs.append(log)
        if on_chunk is not None:
            on_chunk(done, log, jax.nn.sigmoid(z)[0])
    return jax.nn.sigmoid(z)[0], jnp.concatenate(logs)


@functools.partial(jax.jit, static_argnames=("steps", "settings", "dtype"))
def optimize_pairs(
    encoder: dict,
    contents: Array,
    styles: Array,
    *,
    steps: int,
    settings: Settings = DEFAULT,
    seed: int = 0,
    dtype: Any = jnp.float32,
) -> tuple[Array, Array]:
    """``optimize`` ``vmap``-ed over P pairs of one size: contents ``[P, H, W, 3]``, styles ``[P,
    Hs, Ws, 3]`` -> (images ``[P, H, W, 3]``, logs ``[P, steps, 3]``)."""

    def one(c, s, key):
        z = init_variable(c[None], settings, key)
        state = _optimizer(settings).init(z)
        z, _, log = _chunk(
            encoder, c[None], s[None], z, state, settings=settings, steps=steps, dtype=dtype
        )
        return jax.nn.sigmoid(z)[0], log

    keys = jax.random.split(jax.random.key(seed), contents.shape[0])
    return jax.vmap(one)(contents, styles, keys)
