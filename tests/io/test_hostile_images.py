"""Hostile image and video files: one clear ImageError/VideoError line, nothing written,
nothing allocated from a size the file claims before Pillow's pixel bound is applied."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from adain_jax.io import images, video
from adain_jax.io.images import ImageError
from tests.fuzz_util import mutations


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A PNG header claiming ``width x height`` RGB pixels, with a tiny IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * (3 * width + 1) * 4)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _encoded(fmt: str, mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).convert(mode).save(buffer, format=fmt)
    return buffer.getvalue()


def test_decompression_bomb_is_refused_without_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png())
    assert path.stat().st_size < 1_000_000
    with pytest.raises(ImageError) as info:
        images.load_image(path)
    # Pillow refuses it from the header, as over its own bound; the message is ours.
    assert str(info.value) == (
        f"{path}: image is {30000 * 30000 / 1e6:.1f} MP, over the limit of 100000000 pixels "
        "(set ADAIN_JAX_MAX_PIXELS to raise it)"
    )


def test_a_file_far_larger_than_its_pixels_is_refused_unread(tmp_path):
    # A valid JPEG followed by a sparse hole: Pillow would decode it, ignoring the padding;
    # the scan count would read all of it (every epoch, in training).
    path = tmp_path / "padded.jpg"
    path.write_bytes(_encoded("JPEG"))
    assert images.open_image(path, max_pixels=1000).size == (32, 24)
    bound = images.MAX_BYTES_PER_PIXEL * 1000 + (64 << 20)
    with open(path, "r+b") as f:
        f.truncate(bound + 1)
    with pytest.raises(ImageError) as info:
        images.open_image(path, max_pixels=1000)
    assert str(info.value) == (
        f"{path}: 64 MiB, more than an image of at most 1000 pixels holds "
        "(set ADAIN_JAX_MAX_PIXELS to raise it)"
    )


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF"])
def test_every_truncation_fails_with_one_line(tmp_path, fmt):
    data = _encoded(fmt, "P" if fmt == "GIF" else "RGB")
    path = tmp_path / f"cut.{fmt.lower()}"
    step = max(1, len(data) // 60)
    for cut in range(0, len(data) - 1, step):
        path.write_bytes(data[:cut])
        try:
            images.load_image(path)
        except ImageError as e:
            assert "\n" not in str(e) and str(path) in str(e)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(
    "fmt", ["PNG", "JPEG", pytest.param("GIF", marks=pytest.mark.slow), "BMP", "TIFF"]
)
def test_fuzzed_images_raise_only_image_error(tmp_path, fmt):
    """Seeded mutants of small valid files: each loads (float32 in [0, 1]) or raises
    ImageError; no other exception, no crash."""
    data = _encoded(fmt, "P" if fmt == "GIF" else "RGB")
    path = tmp_path / f"mutant.{fmt.lower()}"
    refused = 0
    for mutant in mutations(data, 600, seed=len(fmt)):
        path.write_bytes(mutant)
        try:
            out = images.load_image(path)
        except ImageError as e:
            assert "\n" not in str(e)
            refused += 1
            continue
        assert out.dtype == np.float32 and out.ndim == 3 and out.shape[-1] == 3
        assert np.all((out >= 0) & (out <= 1))
    assert refused > 0


def test_garbage_video_is_a_video_error(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(video.VideoError) as info:
        video.probe(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("kind", ["bomb", "truncated", "garbage_video", "empty"])
def test_command_line_on_hostile_inputs(tmp_path, capsys, port_weight_files, kind):
    from adain_jax.cli import infer

    style = tmp_path / "style.png"
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(style)
    if kind == "bomb":
        content = tmp_path / "bomb.png"
        content.write_bytes(bomb_png())
    elif kind == "truncated":
        content = tmp_path / "cut.jpg"
        content.write_bytes(_encoded("JPEG")[:300])
    elif kind == "garbage_video":
        content = tmp_path / "clip.mp4"
        content.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    else:
        content = tmp_path / "empty.png"
        content.write_bytes(b"")
    before = sorted(p.name for p in tmp_path.iterdir())
    out = tmp_path / ("o.mp4" if kind == "garbage_video" else "o.png")
    vgg, dec = port_weight_files
    argv = [
        "--vgg",
        str(vgg),
        "--decoder",
        str(dec),
        "--quiet",
        "--content",
        str(content),
        "--style",
        str(style),
        "--output",
        str(out),
    ]
    assert infer.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and str(content) in err and "\n" not in err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
