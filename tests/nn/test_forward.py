"""The one forward pass (``adain_jax.nn.forward``) and the public API as a JAX user writes it."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adain_jax
from adain_jax.controls import pad_to_bucket
from adain_jax.nn import forward, ops
from tests.conftest import random_images


@pytest.fixture(scope="module")
def params(port_weight_files):
    vgg_path, dec_path = port_weight_files
    return adain_jax.load_params(vgg=vgg_path, decoder=dec_path)


def _padded(images, bucket, garbage=7.0):
    """Images padded to one bucket shape, the padding overwritten: its values must not matter."""
    batch = np.stack([pad_to_bucket(img, bucket) for img in images])
    for i, img in enumerate(images):
        h, w = img.shape[:2]
        batch[i, h:], batch[i, :, w:] = garbage, garbage
    return batch, np.array([img.shape[:2] for img in images], np.int32)


def _scale(x) -> float:
    return float(np.max(np.abs(np.asarray(x))))


@pytest.mark.slow
def test_encode_decode_with_sizes_equal_unpadded_images(params):
    """Every tap of each padded image, on its own cells, equals the unpadded encoder's;
    the decoder the same on each image's feature cells (odd sizes: ceil-mode borders)."""
    images = [random_images(1, 1, 37, 50)[0], random_images(2, 1, 64, 29)[0]]
    batch, sizes = _padded(images, 64)
    taps = forward.encode(params, jnp.asarray(batch), sizes=sizes)
    for i, img in enumerate(images):
        want = forward.encode(params, jnp.asarray(img[None]))
        for name, got_tap, want_tap in zip(want._fields, taps, want, strict=True):
            h, w = want_tap.shape[1:3]
            diff = np.max(np.abs(np.asarray(got_tap[i, :h, :w]) - np.asarray(want_tap[0])))
            assert diff <= 1e-5 * _scale(want_tap), (i, name, diff)

    feats = [
        np.asarray(forward.encode(params, jnp.asarray(img[None])).relu4_1[0]) for img in images
    ]
    cells = np.array([f.shape[:2] for f in feats], np.int32)
    padded = np.full((2, 8, 8, feats[0].shape[-1]), -3.0, np.float32)
    for i, f in enumerate(feats):
        padded[i, : f.shape[0], : f.shape[1]] = f
    out = forward.decode(params, jnp.asarray(padded), sizes=cells)
    for i, f in enumerate(feats):
        want = np.asarray(forward.decode(params, jnp.asarray(f[None]))[0])
        h, w = want.shape[:2]
        assert np.max(np.abs(np.asarray(out[i, :h, :w]) - want)) <= 1e-5 * _scale(want)


@pytest.mark.slow
def test_stylize_with_stats_sizes_equal_per_image_stylize(params):
    """A padded batch stylized with ``sizes`` gives each image's ``stylize`` result, and
    masks are stretched over each image's own area."""
    images = [random_images(3, 1, 41, 64)[0], random_images(4, 1, 23, 35)[0]]
    style = random_images(5, 1, 40, 36)[0]
    batch, sizes = _padded(images, 64)
    stats = adain_jax.encode_style(params, style)
    got = np.asarray(adain_jax.stylize_with_stats(params, batch, stats, 0.8, sizes=sizes))
    assert got.shape == batch.shape
    for i, img in enumerate(images):
        want = np.asarray(adain_jax.stylize(params, img, style, 0.8))
        h, w = img.shape[:2]
        np.testing.assert_allclose(got[i, :h, :w], want, atol=1e-5)

    styles = adain_jax.stack_stats([stats, adain_jax.encode_style(params, style**2)])
    mask = np.zeros((5, 7), np.int32)
    mask[2:, 3:] = 1
    got = np.asarray(
        adain_jax.stylize_with_stats(params, batch, styles, 0.9, mask=mask, sizes=sizes)
    )
    for i, img in enumerate(images):
        want = np.asarray(adain_jax.stylize_with_stats(params, img, styles, 0.9, mask=mask))
        h, w = img.shape[:2]
        np.testing.assert_allclose(got[i, :h, :w], want, atol=1e-5)


