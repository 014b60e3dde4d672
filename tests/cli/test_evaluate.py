"""adain-jax evaluate against the torch port's losses of its own stylizations."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from adain_jax.cli import evaluate
from tests import torch_train_reference as tref

SIZE = 32


def _write_images(folder, seed, n):
    folder.mkdir()
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n):
        small = rng.integers(0, 256, (4, 4, 3)).astype(np.uint8)
        img = np.asarray(Image.fromarray(small).resize((SIZE, SIZE), Image.BILINEAR))
        Image.fromarray(img).save(folder / f"{i}.png")
        images.append(img.astype(np.float32) / 255.0)
    return images


@pytest.mark.slow
def test_evaluate_losses_match_torch_and_grid(tmp_path, capsys, torch_nets, port_weight_files):
    contents = _write_images(tmp_path / "c", 0, 2)
    styles = _write_images(tmp_path / "s", 1, 3)
    grid = tmp_path / "grid.png"
    vgg_path, dec_path = port_weight_files
    argv = ["--vgg", str(vgg_path), "--decoder", str(dec_path), "--content-dir",
            str(tmp_path / "c"), "--style-dir", str(tmp_path / "s"), "--size", str(SIZE),
            "--grid", str(grid), "--batch-size", "4"]  # fmt: skip
    assert evaluate.main(argv) == 0
    out = capsys.readouterr().out
    got_c = float(re.search(r"content loss: ([\d.e+-]+)", out).group(1))
    got_s = float(re.search(r"style loss: +([\d.e+-]+)", out).group(1))
    pairs = [tref.stylized_losses(*torch_nets, c[None], s[None]) for c in contents for s in styles]
    want_c, want_s = np.mean(pairs, axis=0)
    assert "pairs: 6 (2 contents x 3 styles" in out
    np.testing.assert_allclose(got_c, want_c, rtol=1e-4)
    np.testing.assert_allclose(got_s, want_s, rtol=1e-4)
    image = np.asarray(Image.open(grid))
    assert image.shape == (3 * SIZE, 4 * SIZE, 3)
    np.testing.assert_array_equal(image[SIZE:, :SIZE], np.round(np.concatenate(contents) * 255))
    np.testing.assert_array_equal(image[:SIZE, SIZE:], np.round(np.concatenate(styles, 1) * 255))


def test_evaluate_bad_input_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    argv = ["--vgg", "x.pth", "--decoder", "y.pth", "--content-dir", str(tmp_path / "empty"),
            "--style-dir", str(tmp_path / "empty"), "--size", "30"]  # fmt: skip
    assert evaluate.main(argv) == 2
    assert (
        capsys.readouterr().err.strip() == "error: --size 30: must be a multiple of 8, at least 16"
    )
    argv[-1] = "32"
    assert evaluate.main(argv) == 1  # a runtime failure, as in infer.py
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "empty" in err and "\n" not in err


def test_a_decoder_alone_overrides_the_default_as_its_help_says(tmp_path, capsys):
    """``--decoder`` without ``--vgg`` was refused ('give both'); it is read (here: missing)."""
    _write_images(tmp_path / "c", 0, 1)
    argv = ["--decoder", str(tmp_path / "mine.pth"), "--content-dir", str(tmp_path / "c"),
            "--style-dir", str(tmp_path / "c"), "--size", str(SIZE)]  # fmt: skip
    assert evaluate.main(argv) == 1
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'mine.pth'}: no such file"


def test_grid_max_below_one_is_a_usage_error_before_any_work(tmp_path, capsys):
    """It used to fail after the losses were computed, with an IndexError traceback."""
    argv = ["--vgg", "x.pth", "--decoder", "y.pth", "--content-dir", str(tmp_path),
            "--style-dir", str(tmp_path), "--grid", str(tmp_path / "g.png"),
            "--grid-max", "0"]  # fmt: skip
    assert evaluate.main(argv) == 2
    assert capsys.readouterr().err.strip() == "error: --grid-max 0: must be positive"


def test_grid_over_an_input_image_is_refused_before_any_work(tmp_path, capsys):
    _write_images(tmp_path / "c", 0, 1)
    _write_images(tmp_path / "s", 1, 1)
    target = tmp_path / "c" / "0.png"
    before = target.read_bytes()
    argv = ["--vgg", "x.pth", "--decoder", "y.pth", "--content-dir", str(tmp_path / "c"),
            "--style-dir", str(tmp_path / "s"), "--size", str(SIZE),
            "--grid", str(target)]  # fmt: skip
    assert evaluate.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: {target}: is an input file; refusing to overwrite it"
    assert target.read_bytes() == before
