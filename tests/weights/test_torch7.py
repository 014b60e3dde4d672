"""Torch7 ``.t7`` files: the test writer against torchfile, the reader against torchfile and
torch, the authors' networks through ``.t7`` and ``.pth``, and the content-similar decoder.

The ``.t7`` files are written by ``tests/torch7_writer.py`` (File.lua's format); torchfile
(PyPI, an independent reader) checks that they are real Torch7 files.
"""

from __future__ import annotations

import hashlib
import shutil
from argparse import Namespace

import numpy as np
import pytest

import adain_jax
from adain_jax.cli import convert as convert_cli
from adain_jax.cli import weight_flags
from adain_jax.weights import convert, download, pretrained, torch7
from adain_jax.weights import safetensors_io as weights_io
from adain_jax.weights.download import DownloadError
from tests import torch7_writer as w
from tests import torch_reference as ref
from tests.conftest import random_images

torchfile = pytest.importorskip("torchfile")


def _write(path, obj) -> str:
    path.write_bytes(w.dumps(obj))
    return str(path)


def _canon_torchfile(x, memo=None):
    """torchfile's values (read with no heuristics) in the reader's terms."""
    memo = {} if memo is None else memo
    if id(x) in memo:
        return memo[id(x)]
    if isinstance(x, bytes):
        return x.decode()
    if isinstance(x, torchfile.TorchObject):
        out = ("torch", x.torch_typename().decode(), _canon_torchfile(x._obj, memo))
    elif isinstance(x, dict):
        out = {_canon_torchfile(k, memo): _canon_torchfile(v, memo) for k, v in x.items()}
    else:
        return x
    memo[id(x)] = out
    return out


def _canon_reader(x):
    if isinstance(x, torch7.TorchObject):
        return ("torch", x.class_name, _canon_reader(x.fields))
    if isinstance(x, dict):
        return {k: _canon_reader(v) for k, v in x.items()}
    return x


def _assert_same(got, want, where="top"):
    if isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray) and got.dtype == want.dtype, where
        np.testing.assert_array_equal(got, want.reshape(got.shape) if want.size == 0 else want)
        assert got.shape == want.shape or want.size == 0, where
    elif isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), where
        for k in want:
            _assert_same(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, tuple):
        assert isinstance(got, tuple) and got[:2] == want[:2], where
        _assert_same(got[2], want[2], f"{where}<{want[1]}>")
    else:
        assert type(got) is type(want) and got == want, (where, got, want)


def _rich_object():
    """Every kind of value, a storage shared by two views (one transposed, one offset)."""
    shared = w.Storage(np.arange(12, dtype=np.float32))
    return {
        "number": 2.5,
        "integer": 7,
        "negative": -1e300,
        "yes": True,
        "no": False,
        "text": "conv1_1",
        "nothing": None,
        "list": [1, "two", [3.0]],
        "doubles": np.linspace(0, 1, 6).reshape(2, 3),
        "longs": np.array([[-(2**40), 5]], np.int64),
        "bytes": np.array([0, 255, 7], np.uint8),
        "ints": np.arange(-3, 3, dtype=np.int32),
        "t": w.View(shared, (3, 4), (1, 3)),  # a transposed view
        "tail": w.View(shared, (5,), (1,), offset=7),
        "empty": w.empty(),
        "module": w.Module("nn.ReLU", {"inplace": False, "threshold": 0}),
        "unversioned": w.Module("nn.SpatialUpSamplingNearest", {"scale_factor": 2}, version=None),
        7: "a numeric key",
    }


def test_writer_and_reader_agree_with_torchfile(tmp_path):
    path = _write(tmp_path / "rich.t7", _rich_object())
    want = _canon_torchfile(torchfile.load(path, use_list_heuristic=False, use_int_heuristic=False))
    got = _canon_reader(torch7.load(path))
    _assert_same(got, want)
    # Spot checks against the values written, independent of both readers.
    np.testing.assert_array_equal(got["t"], np.arange(12, dtype=np.float32).reshape(4, 3).T)
    np.testing.assert_array_equal(got["tail"], [7, 8, 9, 10, 11])
    assert got["longs"][0, 0] == -(2**40) and got["list"][3.0][1.0] == 3.0
    assert got[7.0] == "a numeric key" and got["unversioned"][0] == "torch"


def test_shared_storage_is_read_once_and_stays_shared(tmp_path):
    storage = w.Storage(np.arange(6, dtype=np.float32))
    same = {"x": 1}
    path = _write(tmp_path / "shared.t7", {"a": storage, "b": storage, "c": same, "d": same})
    got = torch7.load(path)
    assert got["a"] is got["b"] and got["c"] is got["d"]
    tf = torchfile.load(path)
    np.testing.assert_array_equal(got["a"], tf[b"b"])


