"""Every file the project writes gets the permissions the umask gives an ordinary new
file (0644 under umask 022), not mkstemp's owner-only 0600; a folder it may not write in is
named (not a temporary file in it) and, for infer.py's outputs, reported before any work.
The tests run as root, whom permissions do not stop: the refusals are simulated."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adain_jax.cli import convert as convert_cli
from adain_jax.cli import infer
from adain_jax.cli import train as train_cli
from adain_jax.io import files
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


@pytest.mark.parametrize("where", ["o.png", "new/sub/", "dir"])
def test_an_output_folder_that_cannot_be_written_is_refused_before_any_work(
    tmp_path, monkeypatch, capsys, where
):
    locked = tmp_path / "locked"
    locked.mkdir()
    image = tmp_path / "c.png"
    Image.fromarray(np.full((24, 24, 3), 120, np.uint8)).save(image)
    real_access = os.access
    monkeypatch.setattr(
        files.os, "access", lambda p, mode: Path(p) != locked and real_access(p, mode)
    )

    def no_weights(args):
        raise AssertionError("the weights were loaded")

    monkeypatch.setattr(infer, "load_weights", no_weights)
    content = tmp_path if where == "dir" else image
    output = f"{locked}/{where}" if where != "dir" else str(locked)
    status = infer.main(["--content", str(content), "--style", str(image), "--output", output])
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1, err
    why = "no permission to create files (the output folder; --output picks another)"
    assert err == f"error: {locked}: {why}\n"


def test_a_refused_temporary_file_is_reported_as_its_folder(tmp_path, monkeypatch):
    def refused(dir, prefix, suffix):
        raise PermissionError(
            errno.EACCES, "Permission denied", os.path.join(dir, prefix + "x" + suffix)
        )

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    with pytest.raises(PermissionError) as caught:
        files.temp_path_beside(tmp_path / "o.png")
    assert caught.value.filename == str(tmp_path)
