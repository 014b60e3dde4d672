"""infer.py's runtime controls end to end: directory jobs, masks, mixing, colour, tiles, video."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adain_jax.controls import stylize_with_stats
from adain_jax.inference import backend
from adain_jax.io import images as image_io
from tests import soft_weights
from tests.cli.test_infer import _main, _read
from tests.controls.test_mixing import _torch_masked, _torch_mix

soft_nets = soft_weights.soft_nets  # the shared fixtures
soft_files = soft_weights.soft_files


def _img(seed: int, h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 150, w)[None, :, None] + np.linspace(0, 80, h)[:, None, None]
    return np.clip(ramp + rng.integers(0, 90, (h, w, 3)), 0, 255).astype(np.uint8)


def _save(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(np.asarray(x) * 255 + 0.5), 0, 255).astype(np.uint8)


def _close(got: np.ndarray, want: np.ndarray, tol: int = 1) -> None:
    assert got.shape == want.shape
    assert np.abs(got.astype(int) - want.astype(int)).max() <= tol


@pytest.mark.slow
def test_directory_job_bad_file_skip_and_overwrite(
    tmp_path, soft_nets, soft_files, capsys, monkeypatch
):
    vgg, dec, _ = soft_nets
    contents, styles, out_dir = tmp_path / "c", tmp_path / "s", tmp_path / "out" / "new"
    # mixed sizes in one 64 px bucket, a sub-directory, a bad image, a non-image
    _save(contents / "a.png", _img(0, 40, 60))
    _save(contents / "sub" / "b.jpg", _img(1, 50, 44))
    _save(contents / "c.png", _img(2, 33, 61))
    (contents / "bad.png").write_bytes(b"not an image")
    (contents / "notes.txt").write_text("skipped by extension")
    _save(styles / "x.png", _img(3, 32, 32))
    _save(styles / "y.png", _img(4, 40, 36))
    encoded, calls = [], []
    real_encode, real_stylize = backend.encode_style_padded, backend.stylize_checked
    monkeypatch.setattr(  # styles are padded to the --bucket shapes and encoded there
        backend, "encode_style_padded", lambda *a, **k: encoded.append(1) or real_encode(*a, **k)
    )

    def stylize(params, content, *a, sizes=None, **k):
        calls.append((content.shape, sizes is not None))
        return real_stylize(params, content, *a, sizes=sizes, **k)

    monkeypatch.setattr(backend, "stylize_checked", stylize)
    argv = [*soft_files, "--content", contents, "--style", styles, "--output", out_dir,
            "--content-size", 0, "--style-size", 0, "--quiet"]  # fmt: skip
    code, out, err = _main(capsys, *argv)
    assert code == 1  # one bad file: reported, the rest done
    assert err.count("error:") == 1 and "bad.png" in err and "Traceback" not in err
    names = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*.png"))
    assert names == [
        "a_stylized_x.png", "a_stylized_y.png", "c_stylized_x.png", "c_stylized_y.png",
        "sub/b_stylized_x.png", "sub/b_stylized_y.png",
    ]  # fmt: skip
    assert out.count("wrote ") == 6 and "6 written, 0 skipped" in out
    assert "2 failed" in out  # bad.png with each of the 2 styles (was counted once)
    assert len(encoded) == 2  # each style encoded once
    # one 64 x 64 bucket: 3 contents (padded to 4) per style, one shape -> one compilation
    assert calls == [((4, 64, 64, 3), True)] * 2
    for content, style in (("sub/b.jpg", "y.png"), ("c.png", "x.png")):
        c = image_io.load_image(contents / content)[None]
        s = image_io.load_image(styles / style)
        want = _u8(_torch_mix(vgg, dec, c, [s], [1.0], 1.0)[0])
        name = f"{Path(content).with_suffix('')}_stylized_{Path(style).stem}.png"
        _close(_read(out_dir / name), want)

    stamp = {p: p.stat().st_mtime_ns for p in out_dir.rglob("*.png")}
    code, out, _ = _main(capsys, *argv)
    assert code == 1 and "0 written, 6 skipped" in out
    assert {p: p.stat().st_mtime_ns for p in out_dir.rglob("*.png")} == stamp
    (contents / "bad.png").unlink()
    code, out, _ = _main(capsys, *argv, "--overwrite")
    assert code == 0 and "6 written, 0 skipped" in out and "0 failed" in out

    # outputs inside the content tree are not taken as contents on the next run
    inner = contents / "styled"
    argv[argv.index(out_dir)] = inner
    for _ in range(2):
        code, out, _ = _main(capsys, *argv)
        assert code == 0 and "0 failed" in out
    assert len(list(inner.rglob("*.png"))) == 6


@pytest.mark.slow
def test_style_list_with_weights(tmp_path, soft_nets, soft_files, capsys):
    vgg, dec, _ = soft_nets
    c = _save(tmp_path / "c.png", _img(5, 32, 64))
    a, b = _save(tmp_path / "a.png", _img(6, 32, 32)), _save(tmp_path / "b.png", _img(7, 48, 24))
    out = tmp_path / "o" / "mix.png"
    code, _, err = _main(
        capsys, *soft_files, "--content", c, "--style", f"{a},{b}", "--style-weights", "1,3",
        "--alpha", 0.7, "--content-size", 0, "--style-size", 0, "--output", out,
    )  # fmt: skip
    assert code == 0, err
    imgs = [image_io.load_image(p) for p in (c, a, b)]
    want = _torch_mix(vgg, dec, imgs[0][None], imgs[1:], [0.25, 0.75], 0.7)[0]
    _close(_read(out), _u8(want))


@pytest.mark.slow
def test_mask_cli_routes_white_to_first_style(tmp_path, soft_nets, soft_files, capsys):
    vgg, dec, _ = soft_nets
    c = _save(tmp_path / "c.png", _img(8, 32, 64))
    a, b = _save(tmp_path / "a.png", _img(9, 32, 32)), _save(tmp_path / "b.png", _img(10, 32, 32))
    mask = np.zeros((20, 40), np.uint8)
    mask[:, :20] = 255  # left half white -> style a; RGBA/grey/any size accepted
    Image.fromarray(mask).convert("RGBA").save(tmp_path / "mask.png")
    out = tmp_path / "masked.png"
    code, _, err = _main(
        capsys, *soft_files, "--content", c, "--style", f"{a},{b}", "--mask",
        tmp_path / "mask.png", "--content-size", 0, "--style-size", 0, "--output", out,
    )  # fmt: skip
    assert code == 0, err
    labels_f = np.zeros((4, 8), np.int64)
    labels_f[:, 4:] = 1
    imgs = [image_io.load_image(p) for p in (c, a, b)]
    want = _torch_masked(vgg, dec, imgs[0][None], imgs[1:], labels_f, 1.0)[0]
    _close(_read(out), _u8(want))

    three = np.zeros((20, 30), np.uint8)
    three[:, 10:20], three[:, 20:] = 128, 255
    Image.fromarray(three).save(tmp_path / "three.png")
    code, _, err = _main(
        capsys, *soft_files, "--content", c, "--style", f"{a},{b}", "--mask",
        tmp_path / "three.png", "--output", tmp_path / "x.png",
    )  # fmt: skip
    assert code == 1
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "three.png" in err and "3 distinct colours but 2 styles" in err


@pytest.mark.parametrize(
    ("extra", "text"),
    [
        (["--style-weights", "1,2,3"], "3 values but --style gives 2 styles"),
        (["--style-weights", "1,-1"], ">= 0"),
        (["--style-weights", "-1,2"], "must be >= 0 with a positive sum, got -1,2"),
        (["--style-weights=-1,2"], "must be >= 0 with a positive sum, got -1,2"),
        (["--style-weights", "-1"], "must be >= 0 with a positive sum, got -1"),  # flags first
        (["--style-weights", "5"], "1 values but --style gives 2 styles"),
        (["--style-weights", "--quiet"], "expected one argument"),
        (["--mask", "m.png", "--style-weights", "1,1"], "cannot be combined"),
        (["--max-tile", "100"], "--max-tile"),
        (["--preserve-color", "hue"], "--preserve-color"),
    ],
)
def test_bad_control_flags_exit_2(tmp_path, capsys, extra, text):
    a, b = _save(tmp_path / "a.png", _img(0, 16, 16)), _save(tmp_path / "b.png", _img(1, 16, 16))
    code, _, err = _main(capsys, "--content", a, "--style", f"{a},{b}", *extra)
    assert code == 2 and err.startswith("error: ") and text in err, err
    assert err.count("\n") == 1


def test_an_existing_output_is_skipped_only_after_the_flags_are_checked(tmp_path, capsys):
    a, b = _save(tmp_path / "a.png", _img(0, 16, 16)), _save(tmp_path / "b.png", _img(1, 16, 16))
    out = _save(tmp_path / "o.png", _img(2, 16, 16))
    code, _, err = _main(capsys, "--content", a, "--style", b, "--output", out,
                         "--style-weights", "1,2")  # fmt: skip
    assert code == 2 and "--style-weights has 2 values but --style gives 1 style" in err


def test_the_mask_is_never_an_output(tmp_path, capsys):
    """The mask was replaced by the stylized image (exit 0)."""
    a, b = _save(tmp_path / "a.png", _img(0, 16, 16)), _save(tmp_path / "b.png", _img(1, 16, 16))
    mask = _save(
        tmp_path / "m.png",
        np.repeat(np.arange(16, dtype=np.uint8) % 2 * 255, 16 * 3).reshape(16, 16, 3),
    )
    before = mask.read_bytes()
    code, _, err = _main(capsys, "--content", a, "--style", f"{a},{b}", "--mask", mask,
                         "--output", mask, "--overwrite")  # fmt: skip
    assert code == 1 and err.strip() == f"error: {mask}: is an input file; refusing to overwrite it"
    assert mask.read_bytes() == before


@pytest.mark.slow
def test_preserve_color_and_tiles(tmp_path, soft_nets, soft_files, capsys):
    _, _, params = soft_nets
    c = _save(tmp_path / "c.png", _img(11, 170, 180))
    tint = np.array([1.0, 0.3, 0.2])
    s = _save(tmp_path / "s.png", (_img(12, 32, 32) * tint).astype(np.uint8))  # red style
    common = [*soft_files, "--content", c, "--style", s, "--content-size", 0, "--style-size", 0]
    code, _, err = _main(capsys, *common, "--output", tmp_path / "full.png", "--max-tile", 0)
    assert code == 0, err
    code, _, err = _main(capsys, *common, "--output", tmp_path / "tiled.png", "--max-tile", 160)
    assert code == 0, err
    _close(_read(tmp_path / "tiled.png"), _read(tmp_path / "full.png"))

    content, style = image_io.load_image(c), image_io.load_image(s)
    code, _, err = _main(capsys, *common, "--preserve-color", "--output", tmp_path / "k.png")
    assert code == 0, err
    stats = backend.encode_style(params, np.asarray(backend.match_color(content, style)))
    padded = backend.pad_to_bucket(content, 64)[None]  # the CLI's bucket: no new compilation
    want = stylize_with_stats(params, padded, stats, sizes=np.array([content.shape[:2]]))
    _close(_read(tmp_path / "k.png"), _u8(np.asarray(want)[0, :170, :180]))

    out = tmp_path / "lum.png"
    code, _, err = _main(capsys, *common, "--preserve-color", "luminance", "--output", out)
    assert code == 0, err
    yiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    got = _read(out) / 255.0
    inside = np.all((got > 0.02) & (got < 0.98), axis=-1)
    assert inside.mean() > 0.5
    # the content's chrominance (I, Q) is kept; within uint8 rounding
    np.testing.assert_allclose(
        (got @ yiq.T)[inside][:, 1:], (content @ yiq.T)[inside][:, 1:], atol=0.01
    )


@pytest.mark.slow
def test_video_cli(tmp_path, soft_files, capsys):
    video = pytest.importorskip("adain_jax.io.video")
    pytest.importorskip("av")
    src = tmp_path / "clip.mp4"
    writer = video.VideoWriter(src, Fraction(15), 48, 32)
    writer.write(np.stack([_img(20 + i, 32, 48) for i in range(7)]))
    writer.close()
    s = _save(tmp_path / "s.png", _img(13, 32, 32))
    out = tmp_path / "v" / "styl.mp4"
    code, stdout, err = _main(
        capsys, *soft_files, "--content", src, "--style", s, "--content-size", 0,
        "--style-size", 0, "--output", out, "--batch-size", 4, "--quiet",
    )  # fmt: skip
    assert code == 0, err
    assert f"wrote {out}" in stdout
    info = video.probe(out)
    assert (info.fps, info.width, info.height) == (Fraction(15), 48, 32)
    assert sum(len(b) for b in video.iter_batches(out, 4)) == 7


def test_video_cli_applies_content_size_and_keeps_audio(tmp_path, soft_files, capsys):
    pytest.importorskip("av")
    from adain_jax.io import video
    from tests.io.test_video import _audio_packets, _clip_with_audio

    src = tmp_path / "clip.mp4"
    _clip_with_audio(src, "aac", frames=6, w=128, h=96)
    s = _save(tmp_path / "s.png", _img(13, 32, 32))
    out = tmp_path / "styl.mp4"
    code, _, err = _main(
        capsys, *soft_files, "--content", src, "--style", s, "--content-size", 64,
        "--style-size", 0, "--output", out, "--batch-size", 4, "--quiet",
    )  # fmt: skip
    assert code == 0, err
    info = video.probe(out)
    assert (info.width, info.height) == (84, 64)
    assert _audio_packets(out) == _audio_packets(src) != []


def test_a_directory_of_contents_takes_its_videos_too(tmp_path, soft_files, capsys):
    pytest.importorskip("av")
    from adain_jax.io import video

    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    for name in ("a.mp4", "sub/b.avi"):
        writer = video.VideoWriter(folder / name, Fraction(10), 48, 32)
        writer.write(np.stack([_img(30 + i, 32, 48) for i in range(3)]))
        writer.close()
    _save(folder / "c.png", _img(3, 32, 40))
    (folder / "d.mp4").write_bytes(b"not a video")
    s = _save(tmp_path / "s.png", _img(13, 32, 32))
    out = tmp_path / "out"
    flags = ["--content", folder, "--style", s, "--content-size", 0, "--style-size", 0]
    code, stdout, err = _main(capsys, *soft_files, *flags, "--output", out, "--quiet")
    assert code == 1 and err.startswith(f"error: {folder / 'd.mp4'}: cannot read video"), err
    made = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert made == ["a_stylized_s.mp4", "c_stylized_s.png", "sub/b_stylized_s.avi"]
    assert (video.probe(out / "sub" / "b_stylized_s.avi").width, len(made)) == (48, 3)
    assert "done: 3 written, 0 skipped" in stdout
    code, stdout, err = _main(capsys, *soft_files, *flags, "--output", out, "--quiet")
    assert "done: 0 written, 3 skipped" in stdout  # a re-run: the videos are outputs, not inputs
    code, _, err = _main(capsys, *soft_files, *flags, "--output", tmp_path / "o2", "--crop")
    assert code == 2 and f"keep their aspect ratio ({folder / 'a.mp4'})" in err, err