@pytest.mark.parametrize("flat", [False, True], ids=["oihw", "old-2d-layout"])
def test_small_model_state_dict_matches_torchfile(tmp_path, flat):
    path = _write(tmp_path / "small.t7", w.small_model(flat=flat))
    sd = torch7.load_state_dict(path)
    assert sorted(sd) == ["1.bias", "1.weight"]
    conv = torchfile.load(path).modules[1]
    assert conv._typename == b"nn.SpatialConvolution"
    np.testing.assert_array_equal(sd["1.weight"], conv.weight.reshape(3, 2, 3, 3))
    np.testing.assert_array_equal(sd["1.bias"], conv.bias)
    assert sd["1.weight"].shape == (3, 2, 3, 3) and sd["1.weight"].dtype == np.float32


# ---------------------------------------------------------------- the authors' networks
@pytest.fixture(scope="module")
def t7_files(tmp_path_factory, torch_nets):
    """The port's random networks written as the authors' ``.t7`` models (the decoder in
    the old 2-D weight layout)."""
    vgg, dec = torch_nets
    root = tmp_path_factory.mktemp("t7")
    vgg_path = _write(root / "vgg_normalised.t7", w.from_torch(vgg))
    dec_path = _write(root / "decoder.t7", w.from_torch(dec, flat=True))
    return vgg_path, dec_path


def test_t7_files_are_what_torchfile_reads(t7_files, torch_nets):
    """The written models hold the torch networks' weights at the same positions."""
    for path, net in zip(t7_files, torch_nets, strict=True):
        model = torchfile.load(path)
        assert model._typename == b"nn.Sequential" and len(model.modules) == len(net)
        sd = net.state_dict()
        for i, m in enumerate(model.modules):
            if m._typename == b"nn.SpatialConvolution":
                want = sd[f"{i}.weight"].numpy()
                np.testing.assert_array_equal(m.weight.reshape(want.shape), want)
                np.testing.assert_array_equal(m.bias, sd[f"{i}.bias"].numpy())


def test_t7_and_pth_give_the_same_params(t7_files, port_weight_files, torch_nets):
    for t7, pth, net, network in zip(
        t7_files, port_weight_files, torch_nets, ("encoder", "decoder"), strict=True
    ):
        sd = torch7.load_state_dict(t7)
        want_sd = net.state_dict()
        assert set(sd) == set(want_sd)
        for key, value in sd.items():
            np.testing.assert_array_equal(value, want_sd[key].numpy())
        got = convert.load_torch_weights(t7, expect=network)
        want = convert.load_torch_weights(pth, expect=network)
        assert set(got) == set(want)
        for layer in want:
            for leaf in ("kernel", "bias"):
                np.testing.assert_array_equal(got[layer][leaf], want[layer][leaf])


@pytest.mark.slow
def test_same_stylization_through_t7_and_pth(t7_files, port_weight_files, torch_nets):
    content, style = random_images(5, 1, 36, 28), random_images(6, 1, 32, 40)
    from_t7 = np.asarray(
        adain_jax.stylize(
            adain_jax.load_params(vgg=t7_files[0], decoder=t7_files[1]), content, style, 0.8
        )
    )
    from_pth = np.asarray(
        adain_jax.stylize(
            adain_jax.load_params(vgg=port_weight_files[0], decoder=port_weight_files[1]),
            content,
            style,
            0.8,
        )
    )
    np.testing.assert_array_equal(from_t7, from_pth)
    want = ref.stylize(*torch_nets, content, style, 0.8)  # the torch networks themselves
    assert np.max(np.abs(from_t7 - want)) < 1e-4


def test_convert_command_and_renamed_file(t7_files, port_weight_files, tmp_path, capsys):
    for out, (vgg, dec) in (("a", t7_files), ("b", port_weight_files)):
        args = ["--vgg", str(vgg), "--decoder", str(dec), "--out", str(tmp_path / out)]
        assert convert_cli.main(args) == 0
    capsys.readouterr()
    for name in ("encoder.safetensors", "decoder.safetensors"):
        net_a, got = weights_io.load(tmp_path / "a" / name)
        net_b, want = weights_io.load(tmp_path / "b" / name)
        assert net_a == net_b
        for layer in want:
            np.testing.assert_array_equal(got[layer]["kernel"], want[layer]["kernel"])
    assert (
        weights_io.read_metadata(tmp_path / "a" / "decoder.safetensors")["adain_jax.source"]
        == "decoder.t7"
    )
    # A .t7 saved under a .pth name (as some projects store vgg_normalised.t7) is recognised.
    renamed = tmp_path / "decoder_from_t7.pth"
    shutil.copy(t7_files[1], renamed)
    got = convert.load_torch_weights(renamed, expect="decoder")
    want = convert.load_torch_weights(port_weight_files[1], expect="decoder")
    np.testing.assert_array_equal(got["conv1_1"]["kernel"], want["conv1_1"]["kernel"])


