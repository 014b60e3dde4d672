"""The stylize stage: every call into ``adain_jax.controls`` made by ``infer.py``.

Every call follows the public API's order (content first, then style(s)/stats, ``alpha``, then
keyword-only options). The batch back-ends call ``controls.transfer.stylize_checked``
(``stylize_with_stats`` without its per-call checks: the plan's mask was checked when it was read),
with ``sizes=`` for padded batches.

Batches (directory buckets, batch jobs, video frames) use every local device: each call's images
are split over a 1-D mesh ``("data",)`` of ``jax.local_devices()`` (``P("data")``), the params
replicated (``P()``), the batch padded to a multiple of the device count. ``jax.jit`` follows the
inputs' shardings, so the one compiled ``stylize_checked`` runs data-parallel. Tiles stay on one
device.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from adain_jax.controls import (
    StyleStats,
    encode_style,
    encode_style_padded,
    luminance_inputs,
    match_color,
    pad_to_bucket,
    recombine_luminance,
    stack_stats,
)
from adain_jax.controls.temporal import ContentStats, stylize_smoothed
from adain_jax.controls.tiling import stylize_tiled
from adain_jax.controls.transfer import stylize_checked
from adain_jax.inference.plan import Plan
from adain_jax.nn.models import decoder_variant
from adain_jax.nn.names import round_up

Finish = Callable[[np.ndarray], np.ndarray]


def encode_styles(params: dict, styles: Sequence[np.ndarray], dtype, bucket: int = 0) -> StyleStats:
    """K style images (each float ``[Hs, Ws, 3]`` in [0, 1]) -> ``StyleStats`` with K styles.

    ``bucket`` > 0: each style is padded to multiples of ``bucket`` px and encoded with its valid
    size (``encode_style_padded``, the same statistics), so styles of other sizes in one bucket
    share one compilation; 0: each style at its own size."""
    if bucket <= 0:
        return stack_stats([encode_style(params, s, dtype=dtype) for s in styles])
    padded = [(pad_to_bucket(s, bucket), np.array(s.shape[:2], np.int32)) for s in styles]
    return stack_stats([encode_style_padded(params, p, hw, dtype=dtype) for p, hw in padded])


def preserve_color(
    mode: str | None, content: np.ndarray, styles: Sequence[np.ndarray]
) -> tuple[np.ndarray, list[np.ndarray], Finish]:
    """Colour preservation (paper section 7.3), THE one place it is applied.

    Returns what the network sees (content, style images) and how its output becomes the result:
    ``coral`` recolours each style to the content's RGB mean and covariance; ``luminance``
    stylizes the luminance channel (grey RGB) and puts back the content's chrominance; ``None``
    changes nothing. Images are float ``[H, W, 3]`` in [0, 1].
    """
    if mode == "coral":
        return content, [np.asarray(match_color(content, s)) for s in styles], lambda out: out
    if mode == "luminance":
        pairs = [luminance_inputs(content, s) for s in styles]
        return (
            np.asarray(pairs[0][0]),
            [np.asarray(p[1]) for p in pairs],
            lambda out: np.asarray(recombine_luminance(out, content)),
        )
    return content, list(styles), lambda out: out


@functools.cache
def local_mesh() -> Mesh:
    """A 1-D mesh ``("data",)`` over this process's devices (``jax.local_devices()``)."""
    return Mesh(np.array(jax.local_devices()), ("data",))


def replicate(params: dict) -> dict:
    """``params`` replicated over ``local_mesh()`` (``P()``); a tree already placed so is returned
    as it is, without a copy (``jax.device_put``), so callers replicate once."""
    mesh = local_mesh()
    return params if mesh.size == 1 else jax.device_put(params, NamedSharding(mesh, P()))


def _calls(
    take: int, padded_size: Callable[[int], int], *arrays: np.ndarray
) -> Iterator[tuple[int, tuple[np.ndarray, ...]]]:
    """``arrays`` (one leading item axis) in calls of ``take`` items, each call's items repeating
    its last one up to ``padded_size(real)`` (few compiled shapes; a multiple of the local
    devices), split over ``local_mesh()`` (``P("data")``). Yields ``(real, arrays)``: outputs past
    ``real`` are padding."""
    mesh = local_mesh()
    split = NamedSharding(mesh, P("data"))
    for start in range(0, len(arrays[0]), take):
        chunk = [a[start : start + take] for a in arrays]
        real = len(chunk[0])
        if padded_size(real) > real:
            more = padded_size(real) - real
            chunk = [np.concatenate([c, np.repeat(c[-1:], more, axis=0)]) for c in chunk]
        yield real, tuple(chunk if mesh.size == 1 else (jax.device_put(c, split) for c in chunk))


