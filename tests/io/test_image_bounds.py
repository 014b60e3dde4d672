"""Hostile images, second pass (issue 20): code-running formats, pixel bounds of decoded
and resized images, masks, frames and training crops, progressive-JPEG scan bombs.

Each file is generated here and small on disk; each bomb runs in a child process
under a memory cap and a timeout (``tests.bounded``) and is checked for its peak RSS
and time, or in-process where the fixed path allocates nothing of note.
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adain_jax.io import images
from adain_jax.io.images import ImageError
from tests.bounded import run_bounded

HAS_GS = shutil.which("gs") is not None


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def flat_png(width: int, height: int, bit_depth: int = 8, colour: int = 0) -> bytes:
    """A ``width x height`` PNG of zeros (greyscale ``colour=0`` or palette ``3``), deflated
    to a few hundred bytes per megapixel."""
    row = 1 + (width * bit_depth + 7) // 8
    compressor = zlib.compressobj(9)
    idat = b""
    zero_rows = b"\0" * row * 256
    for start in range(0, height, 256):
        idat += compressor.compress(zero_rows[: row * min(256, height - start)])
    idat += compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    plte = _chunk(b"PLTE", b"\0\0\0\xff\xff\xff") if colour == 3 else b""
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + plte
        + _chunk(b"IDAT", idat)
        + _chunk(b"IEND", b"")
    )


def _read_bounded(call: str, env: dict | None = None, mem_mb: int = 2048) -> dict:
    """``call`` (an expression of ``images``) in a capped child: its ImageError text."""
    code = f"""
    from adain_jax.io import images
    from adain_jax.inference import run
    try:
        {call}
        result = "read"
    except images.ImageError as e:
        result = str(e)
    """
    return run_bounded(code, mem_mb=mem_mb, timeout_s=60, env=env)


# ------------------------------------------------------------------ formats


EPS_WRITES = """%!PS-Adobe-3.0 EPSF-3.0
%%BoundingBox: 0 0 16 16
/f ({marker}) (w) file def f (pwned) writestring f closefile
0 0 moveto 16 16 lineto stroke
showpage
"""


def eps_file(path: Path, marker: Path) -> Path:
    """PostScript that writes ``marker`` when Ghostscript runs it, named like a PNG."""
    path.write_text(EPS_WRITES.format(marker=marker))
    return path


def test_code_formats_are_off_for_the_whole_process(tmp_path):
    """After importing the package, plain ``Image.open`` (as Gradio calls it) does not
    know EPS, and ours names the allow-list."""
    path = eps_file(tmp_path / "x.png", tmp_path / "marker")
    with pytest.raises(Exception, match="cannot identify image file"):
        Image.open(path).load()
    with pytest.raises(ImageError, match="not an image in a supported format") as info:
        images.load_image(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)
    assert not (tmp_path / "marker").exists()


def test_formats_outside_the_allow_list_are_refused(tmp_path):
    path = tmp_path / "x.png"  # a PPM named .png: Pillow reads it, the README lists no PPM
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(path, format="PPM")
    with pytest.raises(ImageError, match=r"supported format \(JPEG, PNG, WEBP, BMP, TIFF, GIF\)"):
        images.load_image(path)


@pytest.fixture
def live_eps(tmp_path) -> tuple[Path, Path]:
    """An EPS named ``x.png`` and the file it writes; skipped without Ghostscript. The
    payload is first shown to be live: stock Pillow (without this package) runs it."""
    if not HAS_GS:
        pytest.skip("needs Ghostscript (gs); .ci/run installs it")
    control = tmp_path / "control_marker"
    probe = eps_file(tmp_path / "probe.png", control)
    code = f"from PIL import Image; Image.open({str(probe)!r}).load()"
    subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert control.exists(), "the payload does not run in Ghostscript: the test would prove nothing"
    marker = tmp_path / "marker"
    return eps_file(tmp_path / "x.png", marker), marker


def _style(tmp_path: Path, name: str = "style.png") -> Path:
    path = tmp_path / name
    Image.fromarray(np.full((24, 24, 3), 120, np.uint8)).save(path)
    return path


@pytest.mark.parametrize("entry", ["content", "style", "mask"])
def test_eps_never_runs_from_infer(tmp_path, live_eps, port_weight_files, capsys, entry):
    from adain_jax.cli import infer

    eps, marker = live_eps
    vgg, dec = port_weight_files
    good = _style(tmp_path)
    argv = [
        "--vgg",
        str(vgg),
        "--decoder",
        str(dec),
        "--quiet",
        "--output",
        str(tmp_path / "o.png"),
    ]
    if entry == "mask":
        other = _style(tmp_path, "style2.png")
        argv += ["--content", str(good), "--style", f"{good},{other}", "--mask", str(eps)]
    elif entry == "style":
        argv += ["--content", str(good), "--style", str(eps)]
    else:
        argv += ["--content", str(eps), "--style", str(good)]
    assert infer.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and str(eps) in err and "\n" not in err
    assert not marker.exists() and not (tmp_path / "o.png").exists()


def test_eps_never_runs_from_a_training_folder(tmp_path, live_eps):
    from adain_jax.training import data, sources

    eps, marker = live_eps
    folder = tmp_path / "content"
    folder.mkdir()
    eps.rename(folder / eps.name)
    for i in range(3):  # the EPS may end one epoch and start the next: others around it
        Image.fromarray(np.full((20, 20, 3), 60 + i, np.uint8)).save(folder / f"good{i}.png")
    cfg = data.PipelineConfig(batch_size=1, image_size=16, crop_size=16, num_workers=0)
    with pytest.warns(sources.BadImageWarning, match="not an image in a supported format"):
        with data.make_pair_iterator(folder, folder, cfg, shard_index=0, shard_count=1) as it:
            for _ in range(8):  # every record of several epochs
                next(it)
    assert not marker.exists()


@pytest.mark.slow
def test_eps_never_runs_from_a_demo_upload(tmp_path, live_eps, port_weight_files):
    pytest.importorskip("gradio")
    from gradio_client import Client, handle_file

    import adain_jax
    from adain_jax.cli import demo
    from tests.local_cluster import free_port

    eps, marker = live_eps
    params = adain_jax.load_params(vgg=port_weight_files[0], decoder=port_weight_files[1])
    with demo.upload_folder() as uploads:
        app = demo.build_app(params)
        port = free_port()
        demo.launch_app(
            app, demo.Limits(), server_name="127.0.0.1", server_port=port,
            prevent_thread_lock=True, quiet=True, show_error=True,
        )  # fmt: skip
        try:
            client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            style = handle_file(_style(tmp_path))
            with pytest.raises(Exception, match="cannot identify|supported format"):
                client.predict(handle_file(eps), style, 1.0, api_name="/stylize")
        finally:
            app.close()
        assert uploads.is_dir()
    assert not marker.exists()
    assert not uploads.exists()  # uploads removed with the server


# ------------------------------------------------------------------ pixel bounds


def test_resized_size_is_bounded_before_resizing(tmp_path):
    """A 695-byte 20000 x 10 PNG at --content-size 512 would be 512 x 1,024,000."""
    path = tmp_path / "wide.png"
    path.write_bytes(flat_png(20000, 10))
    assert path.stat().st_size < 2000
    run = _read_bounded(f"images.load_image({str(path)!r}, 512)")
    assert run["result"].startswith(f"{path}: resized to 512 px, it would be 1024000x512 px")
    assert "ADAIN_JAX_MAX_PIXELS" in run["result"]
    assert run["seconds"] < 30 and run["peak_mb"] < 1200


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["png", "gif"])
def test_decoded_size_is_bounded_before_decoding(tmp_path, kind):
    """12 MP of zeros (a few KB) under a 10 MP limit: refused from the header."""
    path = tmp_path / f"big.{kind}"
    if kind == "png":
        path.write_bytes(flat_png(4000, 3000, colour=3))
    else:
        Image.new("P", (4000, 3000)).save(path)
    assert path.stat().st_size < 200_000
    env = {"ADAIN_JAX_MAX_PIXELS": "10000000"}
    run = _read_bounded(f"images.load_image({str(path)!r})", env=env)
    assert run["result"] == (
        f"{path}: image is 4000x3000 px (12.0 MP), over the limit of 10000000 pixels "
        "(set ADAIN_JAX_MAX_PIXELS to raise it)"
    )
    assert run["peak_mb"] < 1200
    assert images.load_image(path, 64).shape == (64, 85, 3)  # under the default limit


def test_a_bad_limit_setting_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("ADAIN_JAX_MAX_PIXELS", "lots")
    path = tmp_path / "any.png"
    path.write_bytes(flat_png(16, 16))
    with pytest.raises(ImageError, match="ADAIN_JAX_MAX_PIXELS='lots': expected a positive"):
        images.load_image(path)


@pytest.mark.slow
def test_mask_is_bounded_and_labelled_fast(tmp_path):
    """A binary mask of 4096 x 4097 px (over the 16.8 MP mask bound) is refused; one of
    4096 x 4096 is labelled in about a second (np.unique over rows took minutes)."""
    over = tmp_path / "over.png"
    over.write_bytes(flat_png(4096, 4097, bit_depth=1))
    run = _read_bounded(f"run.load_mask({str(over)!r}, 2)")
    assert run["result"].startswith(f"{over}: mask is 4096x4097 px")
    assert "scale it down" in run["result"]
    mask = np.zeros((4096, 4096), bool)
    mask[:, :1000] = True
    fits = tmp_path / "fits.png"
    Image.fromarray(mask).save(fits)
    code = f"""
    from adain_jax.inference import run
    labels = run.load_mask({str(fits)!r}, 2)
    result = [int(labels[0, 0]), int(labels[0, -1]), list(labels.shape)]
    """
    done = run_bounded(code, mem_mb=2560, timeout_s=60)
    assert done["result"] == [0, 1, [4096, 4096]]
    assert done["seconds"] < 30 and done["peak_mb"] < 1500


def test_video_frames_are_bounded(tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=5)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for _ in range(2):
            frame = av.VideoFrame.from_ndarray(np.zeros((240, 320, 3), np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    code = f"""
    from adain_jax.io import images, video
    try:
        video.transform_video({str(path)!r}, {str(tmp_path / "out.mp4")!r}, lambda f: f, 2,
                              False)
        result = "written"
    except images.ImageError as e:
        result = str(e)
    """
    run = run_bounded(code, env={"ADAIN_JAX_MAX_PIXELS": "50000"})
    assert run["result"].startswith(f"{path}: video frames are 320x240 px")
    assert not (tmp_path / "out.mp4").exists()


def test_palette_training_crop_reads_a_window(tmp_path):
    """A 60 MP palette GIF: the random crop converts only its window to float (it
    converted the whole image: 60 MP x 12 bytes per crop)."""
    from adain_jax.training import sources

    path = tmp_path / "big.gif"
    Image.new("P", (10000, 6000), 1).save(path)
    assert path.stat().st_size < 200_000
    code = f"""
    import numpy as np
    from adain_jax.io import images
    from adain_jax.training import sources
    img = images.open_image({str(path)!r})
    crop = sources.random_resized_crop(img, 0, 256, np.random.default_rng(0))
    result = list(crop.shape)
    """
    run = run_bounded(code, mem_mb=2048)
    assert run["result"] == [256, 256, 3]
    assert run["peak_mb"] < 700  # the decoded 60 MB image, no float copy of it
    # The window path equals resizing the whole image (on a small one).
    small = Image.fromarray(np.random.default_rng(1).integers(0, 4, (90, 70), np.uint8), "P")
    small.putpalette(np.random.default_rng(2).integers(0, 256, 768).tolist())
    for seed in range(3):
        window = sources.random_resized_crop(small, 48, 32, np.random.default_rng(seed))
        th, tw = sources.target_shape(90, 70, 48, 32)
        rng = np.random.default_rng(seed)
        top, left = int(rng.integers(0, th - 32 + 1)), int(rng.integers(0, tw - 32 + 1))
        full = images.to_uint8(images.resize_rgb(small, th, tw))[top : top + 32, left : left + 32]
        assert np.abs(window.astype(int) - full).max() <= 1


# ------------------------------------------------------------------ JPEG scan bomb


def scan_bomb(scans: int, size: int = 64) -> bytes:
    """A progressive JPEG whose last scan is repeated ``scans`` times (valid: each
    refinement scan re-decodes the image)."""
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((size, size, 3), np.uint8)).save(
        buffer, "JPEG", progressive=True, quality=90
    )
    data = buffer.getvalue()
    last = data.rindex(b"\xff\xda")
    body, end = data[last:-2], data[-2:]
    return data[:last] + body * scans + end


def test_progressive_jpeg_scan_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "scans.jpg"
    path.write_bytes(scan_bomb(5000))
    assert path.stat().st_size < 2_000_000
    start = time.perf_counter()
    with pytest.raises(ImageError, match="JPEG with over 256 scans") as info:
        images.load_image(path)
    assert time.perf_counter() - start < 2
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)
    ordinary = tmp_path / "ok.jpg"  # a normal progressive file still reads
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(ordinary, progressive=True)
    assert images.load_image(ordinary).shape == (40, 40, 3)


# ------------------------------------------------------------------ names


def test_control_characters_in_names_stay_on_one_line(tmp_path):
    path = tmp_path / "two\nlines.png"
    path.write_bytes(b"not an image")
    with pytest.raises(ImageError) as info:
        images.load_image(path)
    message = str(info.value)
    assert "\n" not in message and "two\\nlines.png" in message
