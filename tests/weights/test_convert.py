"""Weight conversion (.pth -> safetensors -> params) and its errors, API and command line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import adain_jax
from adain_jax.cli import convert as convert_cli
from adain_jax.weights import convert, torch_pickle
from adain_jax.weights import safetensors_io as weights_io
from adain_jax.weights.convert import WeightsError
from adain_jax.weights.torch_pickle import TorchFileError

# Written out from ADAIN.md, independent of the converter's tables.
ENCODER_INDEX = {
    "conv0": 0, "conv1_1": 2, "conv1_2": 5, "conv2_1": 9, "conv2_2": 12, "conv3_1": 16,
    "conv3_2": 19, "conv3_3": 22, "conv3_4": 25, "conv4_1": 29,
}  # fmt: skip
DECODER_INDEX = {
    "conv4_1": 1, "conv3_4": 5, "conv3_3": 8, "conv3_2": 11, "conv3_1": 14, "conv2_2": 18,
    "conv2_1": 21, "conv1_2": 25, "conv1_1": 28,
}  # fmt: skip
TORCHVISION_INDEX = {
    "conv1_1": 0, "conv1_2": 2, "conv2_1": 5, "conv2_2": 7, "conv3_1": 10, "conv3_2": 12,
    "conv3_3": 14, "conv3_4": 16, "conv4_1": 19,
}  # fmt: skip


def _expected(module_sd, index: dict[str, int], prefix: str = "") -> dict:
    """``{layer: {kernel: HWIO, bias}}`` from a torch state dict (OIHW)."""
    return {
        name: {
            "kernel": module_sd[f"{prefix}{i}.weight"].numpy().transpose(2, 3, 1, 0),
            "bias": module_sd[f"{prefix}{i}.bias"].numpy(),
        }
        for name, i in index.items()
    }


def _assert_params_equal(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for layer in want:
        for leaf in ("kernel", "bias"):
            np.testing.assert_array_equal(np.asarray(got[layer][leaf]), want[layer][leaf])


def test_port_files_round_trip(tmp_path, port_weight_files, torch_nets):
    vgg, dec = port_weight_files
    written = convert.convert(tmp_path / "w", vgg=str(vgg), decoder=str(dec))
    assert [p.rsplit("/", 1)[-1] for p in written] == ["encoder.safetensors", "decoder.safetensors"]
    want_enc = _expected(torch_nets[0].state_dict(), ENCODER_INDEX)
    want_dec = _expected(torch_nets[1].state_dict(), DECODER_INDEX)
    network, params = weights_io.load(tmp_path / "w" / "encoder.safetensors")
    assert network == "encoder"
    _assert_params_equal(params, want_enc)
    network, params = weights_io.load(tmp_path / "w" / "decoder.safetensors")
    assert network == "decoder"
    _assert_params_equal(params, want_dec)
    meta = weights_io.read_metadata(tmp_path / "w" / "decoder.safetensors")
    assert meta["adain_jax.source"] == "decoder.pth" and meta["adain_jax.format"] == "1"
    # load_params gives the same arrays, from the directory and from the .pth files.
    for loaded in (
        adain_jax.load_params(tmp_path / "w"),
        adain_jax.load_params(vgg=vgg, decoder=dec),
    ):
        _assert_params_equal(loaded["encoder"], want_enc)
        _assert_params_equal(loaded["decoder"], want_dec)
        assert loaded["decoder"]["conv1_1"]["kernel"].dtype == np.float32


def test_torchvision_layout_folds_imagenet_normalisation(torchvision_file):
    path, sd = torchvision_file
    params = convert.load_torch_weights(path, expect="encoder")
    _assert_params_equal(
        {k: v for k, v in params.items() if k != "conv0"},
        _expected(sd, TORCHVISION_INDEX, prefix="features."),
    )
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    x = np.random.default_rng(0).random((5, 3)).astype(np.float32)  # RGB pixels in [0, 1]
    kernel, bias = params["conv0"]["kernel"], params["conv0"]["bias"]
    assert kernel.shape == (1, 1, 3, 3)
    np.testing.assert_allclose(x @ kernel[0, 0] + bias, (x - mean) / std, rtol=1e-6, atol=1e-6)


def test_legacy_format_reads_like_torch(tmp_path, torch_nets):
    sd = torch_nets[1].state_dict()
    legacy = tmp_path / "decoder_legacy.pth"
    torch.save(sd, legacy, _use_new_zipfile_serialization=False)
    got = torch_pickle.load_state_dict(legacy)
    assert set(got) == set(sd)
    for key, value in sd.items():
        np.testing.assert_array_equal(got[key], value.numpy())
    _assert_params_equal(convert.load_torch_weights(legacy), _expected(sd, DECODER_INDEX))


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_views_dtypes_and_shared_storage(tmp_path, legacy):
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    sd = {
        "slice": base[1:3],  # offset into a shared storage
        "transposed": base.t(),  # non-contiguous strides
        "column": base[:, 2],
        "scalar": torch.tensor(3.5),
        "half": torch.linspace(-1, 1, 5, dtype=torch.float16),
        "bf16": torch.linspace(-2, 2, 7, dtype=torch.bfloat16),
        "double": torch.ones(2, 2, dtype=torch.float64) / 3,
    }
    path = tmp_path / "views.pth"
    torch.save(sd, path, _use_new_zipfile_serialization=not legacy)
    got = torch_pickle.load_state_dict(path)
    for key, value in sd.items():
        want = value.float().numpy() if value.dtype == torch.bfloat16 else value.numpy()
        np.testing.assert_array_equal(np.asarray(got[key], want.dtype), want, err_msg=key)
        assert got[key].shape == tuple(value.shape), key


# ---------------------------------------------------------------- errors


def _bad_files(root, torch_nets):
    """``{case: (path, text the error must contain besides the file name)}``."""
    sd = dict(torch_nets[1].state_dict())
    files = {}

    def save(name, obj, **kw):
        path = root / name
        torch.save(obj, path, **kw)
        return path

    files["unknown-key"] = (save("unknown.pth", {**sd, "99.weight": torch.zeros(3)}), "'99.weight'")
    missing = {k: v for k, v in sd.items() if k != "5.bias"}
    files["missing-key"] = (save("missing.pth", missing), "missing key '5.bias'")
    shaped = {**sd, "8.weight": torch.zeros(256, 256, 1, 1)}
    files["wrong-shape"] = (save("shape.pth", shaped), "'8.weight' has shape (256, 256, 1, 1)")
    files["list"] = (save("list.pth", [1, 2, 3]), "not a state dict")
    files["tensor"] = (save("tensor.pth", torch.zeros(3)), "not a state dict")
    files["module"] = (save("module.pth", torch.nn.Linear(2, 2)), "only tensor state dicts")
    files["int-weights"] = (
        save("ints.pth", {**sd, "1.bias": torch.zeros(256, dtype=torch.int64)}),
        "'1.bias' has dtype int64",
    )
    random = root / "random.pth"
    random.write_bytes(np.random.default_rng(0).bytes(4096))
    files["random-bytes"] = (random, "not a PyTorch file")
    for name, legacy in (("cut_zip.pth", False), ("cut_legacy.pth", True)):
        full = save(name, sd, _use_new_zipfile_serialization=not legacy)
        full.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
        files[name.removesuffix(".pth")] = (full, "truncated")
    files["missing-file"] = (root / "nope.pth", "no such file")
    return files


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, torch_nets):
    return _bad_files(tmp_path_factory.mktemp("bad_weights"), torch_nets)


CASES = [
    "unknown-key", "missing-key", "wrong-shape", "list", "tensor", "module", "int-weights",
    "random-bytes", "cut_zip", "cut_legacy", "missing-file",
]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_bad_file_api(case, bad_files, tmp_path):
    path, text = bad_files[case]
    with pytest.raises((WeightsError, TorchFileError, FileNotFoundError)) as info:
        convert.convert(tmp_path / "out", decoder=str(path))
    message = str(info.value)
    assert message.startswith(str(path)) and text in message and "\n" not in message
    assert not (tmp_path / "out" / "decoder.safetensors").exists()


@pytest.mark.parametrize("case", CASES)
def test_bad_file_command_line(case, bad_files, tmp_path, capsys):
    path, text = bad_files[case]
    code = convert_cli.main(["--decoder", str(path), "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 1
    assert err.startswith(f"error: {path}") and err.count("\n") == 1 and text in err
    assert not (tmp_path / "out" / "decoder.safetensors").exists()


def test_converted_files_convert_again_never_over_themselves(port_weight_files, tmp_path):
    """A converted .safetensors (the built-in encoder, say) is a source too: copied, or
    normalised with --normalise; it was read as a pickle ('opcode ... unknown')."""
    vgg, dec = port_weight_files
    first = convert.convert(tmp_path / "a", vgg=str(vgg), decoder=str(dec))
    again = convert.convert(tmp_path / "b", vgg=first[0], decoder=first[1])
    for one, two in zip(first, again, strict=True):
        (net_a, a), (net_b, b) = weights_io.load(one), weights_io.load(two)
        assert net_a == net_b
        _assert_params_equal(b, a)
    with pytest.raises(WeightsError, match="is the input file; refusing to overwrite it"):
        convert.convert(tmp_path / "a", vgg=first[0])
    assert convert_cli.main(["--vgg", first[0], "--out", str(tmp_path / "a")]) == 1


def test_wrong_network_is_named(port_weight_files, tmp_path):
    vgg, dec = port_weight_files
    with pytest.raises(WeightsError, match="holds decoder weights, expected encoder"):
        convert.convert(tmp_path, vgg=str(dec))
    with pytest.raises(WeightsError, match="holds encoder weights, expected decoder"):
        adain_jax.load_params(vgg=vgg, decoder=vgg)


def test_python_m_convert(port_weight_files, bad_files, tmp_path):
    vgg, dec = port_weight_files
    cmd = [sys.executable, "-m", "adain_jax", "convert", "--decoder", str(dec)]
    proc = subprocess.run([*cmd, "--out", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # e.g. no runpy "found in sys.modules" warning
    assert proc.stdout.strip() == f"wrote {tmp_path / 'decoder.safetensors'}"
    path, text = bad_files["wrong-shape"]
    cmd = [sys.executable, "-m", "adain_jax", "convert", "--decoder", str(path), "--out"]
    proc = subprocess.run([*cmd, str(tmp_path / "x")], capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"error: {path}") and text in proc.stderr
