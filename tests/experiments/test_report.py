"""``python -m adain_jax.experiments compare|curves`` end to end on tiny inputs."""

from __future__ import annotations

import json

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
    argv += [f"--out={out}", f"--runs={inputs / 'weights'}", "--optimize-steps=2,4"]
    argv += ["--optimizer=adam", "--size=16", "--no-pretrained"]
    assert cli.main(argv) == 0
    for name in ("report.md", "results.json", "losses.png", "grid.png"):
        assert (out / name).is_file(), name
    rows = {r["method"]: r for r in json.loads((out / "results.json").read_text())}
    assert set(rows) == {
        "weights (Enc-AdaIN-Dec)", "optimization (2 steps)", "optimization (4 steps)",
        "content image", "style image",
    }  # fmt: skip
    for r in rows.values():
        assert r["size"] == 16 and r["pairs"] == 2
        for key in ("style_loss", "content_loss_target", "content_loss_fc"):
            assert np.isfinite(r[key]) and r[key + "_std"] >= 0
    assert rows["content image"]["content_loss_fc"] == 0.0
    assert rows["style image"]["style_loss"] < 1e-6  # the 16 px style measured against itself
    run = rows["weights (Enc-AdaIN-Dec)"]
    assert run["seconds"] > 0 and run["seconds_without_style_encoding"] > 0
    assert rows["optimization (4 steps)"]["seconds"] > 0
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
    assert "| weights (Enc-AdaIN-Dec) | 16 |" in (out / "report.md").read_text()
    assert Image.open(out / "grid.png").size == (96 * 6, 96 * 3)  # content + 5 methods


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
