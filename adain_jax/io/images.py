"""Read and write images (Pillow): THE image module of training and inference.

Training (``adain_jax.training.data``) and inference (``infer.py``, ``evaluate``) decode files
here, so the same file gives the same pixels in both. ``open_image`` reads an allow-list of
formats (``READ_FORMATS``, picked by content whatever the extension; the first frame of an
animation), with bounds checked from the header (docs/security.md) and EXIF orientation applied;
``to_rgb_array`` and ``resize_rgb`` make float32 RGB ``[H, W, 3]`` in [0, 1]; sizes follow the
authors' ``test.lua`` (the PyTorch port's ``transforms.Resize(N)``, ``CenterCrop(N)``).
``save_image`` writes PNG or JPEG atomically and never over an input. Every problem raises
``ImageError`` whose message is one line naming the file.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from adain_jax.io import files
from adain_jax.io.messages import describe, one_line, reading, shown_path

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
JPEG_QUALITY = 95
_TRANSPARENT_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_PILLOW_RESIZED = ("RGB", "L", "RGBA")  # resized by Pillow in 8 bits (as the PyTorch port)
# Pillow format names read (``Image.open(formats=...)``): the IMAGE_EXTENSIONS' formats
# (a camera's multi-picture JPEG opens through JPEG as Pillow's "MPO").
READ_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")
# Readers that run an external program or interpret code: off for the whole process.
CODE_FORMATS = ("EPS", "PS", "PDF", "WMF", "EMF", "XPS")
MAX_PIXELS_ENV = "ADAIN_JAX_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 100_000_000
MAX_JPEG_SCANS = 256  # libjpeg's progressive files use ~10; each scan re-decodes the image
_SCAN_CHUNK = 1 << 20
# A file larger than this many bytes per allowed pixel (+ metadata) is refused unread: the
# widest read format is a 32-bit float RGBA TIFF, 16 bytes a pixel.
MAX_BYTES_PER_PIXEL = 16
_METADATA_BYTES = 64 << 20


class ImageError(ValueError):
    """An image file that cannot be read or written; the message names the file."""


def _disable_code_formats() -> None:
    """Unregister Pillow's code-running readers (EPS/PS via Ghostscript, ...) process-wide.

    ``Image.init()`` first imports every plugin, so a later ``Image.open`` anywhere in the
    process (Gradio's upload handling too) never registers them again; Ghostscript is also made
    unfindable for a plugin imported by hand.
    """
    Image.init()
    for name in CODE_FORMATS:
        Image.OPEN.pop(name, None)
        if name in Image.ID:
            Image.ID.remove(name)
    from PIL import EpsImagePlugin  # in every Pillow

    EpsImagePlugin.gs_binary = False
    EpsImagePlugin.gs_windows_binary = False


_disable_code_formats()
_PILLOW_MAX_PIXELS = Image.MAX_IMAGE_PIXELS
# Our own pixel bound (``check_pixels``) replaces Pillow's warning between its limit and
# twice it; Pillow still refuses on its own above twice ``Image.MAX_IMAGE_PIXELS``.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def pixel_limit() -> int:
    """The pixel bound of a decoded or resized image: ``$ADAIN_JAX_MAX_PIXELS``, default
    ``DEFAULT_MAX_PIXELS`` (100 MP: 1.2 GB as float32 RGB).

    Raises:
      ImageError: the variable is not a positive integer.
    """
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise ImageError(f"{MAX_PIXELS_ENV}={text[:40]!r}: expected a positive number of pixels")
    return value


def check_pixels(
    where: str | os.PathLike,
    height: int,
    width: int,
    limit: int | None = None,
    *,
    what: str = "image is",
    setting: str = f"set {MAX_PIXELS_ENV} to raise it",
) -> None:
    """Raise ``ImageError`` (one line naming ``where``) if ``height x width`` exceeds ``limit``
    pixels (default ``pixel_limit()``); called before anything of that size is allocated.
    ``setting`` tells how to raise the limit."""
    limit = pixel_limit() if limit is None else limit
    if height * width > limit:
        raise ImageError(
            f"{shown_path(where)}: {what} {width}x{height} px ({height * width / 1e6:.1f} MP),"
            f" over the limit of {limit} pixels ({setting})"
        )


def _count_jpeg_scans(path: Path, limit: int) -> int:
    """Start-of-scan markers (``FF DA``) in the file, counted up to ``limit + 1``.

    Entropy-coded data stuffs every ``FF`` with ``00``, so the marker appears only where a scan
    starts (or inside an embedded thumbnail, which adds its own one or few).
    """
    count, tail = 0, b""
    with open(path, "rb") as f:
        while count <= limit:
            chunk = f.read(_SCAN_CHUNK)
            if not chunk:
                break
            data = tail + chunk
            count += data.count(b"\xff\xda")
            tail = data[-1:]
            if tail == b"\xff" and data.endswith(b"\xff\xda"):
                tail = b""
    return count


# ------------------------------------------------------------------------- finding
def find_images(
    root: str | os.PathLike, extensions: Sequence[str] = IMAGE_EXTENSIONS, what: str = "image"
) -> list[Path]:
    """Image files under ``root``, recursively, sorted.

    Files with one of ``extensions`` (lower case; matched in any case), by default
    ``IMAGE_EXTENSIONS`` (``what`` names them in messages); names starting with ``.`` (files and
    folders) skipped; symbolic links to files and to folders followed, but each real folder
    walked once (no loops, no duplicates).

    A subfolder that cannot be read is skipped with a warning.

    Raises:
      ImageError: ``root`` is missing, not a folder, unreadable, or holds no such file.
    """
    extensions = tuple(extensions)
    folder = Path(root)
    if why := files.folder_problem(folder):
        raise ImageError(f"{shown_path(folder)}: {why}")

    def unreadable(error: OSError) -> None:
        why = f"cannot read this directory ({error.strerror})"
        if error.filename == os.fspath(folder):
            raise ImageError(f"{shown_path(folder)}: {why}")
        warnings.warn(f"{shown_path(error.filename)}: {why}; its images are skipped", stacklevel=3)

    found = []
    seen = set()  # real paths of the folders walked: each once, so symlink loops end
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True, onerror=unreadable):
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
                and name.lower().endswith(extensions)
                and path.is_file()  # follows file symlinks; drops broken ones
            ):
                found.append(path)
    if not found:
        known = ", ".join(extensions)
        raise ImageError(f"{shown_path(folder)}: no {what} files ({known}) in this directory tree")
    return sorted(found)


# ------------------------------------------------------------------------- decoding
def open_image(
    path: str | os.PathLike,
    *,
    draft_size: int = 0,
    max_pixels: int | None = None,
    what: str = "image",
    setting: str = f"set {MAX_PIXELS_ENV} to raise it",
) -> Image.Image:
    """Open, fully decode and orient ``path`` (EXIF); the Pillow image in its own mode.

    Args:
      path: an image file, in one of ``READ_FORMATS`` (by content).
      draft_size: JPEG only (the training pipeline's speed option): when > 0, let the decoder
        downscale by 1/2, 1/4 or 1/8 in the DCT domain while the shorter side stays at least
        ``draft_size`` px. 0 decodes at full size.
      max_pixels: the bound on the decoded pixels (default ``pixel_limit()``), checked from
        the header before decoding; files over ``MAX_BYTES_PER_PIXEL`` bytes a pixel of it
        (+ 64 MiB) are refused unread.
      what: how messages name the file (``"image"``, ``"mask"``); ``setting``: how the message
        says to raise ``max_pixels``.

    Raises:
      ImageError: missing file, not an image or not an allowed format, truncated or corrupt,
        over the file-size, pixel or JPEG-scan bound, or empty; one line naming the file.
    """
    path = Path(path)
    shown = shown_path(path)
    try:
        files.require_file(path, "an image file")
    except OSError as e:
        raise ImageError(str(e)) from None
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ImageError(f"{shown}: cannot read ({e.strerror})") from None
    if size == 0:
        raise ImageError(f"{shown}: empty file (0 bytes), not an image")
    limit = pixel_limit() if max_pixels is None else max_pixels
    if size > MAX_BYTES_PER_PIXEL * limit + _METADATA_BYTES:  # (a sparse file of padding)
        raise ImageError(
            f"{shown}: {size / 2**20:.0f} MiB, more than an {what} of at most {limit} pixels "
            f"holds ({setting})"
        )
    if Image.MAX_IMAGE_PIXELS == _PILLOW_MAX_PIXELS and 2 * _PILLOW_MAX_PIXELS < limit:
        Image.MAX_IMAGE_PIXELS = limit  # a raised limit: Pillow's own refusal moves with it
    try:
        with reading(shown), Image.open(path, formats=READ_FORMATS) as img:
            if draft_size > 0 and img.format == "JPEG" and img.mode in ("RGB", "L"):
                height, width = resized_shape(img.height, img.width, draft_size)
                if height <= img.height and width <= img.width:
                    img.draft(img.mode, (width, height))
            check_pixels(path, img.height, img.width, limit, what=f"{what} is", setting=setting)
            if img.format in ("JPEG", "MPO"):
                scans = _count_jpeg_scans(path, MAX_JPEG_SCANS)
                if scans > MAX_JPEG_SCANS:
                    raise ImageError(
                        f"{shown}: JPEG with over {MAX_JPEG_SCANS} scans (a progressive-JPEG "
                        "scan bomb: each scan decodes the whole image again)"
                    )
            img.load()
            img = ImageOps.exif_transpose(img)
            img.load()
    except ImageError:
        raise
    except PermissionError as e:
        raise ImageError(f"{shown}: cannot read ({e.strerror})") from None
    except UnidentifiedImageError:
        known = ", ".join(READ_FORMATS)
        raise ImageError(
            f"{shown}: not an image in a supported format ({known}), or a damaged header"
        ) from None
    except Image.DecompressionBombError as e:
        # Pillow refuses from the header, above twice its own bound: with Pillow's default
        # bound always over ``limit``, so say so as ``check_pixels`` does.
        found = re.search(r"\((\d+) pixels\)", str(e))
        if found and int(found.group(1)) > limit:
            raise ImageError(
                f"{shown}: {what} is {int(found.group(1)) / 1e6:.1f} MP, over the limit of "
                f"{limit} pixels ({setting})"
            ) from None
        raise ImageError(f"{shown}: too large to decode safely ({e})") from None
    except MemoryError:
        raise ImageError(f"{shown}: out of memory decoding this {what}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        # Pillow reports truncated or corrupt data as OSError ("image file is truncated",
        # "broken data stream"), SyntaxError or ValueError.
        raise ImageError(f"{shown}: truncated or corrupt {what} ({one_line(e, 200)})") from None
    if img.width == 0 or img.height == 0:
        raise ImageError(f"{shown}: empty {what} ({img.width}x{img.height} px)")
    return img


def to_rgb_array(img: Image.Image) -> np.ndarray:
    """A decoded Pillow image as float32 RGB ``[H, W, 3]`` in [0, 1], one rule per mode.

    8-bit ``RGB`` as stored / 255; ``L`` and ``1`` repeated to three channels; ``P``, ``CMYK``,
    ``YCbCr``, ``LAB``, ``HSV`` by Pillow's conversion to RGB (ICC profiles are not applied);
    16/32-bit integer ``I;16``, ``I;16B``, ``I`` (16-bit PNGs open as ``I`` or ``I;16``): value
    / 65535, clipped to [0, 1], whatever the largest value; float ``F``: clipped to [0, 1] (not
    rescaled; NaN read as 0, with a warning). Transparency (``RGBA``, ``LA``, ``PA``, a
    palette's transparent index) is composited on white in float32, ``rgb * a + (1 - a)``, so
    transparent regions read as white paper, not as the colour stored under alpha 0.
    """
    mode = img.mode
    if mode == "P" and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in _TRANSPARENT_MODES:
        rgba = np.asarray(img.convert("RGBA"), np.float32) / 255.0
        rgb, alpha = rgba[..., :3], rgba[..., 3:]
        return (rgb * alpha + (1.0 - alpha)).astype(np.float32)
    if mode.startswith("I;16") or mode in ("I", "F"):
        gray = np.asarray(img, np.float32) / (1.0 if mode == "F" else 65535.0)
        if mode == "F" and (bad := int(np.count_nonzero(np.isnan(gray)))):
            # NaN (no data) would make the whole output NaN: a black image.
            warnings.warn(f"{bad} NaN pixels read as 0 (black)", stacklevel=2)
            gray = np.nan_to_num(gray, nan=0.0)
        return np.repeat(np.clip(gray, 0.0, 1.0)[..., None], 3, axis=-1)
    if mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, np.float32) / 255.0


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float ``[..., 3]`` in [0, 1] to uint8: clipped, rounded to nearest (half to even); the
    package's only float -> 8-bit conversion (training stores its crops with it)."""
    return np.round(np.clip(np.asarray(image, np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


# ------------------------------------------------------------------------- geometry
def resized_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """``(H, W)`` with the shorter side scaled to ``size`` (torchvision's ``Resize(size)``).

    The longer side is ``int(size * long / short)`` (truncated, at least 1); ``size`` 0 keeps
    the shape.
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

    Bilinear, antialiased (Pillow). ``box``: ``(left, top, right, bottom)`` of the source region
    to resample (Pillow's ``resize(box=...)``, training's random crops); ``None``: all of it.
    ``RGB``/``L``/``RGBA`` resize in Pillow's 8 bits (as the PyTorch port; RGBA premultiplied,
    then composited), other modes as float32 channels (16-bit precision kept), clipped to
    [0, 1].
    """
    if box is None and (height, width) == (img.height, img.width):
        return to_rgb_array(img)
    if img.mode in _PILLOW_RESIZED:
        return to_rgb_array(img.resize((width, height), Image.Resampling.BILINEAR, box=box))
    if box is not None:
        img, box = _crop_around(img, box, height, width)
    rgb = to_rgb_array(img)
    channels = [
        np.asarray(
            Image.fromarray(rgb[..., c]).resize((width, height), Image.Resampling.BILINEAR, box=box)
        )
        for c in range(3)
    ]
    return np.clip(np.stack(channels, -1), 0.0, 1.0).astype(np.float32)


def _crop_around(
    img: Image.Image, box: tuple[float, float, float, float], height: int, width: int
) -> tuple[Image.Image, tuple[float, float, float, float]]:
    """The part of ``img`` that resampling ``box`` to ``height x width`` reads (the box and the
    bilinear filter's reach beyond it), and the box in its coordinates: a float copy of a small
    window instead of the whole image (a palette image of 100 MP would otherwise become 1.2 GB
    of float32 per training crop)."""
    left, top, right, bottom = box
    reach_x = math.ceil(max(1.0, (right - left) / width)) + 2
    reach_y = math.ceil(max(1.0, (bottom - top) / height)) + 2
    x0, y0 = max(0, math.floor(left) - reach_x), max(0, math.floor(top) - reach_y)
    x1 = min(img.width, math.ceil(right) + reach_x)
    y1 = min(img.height, math.ceil(bottom) + reach_y)
    return img.crop((x0, y0, x1, y1)), (left - x0, top - y0, right - x0, bottom - y0)


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The centre ``size x size`` of ``[H, W, C]`` (``size = 0``: the shorter side's square).

    Offsets round as torchvision's ``CenterCrop`` does (``round``, half to even); a side
    shorter than ``size`` is kept whole.
    """
    height, width = image.shape[:2]
    size = size or min(height, width)
    size_h, size_w = min(size, height), min(size, width)
    top = int(round((height - size_h) / 2.0))
    left = int(round((width - size_w) / 2.0))
    return image[top : top + size_h, left : left + size_w]


def load_image(
    path: str | os.PathLike,
    size: int = 0,
    crop: bool = False,
    *,
    min_size: int = 0,
    max_pixels: int | None = None,
    setting: str = f"set {MAX_PIXELS_ENV} to raise it",
) -> np.ndarray:
    """Read an image file for stylization (inference and evaluation).

    Args:
      path: image file (see the module doc for formats and modes).
      size: shorter side in pixels after resizing; 0 keeps the original size.
      crop: then take the centre ``size x size`` square.
      min_size: raise if a side of the result is shorter; 0: no check. Callers pass the
        network's minimum, ``adain_jax.nn.names.MIN_IMAGE_SIZE`` (9 px; the network checks it
        too, ``nn.forward.check_image_size``): here it fails before any work.
      max_pixels: the bound on the resized image (default ``pixel_limit()``, which also bounds
        the decoded one), checked before resizing; ``setting`` says in the message how to
        raise it.

    Returns:
      float32 RGB ``[H, W, 3]`` in [0, 1].

    Raises:
      ImageError: missing file, not an image, truncated or corrupt data, an empty image, too
        small, or over a pixel bound; one line naming the file.
      ValueError: ``size`` < 0.
    """
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    path = Path(path)
    img = open_image(path)
    shape = resized_shape(img.height, img.width, size)
    if size:
        check_pixels(
            path, *shape, max_pixels, what=f"resized to {size} px, it would be", setting=setting
        )
    elif max_pixels is not None:
        check_pixels(path, *shape, max_pixels, setting=setting)
    try:
        with reading(shown_path(path)):  # converting a mode may warn too
            image = resize_rgb(img, *shape)
    except MemoryError:
        raise ImageError(f"{shown_path(path)}: out of memory resizing this image") from None
    if crop:
        image = center_crop(image, size)
    height, width = image.shape[:2]
    if min(height, width) < min_size:
        how = f" after resizing to {size}" if size else ""
        raise ImageError(
            f"{shown_path(path)}: too small for the network{how}: image is {height}x{width}; "
            f"each side must be at least {min_size} px"
        )
    return np.ascontiguousarray(image, np.float32)


# ------------------------------------------------------------------------- writing
class Protected:
    """Files that must not be overwritten (a job's inputs), each output checked in O(1): by
    resolved path and by ``(device, inode)`` (hard links, other spellings). Build it once per
    job; checking N outputs against M inputs is then N + M, not N x M."""

    def __init__(self, paths: Iterable[str | os.PathLike] = ()):
        self._resolved: set[Path] = set()
        self._ids: set[tuple[int, int]] = set()
        for path in paths:
            self.add(path)

    @staticmethod
    def _id(path: Path) -> tuple[int, int] | None:
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            return None
        return st.st_dev, st.st_ino

    def add(self, path: str | os.PathLike) -> None:
        """Protect ``path`` too."""
        path = Path(path)
        self._resolved.add(path.resolve())
        ident = self._id(path)
        if ident is not None:
            self._ids.add(ident)

    def __contains__(self, path: str | os.PathLike) -> bool:
        path = Path(path)
        if path.resolve() in self._resolved:
            return True
        ident = self._id(path)
        return ident is not None and ident in self._ids


def check_output_path(
    path: str | os.PathLike, inputs: Iterable[str | os.PathLike] | Protected = ()
) -> Path:
    """``path`` as a ``Path`` once checked that it can be written: a ``WRITE_FORMATS``
    extension, not one of ``inputs`` (a ``Protected`` built once per job, or any paths).

    Raises:
      ImageError: unknown extension, an input file, or a directory.
    """
    path = Path(path)
    shown = shown_path(path)
    if path.suffix.lower() not in WRITE_FORMATS:
        known = ", ".join(WRITE_FORMATS)
        if not path.suffix:
            raise ImageError(
                f"{shown}: output has no extension; use one of {known} (or end a directory with /)"
            )
        raise ImageError(
            f"{shown}: unknown output extension {describe(path.suffix)}; use one of {known}"
        )
    protected = inputs if isinstance(inputs, Protected) else Protected(inputs)
    if path in protected:
        raise ImageError(f"{shown}: is an input file; refusing to overwrite it")
    if path.is_dir():
        raise ImageError(f"{shown}: is a directory")
    return path


def save_image(
    path: str | os.PathLike,
    image: np.ndarray,
    inputs: Iterable[str | os.PathLike] | Protected = (),
) -> Path:
    """Write float RGB ``[H, W, 3]`` in [0, 1] as PNG or JPEG (quality 95), atomically
    (``adain_jax.io.files``); returns the ``Path``.

    The parent directory is created if missing. ``inputs`` are files that must not be
    overwritten.

    Raises:
      ImageError: unknown extension, ``path`` is an input or a directory, or the write failed.
      ValueError: ``image`` is not ``[H, W, 3]``.
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
        raise ImageError(f"{shown_path(path)}: cannot write ({one_line(e)})") from None
    return path