@pytest.mark.slow
def test_one_shared_size_for_the_batch(params):
    """``sizes`` ``[1, 2]`` (the exports' form: one size for the whole batch) gives each
    image's ``stylize`` result, with a per-image mask too."""
    images = list(random_images(8, 2, 37, 50))
    style = random_images(9, 1, 30, 44)[0]
    batch, _ = _padded(images, 64)
    shared = np.array([[37, 50]], np.int32)
    stats = adain_jax.encode_style(params, style)
    got = np.asarray(adain_jax.stylize_with_stats(params, batch, stats, 0.6, sizes=shared))
    for i, img in enumerate(images):
        want = np.asarray(adain_jax.stylize(params, img, style, 0.6))
        np.testing.assert_allclose(got[i, :37, :50], want, atol=1e-5)

    styles = adain_jax.stack_stats([stats, adain_jax.encode_style(params, 1 - style)])
    masks = np.zeros((2, 6, 6), np.int32)
    masks[0, :3], masks[1, :, 4:] = 1, 1
    got = np.asarray(
        adain_jax.stylize_with_stats(params, batch, styles, 1.0, mask=masks, sizes=shared)
    )
    for i, img in enumerate(images):
        want = adain_jax.stylize_with_stats(params, img, styles, 1.0, mask=masks[i])
        np.testing.assert_allclose(got[i, :37, :50], np.asarray(want), atol=1e-5)
    with pytest.raises(ValueError, match=r"\[N, 2\] or \[1, 2\]"):
        adain_jax.stylize_with_stats(params, batch, stats, sizes=np.zeros((3, 2), np.int32))


@pytest.mark.slow
def test_public_stylize_under_jit_vmap_and_grad(params):
    """``jax.jit``, ``jax.jit(partial(..., dtype=...))``, ``jax.vmap`` and ``jax.grad`` of
    the public function give the numbers of the untransformed call."""
    content = jnp.asarray(random_images(6, 2, 24, 32))
    style = jnp.asarray(random_images(7, 1, 32, 24))
    want = adain_jax.stylize(params, content, style, 0.7)

    def user_fn(p, c, s, a):  # a user's function around the public one, traced once
        return adain_jax.stylize(p, c, s, a)

    jitted = jax.jit(chex.assert_max_traces(user_fn, n=1))
    chex.assert_trees_all_close(jitted(params, content, style, 0.7), want, atol=1e-6)
    jitted(params, content, style, 0.3)  # alpha traced: no second trace
    bf16 = functools.partial(adain_jax.stylize, dtype=jnp.bfloat16)
    chex.assert_trees_all_close(
        jax.jit(bf16)(params, content, style, 0.7),
        adain_jax.stylize(params, content, style, 0.7, dtype=jnp.bfloat16),
        atol=1e-6,
    )
    mapped = jax.vmap(adain_jax.stylize, in_axes=(None, 0, None, None))(
        params, content, style[0], 0.7
    )
    chex.assert_trees_all_close(mapped, want, atol=1e-5)

    def loss(c):
        return jnp.sum(adain_jax.stylize(params, c, style, 0.7) ** 2)

    grad = jax.grad(loss)(content)
    # jit fuses differently: the same gradient up to float32 reassociation.
    chex.assert_trees_all_close(jax.jit(jax.grad(loss))(content), grad, atol=1e-5 * _scale(grad))
    chex.assert_tree_all_finite(grad)

    # Against autodiff of the textbook convolution ("valid": no custom conv VJP).
    def reference_loss(c):
        cf = forward.encode(params, c, conv_impl="valid").relu4_1
        sf = forward.encode(params, style, conv_impl="valid").relu4_1
        out = forward.decode(params, ops.blend(cf, ops.adain(cf, sf), 0.7), conv_impl="valid")
        return jnp.sum(jnp.clip(out, 0.0, 1.0) ** 2)

    want_grad = jax.grad(reference_loss)(content)
    chex.assert_trees_all_close(grad, want_grad, atol=1e-4 * _scale(want_grad))
    assert _scale(grad) > 0


def test_api_is_content_first_and_keyword_only_dtype():
    import inspect

    for fn in (adain_jax.stylize, adain_jax.stylize_with_stats, adain_jax.stylize_mix):
        sig = inspect.signature(fn)
        names = list(sig.parameters)
        assert names[:2] == ["params", "content"] and names[3] == "alpha", fn
        assert sig.parameters["dtype"].kind is inspect.Parameter.KEYWORD_ONLY, fn
    for fn in (forward.encode, forward.decode, adain_jax.encode_style):
        assert inspect.signature(fn).parameters["dtype"].kind is inspect.Parameter.KEYWORD_ONLY
    assert list(inspect.signature(adain_jax.match_color).parameters)[:2] == ["content", "style"]
    assert set(adain_jax.__all__) <= set(dir(adain_jax))
    assert callable(adain_jax.stylize) and not isinstance(adain_jax.stylize, type(adain_jax))
