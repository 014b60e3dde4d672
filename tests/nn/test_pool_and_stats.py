"""The max-pool and the channel statistics, values and gradients, against torch (float64)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adain_jax.nn import layers, ops

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("h,w", [(8, 8), (7, 9), (5, 4)])
def test_max_pool_ceil_and_its_gradient_match_torch(h, w):
    rng = np.random.default_rng(h * 10 + w)
    x = rng.standard_normal((2, h, w, 3))  # continuous values: no ties
    g = rng.standard_normal((2, -(-h // 2), -(-w // 2), 3))

    xt = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    yt = torch.nn.MaxPool2d(2, 2, ceil_mode=True)(xt)
    yt.backward(torch.tensor(g.transpose(0, 3, 1, 2)))
    want_y = yt.detach().numpy().transpose(0, 2, 3, 1)
    want_dx = xt.grad.numpy().transpose(0, 2, 3, 1)

    x32 = jnp.asarray(x, jnp.float32)
    y, vjp = jax.vjp(layers.max_pool_ceil, x32)
    (dx,) = vjp(jnp.asarray(g, jnp.float32))
    np.testing.assert_allclose(np.asarray(y), want_y, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(dx), want_dx, rtol=0, atol=1e-6)


def test_max_pool_gradient_is_shared_among_tied_maxima():
    x = jnp.zeros((1, 2, 2, 1)).at[0, 0, 0, 0].set(-1.0)  # three tied zeros in one window
    dx = jax.grad(lambda v: layers.max_pool_ceil(v).sum())(x)
    np.testing.assert_allclose(np.asarray(dx)[0, :, :, 0], [[0, 1 / 3], [1 / 3, 1 / 3]])


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_channel_mean_std_gradient_matches_torch_float64(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 5, 4)) * 2 + 1
    a, b = rng.standard_normal((2, 2, 1, 1, 4))
    x_cast = jnp.asarray(x, dtype)

    def loss(v):
        mean, std = ops.channel_mean_std(v)
        return jnp.sum(a * mean) + jnp.sum(b * std)

    value, dx = jax.value_and_grad(loss)(x_cast)

    xt = torch.tensor(np.asarray(x_cast.astype(jnp.float32), np.float64), requires_grad=True)
    mean_t = xt.mean(dim=(1, 2), keepdim=True)
    std_t = (((xt - mean_t) ** 2).mean(dim=(1, 2), keepdim=True) + ops.EPS).sqrt()
    loss_t = (torch.tensor(a) * mean_t).sum() + (torch.tensor(b) * std_t).sum()
    loss_t.backward()

    assert dx.dtype == dtype
    np.testing.assert_allclose(float(value), loss_t.item(), rtol=1e-5)
    want = xt.grad.numpy()
    got = np.asarray(dx.astype(jnp.float32), np.float64)
    tol = 1e-5 if dtype == jnp.float32 else 1e-2
    assert np.max(np.abs(got - want)) / np.max(np.abs(want)) < tol
