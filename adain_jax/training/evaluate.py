"""Evaluate a decoder as the paper does: content and style losses averaged over every
(content, style) pair (the command: ``adain_jax.cli.evaluate``; the training loop's held-out
losses and sample grids).

Each pair is stylized with the weights' own encoder and decoder by the public ``adain_jax.stylize``
(alpha 1, clipped to [0, 1]: the image a user gets; any decoder variant, read from the params),
then measured with one fixed *loss encoder* (``--loss-vgg``; default: the weights' encoder) by
``losses.output_losses``, as in training. To compare two decoders trained with different
encoders, pass the same ``--loss-vgg`` to both runs.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
from jax import Array

import adain_jax
from adain_jax.io import images
from adain_jax.nn.models import DTYPES
from adain_jax.training import losses
from adain_jax.training.sources import (
    DataError,
    find_image_files,
    unreadable_reason,
    warn_unreadable,
)

DEFAULT_CHUNK = 8


class PairResults(NamedTuple):
    """Per-pair results, pairs ordered content-major (``i * n_styles + j``)."""

    content: np.ndarray  # float32 [P]
    style: np.ndarray  # float32 [P]
    outputs: np.ndarray  # float32 [P, s, s, 3] in [0, 1]


def load_eval_images(
    folder: str | os.PathLike, size: int, limit: int, paths: Sequence[Path] | None = None
) -> list[np.ndarray]:
    """The first ``limit`` images of ``folder`` (sorted, recursive) for fixed samples.

    Each: float32 ``[size, size, 3]`` RGB in [0, 1], shorter side resized to ``size`` then
    centre-cropped, as inference reads it (``images.load_image(path, size, crop=True)``).
    Unreadable files are skipped with a ``BadImageWarning``; raises ``DataError`` when none is
    readable. ``paths``: the folder's images when already found (``images.find_images``).
    """
    loaded = []
    for path in find_image_files(folder) if paths is None else paths:
        if len(loaded) >= limit:
            break
        try:
            loaded.append(images.load_image(path, size, crop=True))
        except Exception as e:  # noqa: BLE001 - skip like the training pipeline
            warn_unreadable(str(path), unreadable_reason(str(path), e))
    if not loaded:
        raise DataError(f"image folder {str(folder)!r} holds no readable image")
    return loaded


def all_pairs(
    contents: Sequence[np.ndarray], styles: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Every (content, style) pair, content-major: two ``[C * S, s, s, 3]`` arrays."""
    c_idx = np.repeat(np.arange(len(contents)), len(styles))
    s_idx = np.tile(np.arange(len(styles)), len(contents))
    return np.stack(contents)[c_idx], np.stack(styles)[s_idx]


@functools.partial(jax.jit, static_argnames="dtype")
def predict(
    params: dict, loss_encoder: dict, contents: Array, styles: Array, *, dtype: str = "float32"
) -> tuple[Array, Array, Array]:
    """``(content [P], style [P], outputs [P, s, s, 3])``: each pair's losses and stylization;
    ``contents``, ``styles``: float ``[P, s, s, 3]`` in [0, 1], one pair per row. Runs where its
    arguments live (the training loop: the live replicated state)."""
    compute = DTYPES[dtype]
    outputs = adain_jax.stylize(params, contents, styles, dtype=compute)

    def pair_losses(out, c, s):
        return losses.output_losses(loss_encoder, out[None], c[None], s[None], dtype=compute)

    content, style = jax.vmap(pair_losses)(outputs, contents, styles)
    return content, style, outputs


def evaluate_pairs(
    params: dict,
    loss_encoder: dict,
    contents: Sequence[np.ndarray],
    styles: Sequence[np.ndarray],
    *,
    chunk: int = DEFAULT_CHUNK,
    dtype: str = "float32",
    keep: int | None = None,
) -> PairResults:
    """Stylize and measure every (content, style) pair, ``chunk`` pairs at a time.

    Args:
      params: ``{"encoder", "decoder"}`` used to stylize.
      loss_encoder: the encoder params the losses are measured with.
      contents, styles: float ``[s, s, 3]`` images in [0, 1], all one size (a multiple of 8,
        at least 16).
      chunk: pairs per compiled call (the last chunk is padded: one compilation); the pairs
        are gathered per chunk, so memory does not grow with ``C x S``.
      keep: ``outputs`` holds the pairs of the first ``keep`` contents and styles only,
        content-major (``[min(C, keep) * min(S, keep), s, s, 3]``); ``None``: every pair.
    """
    n_c, n_s = len(contents), len(styles)
    keep_c, keep_s = (n_c, n_s) if keep is None else (min(n_c, keep), min(n_s, keep))
    total = n_c * n_s
    content, style, kept = [], [], []
    for start in range(0, total, chunk):
        rows = np.arange(start, min(start + chunk, total))
        padded = np.concatenate([rows, rows[:1].repeat(chunk - len(rows))])
        c_idx, s_idx = np.divmod(padded, n_s)
        pair_c = np.stack([contents[i] for i in c_idx])
        pair_s = np.stack([styles[j] for j in s_idx])
        lc, ls, outs = predict(params, loss_encoder, pair_c, pair_s, dtype=dtype)
        content.append(np.asarray(lc)[: len(rows)])
        style.append(np.asarray(ls)[: len(rows)])
        wanted = (c_idx[: len(rows)] < keep_c) & (s_idx[: len(rows)] < keep_s)
        if wanted.any():
            kept.append(np.asarray(outs)[: len(rows)][wanted])
    size = np.shape(contents[0])[0]
    outputs = np.concatenate(kept) if kept else np.zeros((0, size, size, 3), np.float32)
    return PairResults(np.concatenate(content), np.concatenate(style), outputs)
