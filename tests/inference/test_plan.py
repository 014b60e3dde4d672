"""Planning and routing of infer.py jobs, without the network.

The decisions (which back-end for which size, mask over weights, colour preservation, batching,
skips) are checked on ``Plan`` directly; the routing into ``adain_jax.inference.backend`` with a
recording stand-in for the network (``stylize_with_stats`` / ``stylize_tiled`` / ``encode_style``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from adain_jax.cli import infer as infer_cli
from adain_jax.controls import tiling
from adain_jax.inference import backend, run
from adain_jax.inference.paths import Pair
from adain_jax.inference.plan import Backend, JobOptions, make_plan, resolve_weights
from adain_jax.nn.models import decoder_shapes

LABELS = np.array([[0, 1], [1, 0]], np.int32)


def _pairs(tmp_path: Path, n: int = 2, styles: int = 2) -> list[Pair]:
    st = tuple(tmp_path / f"s{k}.png" for k in range(styles))
    return [Pair(tmp_path / f"c{i}.png", st, tmp_path / f"o{i}.png") for i in range(n)]


def _plan(tmp_path, labels=None, n=2, **opts):
    opts.setdefault("max_tile", 256)
    return make_plan(JobOptions(**opts), _pairs(tmp_path, n), labels)


@pytest.mark.parametrize(
    ("opts", "labels", "hw", "want"),
    [
        ({}, None, (100, 120), Backend.PADDED),
        ({}, None, (256, 256), Backend.PADDED),  # exactly one window: not tiled
        ({}, None, (257, 64), Backend.TILED),
        ({"bucket": 0}, None, (100, 120), Backend.EXACT),
        ({}, LABELS, (100, 120), Backend.EXACT),  # the padded path takes no mask
        ({}, LABELS, (300, 20), Backend.TILED),
        ({"preserve_color": "coral"}, None, (100, 120), Backend.PADDED),
        ({"max_tile": 0}, None, (5000, 5000), Backend.PADDED),  # --max-tile 0: never tile
    ],
)
def test_backend_for(tmp_path, opts, labels, hw, want):
    if opts.get("max_tile") == 0:
        opts = {**opts, "max_tile": infer_cli.NEVER_TILE}
    assert _plan(tmp_path, labels, **opts).backend_for(*hw) is want


def test_batch_key_only_for_shared_styles_in_a_bucket(tmp_path):
    plan = _plan(tmp_path)
    assert plan.batch_key(100, 120) == (128, 128) and plan.batch_key(64, 65) == (64, 128)
    assert _plan(tmp_path, bucket=32).batch_key(100, 120) == (128, 128)
    assert plan.batch_key(300, 10) is None  # tiled: alone
    assert _plan(tmp_path, LABELS).batch_key(100, 120) is None
    assert _plan(tmp_path, bucket=0).batch_key(100, 120) is None
    for mode in ("coral", "luminance"):  # the style depends on each content
        assert _plan(tmp_path, preserve_color=mode).batch_key(100, 120) is None


def test_frames_batch_unless_tiled_or_colour_preserved(tmp_path):
    assert _plan(tmp_path).batches_frames(64, 96)
    assert _plan(tmp_path, LABELS).batches_frames(64, 96)
    assert _plan(tmp_path, bucket=0).batches_frames(64, 96)
    assert not _plan(tmp_path).batches_frames(300, 96)
    assert not _plan(tmp_path, preserve_color="coral").batches_frames(64, 96)


def test_mask_overrides_weights(tmp_path):
    assert resolve_weights((1.0, 3.0), None) == (1.0, 3.0)
    assert resolve_weights((1.0, 3.0), LABELS) is None
    assert _plan(tmp_path, style_weights=(1.0, 3.0)).weights == (1.0, 3.0)
    plan = _plan(tmp_path, LABELS, style_weights=(1.0, 3.0))
    assert plan.weights is None and plan.labels is LABELS


def test_skip_existing_unless_overwrite_for_every_job(tmp_path):
    (tmp_path / "o0.png").write_bytes(b"x")
    plan = _plan(tmp_path)
    assert [p.output.name for p in plan.todo] == ["o1.png"]
    assert plan.skipped == (tmp_path / "o0.png",)
    assert len(_plan(tmp_path, overwrite=True).todo) == 2
    single = _plan(tmp_path, n=1)  # one rule: a single existing output is skipped too
    assert single.todo == () and single.skipped == (tmp_path / "o0.png",)
    assert len(_plan(tmp_path, n=1, overwrite=True).todo) == 1


def test_plan_resolves_dtype_and_max_tile(tmp_path):
    plan = _plan(tmp_path, dtype="bfloat16", max_tile=None)
    assert plan.dtype == jnp.bfloat16
    assert plan.max_tile == tiling.auto_max_tile(1, jnp.bfloat16)
    assert plan.per_call(64, 64) == plan.max_tile**2 // 4096
    assert _plan(tmp_path, max_tile=256).per_call(300, 300) == 1


@pytest.mark.slow
def test_preserve_color_inputs_and_finish():
    rng = np.random.default_rng(0)
    content = rng.random((12, 16, 3), dtype=np.float32) * 0.5
    style = np.clip(rng.random((10, 10, 3), dtype=np.float32) * [1.0, 0.2, 0.1] + 0.3, 0, 1)
    seen, styles, finish = backend.preserve_color(None, content, [style])
    assert seen is content and styles[0] is style and finish(style) is style

    seen, styles, finish = backend.preserve_color("coral", content, [style, style])
    assert seen is content and len(styles) == 2 and styles[0].shape == style.shape
    np.testing.assert_allclose(styles[0].mean((0, 1)), content.mean((0, 1)), atol=0.02)
    assert finish(content) is content

    seen, styles, finish = backend.preserve_color("luminance", content, [style])
    assert np.allclose(seen[..., 0], seen[..., 1]) and np.allclose(seen[..., 0], seen[..., 2])
    assert np.allclose(styles[0][..., 0], styles[0][..., 2])  # grey styles too
    out = finish(seen)  # the content's own luminance back with its chrominance: the content
    np.testing.assert_allclose(out, content, atol=1e-5)


# ----------------------------------------------------------- routing, with a fake network
@pytest.fixture
def fake_network(monkeypatch):
    """Replace the network calls in ``backend``; return the list of recorded calls."""
    calls = []

    def encode_style(params, style, *, dtype):
        calls.append(("encode", style.shape))
        z = jnp.zeros((1, 1, 1, 512))
        return backend.StyleStats(z, z + 1)

    def encode_style_padded(params, style, size, *, dtype):  # recorded at its valid size
        return encode_style(params, np.zeros((*np.asarray(size), style.shape[-1])), dtype=dtype)

    def stylize_with_stats(params, content, stats, alpha, *, weights=None, mask=None,
                           sizes=None, dtype):  # fmt: skip
        calls.append(("padded" if sizes is not None else "exact", content.shape, weights, mask))
        if sizes is not None:
            assert sizes.dtype == np.int32 and sizes.shape == (content.shape[0], 2)
        return np.asarray(content) * 0.5

    def stylize_tiled(params, content, stats, alpha, *, weights, mask, max_tile, dtype):
        calls.append(("tiled", content.shape, weights, mask))
        return np.asarray(content) * 0.5

    monkeypatch.setattr(backend, "encode_style", encode_style)
    monkeypatch.setattr(backend, "encode_style_padded", encode_style_padded)
    monkeypatch.setattr(backend, "stylize_checked", stylize_with_stats)
    monkeypatch.setattr(backend, "stylize_tiled", stylize_tiled)
    return calls


def _stylizer(plan, style_hw=(20, 20)):
    styles = run.Styles({}, plan)
    for path in {s for p in plan.todo for s in p.styles}:
        styles._images[path] = np.full((*style_hw, 3), 0.5, np.float32)  # already read
    return run.Stylizer({"decoder": decoder_shapes()}, plan, styles)  # the paper's variant


def test_one_content_routes_to_the_planned_backend(tmp_path, fake_network):
    content = np.full((40, 50, 3), 0.8, np.float32)
    st = _pairs(tmp_path)[0].styles
    out = _stylizer(_plan(tmp_path, style_weights=(1.0, 3.0))).one(content, st)
    np.testing.assert_allclose(out, content * 0.5)
    assert fake_network == [("encode", (20, 20, 3))] * 2 + [
        ("padded", (1, 64, 64, 3), (1.0, 3.0), None)
    ]
    fake_network.clear()
    _stylizer(_plan(tmp_path, LABELS, style_weights=(1.0, 3.0))).one(content, st)
    assert fake_network[-1] == ("exact", (1, 40, 50, 3), None, LABELS)
    fake_network.clear()
    _stylizer(_plan(tmp_path, LABELS, max_tile=32)).one(content, st)
    assert fake_network[-1] == ("tiled", (40, 50, 3), None, LABELS)


def test_style_stats_shared_unless_colour_preserved(tmp_path, fake_network):
    content = np.full((16, 16, 3), 0.8, np.float32)
    st = _pairs(tmp_path)[0].styles
    stylizer = _stylizer(_plan(tmp_path))
    for _ in range(3):
        stylizer.one(content, st)
    assert [c[0] for c in fake_network].count("encode") == 2  # once per style
    fake_network.clear()
    stylizer = _stylizer(_plan(tmp_path, preserve_color="coral"))
    for _ in range(3):
        stylizer.one(content, st)
    assert [c[0] for c in fake_network].count("encode") == 6  # per content


def test_bucket_batches_pad_to_a_power_of_two(tmp_path, fake_network):
    plan = _plan(tmp_path, batch_size=8)
    contents = [np.full((40 + i, 50, 3), 0.2, np.float32) for i in range(3)]
    outs = _stylizer(plan).bucket(contents, _pairs(tmp_path)[0].styles)
    assert [o.shape for o in outs] == [c.shape for c in contents]
    assert fake_network[-1] == ("padded", (4, 64, 64, 3), None, None)
    fake_network.clear()  # max_tile**2 pixels a call: 64*64*4 -> 4 images, then 1
    plan = dataclasses.replace(plan, max_tile=128)
    _stylizer(plan).bucket(contents * 2, _pairs(tmp_path)[0].styles)
    assert [c[1][0] for c in fake_network if c[0] == "padded"] == [4, 2]


def test_frames_one_call_per_chunk_or_frame_by_frame(tmp_path, fake_network):
    frames = np.full((5, 24, 32, 3), 0.4, np.float32)
    st = _pairs(tmp_path)[0].styles
    out = _stylizer(_plan(tmp_path)).frames(frames, st)
    assert out.shape == frames.shape
    assert [c for c in fake_network if c[0] != "encode"] == [("exact", (5, 24, 32, 3), None, None)]
    fake_network.clear()
    _stylizer(_plan(tmp_path, preserve_color="luminance")).frames(frames, st)
    assert [c[:2] for c in fake_network if c[0] != "encode"] == [("padded", (1, 64, 64, 3))] * 5
    fake_network.clear()  # 24 x 32 frames, max_tile 48: 3 frames a call, last padded
    _stylizer(_plan(tmp_path, max_tile=48)).frames(frames, st)
    assert [c[1] for c in fake_network if c[0] != "encode"] == [(3, 24, 32, 3)] * 2


@pytest.mark.parametrize(
    ("argv", "want"),
    [
        (["--style-weights", "-1,2"], ["--style-weights=-1,2"]),
        (["--alpha", "-.5", "--quiet"], ["--alpha=-.5", "--quiet"]),
        (["--style-weights", "--quiet"], ["--style-weights", "--quiet"]),
        (["--quiet", "-1"], ["--quiet", "-1"]),  # not a flag with a value: left to argparse
        (["--style-weights"], ["--style-weights"]),
    ],
)
def test_negative_values_attach_to_their_flag(argv, want):
    parser = infer_cli.build_parser()
    assert infer_cli._attach_negative_values(parser, argv) == want


def test_a_tiled_content_with_an_instance_norm_decoder_names_max_tile_0(tmp_path, fake_network):
    """Its statistics span the whole image, so tiles would differ: a one-line error that says
    how to run it whole, not the library's "stylize the image whole"."""
    from adain_jax.nn.models import DecoderVariant

    plan = _plan(tmp_path, max_tile=32)
    styles = _stylizer(plan).styles
    stylizer = run.Stylizer({"decoder": decoder_shapes(DecoderVariant("adain", "instance"))},
                            plan, styles)  # fmt: skip
    with pytest.raises(ValueError, match=r"50x40 px .* --max-tile 0 stylizes it whole"):
        stylizer.one(np.full((40, 50, 3), 0.8, np.float32), _pairs(tmp_path)[0].styles)
    assert not [c for c in fake_network if c[0] == "tiled"]
