"""Image reading (training and inference: one reader), resizing, finding and writing,
against arrays computed with NumPy."""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from adain_jax.io import images as image_io
from adain_jax.io.images import ImageError
from adain_jax.training import data, evaluate, sources


def _rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("ext", ["png", "bmp", "tiff", "webp"])
def test_lossless_formats_read_exact_values(tmp_path, ext):
    pixels = _rgb(11, 13)
    path = tmp_path / f"img.{ext}"
    options = {"lossless": True} if ext == "webp" else {}
    Image.fromarray(pixels).save(path, **options)
    got = image_io.load_image(path)
    assert got.dtype == np.float32 and got.shape == (11, 13, 3)
    np.testing.assert_array_equal(got, pixels / np.float32(255))


def test_jpeg_reads_close_to_source(tmp_path):
    pixels = np.full((16, 24, 3), (200, 100, 30), np.uint8)
    Image.fromarray(pixels).save(tmp_path / "img.jpg", quality=95)
    got = image_io.load_image(tmp_path / "img.jpg")
    assert got.shape == (16, 24, 3)
    assert np.max(np.abs(got * 255 - pixels)) <= 3


def test_grayscale_repeats_to_rgb(tmp_path):
    gray = np.arange(9 * 10, dtype=np.uint8).reshape(9, 10)
    Image.fromarray(gray).save(tmp_path / "g.png")
    got = image_io.load_image(tmp_path / "g.png")
    expected = np.repeat((gray / np.float32(255))[..., None], 3, -1)
    np.testing.assert_array_equal(got, expected)


def test_one_bit_image(tmp_path):
    bits = np.zeros((9, 12), bool)
    bits[:, ::2] = True
    Image.fromarray(bits).save(tmp_path / "b.png")
    got = image_io.load_image(tmp_path / "b.png")
    np.testing.assert_array_equal(got, np.repeat(bits[..., None], 3, -1).astype(np.float32))


def test_palette_image(tmp_path):
    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30]
    index = np.array([[0, 1, 2, 3] * 3] * 9, np.uint8)
    img = Image.frombytes("P", (index.shape[1], index.shape[0]), index.tobytes())
    img.putpalette(palette + [0] * (768 - len(palette)))
    img.save(tmp_path / "p.png")
    got = image_io.load_image(tmp_path / "p.png")
    table = np.array(palette, np.float32).reshape(-1, 3) / 255
    np.testing.assert_array_equal(got, table[index])


def test_palette_with_transparent_index_is_composited_on_white(tmp_path):
    index = np.array([[0, 1] * 5] * 9, np.uint8)
    img = Image.frombytes("P", (index.shape[1], index.shape[0]), index.tobytes())
    img.putpalette([0, 0, 0, 200, 40, 10] + [0] * 762)
    img.save(tmp_path / "pt.png", transparency=0)
    got = image_io.load_image(tmp_path / "pt.png")
    expected = np.where(index[..., None] == 0, [1.0, 1.0, 1.0], np.array([200, 40, 10]) / 255)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((9, 9, 4), np.uint8)
    rgba[..., :3] = (40, 80, 120)
    rgba[..., 3] = np.array([0, 51, 255] * 3, np.uint8)[None, :]
    Image.fromarray(rgba).save(tmp_path / "a.png")
    got = image_io.load_image(tmp_path / "a.png")
    a = rgba[..., 3:] / 255.0
    expected = rgba[..., :3] / 255.0 * a + (1 - a)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert np.allclose(got[:, 0], 1.0)  # fully transparent column reads white


def test_la_is_composited_on_white(tmp_path):
    la = np.stack([np.full((9, 9), 100, np.uint8), np.full((9, 9), 128, np.uint8)], -1)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    got = image_io.load_image(tmp_path / "la.png")
    a = 128 / 255
    np.testing.assert_allclose(got, 100 / 255 * a + (1 - a), atol=1e-6)


