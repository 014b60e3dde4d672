"""Read and write images for stylization (Pillow).

Reading gives float32 RGB ``[H, W, 3]`` in [0, 1], whatever the file holds:

* formats: anything Pillow opens (JPEG, PNG, WebP, BMP, TIFF, GIF, ...); the
  first frame of an animation;
* modes: grayscale (``L``, ``1``, 16-bit ``I;16``/``I``: scaled by 1/65535,
  float ``F``: clipped to [0, 1]) is repeated to three channels; palette,
  CMYK, YCbCr, LAB and HSV are converted to RGB (Pillow's conversions; ICC
  profiles are not applied);
* transparency (``RGBA``, ``LA``, ``PA``, palette with a transparent index)
  is composited on white, so transparent regions read as white paper rather
  than whatever colour the file stores under alpha 0;
* EXIF orientation is honoured (``ImageOps.exif_transpose``): the image reads
  as a photo viewer shows it.

Resizing follows the authors' tools (``test.lua``; the PyTorch port's
``transforms.Resize(N)`` + ``CenterCrop(N)``): the shorter side is scaled to
``N`` keeping the aspect ratio (bilinear, Pillow's antialiased filter; 0
keeps the original size), then optionally the centre ``N x N`` square is
cropped (with ``N = 0``, the centred square of the shorter side).

Writing picks PNG or JPEG (quality 95) from the extension, writes a
temporary file in the target directory and renames it into place, and
refuses to overwrite any input file.

Every problem raises ``ImageError`` whose message is one line naming the file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from adain_jax.io import files
from adain_jax.nn.forward import check_image_size

WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
JPEG_QUALITY = 95
_TRANSPARENT_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


class ImageError(ValueError):
    """An image file that cannot be read or written; the message names the file."""


def _open(path: Path) -> Image.Image:
    """Open, fully decode and orient ``path``; raise ``ImageError`` on any problem."""
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, expected an image file")
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ImageError(f"{path}: cannot read ({e.strerror})") from None
    if size == 0:
        raise ImageError(f"{path}: empty file (0 bytes), not an image")
    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            img.load()
    except PermissionError as e:
        raise ImageError(f"{path}: cannot read ({e.strerror})") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image (unknown format or damaged header)") from None
    except Image.DecompressionBombError as e:
        raise ImageError(f"{path}: too large to decode safely ({e})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        # Pillow reports truncated or corrupt data as OSError ("image file is
        # truncated", "broken data stream"), SyntaxError or ValueError.
        raise ImageError(f"{path}: truncated or corrupt image ({e})") from None
    if img.width == 0 or img.height == 0:
        raise ImageError(f"{path}: empty image ({img.width}x{img.height} px)")
    return img


def to_rgb_array(img: Image.Image) -> np.ndarray:
    """Convert a decoded Pillow image to float32 RGB ``[H, W, 3]`` in [0, 1] (see module doc)."""
    mode = img.mode
    if mode == "P" and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in _TRANSPARENT_MODES:
        rgba = np.asarray(img.convert("RGBA"), np.float32) / 255.0
        rgb, alpha = rgba[..., :3], rgba[..., 3:]
        return (rgb * alpha + (1.0 - alpha)).astype(np.float32)
    if mode.startswith("I;16") or mode == "I":
        gray = np.asarray(img).astype(np.float32) / 65535.0
        return np.repeat(np.clip(gray, 0.0, 1.0)[..., None], 3, axis=-1)
    if mode == "F":
        gray = np.clip(np.asarray(img, np.float32), 0.0, 1.0)
        return np.repeat(gray[..., None], 3, axis=-1)
    if mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, np.float32) / 255.0


def resized_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """``(H, W)`` with the shorter side scaled to ``size`` (torchvision's ``Resize(size)``)."""
    if size == 0:
        return height, width
    if height <= width:
        return size, max(1, int(size * width / height))
    return max(1, int(size * height / width)), size


def _resized_rgb(img: Image.Image, size: int) -> np.ndarray:
    """Resize (shorter side to ``size``) and convert to float32 RGB ``[H, W, 3]``."""
    height, width = resized_shape(img.height, img.width, size)
    if (height, width) == (img.height, img.width):
        return to_rgb_array(img)
    if img.mode in ("RGB", "L", "RGBA"):
        # 8-bit images resize as the PyTorch port's transforms.Resize does.
        return to_rgb_array(img.resize((width, height), Image.Resampling.BILINEAR))
    # Other modes (16-bit, float, palette, CMYK...): resize the float RGB values.
    rgb = to_rgb_array(img)
    channels = [
        np.asarray(Image.fromarray(rgb[..., c]).resize((width, height), Image.Resampling.BILINEAR))
        for c in range(3)
    ]
    return np.clip(np.stack(channels, -1), 0.0, 1.0).astype(np.float32)


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The centre ``size x size`` of ``[H, W, C]`` (``size = 0``: the shorter side's square).

    Offsets round as torchvision's ``CenterCrop`` does.
    """
    height, width = image.shape[:2]
    size = size or min(height, width)
    size_h, size_w = min(size, height), min(size, width)
    top = int(round((height - size_h) / 2.0))
    left = int(round((width - size_w) / 2.0))
    return image[top : top + size_h, left : left + size_w]


def load_image(
    path: str | os.PathLike, size: int = 0, crop: bool = False, check_size: bool = True
) -> np.ndarray:
    """Read an image file for stylization.

    Args:
      path: image file (see the module doc for formats and modes).
      size: shorter side in pixels after resizing; 0 keeps the original size.
      crop: then take the centre ``size x size`` square.
      check_size: raise if the result is too small for the network (each
        side at least ``adain_jax.stylize``'s minimum, 9 px).

    Returns:
      float32 RGB ``[H, W, 3]`` in [0, 1].

    Raises:
      ImageError: missing file, not an image, truncated or corrupt data, an
        empty image, or too small; one line naming the file.
    """
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    path = Path(path)
    img = _open(path)
    image = _resized_rgb(img, size)
    if crop:
        image = center_crop(image, size)
    if check_size:
        try:
            check_image_size(*image.shape[:2], name="image")
        except ValueError as e:
            how = f" after resizing to {size}" if size else ""
            raise ImageError(f"{path}: too small for the network{how}: {e}") from None
    return np.ascontiguousarray(image, np.float32)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float ``[H, W, 3]`` in [0, 1] to uint8, rounding to nearest (values clipped)."""
    return np.round(np.clip(np.asarray(image, np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output_path(path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Check that ``path`` can be written: known extension, not one of ``inputs``.

    Raises:
      ImageError: unknown extension or an input file.
    """
    path = Path(path)
    if path.suffix.lower() not in WRITE_FORMATS:
        known = ", ".join(WRITE_FORMATS)
        if not path.suffix:
            raise ImageError(
                f"{path}: output has no extension; use one of {known} (or end a directory with /)"
            )
        raise ImageError(f"{path}: unknown output extension {path.suffix!r}; use one of {known}")
    resolved = path.resolve()
    for source in inputs:
        source = Path(source)
        if resolved == source.resolve() or _same_file(path, source):
            raise ImageError(f"{path}: is an input file; refusing to overwrite it")
    if path.is_dir():
        raise ImageError(f"{path}: is a directory")
    return path


def save_image(
    path: str | os.PathLike,
    image: np.ndarray,
    inputs: Iterable[str | os.PathLike] = (),
) -> Path:
    """Write float RGB ``[H, W, 3]`` in [0, 1] as PNG or JPEG (quality 95), atomically.

    The parent directory is created if missing. ``inputs`` are files that
    must not be overwritten.

    Raises:
      ImageError: unknown extension, ``path`` is an input, or the write failed.
    """
    path = check_output_path(path, inputs)
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be [H, W, 3], got shape {image.shape}")
    fmt = WRITE_FORMATS[path.suffix.lower()]
    options = {"quality": JPEG_QUALITY} if fmt == "JPEG" else {}
    try:
        with files.atomic_path(path) as tmp:
            Image.fromarray(to_uint8(image)).save(tmp, format=fmt, **options)
    except OSError as e:
        raise ImageError(f"{path}: cannot write ({e.strerror or e})") from None
    return path