def _options(plan: Plan) -> dict:
    """The keyword options every back-end gets: the plan's style weights (``None`` under a mask,
    ``plan.resolve_weights``; checked by ``JobOptions``' flags), mask labels (checked when read:
    ``run.load_mask``) and compute dtype."""
    return {"weights": plan.weights, "mask": plan.labels, "dtype": plan.dtype}


def stylize_tiled_one(
    params: dict, content: np.ndarray, stats: StyleStats, plan: Plan
) -> np.ndarray:
    """One large content ``[H, W, 3]`` in overlapping windows of ``plan.max_tile`` px."""
    if decoder_variant(params["decoder"]).norm == "instance":
        h, w = content.shape[:2]
        raise ValueError(
            f"{w}x{h} px is larger than one tile ({plan.max_tile} px, --max-tile) and an "
            "instance-norm decoder cannot be tiled (its statistics span the whole image); "
            "--max-tile 0 stylizes it whole, or lower --content-size"
        )
    return stylize_tiled(
        params, content, stats, plan.alpha, max_tile=plan.max_tile, **_options(plan)
    )


def stylize_exact(params: dict, contents: np.ndarray, stats: StyleStats, plan: Plan) -> np.ndarray:
    """Same-size contents ``[N, H, W, 3]``, unpadded: calls of at most ``plan.per_call(H, W)``
    images (rounded up to a multiple of the local devices, split over them), the last one padded
    by repeating its last image (one compiled shape)."""
    n, h, w, _ = contents.shape
    step = round_up(min(n, plan.per_call(h, w)), local_mesh().size)
    placed, options = replicate(params), _options(plan)
    outs = [
        np.asarray(stylize_checked(placed, chunk, stats, plan.alpha, **options))[:real]
        for real, (chunk,) in _calls(step, lambda _: step, np.asarray(contents, np.float32))
    ]
    return np.concatenate(outs)


def stylize_exact_smoothed(
    params: dict,
    frames: np.ndarray,
    stats: StyleStats,
    plan: Plan,
    state: ContentStats | None,
    decay: float,
) -> tuple[np.ndarray, ContentStats]:
    """``stylize_exact`` for consecutive video frames ``[N, H, W, 3]`` with content statistics
    smoothed over time (``controls.temporal.stylize_smoothed``): the same calls, in order, each
    continuing from the state the previous one left.

    Returns ``(images [N, H, W, 3], state)``: the state after the last real frame, for the next
    batch of the clip (``None`` starts a clip).
    """
    n, h, w, _ = frames.shape
    step = round_up(min(n, plan.per_call(h, w)), local_mesh().size)
    placed, outs = replicate(params), []
    for real, (chunk,) in _calls(step, lambda _: step, np.asarray(frames, np.float32)):
        out, smoothed = stylize_smoothed(
            placed, chunk, stats, plan.alpha, state, decay=decay, **_options(plan)
        )
        state = smoothed.at(real - 1)  # padding frames come after it: they cannot leak in
        outs.append(np.asarray(out)[:real])
    return np.concatenate(outs), state


def stylize_padded(
    params: dict, contents: Sequence[np.ndarray], stats: StyleStats, plan: Plan
) -> list[np.ndarray]:
    """Contents of one size bucket (each ``[H_i, W_i, 3]``), reflect-padded to the bucket shape and
    run with their valid sizes (exact); calls of at most ``plan.batch_size`` images and
    ``plan.max_tile**2`` pixels, padded to a power of two images (and a multiple of the local
    devices, split over them) so few shapes compile. No mask here (``plan.backend_for`` never picks
    it with one)."""
    padded = np.stack([pad_to_bucket(c, plan.bucket) for c in contents]).astype(np.float32)
    sizes = np.array([c.shape[:2] for c in contents], np.int32)
    per_call = min(plan.batch_size, plan.per_call(*padded.shape[1:3]))
    size = lambda real: round_up(1 << (real - 1).bit_length(), local_mesh().size)  # noqa: E731
    placed, options = replicate(params), _options(plan)
    outs = []
    for real, (batch, valid) in _calls(per_call, size, padded, sizes):
        out = stylize_checked(placed, batch, stats, plan.alpha, sizes=valid, **options)
        outs.append(np.asarray(out)[:real])
    out = np.concatenate(outs)
    return [out[i, : c.shape[0], : c.shape[1]] for i, c in enumerate(contents)]
