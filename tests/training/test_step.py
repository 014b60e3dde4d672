"""The train step: optimisation, frozen encoder, one compilation, the lr schedule."""

from __future__ import annotations

import chex
import jax
import numpy as np
import pytest

from adain_jax.nn.models import DecoderVariant, init_decoder
from adain_jax.training import step as train_lib
from adain_jax.training.config import TrainConfig
from adain_jax.weights import convert

CROP = 32
BATCH = 4  # the trainer tests use the same shapes: one compilation
STEP_CONFIG = dict(lr=1e-3, lr_decay=0.01)


def hyperparams(**settings) -> dict:
    """``TrainConfig.hyperparams()`` of the defaults with ``settings`` changed."""
    return TrainConfig(workdir="", content="", style="", **settings).hyperparams()


@pytest.fixture
def count_traces(monkeypatch):
    """``count_traces(n)``: from now on, tracing the train step more than ``n`` times fails."""

    def limit(n: int) -> None:
        monkeypatch.setattr(
            train_lib, "train_step", chex.assert_max_traces(train_lib.train_step, n)
        )

    return limit


def tiny_batches(n_images: int = 8, seed: int = 0):
    """A tiny 'dataset': a few fixed uint8 images, cycled as content/style pairs."""
    rng = np.random.default_rng(seed)
    # Smooth images (low-frequency noise) are closer to photos than white noise.
    base = rng.integers(0, 256, (2 * n_images, 4, 4, 3)).astype(np.float32)
    imgs = np.repeat(np.repeat(base, CROP // 4, 1), CROP // 4, 2).astype(np.uint8)
    k = 0
    while True:
        idx = [(k * BATCH + i) % n_images for i in range(BATCH)]
        yield {"content": imgs[idx], "style": imgs[[n_images + i for i in idx]]}
        k += 1


@pytest.fixture(scope="module")
def vgg_params(torch_nets):
    sd = {k: v.numpy() for k, v in torch_nets[0].state_dict().items()}
    return convert.params_from_state_dict(sd, "vgg")[1]


@pytest.mark.slow
def test_loss_decreases_vgg_frozen_one_compile_lr_schedule(vgg_params, count_traces):
    count_traces(1)
    mesh = train_lib.make_mesh()
    step_fn = train_lib.make_train_step(mesh)
    vgg = train_lib.put_replicated(vgg_params, mesh)
    vgg_before = jax.tree.map(np.array, vgg)
    hp = train_lib.put_replicated(hyperparams(**STEP_CONFIG), mesh)
    state = train_lib.init_state(init_decoder(jax.random.key(0)), mesh)
    totals, lrs = [], []
    batches = tiny_batches()
    for _ in range(20):
        batch = train_lib.shard_batch(next(batches), mesh)
        state, metrics = step_fn(state, vgg, batch, hp, "float32")
        m = jax.device_get(metrics)
        assert m["finite"] and np.isfinite(m["total"]) and m["grad_norm"] > 0
        np.testing.assert_allclose(m["total"], m["content"] + 10.0 * m["style"], rtol=1e-6)
        totals.append(float(m["total"]))
        lrs.append(float(m["lr"]))
    assert int(state["step"]) == 20
    # Ten passes over the same 2 batches: the loss must have dropped clearly.
    assert np.mean(totals[-4:]) < 0.7 * np.mean(totals[:4]), totals
    np.testing.assert_allclose(lrs, [1e-3 / (1 + 0.01 * i) for i in range(20)], rtol=1e-6)
    jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.array, vgg), vgg_before)


@pytest.mark.slow
def test_state_is_donated_and_replicated(vgg_params, count_traces):
    count_traces(1)
    mesh = train_lib.make_mesh()
    step_fn = train_lib.make_train_step(mesh)
    state = train_lib.init_state(init_decoder(jax.random.key(1)), mesh)
    old_leaf = state["decoder"]["conv1_1"]["kernel"]
    vgg = train_lib.put_replicated(vgg_params, mesh)
    hp = train_lib.put_replicated(hyperparams(), mesh)
    new, _ = step_fn(state, vgg, train_lib.shard_batch(next(tiny_batches()), mesh), hp, "float32")
    assert old_leaf.is_deleted()
    for leaf in jax.tree.leaves(new):
        assert leaf.sharding.is_fully_replicated
    abstract = train_lib.abstract_state(mesh)
    chex.assert_trees_all_equal_shapes_and_dtypes(abstract, new)


@pytest.mark.slow
@pytest.mark.parametrize("norm", ["none", "batch"])
def test_init_on_the_devices_equals_the_eager_init(norm):
    """``init_state(key)`` (jit with the abstract state's shardings) holds exactly the
    eagerly initialised decoder: a run's losses do not depend on where it was built."""
    mesh = train_lib.make_mesh()
    variant = DecoderVariant("adain", norm)
    state = train_lib.init_state(jax.random.key(3), mesh, variant)
    want = train_lib.init_state(init_decoder(jax.random.key(3), variant), mesh)
    chex.assert_trees_all_equal(state, want)
    chex.assert_trees_all_equal_shapes_and_dtypes(state, train_lib.abstract_state(mesh, variant))
    assert all(leaf.sharding.is_fully_replicated for leaf in jax.tree.leaves(state))


@pytest.mark.slow
def test_hyperparameters_take_effect_without_a_recompile(vgg_params, count_traces):
    """New --lr, --lr-decay, --style-weight, --content-weight (a resume with new flags)
    reuse the one compiled step, and each takes effect."""
    count_traces(1)
    mesh = train_lib.make_mesh()
    step_fn = train_lib.make_train_step(mesh)
    vgg = train_lib.put_replicated(vgg_params, mesh)
    changed = dict(lr=0.5, lr_decay=0.25, style_weight=3.0, content_weight=2.0)
    for settings in (STEP_CONFIG, changed):
        cfg = TrainConfig(workdir="", content="", style="", **settings)
        hp = train_lib.put_replicated(cfg.hyperparams(), mesh)
        state = train_lib.init_state(init_decoder(jax.random.key(0)), mesh)
        batches = tiny_batches()
        for i in range(2):
            state, metrics = step_fn(
                state, vgg, train_lib.shard_batch(next(batches), mesh), hp, "float32"
            )
            m = jax.device_get(metrics)
            want = cfg.content_weight * m["content"] + cfg.style_weight * m["style"]
            np.testing.assert_allclose(m["total"], want, rtol=1e-6)
            np.testing.assert_allclose(m["lr"], cfg.lr / (1 + cfg.lr_decay * i), rtol=1e-6)
