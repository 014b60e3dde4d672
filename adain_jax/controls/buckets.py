"""Size buckets: images of different sizes padded to one shape share one compilation.

Each image is padded at the bottom and right and the batch runs with each image's valid size
(``stylize_with_stats(..., sizes=...)``); the crop ``[:H, :W]`` of each output equals the
unpadded result up to float rounding.
"""

from __future__ import annotations

import numpy as np

from adain_jax.nn.names import round_up


def pad_to_bucket(image: np.ndarray, bucket: int) -> np.ndarray:
    """Reflect-pad ``[H, W, C]`` at the bottom and right up to multiples of ``bucket`` px."""
    h, w = image.shape[:2]
    hb, wb = round_up(h, bucket), round_up(w, bucket)
    if (hb, wb) == (h, w):
        return image
    return np.pad(image, ((0, hb - h), (0, wb - w), (0, 0)), mode="symmetric")
