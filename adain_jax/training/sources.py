"""Where training images come from: a folder or a TFDS data source, read by index.

A reader has ``len()``, ``name(record)`` and ``load(record, draft) -> PIL.Image``; ``open_source``
picks one. Images are read by ``adain_jax.io.images`` exactly as for inference.
``random_resized_crop`` cuts the training window from one image.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from adain_jax.io import images
from adain_jax.io.messages import one_line, shown_path
from adain_jax.training.config import is_tfds, parse_tfds_spec


class DataError(ValueError):
    """A data source is missing, empty, unreadable or misconfigured."""


class BadImageWarning(UserWarning):
    """An image could not be decoded and was skipped (or replaced by the next readable one)."""


def unreadable_reason(name: str, error: BaseException) -> str:
    """Why the file ``name`` was skipped, one line: ``error``'s text without the file name it
    starts with (an ``ImageError`` reads ``"<file>: <reason>"``), else led by its type name."""
    text = one_line(error)
    for shown in (shown_path(name), name):
        if text.startswith(f"{shown}: "):
            return text[len(shown) + 2 :]
    return f"{type(error).__name__}: {text}"


def warn_unreadable(name: str, reason: str) -> None:
    """The ``BadImageWarning`` for a skipped file, control characters escaped (``shown_path``).
    Always warned from this line, so Python's default filter shows each (file, reason) once
    per process, however many readers (held-out samples, pipeline) meet it."""
    message = shown_path(f"skipping unreadable image {name} ({reason})")
    warnings.warn(message, BadImageWarning, stacklevel=1)


class FolderReader:
    """Records are indices into a sorted list of image files."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.paths = find_image_files(root)
        self.description = f"image folder {str(root)!r}"

    def __len__(self) -> int:
        return len(self.paths)

    def name(self, record: int) -> str:
        return str(self.paths[record])

    def load(self, record: int, draft: int = 0) -> Image.Image:
        """The image, a JPEG decoded at 1/2, 1/4 or 1/8 scale down to ``draft`` (0: full)."""
        return images.open_image(self.paths[record], draft_size=draft)


def find_image_files(root: str | os.PathLike) -> list[Path]:
    """``images.find_images``, its error as a ``DataError``."""
    try:
        return images.find_images(root)
    except images.ImageError as e:
        reason = str(e).removeprefix(f"{Path(root)}: ")
        raise DataError(f"image folder {str(root)!r}: {reason}") from None


def target_shape(height: int, width: int, image_size: int, min_size: int) -> tuple[int, int]:
    """``(H, W)`` an image is resized to before cropping (``images.resized_shape``): the shorter
    side becomes ``image_size`` (0: the original size), but at least ``min_size`` (the crop)."""
    shorter = max(image_size or min(height, width), min_size)
    return images.resized_shape(height, width, shorter)


def random_resized_crop(
    image: Image.Image, image_size: int, crop: int, rng: np.random.Generator
) -> np.ndarray:
    """A uniformly random ``crop x crop`` window of the image resized to ``target_shape``.

    ``uint8 [crop, crop, 3]`` (``images.to_uint8`` of ``images.resize_rgb``). Only the window is
    resampled (``resize_rgb`` with a source ``box``), which equals cropping the fully resized
    image up to +-1 rounding on rare pixels, several times faster.
    """
    th, tw = target_shape(image.height, image.width, image_size, crop)
    top = int(rng.integers(0, th - crop + 1))
    left = int(rng.integers(0, tw - crop + 1))
    if (th, tw) == (image.height, image.width):
        window = images.resize_rgb(image.crop((left, top, left + crop, top + crop)), crop, crop)
    else:
        sx, sy = image.width / tw, image.height / th
        box = (
            left * sx,
            top * sy,
            min((left + crop) * sx, image.width),
            min((top + crop) * sy, image.height),
        )
        window = images.resize_rgb(image, crop, crop, box=box)
    return images.to_uint8(window)


def array_to_image(array: np.ndarray) -> Image.Image:
    """A ``PIL.Image`` (``L``, ``RGB`` or ``RGBA``) from a decoded uint8 ``[H, W]`` or
    ``[H, W, 1|3|4]`` array (TFDS's ``image`` feature); read like a file's pixels. Raises
    ``ValueError`` for another dtype or shape."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {array.dtype}")
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4))):
        raise ValueError(f"expected an [H, W, 1|3|4] image, got shape {array.shape}")
    return Image.fromarray(np.ascontiguousarray(array))


class TfdsReader:
    """Records are indices into a ``tfds.data_source``; images come from ``"image"``."""

    def __init__(self, spec: str) -> None:
        name, split = parse_tfds_spec(spec)
        try:
            import tensorflow_datasets as tfds
        except ImportError as e:
            raise DataError(
                f"{spec!r} needs tensorflow-datasets: pip install 'adain-jax[tfds]'"
            ) from e
        try:
            self.source = tfds.data_source(name, split=split)
        except Exception as e:  # noqa: BLE001 - TFDS raises many types; report one line
            raise DataError(f"cannot open TFDS source {spec!r}: {e}") from e
        self.description = f"TFDS source {spec!r}"
        if len(self.source) == 0:
            raise DataError(f"{self.description} is empty")
        self.spec = spec

    def __len__(self) -> int:
        return len(self.source)

    def name(self, record: int) -> str:
        return f"{self.spec}[{record}]"

    def load(self, record: int, draft: int = 0) -> Image.Image:
        example = self.source[record]
        if "image" not in example:
            raise DataError(f"{self.description} has no 'image' feature")
        return array_to_image(example["image"])


def open_source(source: Any) -> FolderReader | TfdsReader:
    if isinstance(source, str) and is_tfds(source):
        return TfdsReader(source)
    if not isinstance(source, str | os.PathLike):
        raise DataError(f"a data source must be a folder or 'tfds:NAME[:SPLIT]', got {source!r}")
    return FolderReader(source)
