"""infer.py end to end against the independent torch implementation, and every bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adain_jax.cli import convert as convert_cli
from adain_jax.cli import infer as infer_cli
from tests import torch_reference as ref

ROOT = Path(__file__).resolve().parents[2]
# Square, not multiples of 8 (ceil pooling, crop back): the resize and crop tests
# reach the same shapes from other sources, so in-process runs compile once.
CONTENT_HW, STYLE_HW = (42, 42), (33, 33)


def _pixels(seed: int, hw: tuple[int, int]) -> np.ndarray:
    """A smooth-ish random uint8 RGB image (noise plus a gradient)."""
    rng = np.random.default_rng(seed)
    h, w = hw
    ramp = np.linspace(0, 180, w)[None, :, None] + np.linspace(0, 60, h)[:, None, None]
    return np.clip(ramp + rng.integers(0, 70, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    content, style = _pixels(0, CONTENT_HW), _pixels(1, STYLE_HW)
    Image.fromarray(content).save(root / "content.png")
    Image.fromarray(style).save(root / "style.png")
    return root / "content.png", root / "style.png", content, style


def _reference(torch_nets, content_u8, style_u8, alpha=1.0) -> np.ndarray:
    """The torch port's output as uint8, rounded as the port's save_image does."""
    vgg, dec = torch_nets
    c = content_u8[None].astype(np.float32) / 255
    s = style_u8[None].astype(np.float32) / 255
    out = ref.stylize(vgg, dec, c, s, alpha)[0]
    return np.clip(np.floor(out * 255 + 0.5), 0, 255).astype(np.uint8)


def _read(path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def _assert_close_u8(got: np.ndarray, want: np.ndarray, tol: int = 1) -> None:
    assert got.shape == want.shape
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() <= tol, f"max diff {diff.max()}, mean {diff.mean():.3f}"
    assert want.std() > 10  # the reference is a real image, not a flat clip


def _main(capsys, *argv) -> tuple[int, str, str]:
    code = infer_cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _weights(port_weight_files) -> list[str]:
    vgg, dec = port_weight_files
    return ["--vgg", str(vgg), "--decoder", str(dec)]


@pytest.mark.slow
def test_infer_py_subprocess_matches_torch(tmp_path, images, port_weight_files, torch_nets):
    content_path, style_path, content, style = images
    out = tmp_path / "o.png"
    cmd = [sys.executable, str(ROOT / "infer.py"), *_weights(port_weight_files)]
    cmd += ["--content", content_path, "--style", style_path, "--content-size", "0"]
    cmd += ["--style-size", "0", "--output", out]
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out}" in proc.stdout
    _assert_close_u8(_read(out), _reference(torch_nets, content, style))


@pytest.mark.slow
def test_default_output_name_and_alpha(
    tmp_path, images, port_weight_files, torch_nets, capsys, monkeypatch
):
    content_path, style_path, content, style = images
    monkeypatch.chdir(tmp_path)
    code, out, err = _main(
        capsys, *_weights(port_weight_files), "--content", content_path, "--style", style_path,
        "--content-size", 0, "--style-size", 0, "--alpha", 0.4,
    )  # fmt: skip
    assert code == 0, err
    expected_path = tmp_path / "content_stylized_style.png"
    assert out.strip() == "wrote content_stylized_style.png"
    _assert_close_u8(_read(expected_path), _reference(torch_nets, content, style, alpha=0.4))


def _torchvision_resize(pixels: np.ndarray, size: int) -> np.ndarray:
    """transforms.Resize(size) on a PIL image: shorter side -> size, bilinear."""
    h, w = pixels.shape[:2]
    if h <= w:
        new = (int(size * w / h), size)
    else:
        new = (size, int(size * h / w))
    return np.asarray(Image.fromarray(pixels).resize(new, Image.Resampling.BILINEAR))


def test_content_size_and_crop(tmp_path, images, port_weight_files, torch_nets, capsys):
    _, style_path, _, style = images
    big = _pixels(2, (84, 84))
    Image.fromarray(big).save(tmp_path / "big.png")
    out = tmp_path / "sized.png"
    code, _, err = _main(
        capsys, *_weights(port_weight_files), "--content", tmp_path / "big.png",
        "--style", style_path, "--content-size", 42, "--style-size", 0, "--output", out,
    )  # fmt: skip
    assert code == 0, err
    resized = _torchvision_resize(big, 42)
    assert resized.shape == (42, 42, 3)
    _assert_close_u8(_read(out), _reference(torch_nets, resized, style))

    wide, tall = _pixels(3, (50, 60)), _pixels(4, (50, 40))
    Image.fromarray(wide).save(tmp_path / "wide.png")
    Image.fromarray(tall).save(tmp_path / "tall.png")
    out = tmp_path / "cropped.png"
    code, _, err = _main(
        capsys, *_weights(port_weight_files), "--content", tmp_path / "wide.png",
        "--style", tmp_path / "tall.png", "--content-size", 42, "--style-size", 33, "--crop",
        "--output", out,
    )  # fmt: skip
    assert code == 0, err
    c = _torchvision_resize(wide, 42)  # 42 x 50 -> centre 42 x 42: left round(4) = 4
    assert c.shape == (42, 50, 3)
    c = c[:, 4:46]
    s = _torchvision_resize(tall, 33)  # 41 x 33 -> centre 33 x 33: top round(4) = 4
    assert s.shape == (41, 33, 3)
    s = s[4:37, :]
    _assert_close_u8(_read(out), _reference(torch_nets, c, s))


def test_jpeg_output(tmp_path, images, port_weight_files, torch_nets, capsys):
    content_path, style_path, content, style = images
    out = tmp_path / "o.jpg"
    code, _, err = _main(
        capsys, *_weights(port_weight_files), "--content", content_path, "--style", style_path,
        "--content-size", 0, "--style-size", 0, "--output", out,
    )  # fmt: skip
    assert code == 0, err
    with Image.open(out) as img:
        assert img.format == "JPEG"
    diff = np.abs(_read(out).astype(int) - _reference(torch_nets, content, style).astype(int))
    assert diff.mean() < 6  # JPEG (quality 95) of a noisy image


def test_weights_dir_from_convert(tmp_path, images, port_weight_files, torch_nets, capsys):
    content_path, style_path, content, style = images
    vgg, dec = port_weight_files
    weights = tmp_path / "weights"
    assert convert_cli.main(["--vgg", str(vgg), "--decoder", str(dec), "--out", str(weights)]) == 0
    capsys.readouterr()
    want = _reference(torch_nets, content, style)
    common = ["--content", content_path, "--style", style_path, "--content-size", 0]
    common += ["--style-size", 0]
    code, _, err = _main(capsys, "--weights", weights, *common, "--output", tmp_path / "a.png")
    assert code == 0, err
    _assert_close_u8(_read(tmp_path / "a.png"), want)
    # --vgg / --decoder alone override one network of --weights.
    code, _, err = _main(
        capsys, "--weights", weights, "--decoder", dec, *common, "--output", tmp_path / "b.png"
    )
    assert code == 0, err
    _assert_close_u8(_read(tmp_path / "b.png"), want)


@pytest.mark.slow
def test_directories_make_every_pair(tmp_path, images, port_weight_files, torch_nets, capsys):
    content_path, style_path, content, style = images
    contents, styles = tmp_path / "contents", tmp_path / "styles"
    contents.mkdir()
    styles.mkdir()
    Image.fromarray(content).save(contents / "a.png")
    Image.fromarray(content[:, ::-1]).save(contents / "b.png")
    (contents / "notes.txt").write_text("not an image, skipped by extension")
    Image.fromarray(style).save(styles / "s.png")
    out_dir = tmp_path / "outputs" / "new"
    code, out, err = _main(
        capsys, *_weights(port_weight_files), "--content", contents, "--style", styles,
        "--content-size", 0, "--style-size", 0, "--output", out_dir,
    )  # fmt: skip
    assert code == 0, err
    assert sorted(p.name for p in out_dir.iterdir()) == ["a_stylized_s.png", "b_stylized_s.png"]
    assert out.count("wrote ") == 2
    want = _reference(torch_nets, np.ascontiguousarray(content[:, ::-1]), style)
    _assert_close_u8(_read(out_dir / "b_stylized_s.png"), want)


# ---------------------------------------------------------------- bad input


def _bad_inputs(root: Path, images, port_weight_files):
    """``{case: (argv, expected exit code, text the message must contain)}``."""
    content_path, style_path, content, _ = images
    vgg, dec = port_weight_files
    (root / "text.png").write_text("this is not an image\n")
    (root / "empty.png").write_bytes(b"")
    Image.fromarray(content[:8, :20]).save(root / "small.png")
    full_jpg, full_png = root / "full.jpg", root / "full.png"
    Image.fromarray(content).save(full_jpg, quality=95)
    Image.fromarray(content).save(full_png)
    (root / "cut.jpg").write_bytes(full_jpg.read_bytes()[: full_jpg.stat().st_size // 2])
    (root / "cut.png").write_bytes(full_png.read_bytes()[: full_png.stat().st_size // 2])
    (root / "random.pth").write_bytes(np.random.default_rng(0).bytes(5000))
    import torch

    torch.save([1, 2, 3], root / "list.pth")
    weights = ["--vgg", str(vgg), "--decoder", str(dec)]
    empty_dir = root / "empty_dir"
    empty_dir.mkdir()

    def run(content=content_path, style=style_path, *extra):
        return ["--content", str(content), "--style", str(style), *map(str, extra)]

    return {
        "missing-content": (run(root / "nope.png", style_path, *weights), 1, "nope.png"),
        "missing-style": (run(content_path, root / "nope.jpg", *weights), 1, "nope.jpg"),
        "not-an-image": (run(root / "text.png", style_path, *weights), 1, "not an image"),
        "empty-image": (run(root / "empty.png", style_path, *weights), 1, "empty file"),
        "truncated-jpeg": (run(root / "cut.jpg", style_path, *weights), 1, "truncated"),
        "truncated-png": (run(content_path, root / "cut.png", *weights), 1, "truncated"),
        "too-small": (run(root / "small.png", style_path, *weights, "--content-size", 0), 1,
                      "too small"),
        "too-small-size-flag": (run(content_path, style_path, *weights, "--style-size", 4), 2,
                                "--style-size must be 0 (keep the size) or at least 9 px, got 4"),
        "alpha-1.5": (run(content_path, style_path, *weights, "--alpha", 1.5), 2, "--alpha"),
        "alpha-nan": (run(content_path, style_path, *weights, "--alpha", "nan"), 2, "--alpha"),
        "alpha-text": (run(content_path, style_path, *weights, "--alpha", "x"), 2, "--alpha"),
        "alpha-minus-inf": (run(content_path, style_path, *weights, "--alpha", "-inf"), 2,
                            "--alpha must be in [0, 1], got -inf"),
        "negative-size": (run(content_path, style_path, *weights, "--content-size", -1), 2,
                          "--content-size"),
        "unknown-flag": (run(content_path, style_path, *weights, "--colour"), 2, "--colour"),
        "no-content": (["--style", str(style_path)], 2, "--content"),
        "output-is-content": (run(content_path, style_path, *weights, "--output", content_path),
                              1, "refusing to overwrite"),
        "output-is-style": (run(content_path, style_path, *weights, "--output", style_path),
                            1, "refusing to overwrite"),
        "output-bad-ext": (run(content_path, style_path, *weights, "--output", root / "o.gif"),
                           2, "--output"),
        "weights-and-checkpoint": (run(content_path, style_path, "--weights", root,
                                       "--checkpoint", root), 2, "not allowed with"),
        "missing-vgg": (run(content_path, style_path, "--vgg", root / "no.pth", "--decoder", dec),
                        1, "no.pth"),
        "missing-decoder": (run(content_path, style_path, "--vgg", vgg, "--decoder",
                                root / "no.pth"), 1, "no.pth"),
        "decoder-as-vgg": (run(content_path, style_path, "--vgg", dec, "--decoder", dec), 1,
                           "expected encoder weights"),
        "vgg-as-decoder": (run(content_path, style_path, "--vgg", vgg, "--decoder", vgg), 1,
                           "expected decoder weights"),
        "not-a-state-dict": (run(content_path, style_path, "--vgg", root / "list.pth",
                                 "--decoder", dec), 1, "not a state dict"),
        "random-bytes-weights": (run(content_path, style_path, "--vgg", vgg, "--decoder",
                                     root / "random.pth"), 1, "random.pth"),
        "image-as-weights": (run(content_path, style_path, "--vgg", full_png, "--decoder", dec),
                             1, "full.png"),
        "output-no-ext": (run(content_path, style_path, *weights, "--output", root / "outdir"),
                          2, "end a directory with /"),
        "empty-content-dir": (run(empty_dir, style_path, *weights), 1, "no image or video files"),
        "dir-with-file-output": (run(root, style_path, *weights, "--output", root / "o.png"), 2,
                                 "--output"),
        "weights-dir-missing": (run(content_path, style_path, "--weights", root / "nodir"), 1,
                                "nodir"),
        "weights-dir-empty": (run(content_path, style_path, "--weights", root), 1,
                              "not a weights directory"),
        "weights-dir-is-a-file": (run(content_path, style_path, "--weights", content_path), 1,
                                  "a file, expected a weights directory"),
    }  # fmt: skip


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, images, port_weight_files):
    return _bad_inputs(tmp_path_factory.mktemp("bad"), images, port_weight_files)


CASES = [
    "missing-content", "missing-style", "not-an-image", "empty-image", "truncated-jpeg",
    "truncated-png", "too-small", "too-small-size-flag", "alpha-1.5", "alpha-nan",
    "alpha-text", "alpha-minus-inf", "negative-size", "unknown-flag", "no-content",
    "output-is-content", "output-is-style", "output-bad-ext", "weights-and-checkpoint",
    "missing-vgg",
    "missing-decoder", "decoder-as-vgg", "vgg-as-decoder", "not-a-state-dict",
    "random-bytes-weights", "image-as-weights", "weights-dir-missing", "weights-dir-empty",
    "weights-dir-is-a-file", "output-no-ext", "empty-content-dir", "dir-with-file-output",
]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gives_one_error_line(case, bad_inputs, capsys, tmp_path, monkeypatch):
    argv, code, text = bad_inputs[case]
    monkeypatch.chdir(tmp_path)
    before = {p: p.read_bytes() for p in map(Path, argv) if p.is_file()}
    got, out, err = _main(capsys, *argv)
    assert got == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert text in lines[0]
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written
    assert {p: p.read_bytes() for p in before} == before  # inputs untouched


@pytest.mark.slow
@pytest.mark.parametrize("case", ["alpha-1.5", "decoder-as-vgg"])
def test_bad_input_subprocess(case, bad_inputs, tmp_path):
    argv, code, text = bad_inputs[case]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "infer.py"), *argv], capture_output=True, text=True,
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == code
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert text in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_failed_default_download_fails_in_one_line(tmp_path, images, not_found_url):
    """A server that answers 404 (not an unreachable one, which falls back to the built-in
    weights: tests/weights/test_builtin.py): one line naming the offline flags."""
    content_path, style_path, _, _ = images
    env = dict(os.environ)
    env["ADAIN_JAX_ADAIN_URL"] = not_found_url
    env["ADAIN_JAX_CACHE"] = str(tmp_path / "cache")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "infer.py"), "--content", str(content_path),
         "--style", str(style_path)],
        capture_output=True, text=True, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: could not download"), proc.stderr
    assert "HTTP 404" in lines[0]
    for flag in ("--vgg", "--decoder", "--weights"):
        assert flag in lines[0]
    cache = tmp_path / "cache"
    assert not cache.exists() or not [p for p in cache.rglob("*") if p.is_file()]


@pytest.mark.slow
def test_bfloat16(tmp_path, images, port_weight_files, torch_nets, capsys):
    content_path, style_path, content, style = images
    out = tmp_path / "bf16.png"
    code, _, err = _main(
        capsys, *_weights(port_weight_files), "--content", content_path, "--style", style_path,
        "--content-size", 0, "--style-size", 0, "--dtype", "bfloat16", "--output", out,
    )  # fmt: skip
    assert code == 0, err
    got = _read(out).astype(int)
    want = _reference(torch_nets, content, style).astype(int)
    diff = np.abs(got - want)
    assert 0 < diff.mean() < 8, diff.mean()  # bfloat16 convolutions: close, not identical
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.95
