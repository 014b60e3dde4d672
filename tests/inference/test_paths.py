"""Planning directory jobs (issue 20): linear in outputs + inputs, earlier outputs never
read back as inputs, file names that cannot split a line; workdirs and settings files
that fail in one line."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adain_jax.inference import paths
from adain_jax.inference.plan import JobOptions, make_plan
from adain_jax.inference.run import Writer


def test_planning_is_linear(tmp_path):
    """3000 contents x 2 styles (6000 outputs): was ~N x (N + M) checks (2000 files: 201 s)."""
    content, style = tmp_path / "c", tmp_path / "s"
    content.mkdir()
    style.mkdir()
    for i in range(3000):
        (content / f"{i}.png").touch()  # planning reads no pixels
    for i in range(2):
        (style / f"s{i}.png").touch()
    lines = []
    start = time.perf_counter()
    pairs = paths.plan_pairs(str(content), str(style), str(tmp_path / "out"), log=lines.append)
    took = time.perf_counter() - start
    assert len(pairs) == 6000 and took < 10, took
    assert lines == [
        "planning 6000 outputs (3000 contents x 2 styles): checking them against the inputs"
    ]


@pytest.mark.parametrize("clash", ["content", "style"])
def test_inputs_that_share_a_stem_are_refused_before_any_output(tmp_path, clash):
    """a.png and a.jpg both name a_stylized_s.png: the second used to replace the first while
    the summary counted both as written."""
    for folder in ("c", "s"):
        (tmp_path / folder).mkdir()
    (tmp_path / "c" / "a.png").touch()
    (tmp_path / "s" / "s.png").touch()
    second = tmp_path / ("c/a.jpg" if clash == "content" else "s/s.jpg")
    second.touch()
    out = tmp_path / "out" / "a_stylized_s.png"
    with pytest.raises(paths.UsageError) as info:
        paths.plan_pairs(str(tmp_path / "c"), str(tmp_path / "s"), str(tmp_path / "out"))
    jpg, png = second, second.with_suffix(".png")  # in the order planned: sorted
    assert str(info.value) == (
        f"{out}: would be written for both {jpg} and {png} (output names keep only the "
        "stems); rename one of them"
    )


def test_an_input_is_still_refused_as_output(tmp_path):
    content = tmp_path / "c.png"
    content.touch()
    with pytest.raises(paths.image_io.ImageError, match="is an input file"):
        paths.plan_pairs(str(content), str(content), str(content))


def test_output_inside_the_style_tree_is_not_a_style(tmp_path):
    """A re-run with --output inside --style must not take the first run's outputs as styles."""
    style = tmp_path / "styles"
    (style / "out").mkdir(parents=True)
    (style / "a.png").touch()
    (style / "out" / "c_stylized_a.png").touch()  # an earlier output
    content = tmp_path / "c.png"
    content.touch()
    pairs = paths.plan_pairs(str(content), str(style), str(style / "out"))
    assert [p.styles for p in pairs] == [(style / "a.png",)]


def test_wrote_line_of_a_name_with_a_newline(tmp_path):
    content = tmp_path / "c.png"
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(content)
    out = tmp_path / "evil\nwrote other.png"
    pair = paths.Pair(content, (content,), out)
    plan = make_plan(JobOptions(progress=False), [pair], None)
    lines = []
    writer = Writer(plan, [], lines.append)
    writer.save(pair, np.zeros((9, 9, 3), np.float32))
    assert out.exists()
    assert lines == [f"wrote {tmp_path}/evil\\nwrote other.png"]


# ------------------------------------------------------------------ workdirs


@pytest.mark.parametrize(
    "text, problem",
    [("[1, 2]", "JSON list, expected an object"), ("[" * 5000 + "]" * 5000, "nested 5000 deep")],
)
def test_hand_edited_config_json_is_one_line(tmp_path, text, problem):
    from adain_jax.training.config import RunError, read_config
    from adain_jax.weights.workdir import CheckpointError, workdir_variant

    (tmp_path / "config.json").write_text(text)
    with pytest.raises(RunError, match=problem) as info:
        read_config(tmp_path)
    assert str(info.value).startswith(str(tmp_path / "config.json"))
    with pytest.raises(CheckpointError, match=problem):
        workdir_variant(tmp_path)