def test_cmyk_tiff(tmp_path):
    # Pure inks: cyan -> (0, 255, 255), magenta -> (255, 0, 255), white paper, full black.
    cmyk = np.zeros((9, 12, 4), np.uint8)
    cmyk[:, 0:3, 0] = 255
    cmyk[:, 3:6, 1] = 255
    cmyk[:, 9:12, 3] = 255
    Image.fromarray(cmyk, mode="CMYK").save(tmp_path / "c.tiff")
    got = image_io.load_image(tmp_path / "c.tiff")
    expected = np.ones((9, 12, 3), np.float32)
    expected[:, 0:3] = (0, 1, 1)
    expected[:, 3:6] = (1, 0, 1)
    expected[:, 9:12] = 0
    np.testing.assert_array_equal(got, expected)


def test_sixteen_bit_grayscale_png(tmp_path):
    values = np.array([[0, 257, 32768, 65535] * 3] * 9, np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    got = image_io.load_image(tmp_path / "g16.png")
    expected = np.repeat((values / 65535.0)[..., None], 3, -1)
    np.testing.assert_allclose(got, expected, atol=1e-7)


def test_sixteen_bit_resize_keeps_precision(tmp_path):
    values = np.full((20, 30), 1000, np.uint16)  # 1000/65535 is between two 8-bit levels
    Image.fromarray(values).save(tmp_path / "g16.png")
    got = image_io.load_image(tmp_path / "g16.png", size=10)
    assert got.shape == (10, 15, 3)
    np.testing.assert_allclose(got, 1000 / 65535, atol=1e-6)


@pytest.mark.parametrize(
    ("orientation", "transform"),
    [
        (1, lambda a: a),
        (2, lambda a: a[:, ::-1]),
        (3, lambda a: np.rot90(a, 2)),
        (6, lambda a: np.rot90(a, -1)),  # camera held rotated: display turned 90 clockwise
        (8, lambda a: np.rot90(a, 1)),
    ],
)
def test_exif_orientation_is_honoured(tmp_path, orientation, transform):
    pixels = _rgb(10, 14, seed=orientation)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(tmp_path / "o.png", exif=exif)
    got = image_io.load_image(tmp_path / "o.png")
    np.testing.assert_array_equal(got, transform(pixels) / np.float32(255))


@pytest.mark.parametrize(
    ("shape", "size", "expected"),
    [((40, 60), 20, (20, 30)), ((61, 40), 20, (30, 20)), ((33, 33), 16, (16, 16)),
     ((50, 70), 0, (50, 70)), ((20, 30), 40, (40, 60))],
)  # fmt: skip
def test_resize_shorter_side(tmp_path, shape, size, expected):
    # torchvision Resize(size): short side -> size, long side -> int(size * long / short).
    Image.fromarray(np.full((*shape, 3), 77, np.uint8)).save(tmp_path / "r.png")
    got = image_io.load_image(tmp_path / "r.png", size=size)
    assert got.shape == (*expected, 3)
    np.testing.assert_allclose(got, 77 / 255, atol=1e-6)  # flat stays flat


def test_resize_matches_bilinear_average_on_downscale_by_two(tmp_path):
    # A 2x downscale of a column pattern 0,255,0,255: every output pixel averages to ~127.5.
    cols = np.tile(np.array([0, 255], np.uint8), 16)
    Image.fromarray(np.repeat(np.tile(cols, (32, 1))[..., None], 3, -1)).save(tmp_path / "s.png")
    got = image_io.load_image(tmp_path / "s.png", size=16)
    assert got.shape == (16, 16, 3)
    assert np.all(np.abs(got[:, 1:-1] * 255 - 127.5) <= 1.0)


def test_center_crop(tmp_path):
    pixels = _rgb(20, 31)
    Image.fromarray(pixels).save(tmp_path / "c.png")
    got = image_io.load_image(tmp_path / "c.png", size=0, crop=True)  # shorter side's square
    # torchvision CenterCrop: left = round((31 - 20) / 2) = round(5.5) = 6 (banker's: 6).
    np.testing.assert_array_equal(got, pixels[:, 6:26] / np.float32(255))
    got = image_io.center_crop(pixels, 10)
    np.testing.assert_array_equal(got, pixels[5:15, 10:20])  # top round(5), left round(10.5)=10


def test_resize_then_crop_is_square(tmp_path):
    Image.fromarray(_rgb(30, 45)).save(tmp_path / "c.png")
    assert image_io.load_image(tmp_path / "c.png", size=16, crop=True).shape == (16, 16, 3)


# ------------------------------------------- one reader: training and inference agree

S = 12  # square, so that the training pipeline's crop (crop_size S, image_size 0) is all of it


def _case_1(path):
    bits = np.random.default_rng(1).random((S, S)) < 0.5
    Image.fromarray(bits).save(path.with_suffix(".png"))
    return path.with_suffix(".png"), np.repeat(bits[..., None], 3, -1).astype(np.float32)


def _case_l(path):
    gray = np.random.default_rng(2).integers(0, 256, (S, S), dtype=np.uint8)
    Image.fromarray(gray).save(path.with_suffix(".png"))
    return path.with_suffix(".png"), np.repeat(gray[..., None], 3, -1) / np.float32(255)


def _case_la(path):
    la = np.random.default_rng(3).integers(0, 256, (S, S, 2), dtype=np.uint8)
    Image.fromarray(la, mode="LA").save(path.with_suffix(".png"))
    gray, a = la[..., :1] / np.float32(255), la[..., 1:] / np.float32(255)
    return path.with_suffix(".png"), np.repeat(gray * a + (1 - a), 3, -1)


def _case_p_transparent(path):
    index = np.random.default_rng(4).integers(0, 4, (S, S), dtype=np.uint8)
    palette = np.array([[0, 0, 0], [200, 40, 10], [3, 250, 99], [70, 71, 72]], np.uint8)
    img = Image.fromarray(index, mode="P")
    img.putpalette(palette.ravel().tolist())
    img.save(path.with_suffix(".png"), transparency=2)  # index 2 is fully transparent
    expected = palette[index] / np.float32(255)
    expected[index == 2] = 1.0
    return path.with_suffix(".png"), expected


def _case_rgba(path):
    rgba = np.random.default_rng(5).integers(0, 256, (S, S, 4), dtype=np.uint8)
    rgba[0, :, 3] = 0
    Image.fromarray(rgba).save(path.with_suffix(".png"))
    rgb, a = rgba[..., :3] / np.float32(255), rgba[..., 3:] / np.float32(255)
    return path.with_suffix(".png"), rgb * a + (1 - a)


def _case_cmyk(path):
    cmyk = np.random.default_rng(6).integers(0, 256, (S, S, 4), dtype=np.uint8)
    Image.fromarray(cmyk, mode="CMYK").save(path.with_suffix(".tiff"))
    ink, black = cmyk[..., :3].astype(np.int64), cmyk[..., 3:].astype(np.int64)
    rgb = np.rint((255 - ink) * (255 - black) / 255.0)  # Pillow's CMYK -> RGB, no ICC
    return path.with_suffix(".tiff"), rgb / np.float32(255)


def _case_i16(path):
    values = np.random.default_rng(7).integers(0, 65536, (S, S), dtype=np.uint16)
    values[0, :3] = (0, 255, 65535)  # values <= 255 are 16-bit values too, not 8-bit ones
    Image.fromarray(values).save(path.with_suffix(".png"))
    assert Image.open(path.with_suffix(".png")).mode in ("I;16", "I")
    return path.with_suffix(".png"), np.repeat(values[..., None] / np.float32(65535), 3, -1)


def _case_i32(path):
    values = np.random.default_rng(8).integers(-1000, 70000, (S, S), dtype=np.int32)
    values[0, :2] = (200, 255)  # an all-small image would read the same: / 65535
    Image.fromarray(values).save(path.with_suffix(".tiff"))
    assert Image.open(path.with_suffix(".tiff")).mode == "I"
    expected = np.clip(values / np.float32(65535), 0, 1)
    return path.with_suffix(".tiff"), np.repeat(expected[..., None], 3, -1)


def _case_f(path):
    values = np.random.default_rng(9).uniform(-0.5, 1.5, (S, S)).astype(np.float32)
    Image.fromarray(values).save(path.with_suffix(".tiff"))
    assert Image.open(path.with_suffix(".tiff")).mode == "F"
    return path.with_suffix(".tiff"), np.repeat(np.clip(values, 0, 1)[..., None], 3, -1)


def _case_f_nan(path):
    values = np.random.default_rng(9).uniform(0, 1, (S, S)).astype(np.float32)
    values[1:3, 2:5] = np.nan  # no data: read as 0 (it made the whole output black)
    Image.fromarray(values).save(path.with_suffix(".tiff"))
    return path.with_suffix(".tiff"), np.repeat(np.nan_to_num(values)[..., None], 3, -1)


def _case_exif_jpeg(path):
    pixels = _rgb(S, S, seed=10)
    exif = Image.Exif()
    exif[0x0112] = 6  # the viewer turns the stored image 90 degrees clockwise
    Image.fromarray(pixels).save(path.with_suffix(".jpg"), quality=95, exif=exif)
    with Image.open(path.with_suffix(".jpg")) as stored:  # as stored: no orientation
        raw = np.asarray(stored.convert("RGB"))
    return path.with_suffix(".jpg"), np.rot90(raw, -1) / np.float32(255)


def _case_rgb(path):
    pixels = _rgb(S, S, seed=11)
    Image.fromarray(pixels).save(path.with_suffix(".png"))
    return path.with_suffix(".png"), pixels / np.float32(255)


EIGHT_BIT = ("1", "L", "CMYK", "RGB", "EXIF-JPEG")  # every value is k / 255


CASES = {
    "1": _case_1, "L": _case_l, "LA": _case_la, "P-transparent": _case_p_transparent,
    "RGBA": _case_rgba, "CMYK": _case_cmyk, "I;16": _case_i16, "I": _case_i32, "F": _case_f,
    "F-NaN": _case_f_nan, "EXIF-JPEG": _case_exif_jpeg, "RGB": _case_rgb,
}  # fmt: skip


@pytest.mark.parametrize("name", CASES)
def test_training_and_inference_read_the_same_pixels(tmp_path, name):
    folder = tmp_path / "one"
    folder.mkdir()
    path, expected = CASES[name](folder / "img")
    expected = np.asarray(expected, np.float32)
    assert expected.shape == (S, S, 3)

    inference = image_io.load_image(path)
    assert inference.dtype == np.float32 and inference.shape == (S, S, 3)
    np.testing.assert_allclose(inference, expected, rtol=0, atol=1e-6)

    # The training pipeline end to end: all of the image as its one crop, stored as uint8.
    cfg = data.PipelineConfig(batch_size=1, image_size=0, crop_size=S, prefetch=1)
    with data.make_pair_iterator(folder, folder, cfg, shard_index=0, shard_count=1) as it:
        batch = next(it)
    for training in (batch["content"][0], batch["style"][0]):
        assert training.dtype == np.uint8
        np.testing.assert_array_equal(training, image_io.to_uint8(inference))
        np.testing.assert_array_equal(training, np.rint(np.clip(expected, 0, 1) * 255))
        if name in EIGHT_BIT:  # 8-bit sources: the very same float pixels
            np.testing.assert_array_equal(training / np.float32(255), inference)

    # Evaluation images (training/evaluate.py, training samples) read as inference does.
    (evaluated,) = evaluate.load_eval_images(folder, S, 1)
    np.testing.assert_array_equal(evaluated, inference)


@pytest.mark.parametrize("shape", [(40, 60), (61, 40), (33, 33), (479, 640), (1001, 300)])
@pytest.mark.parametrize("size", [9, 20, 256])
def test_training_resize_shape_is_the_inference_rule(shape, size):
    height, width = shape
    short, long = min(shape), max(shape)
    expected_long = int(size * long / short)  # test.lua / torchvision Resize: truncated
    expected = (size, expected_long) if height <= width else (expected_long, size)
    assert image_io.resized_shape(height, width, size) == expected
    assert sources.target_shape(height, width, size, min_size=size) == expected


def test_find_images_extensions_hidden_and_symlinks(tmp_path):
    root = tmp_path / "root"
    for rel in ["a.JPG", "b.jpeg", "c.png", "d.webp", "e.bmp", "f.tif", "g.TIFF", "h.gif",
                "sub/i.png", ".hidden.png", ".git/j.png", "k.txt", "l.pngx"]:  # fmt: skip
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "m.png").write_bytes(b"x")
    (root / "linked").symlink_to(outside, target_is_directory=True)  # followed
    (root / "loop").symlink_to(root, target_is_directory=True)  # walked once
    (root / "filelink.png").symlink_to(outside / "m.png")  # followed
    (root / "broken.png").symlink_to(tmp_path / "nowhere.png")  # not a file
    found = image_io.find_images(root)
    assert all(isinstance(p, os.PathLike) for p in found)
    assert [p.relative_to(root).as_posix() for p in found] == [
        "a.JPG", "b.jpeg", "c.png", "d.webp", "e.bmp", "f.tif", "filelink.png", "g.TIFF",
        "h.gif", "linked/m.png", "sub/i.png",
    ]  # fmt: skip
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "notes.txt").write_text("x")
    with pytest.raises(ImageError, match=r"empty: no image files \(.jpg, .jpeg, .png, .webp"):
        image_io.find_images(empty)
    with pytest.raises(ImageError, match="nope: no such directory"):
        image_io.find_images(tmp_path / "nope")
    with pytest.raises(ImageError, match="m.png: not a directory"):
        image_io.find_images(outside / "m.png")


