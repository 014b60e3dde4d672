"""Read and write images (Pillow): THE image module of training and inference.

Both the training pipeline (``adain_jax.training.data``) and inference
(``infer.py``, ``evaluate``) decode files here, so the same file gives the same
pixels in both. Decoding gives float32 RGB ``[H, W, 3]`` in [0, 1]
(``to_rgb_array``), one rule per case:

* formats: anything Pillow opens (JPEG, PNG, WebP, BMP, TIFF, GIF, ...); the
  first frame of an animation. Images larger than Pillow's decompression-bomb
  limit are refused ("too large to decode safely");
* EXIF orientation: ``ImageOps.exif_transpose``, so the image reads as a photo
  viewer shows it;
* 8-bit modes: ``RGB`` as stored / 255; grayscale ``L`` and ``1`` repeated to
  three channels; palette ``P``, ``CMYK``, ``YCbCr``, ``LAB``, ``HSV`` by
  Pillow's conversion to RGB (ICC profiles are not applied);
* 16/32-bit integer ``I;16``, ``I;16B``, ``I`` (16-bit PNGs open as ``I`` or
  ``I;16``): value / 65535, clipped to [0, 1], whatever the largest value;
* float ``F``: the values clipped to [0, 1] (not rescaled);
* transparency (``RGBA``, ``LA``, ``PA``, a palette's transparent index) is
  composited on white in float32: ``rgb * a + (1 - a)``, so transparent
  regions read as white paper, not as the colour stored under alpha 0.

Resizing (``resized_shape``, ``resize_rgb``) follows the authors' tools
(``test.lua``; the PyTorch port's ``transforms.Resize(N)``): the shorter side
becomes ``N``, the longer ``int(N * long / short)`` (truncated); bilinear with
Pillow's antialiasing. ``RGB``, ``L`` and ``RGBA`` images are resized by Pillow
in 8 bits (RGBA premultiplied, then composited), every other mode as float32
channels (16-bit precision kept). ``center_crop`` places the window as
torchvision's ``CenterCrop`` (offsets ``round((H - N) / 2)``, half to even).
Training crops random windows of the same resize (``resize_rgb`` with a
``box``) and stores them as uint8 with ``to_uint8`` (round half to even,
clipped): the only conversion from float to 8 bits in the package.

``find_images``: files with an image extension (``IMAGE_EXTENSIONS``, any
case) under a folder, recursively, sorted; names starting with ``.`` (files
and folders) skipped; symbolic links to files are followed, links to folders
too, but each real folder is walked once (no loops, no duplicates).

Writing picks PNG or JPEG (quality 95) from the extension, writes through
``adain_jax.io.files`` (temporary file, renamed into place) and refuses to
overwrite any input file.

Every problem raises ``ImageError`` whose message is one line naming the file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from adain_jax.io import files

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
JPEG_QUALITY = 95
_TRANSPARENT_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_PILLOW_RESIZED = ("RGB", "L", "RGBA")  # resized by Pillow in 8 bits (as the PyTorch port)


class ImageError(ValueError):
    """An image file that cannot be read or written; the message names the file."""


# ------------------------------------------------------------------------- finding


def find_images(root: str | os.PathLike) -> list[Path]:
    """Image files under ``root``, recursively, sorted (rules: module doc).

    Raises:
      ImageError: ``root`` is missing, not a folder, or holds no image file.
    """
    folder = Path(root)
    if not folder.exists():
        raise ImageError(f"{folder}: no such directory")
    if not folder.is_dir():
        raise ImageError(f"{folder}: not a directory")
    found = []
    seen = set()  # real paths of the folders walked: each once, so symlink loops end
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            path = Path(dirpath, name)
            if (
                not name.startswith(".")
                and name.lower().endswith(IMAGE_EXTENSIONS)
                and path.is_file()  # follows file symlinks; drops broken ones
            ):
                found.append(path)
    if not found:
        known = ", ".join(IMAGE_EXTENSIONS)
        raise ImageError(f"{folder}: no image files ({known}) in this directory tree")
    return sorted(found)


# ------------------------------------------------------------------------- decoding


def open_image(path: str | os.PathLike, *, draft_size: int = 0) -> Image.Image:
    """Open, fully decode and orient ``path`` (EXIF); the Pillow image in its own mode.

    Args:
      path: an image file.
      draft_size: JPEG only (the training pipeline's speed option): when > 0, let
        the decoder downscale by 1/2, 1/4 or 1/8 in the DCT domain while the
        shorter side stays at least ``draft_size`` px. 0 decodes at full size.

    Raises:
      ImageError: missing file, not an image, truncated or corrupt, too large to
        decode safely, or empty; one line naming the file.
    """
    path = Path(path)
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
            if draft_size > 0 and img.format == "JPEG" and img.mode in ("RGB", "L"):
                height, width = resized_shape(img.height, img.width, draft_size)
                if height <= img.height and width <= img.width:
                    img.draft(img.mode, (width, height))
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
    """A decoded Pillow image as float32 RGB ``[H, W, 3]`` in [0, 1] (rules: module doc)."""
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


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float ``[..., 3]`` in [0, 1] to uint8: clipped, rounded to nearest (half to even)."""
    return np.round(np.clip(np.asarray(image, np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


# ------------------------------------------------------------------------- geometry


def resized_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """``(H, W)`` with the shorter side scaled to ``size`` (torchvision's ``Resize(size)``).

    The longer side is ``int(size * long / short)`` (truncated, at least 1); ``size``
    0 keeps the shape.
    """
    if size == 0:
        return height, width
    if height <= width:
        return size, max(1, int(size * width / height))
    return max(1, int(size * height / width)), size


def resize_rgb(
    img: Image.Image,
    height: int,
    width: int,
    box: tuple[float, float, float, float] | None = None,
) -> np.ndarray:
    """Resize a decoded image (any mode) to float32 RGB ``[height, width, 3]`` in [0, 1].

    Bilinear, antialiased (Pillow). ``box``: ``(left, top, right, bottom)`` of the
    source region to resample (Pillow's ``resize(box=...)``); ``None``: all of it.
    ``RGB``/``L``/``RGBA`` resize in Pillow's 8 bits (as the PyTorch port), other
    modes as float32 channels, clipped to [0, 1].
    """
    if box is None and (height, width) == (img.height, img.width):
        return to_rgb_array(img)
    if img.mode in _PILLOW_RESIZED:
        return to_rgb_array(img.resize((width, height), Image.Resampling.BILINEAR, box=box))
    rgb = to_rgb_array(img)
    channels = [
        np.asarray(
            Image.fromarray(rgb[..., c]).resize((width, height), Image.Resampling.BILINEAR, box=box)
        )
        for c in range(3)
    ]
    return np.clip(np.stack(channels, -1), 0.0, 1.0).astype(np.float32)


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The centre ``size x size`` of ``[H, W, C]`` (``size = 0``: the shorter side's square).

    Offsets round as torchvision's ``CenterCrop`` does (``round``, half to even); a
    side shorter than ``size`` is kept whole.
    """
    height, width = image.shape[:2]
    size = size or min(height, width)
    size_h, size_w = min(size, height), min(size, width)
    top = int(round((height - size_h) / 2.0))
    left = int(round((width - size_w) / 2.0))
    return image[top : top + size_h, left : left + size_w]


def check_min_size(height: int, width: int, minimum: int, name: str = "image") -> None:
    """Raise ``ValueError`` unless both sides are at least ``minimum`` px.

    The network's minimum is ``adain_jax.nn.models.MIN_IMAGE_SIZE`` (9 px: relu4_1
    must be at least 2x2 to reflect-pad it); callers pass it (io imports no network).
    """
    if min(height, width) < minimum:
        raise ValueError(f"{name} is {height}x{width}; each side must be at least {minimum} px")


def load_image(
    path: str | os.PathLike, size: int = 0, crop: bool = False, *, min_size: int = 0
) -> np.ndarray:
    """Read an image file for stylization (inference and evaluation).

    Args:
      path: image file (see the module doc for formats and modes).
      size: shorter side in pixels after resizing; 0 keeps the original size.
      crop: then take the centre ``size x size`` square.
      min_size: raise if a side of the result is shorter (the command line passes
        the network's minimum, 9 px); 0: no check.

    Returns:
      float32 RGB ``[H, W, 3]`` in [0, 1].

    Raises:
      ImageError: missing file, not an image, truncated or corrupt data, an
        empty image, or too small; one line naming the file.
    """
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    path = Path(path)
    img = open_image(path)
    image = resize_rgb(img, *resized_shape(img.height, img.width, size))
    if crop:
        image = center_crop(image, size)
    try:
        check_min_size(*image.shape[:2], min_size, name="image")
    except ValueError as e:
        how = f" after resizing to {size}" if size else ""
        raise ImageError(f"{path}: too small for the network{how}: {e}") from None
    return np.ascontiguousarray(image, np.float32)


# ------------------------------------------------------------------------- writing


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
