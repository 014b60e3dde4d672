"""Start-up of the commands (issue 22): flag and input errors before JAX is imported, the
workdir lock first, no empty workdir left behind, ``--help`` and ``--version``, and the rough
edges a new user hit (style weights with a directory, output names and the skip rule,
``--save-ext``, a busy demo port, each command's offline hint)."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adain_jax.cli import demo, evaluate, export, infer, optimize, train
from adain_jax.inference import paths
from adain_jax.training.lock import WorkdirLock

ROOT = Path(__file__).resolve().parents[2]

# Runs MODULE.main(ARGV) and prints "<exit status> <jax imported>".
PROGRAM = """
import sys
from adain_jax.cli import {module} as command
try:
    status = command.main({argv!r})
except SystemExit as e:
    status = e.code
print(status, "jax" in sys.modules)
"""


def _run(module: str, argv: list[str], **env: str) -> tuple[int, bool, str]:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM.format(module=module, argv=argv)],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, **env}, timeout=300,
    )  # fmt: skip
    status, jax_imported = done.stdout.split()
    return int(status), jax_imported == "True", done.stderr


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(0)
    for name in ("c.png", "s.png"):
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), np.uint8)).save(root / name)
    styles = root / "styles"
    styles.mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), np.uint8)).save(styles / f"s{i}.png")
    return root


BAD_FLAGS = [
    ("infer", ["--content", "c.png", "--style", "s.png", "--alpha", "2"], 2),
    ("infer", ["--content", "missing.png", "--style", "s.png"], 1),
    ("infer", ["--content", "c.png", "--style", "s.png", "--max-tile", "50"], 2),
    ("train", ["--workdir", "w", "--content-dir", "none", "--style-dir", "none"], 2),
    ("train", ["--workdir", "w", "--content-dir", ".", "--style-dir", ".", "--crop-size", "7"], 2),
    ("evaluate", ["--content-dir", ".", "--style-dir", ".", "--size", "7"], 2),
    (
        "optimize",
        ["--content", "c.png", "--style", "s.png", "--output", "o.png", "--steps", "0"],
        2,
    ),
    ("export", ["--format", "onnx", "--output", "no/such/dir/a.onnx"], 2),
    pytest.param("demo", ["--queue-size", "0"], 2, marks=pytest.mark.slow),  # imports gradio
    ("infer", ["--bogus"], 2),
    # --log naming an input (it was overwritten with the text log), or the image output
    ("optimize", ["--content", "c.png", "--style", "s.png", "--output", "o.png", "--log", "c.png"],
     2),
    ("optimize", ["--content", "c.png", "--style", "s.png", "--output", "o.png", "--log", "o.png"],
     2),
    ("optimize", ["--content", "c.png", "--style", "s.png", "--output", "o.png", "--steps",
                  "99999999999999999999"], 2),  # was an overflow traceback from inside JAX
    ("train", ["--workdir", "w", "--content-dir", ".", "--style-dir", ".", "--max-steps",
               "99999999999999999999"], 2),
    ("convert", ["--out", "x"], 2),
    ("convert", ["--vgg", "a.pth", "--out", "x", "--normalise-size", "0"], 2),
    ("convert", ["--vgg", "a.pth", "--out", "README.md"], 2),  # a file: was 'File exists', 1
    ("experiments", ["compare", "--content-dir", ".", "--style-dir", ".", "--out", "x",
                     "--limit", "0"], 2),
    ("experiments", ["compare", "--content-dir", ".", "--style-dir", ".", "--out", "x",
                     "--objective", "foo"], 2),
    ("experiments", ["curves", "w", "--out", "x.txt"], 2),
    ("evaluate", ["--content-dir", "none", "--style-dir", "none"], 1),  # a missing folder
]  # fmt: skip


@pytest.mark.parametrize(("module", "argv", "status"), BAD_FLAGS)
def test_bad_flags_are_reported_before_jax_is_imported(module, argv, status):
    got, jax_imported, err = _run(module, argv)
    assert got == status, err
    assert not jax_imported
    assert err.strip().splitlines()[-1].startswith(("error:", "usage:", "infer.py: error"))


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (["--style", "s.png", "--mask", "c.png"], "--mask needs two or more styles"),
        (["--style", "s.png,c.png", "--style-weights", "-1,2"],
         "--style-weights must be >= 0 with a positive sum, got -1,2"),
        (["--style", "s.png,c.png", "--style-weights", "1,2,3"],
         "--style-weights has 3 values but --style gives 2 styles to mix"),
    ],
)  # fmt: skip
def test_mask_and_style_weights_that_do_not_fit_the_styles_are_refused_before_jax(
    pictures, flags, line
):
    flags = [",".join(str(pictures / f) for f in a.split(",")) if "png" in a else a for a in flags]
    argv = ["--content", str(pictures / "c.png"), "--output", str(pictures / "o.png"), *flags]
    status, jax_imported, err = _run("infer", argv)
    assert (status, jax_imported) == (2, False), err
    assert err.strip().splitlines()[-1].startswith(f"error: {line}"), err


def _clip(path: Path, width: int, height: int) -> Path:
    from fractions import Fraction

    from adain_jax.io import video

    writer = video.VideoWriter(path, Fraction(8), width, height)
    writer.write(np.full((2, height, width, 3), 128, np.uint8))
    writer.close()
    return path


@pytest.mark.parametrize(
    ("size", "style", "line"),
    [
        ((8, 8), [], "tiny.mp4: too small for the network: frames are 8x8"),
        ((48, 32), ["--content-size", "20000"], "clip.mp4: resized to 20000 px, frames would be"),
        ((48, 32), ["--style", "not_an_image.png"], "not_an_image.png: "),
    ],
)  # fmt: skip
def test_a_video_job_checks_its_frames_and_styles_before_jax(pictures, tmp_path, size, style, line):
    pytest.importorskip("av")
    name = "tiny.mp4" if size == (8, 8) else "clip.mp4"
    clip = _clip(tmp_path / name, *size)
    (tmp_path / "not_an_image.png").write_text("text")
    if style[:1] == ["--style"]:
        style = ["--style", str(tmp_path / style[1])]
    else:
        style = ["--style", str(pictures / "s.png"), *style]
    argv = [
        "--content",
        str(clip),
        "--content-size",
        "0",
        *style,
        "--output",
        str(tmp_path / "o.mp4"),
    ]
    status, jax_imported, err = _run("infer", argv)
    assert (status, jax_imported) == (1, False), err
    assert err.strip().splitlines()[-1].startswith(f"error: {tmp_path / line}"), err


@pytest.mark.parametrize("flags", [[], ["--weights", "builtin"]])
def test_export_never_writes_over_the_built_in_weights(tmp_path, monkeypatch, capsys, flags):
    """The default and ``--weights builtin`` read the package's files: an --output naming
    one was written over (a StableHLO file where the decoder was)."""
    from adain_jax.weights import pretrained

    shipped = tmp_path / "builtin"  # a copy: the package's own files stay out of harm's way
    shipped.mkdir()
    for name in ("encoder.safetensors", "decoder.safetensors"):
        (shipped / name).write_bytes((pretrained.builtin_dir() / name).read_bytes())
    monkeypatch.setattr(pretrained, "builtin_dir", lambda: shipped)
    monkeypatch.setenv("ADAIN_JAX_CACHE", str(tmp_path / "cache"))
    before = (shipped / "decoder.safetensors").read_bytes()
    out = shipped / "decoder.safetensors"
    status = export.main(["--format", "stablehlo", "--output", str(out), *flags])
    assert status == 2, capsys.readouterr().err
    assert "is an input weight file; refusing to overwrite it" in capsys.readouterr().err
    assert out.read_bytes() == before


@pytest.mark.slow
def test_import_adain_jax_does_not_import_jax():
    done = subprocess.run(
        [sys.executable, "-c", "import sys, adain_jax; print('jax' in sys.modules); "
         "adain_jax.channel_mean_std; print('jax' in sys.modules)"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert done.stdout.split() == ["False", "True"], done.stderr


def test_busy_workdir_is_reported_first_and_without_jax(tmp_path):
    workdir = tmp_path / "run"
    data = tmp_path / "data"  # beside the workdir (inside it, the workdir is refused)
    data.mkdir()
    with WorkdirLock(workdir):
        status, jax_imported, err = _run(
            "train",
            ["--workdir", str(workdir), "--content-dir", str(data), "--style-dir", str(data)],
            ADAIN_JAX_MALLOC="default",
        )  # fmt: skip
    assert status == 75 and not jax_imported
    assert "already in use" in err and str(workdir) in err


def test_a_failed_early_check_leaves_no_workdir(tmp_path):
    empty = tmp_path / "empty"  # a folder without images: found after the lock is taken
    empty.mkdir()
    workdir = tmp_path / "new_run"
    status = train.main(
        ["--workdir", str(workdir), "--content-dir", str(empty), "--style-dir", str(empty),
         "--vgg", "builtin"]
    )  # fmt: skip
    assert status == 2
    assert not workdir.exists()


def test_train_names_what_it_wrote(tmp_path):
    (tmp_path / "checkpoints" / "20").mkdir(parents=True)
    (tmp_path / "checkpoints" / "10").mkdir()
    line = train._finished_line(tmp_path)
    assert "checkpoints/20" in line and f"infer.py --checkpoint {tmp_path}" in line


PARSERS = {
    "infer": infer.build_parser,
    "train": train.build_parser,
    "evaluate": evaluate.build_parser,
    "optimize": optimize.build_parser,
    "export": export.build_parser,
    "demo": demo.build_parser,
}


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_help_has_every_flag_explained_once(name):
    parser = PARSERS[name]()
    text = parser.format_help()
    assert "(default: None)" not in text and "``" not in text
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{name} {action.option_strings}: no help"
        shown = formatter._get_help_string(action) % {"default": action.default}
        assert shown.count("(default") <= 1, f"{name} {action.option_strings}: {shown}"
        if action.required:
            assert "(default" not in shown


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_version(name, capsys):
    with pytest.raises(SystemExit) as info:
        PARSERS[name]().parse_args(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("adain-jax ")


def test_style_weights_with_a_style_directory_names_the_comma_list(pictures, capsys):
    argv = ["--content", str(pictures / "c.png"), "--style", str(pictures / "styles"),
            "--style-weights", "1,3", "--output", str(pictures / "out") + "/"]  # fmt: skip
    assert infer.main(argv) == 2
    err = capsys.readouterr().err
    assert "comma list" in err and "is a directory" in err and "1 styles" not in err


def test_mixed_outputs_are_named_with_their_weights(pictures):
    style = f"{pictures / 's.png'},{pictures / 'c.png'}"
    (one,) = paths.plan_pairs(str(pictures / "c.png"), style, str(pictures) + "/",
                              weights=(1.0, 3.0))  # fmt: skip
    (other,) = paths.plan_pairs(str(pictures / "c.png"), style, str(pictures) + "/",
                                weights=(0.5, 0.5))  # fmt: skip
    assert one.output.name == "c_stylized_s_c_w1-3.png"
    assert other.output.name == "c_stylized_s_c_w0.5-0.5.png"


def test_directory_jobs_take_the_output_extension(pictures, tmp_path):
    pairs = paths.plan_pairs(str(pictures / "c.png"), str(pictures / "styles"),
                             str(tmp_path), ext=".jpg")  # fmt: skip
    assert sorted(p.output.name for p in pairs) == [f"c_stylized_s{i}.jpg" for i in range(3)]
    args = infer.parse_args(["--content", "c", "--style", "s", "--save-ext", ".jpg"])
    assert args.save_ext == ".jpg"
    with pytest.raises(infer.UsageError):
        infer.parse_args(["--content", "c", "--style", "s", "--save-ext", ".gif"])


def test_an_existing_single_output_is_skipped_unless_overwrite(pictures, tmp_path, capsys):
    out = tmp_path / "out.png"
    out.write_bytes(b"mine")
    argv = ["--content", str(pictures / "c.png"), "--style", str(pictures / "s.png"),
            "--output", str(out)]  # fmt: skip
    assert infer.main(argv) == 0
    assert out.read_bytes() == b"mine"
    assert "--overwrite" in capsys.readouterr().out
    rerun = [*argv, "--overwrite", "--weights", "builtin", "--quiet", "--content-size", "0"]
    assert infer.main([*rerun, "--style-size", "0"]) == 0
    assert Image.open(out).size == (32, 24)


def test_demo_on_a_busy_port_names_the_flag(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        problem = demo.port_problem("127.0.0.1", port)
        assert problem is not None and f"--port {port}" in problem and "in use" in problem
        assert demo.main(["--port", str(port), "--weights", "builtin"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another --port" in err[0]


@pytest.mark.parametrize("port", ["0", "70000"])
def test_demo_port_out_of_range_is_a_bad_flag(port, capsys):
    assert demo.main(["--port", port, "--weights", "builtin"]) == 2
    assert capsys.readouterr().err.strip() == f"error: --port {port}: must be in 1..65535"


def test_demo_api_marks_the_second_style_and_mask_optional():
    pytest.importorskip("gradio")
    import adain_jax

    params = adain_jax.load_params("builtin")
    info = demo.build_app(params).get_api_info()
    full = info["named_endpoints"]["/stylize_full"]["parameters"]
    optional = {p["label"] for p in full if p["parameter_has_default"]}
    assert "second style (optional)" in optional
    assert any(label.startswith("mask") for label in optional)
    assert {"content", "style"}.isdisjoint(optional)


@pytest.mark.slow
def test_optimize_offline_hint_names_its_own_flag(pictures, tmp_path, not_found_url):
    """A download that fails (HTTP 404; an unreachable server falls back to the built-in
    weights) ends in one line naming --vgg, not infer's --decoder / --weights."""
    status, _, err = _run(
        "optimize",
        ["--content", str(pictures / "c.png"), "--style", str(pictures / "s.png"),
         "--output", str(tmp_path / "o.png"), "--steps", "1"],
        ADAIN_JAX_ADAIN_URL=not_found_url,
        ADAIN_JAX_CACHE=str(tmp_path / "cache"),
    )  # fmt: skip
    assert status == 1
    line = err.strip().splitlines()[-1]
    assert line.startswith("error:") and "--vgg" in line
    assert "--decoder" not in line and "--weights" not in line


def test_top_level_version_without_jax():
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from adain_jax.cli import main; "
         "s = main.main(['--version']); print(s, 'jax' in sys.modules)"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    first, last = done.stdout.strip().splitlines()
    assert first.startswith("adain-jax ") and last == "0 False"
