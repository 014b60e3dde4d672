"""Writing a uint8 image as PNG, atomically (training's sample grids, the experiments'
figures); float images in [0, 1] go through ``adain_jax.io.images.save_image``."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from adain_jax.io import files


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write a uint8 ``[H, W, 3]`` image to ``path`` atomically (temp file + rename);
    raises ``OSError`` when the write fails."""
    with files.atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
