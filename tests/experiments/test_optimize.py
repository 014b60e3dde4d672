"""The optimization baseline: Gram style loss against torch, the objective decreasing,
pixels in [0, 1], vmap over pairs, the command line."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from adain_jax.cli import optimize as optimize_cli
from adain_jax.experiments import optimize as opt
from adain_jax.weights import convert
from tests import torch_train_reference as tref
from tests.conftest import random_images


@pytest.fixture(scope="module")
def encoder(torch_nets):
    sd = {k: v.numpy() for k, v in torch_nets[0].state_dict().items()}
    return convert.params_from_state_dict(sd, "vgg")[1]


def _torch_gram(f: torch.Tensor) -> torch.Tensor:  # NCHW -> [N, C, C] / (h w)
    n, c, h, w = f.shape
    flat = f.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (h * w)


@pytest.mark.slow
def test_gatys_objective_matches_torch(torch_nets, encoder):
    content, style, image = (random_images(30 + i, 1, 24, 24) for i in range(3))
    settings = opt.Settings("gatys", content_weight=0.5, style_weight=3.0)
    total, lc, ls = opt.make_objective(encoder, content, style, settings)(image)
    nchw = lambda a: torch.from_numpy(a.transpose(0, 3, 1, 2)).double()  # noqa: E731
    vgg = copy.deepcopy(torch_nets[0]).double()
    with torch.no_grad():
        o, c, s = (tref._encode_taps(vgg, nchw(a)) for a in (image, content, style))
        want_c = torch.mean((o[-1] - c[-1]) ** 2)
        want_s = sum(
            torch.mean((_torch_gram(a) - _torch_gram(b)) ** 2) for a, b in zip(o, s, strict=True)
        )
    np.testing.assert_allclose(float(lc), float(want_c), rtol=1e-4)
    np.testing.assert_allclose(float(ls), float(want_s), rtol=1e-4)
    np.testing.assert_allclose(float(total), 0.5 * float(want_c) + 3 * float(want_s), rtol=1e-4)
    # the Gram matrix itself against NumPy
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 4)).astype(np.float32)
    f = x.reshape(2, 15, 4).astype(np.float64)
    np.testing.assert_allclose(opt.gram(x), f.transpose(0, 2, 1) @ f / 15, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize(
    "settings",
    [opt.Settings("gatys", "lbfgs", "content"), opt.Settings("adain", "adam", "noise", lr=0.1)],
)
def test_objective_decreases_on_a_tiny_image(encoder, settings):
    content, style = random_images(40, 1, 16, 16)[0], random_images(41, 1, 16, 16)[0]
    image, log = opt.optimize(encoder, content, style, steps=8, settings=settings, chunk=4)
    log = np.asarray(log)
    assert log.shape == (8, 3)
    assert log[-1, 0] < 0.7 * log[0, 0], log[:, 0]
    image = np.asarray(image)
    assert image.shape == (16, 16, 3) and image.min() >= 0.0 and image.max() <= 1.0


@pytest.mark.slow
def test_vmap_over_pairs_equals_one_at_a_time(encoder):
    contents, styles = random_images(42, 2, 16, 16), random_images(43, 2, 16, 16)
    settings = opt.Settings("adain", "adam", lr=0.1)
    images, logs = opt.optimize_pairs(encoder, contents, styles, steps=3, settings=settings)
    assert images.shape == (2, 16, 16, 3) and logs.shape == (2, 3, 3)
    one, log1 = opt.optimize(encoder, contents[1], styles[1], steps=3, settings=settings)
    np.testing.assert_allclose(logs[1], log1, rtol=1e-4)
    np.testing.assert_allclose(images[1], one, atol=1e-5)


@pytest.mark.slow
def test_command_line(port_weight_files, tmp_path, capsys):
    vgg = port_weight_files[0]
    for name, seed in (("c.png", 44), ("s.png", 45)):
        Image.fromarray((random_images(seed, 1, 16, 16)[0] * 255).astype(np.uint8)).save(
            tmp_path / name
        )
    argv = ["--content", str(tmp_path / "c.png"), "--style", str(tmp_path / "s.png"), "--steps=4"]
    argv += ["--output", str(tmp_path / "o.png"), f"--vgg={vgg}", "--content-size=0"]
    argv += ["--style-size=0", "--optimizer=adam", "--quiet", "--log", str(tmp_path / "l.tsv")]
    assert optimize_cli.main(argv) == 0
    assert Image.open(tmp_path / "o.png").size == (16, 16)
    lines = (tmp_path / "l.tsv").read_text().splitlines()
    assert lines[0] == "step\ttotal\tcontent\tstyle" and len(lines) == 5
    assert optimize_cli.main([*argv, "--steps=0"]) == 2
    assert "--steps must be >= 1" in capsys.readouterr().err
    assert optimize_cli.main([*argv, "--style-weight=inf"]) == 2  # a loss of inf, then nan
    assert "--style-weight must be finite, got inf" in capsys.readouterr().err
    (tmp_path / "logs").mkdir()
    assert optimize_cli.main([*argv, "--log", str(tmp_path / "logs")]) == 2  # before any work
    assert "is a directory" in capsys.readouterr().err
    argv[1] = str(tmp_path / "missing.png")
    assert optimize_cli.main(argv) == 1
    assert "missing.png" in capsys.readouterr().err


@pytest.mark.slow
def test_step_counts_share_one_trajectory(encoder):
    """The compare rows after 2 and 4 steps are the 2nd and 4th iterates of one run: the
    same images as separate 2- and 4-step runs, and the 4-step time includes the 2."""
    from adain_jax.experiments import report

    content, style = random_images(46, 1, 16, 16)[0], random_images(47, 1, 16, 16)[0]
    settings = opt.Settings("adain", "adam", lr=0.1)
    methods = report.optimization_methods(encoder, [4, 2], settings)
    assert sorted(methods) == [2, 4]
    (two, t2), (four, t4) = methods[2](content, style), methods[4](content, style)
    for got, n in ((two, 2), (four, 4)):
        alone = opt.optimize(encoder, content, style, steps=n, settings=settings)[0]
        np.testing.assert_allclose(got, alone, atol=1e-5)
    assert not np.allclose(two, four)
    assert 0 < t2["seconds"] <= t4["seconds"] and t4["compile_seconds"] == 0.0
