"""The installed ``adain-jax`` command and ``python -m adain_jax``: the one dispatcher."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import adain_jax
from adain_jax.cli import main as cli_main

PACKAGE = Path(adain_jax.__file__).parent
ROOT = PACKAGE.parent


def test_top_level_help_lists_the_subcommands(capsys):
    assert cli_main.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("stylize", "train", "convert", "evaluate", "export", "demo"):
        assert f"  {name}" in out


def test_unknown_or_missing_subcommand_is_a_usage_error(capsys):
    assert cli_main.main(["paint"]) == 2
    assert "unknown subcommand 'paint'" in capsys.readouterr().err
    assert cli_main.main([]) == 2


@pytest.mark.parametrize("name", list(cli_main.SUBCOMMANDS))
def test_each_subcommand_help_shows_its_defaults(name, capsys, monkeypatch):
    monkeypatch.setenv("ADAIN_JAX_MALLOC", "default")  # train would re-exec this process
    with pytest.raises(SystemExit) as info:
        cli_main.main([name, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: adain-jax {name}")
    if name not in ("convert", "experiments"):  # no flag with a default at this level
        assert "default" in out


# One empty path per case (``--workdir "$UNSET"``), with the other required flags present.
EMPTY_PATHS = [
    ("stylize", "--content", ["--content", "", "--style", "s.jpg"]),
    ("stylize", "--style", ["--content", "c.jpg", "--style", ""]),
    ("stylize", "--output", ["--content", "c.jpg", "--style", "s.jpg", "--output", ""]),
    ("stylize", "--mask", ["--content", "c.jpg", "--style", "a,b", "--mask", ""]),
    ("stylize", "--checkpoint", ["--content", "c.jpg", "--style", "s.jpg", "--checkpoint", ""]),
    ("stylize", "--weights", ["--content", "c.jpg", "--style", "s.jpg", "--weights", ""]),
    ("stylize", "--vgg", ["--content", "c.jpg", "--style", "s.jpg", "--vgg", ""]),
    ("train", "--workdir", ["--workdir", "", "--content-dir", "c", "--style-dir", "s"]),
    ("train", "--content-dir", ["--workdir", "w", "--content-dir", "", "--style-dir", "s"]),
    ("train", "--init-decoder", ["--workdir", "w", "--content-dir", "c", "--style-dir", "s",
                                 "--init-decoder", ""]),
    ("convert", "--out", ["--vgg", "v.pth", "--out", ""]),
    ("convert", "--normalise", ["--vgg", "v.pth", "--out", "o", "--normalise", ""]),
    ("evaluate", "--content-dir", ["--content-dir", "", "--style-dir", "s"]),
    ("export", "--output", ["--format", "onnx", "--output", ""]),
    ("optimize", "--output", ["--content", "c.jpg", "--style", "s.jpg", "--output", ""]),
    ("experiments", "--out", ["compare", "--content-dir", "c", "--style-dir", "s", "--out", ""]),
    ("experiments", "runs", ["curves", "", "--out", "x.png"]),
    ("demo", "--decoder", ["--decoder", ""]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "flag", "argv"), EMPTY_PATHS)
def test_an_empty_path_is_a_usage_error_naming_the_flag(
    name, flag, argv, capsys, monkeypatch, tmp_path
):
    """``Path("")`` is the current directory: an empty value would train into it, write
    outputs or weights there, read it as a folder of styles, or fall back to other weights."""
    monkeypatch.setenv("ADAIN_JAX_MALLOC", "default")
    monkeypatch.chdir(tmp_path)
    try:
        status = cli_main.main([name, *argv])
    except SystemExit as e:  # argparse's own exit, for the commands that keep its usage line
        status = e.code
    assert status == 2
    assert f"argument {flag}: empty path" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_non_editable_install_runs_outside_the_checkout(tmp_path):
    """``pip install .`` (not editable) into a folder; the console script works from
    a directory that is not the checkout."""
    target = tmp_path / "site"
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
           "--target", str(target), str(ROOT)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, cwd=tmp_path)
    env = {**os.environ, "PYTHONPATH": str(target)}
    script = target / "bin" / "adain-jax"
    assert script.is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for argv in ([str(script), "--help"], [sys.executable, "-m", "adain_jax", "--help"]):
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=elsewhere, env=env)
        assert proc.returncode == 0, proc.stderr
        assert "stylize" in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-c", "import adain_jax; print(adain_jax.__file__)"],
        capture_output=True, text=True, cwd=elsewhere, env=env,
    )  # fmt: skip
    assert proc.stdout.strip().startswith(str(target))
    proc = subprocess.run(
        [str(script), "stylize", "--content", "missing.png", "--style", "missing.png"],
        capture_output=True, text=True, cwd=elsewhere, env=env,
    )  # fmt: skip
    assert proc.returncode == 1 and proc.stderr.startswith("error: missing.png")


def test_ctrl_c_while_a_subcommand_imports_is_status_130(capsys, monkeypatch):
    def interrupted(name):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_main.importlib, "import_module", interrupted)
    assert cli_main.run("stylize", []) == 130
    assert capsys.readouterr().err == "error: interrupted\n"