def test_find_images_reports_folders_it_cannot_read(tmp_path, monkeypatch):
    # As os.walk meets a folder without read permission (simulated: tests may run as root,
    # which reads any folder): the top folder is an error, a subfolder a warning.
    root = tmp_path / "root"
    (root / "locked").mkdir(parents=True)
    (root / "locked" / "a.png").write_bytes(b"x")
    (root / "b.png").write_bytes(b"x")
    scandir = os.scandir
    denied = set()

    def guarded(path="."):
        if os.fspath(path) in denied:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", guarded)
    denied.add(os.fspath(root / "locked"))
    with pytest.warns(UserWarning, match=r"locked: cannot read this directory \(Permission denied"):
        assert image_io.find_images(root) == [root / "b.png"]
    denied.add(os.fspath(root))
    with pytest.raises(ImageError, match=r"root: cannot read this directory \(Permission denied"):
        image_io.find_images(root)


# ---------------------------------------------------------------- errors


def _png_with_size(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def _truncated(tmp_path, ext: str) -> str:
    path = tmp_path / f"full.{ext}"
    Image.fromarray(_rgb(64, 64)).save(path)
    data = path.read_bytes()
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(data[: len(data) // 2])
    return str(cut)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: str(d / "missing.png"), "no such file"),
        (lambda d: str(d), "is a directory"),
        (lambda d: _write(d / "empty.png", b""), "empty file"),
        (lambda d: _write(d / "text.png", b"hello, I am not a picture\n"), "not an image"),
        (lambda d: _write(d / "zero.png", _png_with_size(0, 4)), "not an image"),
        (lambda d: _truncated(d, "png"), "truncated or corrupt"),
        (lambda d: _truncated(d, "jpg"), "truncated or corrupt"),
    ],
    ids=["missing", "directory", "empty", "text", "zero-size", "truncated-png", "truncated-jpg"],
)
def test_bad_files_raise_one_line_naming_the_file(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(ImageError, match=message) as info:
        image_io.load_image(path)
    text = str(info.value)
    assert text.startswith(str(path)) and "\n" not in text


def _write(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    Image.fromarray(_rgb(40, 40)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40 * 40 // 2 - 1)  # Pillow: > 2x raises
    with pytest.raises(ImageError, match="big.png: too large to decode safely"):
        image_io.load_image(tmp_path / "big.png")


def test_too_small_image(tmp_path):
    Image.fromarray(_rgb(8, 20)).save(tmp_path / "small.png")
    with pytest.raises(ImageError, match="too small.*image is 8x20; each side must be at least 9"):
        image_io.load_image(tmp_path / "small.png", min_size=9)
    assert image_io.load_image(tmp_path / "small.png").shape == (8, 20, 3)  # no minimum
    Image.fromarray(_rgb(20, 20)).save(tmp_path / "ok.png")
    with pytest.raises(ImageError, match="too small for the network after resizing to 8"):
        image_io.load_image(tmp_path / "ok.png", size=8, min_size=9)
    assert image_io.load_image(tmp_path / "ok.png", size=9, min_size=9).shape == (9, 9, 3)


# ---------------------------------------------------------------- writing


def test_save_png_round_trip_and_rounding(tmp_path):
    image = np.random.default_rng(0).random((7, 9, 3), dtype=np.float32)
    image[0, 0] = (-0.5, 1.5, 0.5 / 255)  # clipped; 0.5/255 rounds to 0 or 1, never more
    path = image_io.save_image(tmp_path / "out" / "o.png", image)
    got = np.asarray(Image.open(path))
    expected = np.clip(np.floor(np.clip(image, 0, 1) * 255 + 0.5), 0, 255)
    assert np.max(np.abs(got.astype(int) - expected)) <= 1
    assert got[0, 0, 0] == 0 and got[0, 0, 1] == 255
    assert [p.name for p in path.parent.iterdir()] == ["o.png"]  # no temp file left


def test_save_jpeg_by_extension(tmp_path):
    image = np.full((16, 16, 3), 0.5, np.float32)
    for ext in ("jpg", "JPEG"):
        path = image_io.save_image(tmp_path / f"o.{ext}", image)
        with Image.open(path) as img:
            assert img.format == "JPEG"
            assert np.max(np.abs(np.asarray(img).astype(int) - 128)) <= 2


def test_save_replaces_existing_output_and_keeps_permissions_sane(tmp_path):
    path = tmp_path / "o.png"
    path.write_bytes(b"old")
    image_io.save_image(path, np.zeros((4, 4, 3), np.float32))
    assert Image.open(path).size == (4, 4)
    assert os.stat(path).st_mode & 0o044  # readable by others, not mkstemp's 0600


def test_save_refuses_inputs_and_unknown_extensions(tmp_path):
    src = tmp_path / "in.png"
    Image.fromarray(_rgb(9, 9)).save(src)
    before = src.read_bytes()
    image = np.zeros((9, 9, 3), np.float32)
    with pytest.raises(ImageError, match="is an input file"):
        image_io.save_image(src, image, inputs=[src])
    with pytest.raises(ImageError, match="is an input file"):  # same file, another spelling
        image_io.save_image(tmp_path / "sub" / ".." / "in.png", image, inputs=[str(src)])
    link = tmp_path / "link.png"
    link.symlink_to(src)
    with pytest.raises(ImageError, match="is an input file"):
        image_io.save_image(link, image, inputs=[src])
    with pytest.raises(ImageError, match="unknown output extension"):
        image_io.save_image(tmp_path / "o.gif", image)
    assert src.read_bytes() == before
