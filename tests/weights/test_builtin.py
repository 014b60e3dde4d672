"""The built-in weights: what they hold, that they stylize for real, and the offline default.

The quality floors are far above what a random decoder reaches (each test checks that
too), and far below the held-out numbers in docs/quality.md, so they catch a broken
file or a broken forward pass, not small regressions.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import adain_jax
from adain_jax.io import images
from adain_jax.nn import models
from adain_jax.training import losses
from adain_jax.weights import download, pretrained
from adain_jax.weights import safetensors_io as weights_io

ROOT = Path(__file__).resolve().parents[2]
PHOTO = ROOT / "examples" / "content" / "astronaut.jpg"
PAINTING = ROOT / "examples" / "style" / "starry_night.jpg"
PSNR_FLOOR_DB = 8.0  # g(f(c)) of the astronaut at 128 px: 9.1 dB; a random decoder 6.0


@pytest.fixture(scope="module")
def builtin():
    return adain_jax.load_params("builtin")


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


def test_builtin_holds_a_vgg16_encoder_and_the_papers_decoder(builtin):
    assert models.encoder_arch(builtin["encoder"]) == "vgg16"
    assert models.decoder_variant(builtin["decoder"]) == models.PAPER
    for network in weights_io.NETWORKS:
        path = pretrained.builtin_dir() / weights_io.file_name(network)
        header = weights_io.check_header(path)
        assert {e["dtype"] for k, e in header.items() if k != "__metadata__"} <= {"F16", "F32"}
    assert (pretrained.builtin_dir() / "MODEL_CARD.md").is_file()


@pytest.mark.slow
def test_builtin_reconstructs_a_photo(builtin):
    photo = images.load_image(PHOTO, 128, crop=True)
    random = {"encoder": builtin["encoder"], "decoder": models.init_decoder(jax.random.key(0))}
    got = {}
    for name, params in (("builtin", builtin), ("random", random)):
        out = adain_jax.stylize(params, photo, photo, alpha=0.0)
        got[name] = _psnr(np.asarray(out)[0], photo)
    assert got["builtin"] > PSNR_FLOOR_DB and got["builtin"] > got["random"] + 3, got


@pytest.mark.slow
def test_builtin_output_takes_the_style(builtin):
    photo = images.load_image(PHOTO, 128, crop=True)[None]
    painting = images.load_image(PAINTING, 128, crop=True)[None]
    out = np.asarray(adain_jax.stylize(builtin, photo, painting))
    _, style_of_output = losses.output_losses(builtin["encoder"], out, photo, painting)
    _, style_of_photo = losses.output_losses(builtin["encoder"], photo, photo, painting)
    assert float(style_of_output) < 0.5 * float(style_of_photo)


def test_load_params_offline_falls_back_to_builtin(
    tmp_path, monkeypatch, capsys, builtin, closed_port
):
    monkeypatch.setenv(pretrained.URL_ENV["adain"], f"http://127.0.0.1:{closed_port}/")
    monkeypatch.setenv(download.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(pretrained, "_noted", set())
    params = adain_jax.load_params()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("note: could not download") and "built-in" in err[0]
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(builtin), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.slow
def test_quick_start_offline_writes_real_images(tmp_path):
    """The README's quick start with a download URL that refuses connections."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "ADAIN_JAX_CACHE": str(tmp_path / "cache"),
        "ADAIN_JAX_ADAIN_URL": "http://127.0.0.1:9/",
        "JAX_PLATFORMS": "cpu",
    }
    out = tmp_path / "out"
    sizes = ["--content-size", "128", "--style-size", "128"]
    cmd = [sys.executable, "infer.py", "--content", str(PHOTO), "--style", str(PAINTING)]
    cmd += [*sizes, "--output", f"{out}/", "--quiet"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(notes) == 1 and notes[0].startswith("note: ") and "--vgg" in notes[0], notes
    written = out / "astronaut_stylized_starry_night.png"
    assert f"wrote {written}" in done.stdout
    result = images.load_image(written)
    photo = images.load_image(PHOTO, 128)
    assert result.shape == photo.shape and np.abs(result - photo).mean() > 0.05  # stylized