def test_wrong_network_t7_is_named(t7_files):
    with pytest.raises(convert.WeightsError, match="decoder.t7: holds decoder weights"):
        convert.load_torch_weights(t7_files[1], expect="encoder")


# ---------------------------------------------------------------- content-similar decoder
CS = "decoder-content-similar.t7"


@pytest.fixture
def authors_mirror(tmp_path, monkeypatch, t7_files):
    """A file:// mirror of the authors' release holding a test decoder as ``CS``."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    shutil.copy(t7_files[1], mirror / CS)
    monkeypatch.setenv(pretrained.URL_ENV["authors"], mirror.as_uri() + "/")
    monkeypatch.setenv(download.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(pretrained.sha256_env(CS), raising=False)
    return mirror


def test_authors_files_are_pinned_beside_the_port(monkeypatch):
    assert set(pretrained.AUTHORS_FILES) == {"vgg_normalised.t7", "decoder.t7", CS}
    assert pretrained.AUTHORS_URL == "https://s3.amazonaws.com/xunhuang-public/adain/"
    assert pretrained.sha256_env(CS) == "ADAIN_JAX_SHA256_DECODER_CONTENT_SIMILAR_T7"
    assert pretrained.sha256_env("vgg_normalised.t7") == "ADAIN_JAX_SHA256_VGG_NORMALISED_T7"
    assert pretrained.sha256_env("decoder.t7") != pretrained.sha256_env("decoder.pth")
    for name in pretrained.AUTHORS_FILES:  # no published digest: none is invented
        assert name not in pretrained.SHA256
        monkeypatch.delenv(pretrained.sha256_env(name), raising=False)
        with pytest.raises(DownloadError, match=pretrained.sha256_env(name)):
            pretrained.expected_sha256(name)
    help_text = pretrained.download_help()
    assert all(pretrained.AUTHORS_URL + n in help_text for n in pretrained.AUTHORS_FILES)


def test_content_similar_without_a_digest_is_not_downloaded(authors_mirror, tmp_path):
    with pytest.raises(DownloadError) as info:
        pretrained.content_similar_decoder()
    message = str(info.value)
    assert pretrained.sha256_env(CS) in message and authors_mirror.as_uri() in message
    assert str(tmp_path / "cache" / "downloads") in message and "\n" not in message
    assert not (tmp_path / "cache" / "downloads" / CS).exists()
    # Through the command-line flags: the same reason, one line.
    args = Namespace(weights=None, checkpoint=None, vgg=None, decoder="content-similar")
    with pytest.raises(DownloadError, match=pretrained.sha256_env(CS)):
        weight_flags.load_weights(args)


def test_content_similar_with_a_stated_digest(
    authors_mirror, tmp_path, monkeypatch, port_weight_files
):
    raw = (authors_mirror / CS).read_bytes()
    monkeypatch.setenv(pretrained.sha256_env(CS), "00" * 32)
    with pytest.raises(DownloadError, match="does not match"):
        pretrained.content_similar_decoder()
    assert not (tmp_path / "cache" / "downloads" / CS).exists()
    monkeypatch.setenv(pretrained.sha256_env(CS), hashlib.sha256(raw).hexdigest())
    path = pretrained.content_similar_decoder()
    assert (tmp_path / "cache" / "downloads" / CS).read_bytes() == raw
    network, got = weights_io.load(path)
    want = convert.load_torch_weights(authors_mirror / CS, "decoder")
    assert network == "decoder"
    np.testing.assert_array_equal(got["conv4_1"]["kernel"], want["conv4_1"]["kernel"])
    # Converted once: the mirror is no longer needed.
    shutil.rmtree(authors_mirror)
    assert pretrained.content_similar_decoder() == path
    params = adain_jax.load_params(vgg=port_weight_files[0], decoder="content-similar")
    np.testing.assert_array_equal(params["decoder"]["conv1_1"]["bias"], want["conv1_1"]["bias"])


def test_content_similar_put_in_the_cache_by_hand(authors_mirror, tmp_path, port_weight_files):
    downloads = tmp_path / "cache" / "downloads"
    downloads.mkdir(parents=True)
    shutil.move(authors_mirror / CS, downloads / CS)  # the mirror no longer has it
    args = Namespace(
        weights=None, checkpoint=None, vgg=str(port_weight_files[0]), decoder="content-similar"
    )
    params = weight_flags.load_weights(args)
    want = convert.load_torch_weights(downloads / CS, "decoder")
    np.testing.assert_array_equal(params["decoder"]["conv2_1"]["kernel"], want["conv2_1"]["kernel"])


def test_content_similar_checks_given_files_first(authors_mirror, tmp_path):
    """A missing ``--vgg`` file is reported before the named decoder is looked up."""
    with pytest.raises(FileNotFoundError, match="missing.pth: no such file"):
        adain_jax.load_params(vgg=tmp_path / "missing.pth", decoder="content-similar")
    assert not (tmp_path / "cache").exists()
