"""Decoding training images with Pillow: any mode to RGB, EXIF orientation, resizing.

Shared by the training pipeline (``adain_jax.training.data``) and the held-out eval images.
Everything here returns ``np.uint8`` RGB ``[H, W, 3]`` arrays with values in [0, 255].
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

# EXIF orientation tag values -> the transpose that undoes them (as PIL.ImageOps).
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_ORIENTATION_TAG = 0x0112
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def shorter_side_size(width: int, height: int, shorter: int) -> tuple[int, int]:
    """``(width, height)`` scaled so that the shorter side is ``shorter`` px (aspect kept)."""
    if width <= height:
        return shorter, max(shorter, round(height * shorter / width))
    return max(shorter, round(width * shorter / height)), shorter


def target_shorter_side(width: int, height: int, image_size: int, min_size: int) -> int:
    """The shorter side an image of ``width x height`` is resized to.

    ``image_size > 0``: that size, but at least ``min_size`` (the crop). ``image_size == 0``:
    the original size, upscaled to ``min_size`` if smaller.
    """
    short = min(width, height)
    if image_size > 0:
        return max(image_size, min_size)
    return max(short, min_size)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to ``RGB``.

    Transparent images (RGBA, LA, P with transparency) are composited over white.
    16/32-bit integer images (``I;16``, ``I``) are scaled from [0, 65535] to [0, 255]
    (``I`` images whose values all fit in [0, 255] are taken as 8-bit); float images
    (``F``) are taken as [0, 1] when their maximum is at most 1, else as [0, 255].
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode.startswith("I") or mode == "F":
        values = np.asarray(image, dtype=np.float64)
        peak = float(values.max()) if values.size else 0.0
        if mode == "F" and peak <= 1.0:
            values = values * 255.0
        elif mode.startswith("I;16") or peak > 255.0:
            values = values / 257.0
        gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    return image.convert("RGB")


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_EXIF_ORIENTATION_TAG, 1))
    except Exception:  # noqa: BLE001 - malformed EXIF must not lose the image
        return 1


def open_rgb(
    path: str | os.PathLike, *, image_size: int, min_size: int = 0, draft: bool = True
) -> Image.Image:
    """Decode ``path`` to a loaded RGB ``PIL.Image``, EXIF orientation applied.

    ``draft=True`` lets the JPEG decoder downscale by 1/2, 1/4 or 1/8 in the DCT domain
    while the image stays at least as large as its resize target (see
    ``target_size``): a large speedup for big photos; other formats ignore it. Any mode
    becomes RGB (see ``to_rgb``).

    Raises whatever Pillow raises for unreadable or truncated files (``OSError``,
    ``ValueError``, ``Image.DecompressionBombError``, ...).
    """
    source = Image.open(path)
    try:
        orientation = _orientation(source)
        if draft and source.format == "JPEG" and source.mode in ("RGB", "L"):
            width, height = source.size
            shorter = target_shorter_side(width, height, image_size, min_size)
            source.draft(source.mode, shorter_side_size(width, height, shorter))
        source.load()
        image = to_rgb(source)
        if image is source:  # detach from the file (closing it would free the pixels)
            image = source.copy()
    finally:
        source.close()
    if orientation in _ORIENTATION:
        image = image.transpose(_ORIENTATION[orientation])
    return image


def array_to_image(array: np.ndarray) -> Image.Image:
    """An RGB ``PIL.Image`` from a decoded ``uint8 [H, W]`` or ``[H, W, 1|3|4]`` array.

    Used for TFDS sources (whose ``image`` feature arrives decoded).
    """
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {array.dtype}")
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4))):
        raise ValueError(f"expected an [H, W, 1|3|4] image, got shape {array.shape}")
    return to_rgb(Image.fromarray(np.ascontiguousarray(array)))


def target_size(image: Image.Image, image_size: int, min_size: int = 0) -> tuple[int, int]:
    """``(width, height)`` the decoded ``image`` is resized to (shorter side rule)."""
    width, height = image.size
    return shorter_side_size(
        width, height, target_shorter_side(width, height, image_size, min_size)
    )


def resize_shorter(image: Image.Image, image_size: int, min_size: int = 0) -> np.ndarray:
    """``uint8 [H, W, 3]``: ``image`` resized to ``target_size`` (bilinear, antialiased).

    Bilinear with Pillow's antialiasing, as torchvision's ``Resize``.
    """
    size = target_size(image, image_size, min_size)
    if image.size != size:
        image = image.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def load_rgb(
    path: str | os.PathLike, *, image_size: int, min_size: int = 0, draft: bool = True
) -> np.ndarray:
    """``open_rgb`` then ``resize_shorter``: ``uint8 [H, W, 3]`` RGB in [0, 255]."""
    image = open_rgb(path, image_size=image_size, min_size=min_size, draft=draft)
    return resize_shorter(image, image_size, min_size)


def random_resized_crop(
    image: Image.Image,
    image_size: int,
    min_size: int,
    crop: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """A uniformly random ``crop x crop`` window of ``resize_shorter(image, ...)``.

    ``uint8 [crop, crop, 3]``. Only the window is resampled (Pillow's ``resize`` with a
    source ``box``), which equals cropping the fully resized image up to +-1 rounding
    on rare pixels, several times faster. Needs ``min_size >= crop``.
    """
    tw, th = target_size(image, image_size, min_size)
    top = int(rng.integers(0, th - crop + 1))
    left = int(rng.integers(0, tw - crop + 1))
    if (tw, th) == image.size:
        window = image.crop((left, top, left + crop, top + crop))
    else:
        sx, sy = image.width / tw, image.height / th
        box = (
            left * sx,
            top * sy,
            min((left + crop) * sx, image.width),
            min((top + crop) * sy, image.height),
        )
        window = image.resize((crop, crop), Image.Resampling.BILINEAR, box=box)
    return np.asarray(window, dtype=np.uint8)


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """Central ``size x size`` window of an ``[H, W, C]`` array with ``H, W >= size``."""
    height, width = image.shape[:2]
    top = (height - size) // 2
    left = (width - size) // 2
    return image[top : top + size, left : left + size]


__all__ = [
    "array_to_image",
    "center_crop",
    "load_rgb",
    "open_rgb",
    "random_resized_crop",
    "resize_shorter",
    "target_size",
    "shorter_side_size",
    "target_shorter_side",
    "to_rgb",
]