def test_train_exits_2_on_a_list_config(tmp_path, capsys):
    from adain_jax.cli import train

    work = tmp_path / "run"
    (work / "checkpoints" / "1").mkdir(parents=True)  # a run to resume: its config.json is read
    (work / "config.json").write_text(json.dumps([1, 2, 3]))
    images = tmp_path / "img"
    images.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(images / "a.png")
    argv = ["--workdir", str(work), "--content-dir", str(images), "--style-dir", str(images)]
    (tmp_path / "enc.safetensors").touch()  # never read: config.json is checked first
    argv += ["--vgg", str(tmp_path / "enc.safetensors")]
    status = train.main(argv)
    err = capsys.readouterr().err.strip()
    assert status == 2 and err.startswith("error:") and "\n" not in err, err
    assert "config.json: JSON list, expected an object" in err


def test_checkpoint_without_checkpoints_is_one_line(tmp_path, capsys):
    from adain_jax.cli import infer

    work = tmp_path / "run"
    (work / "checkpoints").mkdir(parents=True)
    (work / "encoder.safetensors").touch()
    image = tmp_path / "c.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(image)
    argv = ["--checkpoint", str(work), "--content", str(image), "--style", str(image)]
    status = infer.main([*argv, "--output", str(tmp_path / "o.png"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert status == 1 and err == f"error: {work}: no checkpoint yet in checkpoints/"


def test_style_messages_escape_names_and_tell_a_folder_from_a_missing_file(tmp_path):
    from adain_jax.io.images import ImageError

    (tmp_path / "folder").mkdir()
    (tmp_path / "a.png").write_bytes(b"x")
    with pytest.raises(ImageError, match=r"folder: not a file \(--style list\)$"):
        paths.parse_style_sets(f"{tmp_path}/folder,{tmp_path}/a.png")
    with pytest.raises(ImageError, match=r"gone\.png: no such file \(--style list\)$"):
        paths.parse_style_sets(f"{tmp_path}/gone.png,{tmp_path}/a.png")
    odd = tmp_path / "d\x1b[31mX"
    odd.mkdir()
    with pytest.raises(ImageError) as info:
        paths.parse_style_sets(str(odd))
    assert str(info.value).startswith(f"{tmp_path}/d\\x1b[31mX: no image files")


def test_a_video_output_that_is_a_directory_is_refused_when_planned(tmp_path):
    from adain_jax.io.images import ImageError

    (tmp_path / "clip.mp4").write_bytes(b"x")  # planning reads names only
    (tmp_path / "s.png").write_bytes(b"x")
    (tmp_path / "out" / "clip_stylized_s.mp4").mkdir(parents=True)
    with pytest.raises(ImageError, match=r"clip_stylized_s\.mp4: is a directory$"):
        paths.plan_pairs(str(tmp_path / "clip.mp4"), str(tmp_path / "s.png"), f"{tmp_path}/out/")


def test_output_above_the_content_tree_keeps_its_contents(tmp_path):
    # --output . with --content photos: the photos are contents, not earlier outputs.
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.png").touch()
    (tmp_path / "s.png").touch()
    pairs = paths.plan_pairs(str(tmp_path / "photos"), str(tmp_path / "s.png"), str(tmp_path))
    assert [(p.content, p.output) for p in pairs] == [
        (tmp_path / "photos" / "a.png", tmp_path / "a_stylized_s.png")
    ]


def test_default_output_in_the_content_tree_skips_earlier_outputs(tmp_path, monkeypatch):
    # infer.py --content . --style s.png, run twice: the first run's output is not a content.
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.png").touch()
    (tmp_path / "photos" / "a_stylized_s.png").touch()  # the first run's output
    (tmp_path / "s.png").touch()
    monkeypatch.chdir(tmp_path / "photos")
    pairs = paths.plan_pairs(".", str(tmp_path / "s.png"), None)
    assert [(p.content.name, p.output) for p in pairs] == [("a.png", Path("a_stylized_s.png"))]
    pairs = paths.plan_pairs(".", str(tmp_path / "s.png"), ".")  # the same, spelt out
    assert [p.content.name for p in pairs] == ["a.png"]


def test_a_directory_job_into_a_file_is_a_usage_error(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.png").touch()
    (tmp_path / "s.png").touch()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(paths.UsageError, match=r"^--output .*afile: is a file, expected a dir"):
        paths.plan_pairs(str(tmp_path / "photos"), str(tmp_path / "s.png"), str(tmp_path / "afile"))
