"""Every file the project writes gets the permissions the umask gives an ordinary new
file (0644 under umask 022), not mkstemp's owner-only 0600."""

from __future__ import annotations

import os
import stat
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from adain_jax.cli import convert as convert_cli
from adain_jax.cli import infer
from adain_jax.cli import train as train_cli
from tests.training.test_loop import _flags, folders

__all__ = ["folders"]


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _modes(root) -> dict[str, int]:
    return {
        str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode)
        for p in root.rglob("*")
        if p.is_file() and "checkpoints" not in p.parts  # orbax's own files
    }


@pytest.mark.slow
def test_training_workdir_files_are_world_readable(folders, tmp_path, umask_022):
    workdir = tmp_path / "run"
    flags = _flags(folders, workdir, 2, "--sample-every=2", "--eval-every=2", "--save-every=2")
    assert train_cli.main(flags) == 0
    modes = _modes(workdir)
    for name in ("config.json", "encoder.safetensors", "metrics.jsonl", "samples/step_000002.png"):
        assert modes.pop(name) == 0o644, name
    assert any(n.startswith("tensorboard/") for n in modes)
    assert all(m == 0o644 for n, m in modes.items() if n != ".lock"), modes


@pytest.mark.slow
def test_converted_weights_images_and_videos_are_world_readable(
    port_weight_files, tmp_path, umask_022, capsys
):
    vgg, dec = port_weight_files
    out = tmp_path / "weights"
    assert convert_cli.main(["--vgg", str(vgg), "--decoder", str(dec), "--out", str(out)]) == 0
    assert set(_modes(out).values()) == {0o644}

    image = tmp_path / "in" / "c.png"
    image.parent.mkdir()
    Image.fromarray(np.full((24, 24, 3), 120, np.uint8)).save(image)
    argv = ["--weights", str(out), "--content", str(image), "--style", str(image), "--quiet"]
    assert infer.main([*argv, "--output", str(tmp_path / "o" / "x.png")]) == 0

    av = pytest.importorskip("av")
    from adain_jax.io import video

    clip = tmp_path / "in" / "clip.mp4"
    writer = video.VideoWriter(clip, Fraction(8), 32, 24)
    writer.write(np.full((3, 24, 32, 3), 100, np.uint8))
    writer.close()
    assert av is not None
    assert infer.main(["--weights", str(out), "--content", str(clip), "--style", str(image),
                       "--quiet", "--output", str(tmp_path / "o" / "v.mp4")]) == 0  # fmt: skip
    assert _modes(tmp_path / "o") == {"x.png": 0o644, "v.mp4": 0o644}
    assert _modes(tmp_path / "in")["clip.mp4"] == 0o644
