"""The networks' names and sizes that need no JAX: the command lines check their flags with these
before importing JAX (``adain_jax.nn.models`` re-exports them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

FEATURE_CHANNELS = 512
DOWNSAMPLE = 8  # relu4_1 is 1/8 of the input size (three ceil-mode pools)
MIN_IMAGE_SIZE = DOWNSAMPLE + 1  # px per side: relu4_1 must be at least 2x2 to reflect-pad it
DTYPE_NAMES = ("float32", "bfloat16")  # the compute dtypes (models.DTYPES maps them)

FUSIONS = ("adain", "concat")
NORMS = ("none", "batch", "instance")

# Tiling (adain_jax.controls.tiling): the encoder's margin around a window, the smallest window.
ENCODER_MARGIN = 48  # px, multiple of 8, > the 37 px receptive-field radius of relu4_1
MIN_TILE = 2 * ENCODER_MARGIN + 64  # smallest --max-tile: a 64 px interior


def known(*dims: Any) -> bool:
    """Whether every dimension is a Python int: not a symbolic one (``jax.export``) nor a traced
    one (a converter such as jax2onnx), which compare to symbols or tracers, not bools."""
    return all(isinstance(d, int) for d in dims)


def ceil_div(a: Any, b: Any) -> Any:
    """``ceil(a / b)`` of non-negative integers (ints, NumPy/JAX integer arrays or symbolic sizes).
    ``(a + b - 1) // b`` rather than ``-(-a // b)``: exporters lower integer division as truncation.
    """
    return (a + b - 1) // b


def round_up(a: Any, multiple: Any) -> Any:
    """The smallest multiple of ``multiple`` at or above ``a`` (``ceil_div``)."""
    return ceil_div(a, multiple) * multiple


def check_style_weights(weights: Sequence[float] | np.ndarray, num_styles: int) -> None:
    """The rule of style-mixing weights (``controls.normalize_weights`` normalises them, in
    float32): ``[num_styles]`` numbers, each 0 or within float32's range, >= 0, with a positive
    finite sum. Raises ``ValueError`` naming the rule; ``", got <values>"`` ends the text."""
    w = np.asarray(weights, np.float64)
    if w.ndim != 1:
        raise ValueError(f"style weights must be [K] ({num_styles} styles), got shape {w.shape}")
    if w.shape != (num_styles,):
        raise ValueError(f"got {w.size} style weights for {num_styles} styles")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
        raise ValueError(f"style weights must be >= 0 with a positive sum, got {w.tolist()}")
    # A weight that underflows float32 or a sum that overflows it would be 0/0 or inf/inf once
    # normalised (a black image).
    f32 = np.finfo(np.float32)
    if np.any((w != 0) & (w < f32.tiny)) or np.sum(w / f32.max) > 1:
        raise ValueError(
            f"style weights must be 0 or within float32's range ({f32.tiny:.3g} to "
            f"{f32.max:.3g}) with a finite sum, got {w.tolist()}"
        )


class DecoderVariant(NamedTuple):
    """A decoder of the paper's section 7.2; the default is the paper's model."""

    fusion: str = "adain"
    norm: str = "none"

    @property
    def in_channels(self) -> int:
        return 2 * FEATURE_CHANNELS if self.fusion == "concat" else FEATURE_CHANNELS

    def describe(self) -> str:
        dec = {"none": "Dec", "batch": "BNDec", "instance": "INDec"}[self.norm]
        return f"Enc-{'Concat' if self.fusion == 'concat' else 'AdaIN'}-{dec}"

    def check(self) -> DecoderVariant:
        if self.fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {self.fusion!r}; expected one of {FUSIONS}")
        if self.norm not in NORMS:
            raise ValueError(f"unknown decoder norm {self.norm!r}; expected one of {NORMS}")
        return self


PAPER = DecoderVariant()
