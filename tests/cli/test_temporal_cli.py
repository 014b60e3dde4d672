"""``infer.py --temporal``: bad values and a missing extra are one line; a clip runs."""

from __future__ import annotations

import sys
from fractions import Fraction

import numpy as np
import pytest

from tests import soft_weights
from tests.cli.test_infer import _main

soft_nets, soft_files = soft_weights.soft_nets, soft_weights.soft_files  # shared fixtures


def _clip(tmp_path, frames: int = 6):
    pytest.importorskip("av")
    from adain_jax.io import video

    src = tmp_path / "clip.mp4"
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (32, 56, 3)).astype(np.uint8)
    writer = video.VideoWriter(src, Fraction(12), 48, 32)
    writer.write(np.stack([base[:, i : i + 48] for i in range(frames)]))  # a pan
    writer.close()
    style = tmp_path / "s.png"
    from PIL import Image

    Image.fromarray(rng.integers(0, 255, (32, 32, 3)).astype(np.uint8)).save(style)
    return src, style


@pytest.mark.parametrize("value", ["blur", "stats=2", "flow=x"])
def test_bad_temporal_value_is_one_line_exit_2(tmp_path, capsys, value):
    code, _, err = _main(
        capsys, "--content", tmp_path / "a.mp4", "--style", tmp_path / "s.png",
        "--temporal", value,
    )  # fmt: skip
    assert code == 2
    assert err.startswith("error: --temporal") and err.count("\n") == 1


def test_temporal_on_an_image_is_a_usage_error(tmp_path, capsys):
    from PIL import Image

    for name in ("c.png", "s.png"):
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / name)
    code, _, err = _main(
        capsys, "--content", tmp_path / "c.png", "--style", tmp_path / "s.png",
        "--temporal", "stats",
    )  # fmt: skip
    assert code == 2 and "applies to video contents only" in err and err.count("\n") == 1


def test_missing_opencv_is_one_line_before_the_weights(tmp_path, capsys, monkeypatch):
    src, style = _clip(tmp_path)
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 -> ImportError
    code, _, err = _main(
        capsys, "--content", src, "--style", style, "--output", tmp_path / "o.mp4",
        "--temporal", "flow", "--vgg", tmp_path / "missing.pth",
    )  # fmt: skip
    assert code == 1 and err.count("\n") == 1
    assert "--temporal flow needs OpenCV" in err and "opencv-python-headless" in err


@pytest.mark.slow
def test_temporal_clip_runs(tmp_path, capsys, soft_files):
    pytest.importorskip("cv2")
    from adain_jax.io import video

    src, style = _clip(tmp_path)
    out = tmp_path / "o.mp4"
    code, stdout, err = _main(
        capsys, *soft_files, "--content", src, "--style", style, "--output", out,
        "--content-size", 0, "--style-size", 0, "--batch-size", 4, "--quiet",
        "--temporal", "stats,flow",
    )  # fmt: skip
    assert code == 0, err
    assert f"wrote {out}" in stdout
    assert sum(len(b) for b in video.iter_batches(out, 4)) == 6


@pytest.mark.parametrize(
    ("flags", "text"),
    [
        (["--temporal", "stats", "--preserve-color"], "cannot be combined with --preserve-color"),
        (
            ["--temporal", "stats", "--max-tile", "160", "--content-size", "200"],
            "these are 300x200",
        ),
        (["--crop"], "--crop applies to images"),
    ],
)
def test_video_flags_that_cannot_run_are_usage_errors_before_the_weights(
    tmp_path, capsys, flags, text
):
    """They failed per clip at run time (exit 1), or --crop was silently ignored."""
    src, style = _clip(tmp_path)
    code, _, err = _main(
        capsys, "--content", src, "--style", style, "--output", tmp_path / "o.mp4",
        "--content-size", 0, "--vgg", tmp_path / "missing.pth", *flags,
    )  # fmt: skip
    assert code == 2 and err.count("\n") == 1 and text in err, err
    assert not (tmp_path / "o.mp4").exists()


def test_smoothed_stats_with_a_concat_decoder_is_a_usage_error():
    from adain_jax.cli import infer as infer_cli
    from adain_jax.io.messages import UsageError
    from adain_jax.nn.models import DecoderVariant, decoder_shapes

    args = infer_cli.parse_args(["--content", "c.mp4", "--style", "s.png", "--temporal", "stats"])
    opts = infer_cli.options_from_args(args, 1)
    concat = {"decoder": decoder_shapes(DecoderVariant("concat", "none"))}
    with pytest.raises(UsageError, match="--temporal stats does not apply to these weights"):
        infer_cli.check_variant(concat, opts, 1)
    infer_cli.check_variant({"decoder": decoder_shapes()}, opts, 1)  # the paper's: fine
