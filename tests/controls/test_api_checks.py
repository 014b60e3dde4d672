"""The public API refuses mistakes a user makes at trace time, naming the argument and
the fix; forward-mode autodiff works with the plain convolution."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adain_jax
from adain_jax.controls import stats


@pytest.fixture(scope="module")
def params():
    return adain_jax.init_params(jax.random.key(0))


def _images(n: int, size: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, size, size, 3), dtype=np.float32)


def test_integer_images_are_refused_with_the_fix(params):
    uint8 = (_images(1)[0] * 255).astype(np.uint8)
    with pytest.raises(TypeError, match=r"content has dtype uint8.*/ 255"):
        adain_jax.stylize(params, uint8, _images(1)[0])
    with pytest.raises(TypeError, match="style has dtype int32"):
        adain_jax.encode_style(params, uint8.astype(np.int32))


def test_a_wrong_shape_is_named_as_given(params):
    rgba = np.concatenate([_images(1)[0], _images(1)[0][..., :1]], -1)
    with pytest.raises(ValueError, match=r"^content must be .*, got shape \(16, 16, 4\)(\n|$)"):
        adain_jax.stylize(params, rgba, _images(1)[0])
    with pytest.raises(ValueError, match=r"^style must be .*, got shape \(16, 16\)(\n|$)"):
        adain_jax.encode_style(params, _images(1)[0][..., 0])


def test_style_batch_must_be_one_or_n(params):
    with pytest.raises(ValueError, match="style has a batch of 2 for 1 content"):
        adain_jax.stylize(params, _images(1)[0], _images(2))  # HWC content, two styles
    with pytest.raises(ValueError, match="style has a batch of 2 for 3 content"):
        adain_jax.stylize(params, _images(3), _images(2))
    out = adain_jax.stylize(params, _images(3), _images(3, seed=1))  # one style each
    assert out.shape == (3, 16, 16, 3)


def test_alpha_is_a_scalar_or_one_per_content(params):
    with pytest.raises(ValueError, match=r"alpha has shape \(2,\)"):
        adain_jax.stylize(params, _images(3), _images(1), jnp.array([0.5, 0.5]))
    stats = adain_jax.encode_style(params, _images(1)[0])
    with pytest.raises(ValueError, match="alpha has shape"):
        adain_jax.stylize_with_stats(params, _images(2), stats, jnp.ones((2, 2)))


def test_checks_also_hold_under_jit(params):
    with pytest.raises(ValueError, match="style has a batch of 2"):
        jax.jit(adain_jax.stylize)(params, _images(3), _images(2))


@pytest.mark.slow
def test_forward_mode_is_refused_clearly_and_reverse_mode_works(params):
    """Forward mode is unsupported (custom VJPs) and fails at trace time with JAX's own
    message; reverse mode (checked against torch in tests/nn) runs."""
    content, style = _images(1)[0] * 0.8 + 0.1, _images(1, seed=2)[0]

    def f(c):
        return adain_jax.stylize(params, c, style, 0.7)

    rng = np.random.default_rng(3)
    v = jnp.asarray(rng.standard_normal(content.shape), jnp.float32)
    with pytest.raises(TypeError, match="forward-mode autodiff"):
        jax.jvp(f, (content,), (v,))
    (grad,) = jax.vjp(f, content)[1](jnp.ones_like(content))  # reverse mode: fine
    assert np.all(np.isfinite(np.asarray(grad))) and float(jnp.abs(grad).sum()) > 0


# Each of these ran to a black, white or NaN image, silently, or failed deep inside JAX.
@pytest.mark.parametrize("dtype", [jnp.int32, jnp.bool_, jnp.float16, "float8_e4m3fn", "nonsense"])
def test_a_compute_dtype_other_than_float32_or_bfloat16_is_refused(params, dtype):
    content = _images(1)[0]
    with pytest.raises(ValueError, match="dtype .*: the convolutions compute in float32 or bf"):
        adain_jax.stylize(params, content, content, dtype=dtype)
    with pytest.raises(ValueError, match="the convolutions compute in"):
        adain_jax.encode_style(params, content, dtype=dtype)


@pytest.mark.parametrize("alpha", [float("nan"), 2.0, -0.5, [0.5, 1.5]])
def test_a_concrete_alpha_outside_0_1_is_refused(params, alpha):
    content, style = _images(2), _images(1, seed=1)
    with pytest.raises(ValueError, match=r"^alpha must be in \[0, 1\], got"):
        adain_jax.stylize(params, content, style, alpha)
    stats = adain_jax.encode_style(params, style)
    with pytest.raises(ValueError, match=r"^alpha must be in \[0, 1\]"):
        adain_jax.stylize_with_stats(params, content, stats, alpha)
    with pytest.raises(ValueError, match=r"^alpha must be in \[0, 1\]"):
        adain_jax.stylize_tiled(params, content, stats, alpha, max_tile=160)


def test_alpha_and_images_as_lists_work_as_arrays(params):
    content, style = _images(2), _images(1, seed=1)
    want = adain_jax.stylize(params, content, style, np.array([0.5, 1.0], np.float32))
    got = adain_jax.stylize(params, content.tolist(), style, [0.5, 1.0])
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    with pytest.raises(TypeError, match="alpha must be a number"):
        adain_jax.stylize(params, content, style, None)


def test_sizes_are_checked_against_the_padded_shape(params):
    content = _images(2, 32)
    stats = adain_jax.encode_style(params, _images(1, seed=1))
    run = lambda sizes: adain_jax.stylize_with_stats(params, content, stats, sizes=sizes)  # noqa: E731
    for bad in ([[0, 0], [32, 32]], [[4, 4], [32, 32]], [[64, 64], [32, 32]], [[32, 33], [9, 9]]):
        with pytest.raises(ValueError, match=r"sizes must be between 9 px and the padded 32x32"):
            run(np.array(bad))
    with pytest.raises(ValueError, match="sizes must be integers"):
        run(np.array([[20.7, 20.2], [32, 32]]))
    assert run(np.array([[9, 9], [32, 32]])).shape == content.shape


def test_stats_must_be_style_stats_of_512_channels(params):
    content, style = _images(1), _images(1, seed=1)
    with pytest.raises(TypeError, match="stats must be StyleStats .*, got ndarray"):
        adain_jax.stylize_with_stats(params, content, style)
    stats = adain_jax.encode_style(params, style)
    flat = adain_jax.StyleStats(stats.mean.reshape(512), stats.std.reshape(512))
    with pytest.raises(ValueError, match=r"\[K, 1, 1, 512\], got \(512,\) and \(512,\)"):
        adain_jax.stylize_with_stats(params, content, flat)
    with pytest.raises(ValueError, match="no style"):
        adain_jax.stylize_with_stats(params, content, adain_jax.StyleStats(
            stats.mean[:0], stats.std[:0]))  # fmt: skip
    with pytest.raises(TypeError, match="stats must be StyleStats"):
        adain_jax.stack_stats([style, style])
    both = adain_jax.stack_stats(s for s in (stats, stats))  # a generator, read once
    assert both.num_styles == 2


def test_masks_of_the_wrong_batch_or_dtype_are_refused(params):
    content = _images(1, 32)
    styles = [_images(1, seed=1)[0], _images(1, seed=2)[0]]
    labels = np.zeros((32, 32), np.int32)
    labels[16:] = 1
    with pytest.raises(ValueError, match="mask has a batch of 32 for 1 content"):
        adain_jax.stylize_mix(params, content, styles, mask=labels[..., None])
    with pytest.raises(ValueError, match="mask has a batch of 2 for 1 content"):
        adain_jax.stylize_mix(params, content, styles, mask=np.stack([labels, labels]))
    stats = adain_jax.stack_stats([adain_jax.encode_style(params, s) for s in styles])
    traced = jax.jit(lambda m: adain_jax.stylize_with_stats(params, content, stats, mask=m))
    with pytest.raises(ValueError, match="integer region labels, got dtype float32"):
        traced(labels.astype(np.float32) * 0.9)  # was cast to int: one region


def test_weights_of_the_wrong_rank_name_their_shape(params):
    stats = adain_jax.stack_stats(
        [adain_jax.encode_style(params, _images(1, seed=s)) for s in (1, 2)]
    )
    with pytest.raises(
        ValueError, match=r"style weights must be \[K\] \(2 styles\), got shape \(1, 2\)"
    ):
        adain_jax.stylize_with_stats(params, _images(1), stats, weights=[[1.0, 1.0]])
    traced = jax.jit(lambda w: adain_jax.stylize_with_stats(params, _images(1), stats, weights=w))
    with pytest.raises(ValueError, match=r"style weights must be \[2\], got shape \(3,\)"):
        traced(jnp.array([0.7, 0.3, 0.1]))


def test_params_missing_a_network_and_bad_network_inputs_are_named(params):
    content = _images(1)
    for bad, text in [
        ({"encoder": params["encoder"]}, "'decoder' missing"),
        (None, "got NoneType"),
    ]:
        with pytest.raises(
            ValueError, match=r'params must be the \{"encoder", "decoder"\}.*' + text
        ):
            adain_jax.stylize(bad, content, content)
    from flax.core import freeze

    assert adain_jax.stylize(freeze(params), content, content).shape == content.shape  # a Mapping
    with pytest.raises(ValueError, match=r"images must be \[N, H, W, 3\], got shape \(16, 16, 3\)"):
        adain_jax.encode(params, content[0])
    with pytest.raises(ValueError, match=r"features must be \[N, h, w, 512\] .*\(1, 2, 2, 256\)"):
        adain_jax.decode(params, jnp.zeros((1, 2, 2, 256)))


def test_colour_functions_refuse_integer_and_non_rgb_images():
    rgb = _images(1)[0]
    for fn in (adain_jax.match_color, adain_jax.luminance_inputs):
        with pytest.raises(TypeError, match="content has dtype uint8"):
            fn((rgb * 255).astype(np.uint8), rgb)
        with pytest.raises(
            ValueError, match=r"style must be RGB \[..., H, W, 3\], got shape \(16, 16, 4\)"
        ):
            fn(rgb, np.concatenate([rgb, rgb[..., :1]], -1))
    with pytest.raises(ValueError, match="differ in size"):
        adain_jax.recombine_luminance(rgb, _images(1, 32)[0])


def test_stylize_tiled_checks_shapes_and_max_tile(params):
    stats = adain_jax.encode_style(params, _images(1, seed=1))
    with pytest.raises(ValueError, match=r"content must be .*, got shape \(64, 64\)"):
        adain_jax.stylize_tiled(params, _images(1, 64)[0, ..., 0], stats, max_tile=160)
    with pytest.raises(
        ValueError, match="max_tile must be an integer of at least 160 px, got 160.5"
    ):
        adain_jax.stylize_tiled(params, _images(1, 64)[0], stats, max_tile=160.5)
    with pytest.raises(ValueError, match=r"alpha has shape \(2,\)"):
        adain_jax.stylize_tiled(params, _images(1, 64)[0], stats, np.ones(2), max_tile=160)


def test_adain_names_features_that_do_not_match():
    feat = jnp.ones((2, 4, 4, 512))
    for style in (jnp.ones((1, 2, 2, 256)), jnp.ones((3, 2, 2, 512)), jnp.ones((512,))):
        with pytest.raises(
            ValueError, match=r"adain takes features .*got content \(2, 4, 4, 512\)"
        ):
            adain_jax.adain(feat, style)
    assert adain_jax.adain(feat, jnp.ones((1, 2, 2, 512))).shape == feat.shape


@pytest.mark.parametrize("weights", [[1e-45, 0.0], [1e39, 1.0], [1e308, 1e308], [3e38, 3e38]])
def test_weights_that_float32_cannot_normalise_are_refused(weights):
    # Each would be 0/0 or inf/inf in float32: a black image, silently.
    with pytest.raises(ValueError, match="within float32's range"):
        stats.normalize_weights(weights, 2)
    w = np.asarray(stats.normalize_weights([1e-30, 3e-30], 2))  # small but normal: fine
    np.testing.assert_allclose(w, [0.25, 0.75], rtol=1e-6)
