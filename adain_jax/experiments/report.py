"""The section 7.1 comparison (``compare``) and the section 7.2 training curves (``curves``).

``compare`` stylizes every content x style pair with every method and measures the outputs with
ONE loss encoder:

* ``style_loss``: the paper's (sum over relu1_1..relu4_1 of MSE(means) + MSE(stds));
* ``content_loss_target``: MSE(f(out) at relu4_1, AdaIN(f(c), f(s))) (the paper's);
* ``content_loss_fc``: MSE(f(out) at relu4_1, f(c) at relu4_1) (Gatys et al.'s);
* ``lpips_content``: LPIPS (VGG) of the output to the content, with the ``quality`` extra
  (``adain_jax.experiments.perceptual``); absent without it;

each a mean over pairs with its ``_std``. Methods (docs/experiments.md): trained runs or weight
folders of any decoder variant (``adain_method``), the optimization baseline after each step count
(``optimization_methods``), the reference rows ``content image`` and ``style image`` (the style
resized bilinearly to the content's size) and ``peers`` (their ``notes`` say how they ran). Times
per image exclude compilation (``compile_seconds``, apart).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from adain_jax.controls.transfer import render, stylize
from adain_jax.experiments import optimize as opt_lib
from adain_jax.experiments import perceptual, plots
from adain_jax.io import files
from adain_jax.io import images as image_io
from adain_jax.nn import forward, ops
from adain_jax.training import losses

CONTENT_ROW, STYLE_ROW = "content image", "style image"
METRICS = ("style_loss", "content_loss_target", "content_loss_fc")


@jax.jit
def measure(loss_encoder: dict, out: jax.Array, content: jax.Array, style: jax.Array):
    """``(style, content vs target, content vs f(c))`` float32 scalars of one output ``[1, H, W,
    3]`` for its pair (``[1, H, W, 3]``, ``[1, Hs, Ws, 3]``)."""
    enc = {"encoder": loss_encoder}
    o, c, s = (forward.encode(enc, x) for x in (out, content, style))
    target = ops.adain(c.relu4_1, s.relu4_1)
    return (
        losses.style_loss(o, s),
        losses.content_loss(o.relu4_1, target),
        losses.content_loss(o.relu4_1, c.relu4_1),
    )


@jax.jit
def _from_style_features(params: dict, content: jax.Array, style_feat: jax.Array) -> jax.Array:
    """Stylize ``[1, H, W, 3]`` given the style's relu4_1 (any decoder variant)."""
    return render(params, content, lambda feat, _: forward.fuse(params, feat, style_feat))


@jax.jit
def _style_features(params: dict, style: jax.Array) -> jax.Array:
    return forward.encode(params, style).relu4_1


def _timed(fn: Callable[[], jax.Array]) -> tuple[jax.Array, float]:
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    return out, time.perf_counter() - start


Method = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, dict[str, float]]]


def adain_method(params: dict) -> Method:
    """A feed-forward method: ``(content, style) -> (output, times)``: ``seconds`` (with the style's
    encoding), ``seconds_without_style_encoding`` (style relu4_1 given) and ``compile_seconds``
    (each new shape is run once untimed first)."""
    seen: set = set()

    def run(content: np.ndarray, style: np.ndarray):
        c, s = jnp.asarray(content)[None], jnp.asarray(style)[None]
        key = (c.shape, s.shape)
        compile_s = 0.0
        if key not in seen:
            seen.add(key)
            t0 = time.perf_counter()
            jax.block_until_ready(stylize(params, c, s))
            jax.block_until_ready(_from_style_features(params, c, _style_features(params, s)))
            compile_s = time.perf_counter() - t0
        out, with_style = _timed(lambda: stylize(params, c, s))
        feat = jax.block_until_ready(_style_features(params, s))
        _, without = _timed(lambda: _from_style_features(params, c, feat))
        times = {"seconds": with_style, "seconds_without_style_encoding": without}
        return np.asarray(out[0]), {**times, "compile_seconds": compile_s}

    return run


def optimization_methods(
    encoder: dict, counts: Sequence[int], settings: opt_lib.Settings
) -> dict[int, Method]:
    """The optimization baseline after each of ``counts`` steps, one method per count, sharing ONE
    trajectory per pair: each pair is optimized once to ``max(counts)`` steps (in compiled chunks
    of ``gcd(counts)`` steps) and the image is kept at every count, so the 10-step image is the
    500-step run's 10th iterate. A count's ``seconds`` is the trajectory's wall time up to it;
    compilation (an untimed first chunk per shape) is reported apart, on the smallest count's
    row."""
    counts = sorted(set(counts))
    chunk = math.gcd(*counts)
    warmed: set = set()
    cache: dict[bytes, dict[int, tuple[np.ndarray, float]]] = {}
    compile_s: dict[bytes, float] = {}

    def trajectory(content: np.ndarray, style: np.ndarray) -> bytes:
        key = hashlib.sha256(
            repr((content.shape, style.shape)).encode() + content.tobytes() + style.tobytes()
        ).digest()  # by value: every method sees the same pairs, one at a time
        if key in cache:
            return key
        first_s = None
        if (content.shape, style.shape) not in warmed:
            warmed.add((content.shape, style.shape))
            _, first_s = _timed(
                lambda: opt_lib.optimize(
                    encoder, content, style, steps=chunk, settings=settings, chunk=chunk
                )[0]
            )
        snaps: dict[int, tuple[np.ndarray, float]] = {}
        start = time.perf_counter()

        def keep(done: int, _log: jax.Array, image: jax.Array) -> None:
            if done in counts or done == chunk:
                snaps[done] = (np.asarray(image), time.perf_counter() - start)  # blocks

        opt_lib.optimize(
            encoder,
            content,
            style,
            steps=counts[-1],
            settings=settings,
            chunk=chunk,
            on_chunk=keep,
        )
        compile_s[key] = 0.0 if first_s is None else max(first_s - snaps[chunk][1], 0.0)
        cache[key] = snaps
        return key

    def method(n: int) -> Method:
        def run(content: np.ndarray, style: np.ndarray):
            key = trajectory(content, style)
            image, seconds = cache[key][n]
            return image, {
                "seconds": seconds,
                "compile_seconds": compile_s[key] if n == counts[0] else 0.0,
            }

        return run

    return {n: method(n) for n in counts}


def reference_method(which: str) -> Method:
    def run(content: np.ndarray, style: np.ndarray):
        if which == CONTENT_ROW:
            return content, {}
        pil = Image.fromarray(image_io.to_uint8(style))
        return image_io.resize_rgb(pil, *content.shape[:2]), {}

    return run


def evaluate_method(
    name: str,
    method: Method,
    loss_encoder: dict,
    contents: Sequence[np.ndarray],
    styles: Sequence[np.ndarray],
    size: int,
) -> tuple[dict, list[np.ndarray]]:
    """One results row (means/stds over all pairs, mean times) and the outputs, content-major."""
    values: dict[str, list[float]] = {m: [] for m in METRICS}
    times: dict[str, list[float]] = {}
    outputs = []
    for c in contents:
        for s in styles:
            out, t = method(c, s)
            outputs.append(out)
            got = measure(
                loss_encoder, jnp.asarray(out)[None], jnp.asarray(c)[None], jnp.asarray(s)[None]
            )
            for key, v in zip(METRICS, got, strict=True):
                values[key].append(float(v))
            for key, v in t.items():
                times.setdefault(key, []).append(v)
    row: dict = {"method": name, "size": size, "pairs": len(outputs)}
    if perceptual.available():  # LPIPS to the content; one pair at a time (sizes differ)
        values["lpips_content"] = [
            float(perceptual.lpips_distance(out[None], contents[i // len(styles)][None])[0])
            for i, out in enumerate(outputs)  # content-major
        ]
    for key, vs in values.items():
        row[key], row[key + "_std"] = float(np.mean(vs)), float(np.std(vs))
    for key, vs in times.items():
        row[key] = float(np.sum(vs)) if key == "compile_seconds" else float(np.mean(vs))
    row.setdefault("seconds", None)
    return row, outputs


def write_report(out_dir: Path, rows: list[dict], grid: np.ndarray | None) -> None:
    """``results.json``, ``report.md``, ``losses.png`` and (given) ``grid.png``; rows with ``notes``
    get a line each under the table."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with files.atomic_open(out_dir / "results.json") as f:
        json.dump(rows, f, indent=2)
        f.write("\n")
    lines = [
        "# AdaIN comparison (paper section 7.1)",
        "",
        "Losses measured with one loss encoder; means over all content x style pairs "
        "(+- std). content (target): vs AdaIN(f(c), f(s)); content (f(c)): vs f(c). "
        "Times per image exclude compilation. LPIPS (VGG): with the quality extra.",
        "",
        "| method | size | style loss | content loss (target) | content loss (f(c)) "
        "| LPIPS to content | s / image | s / image w/o style enc. | compile s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    fmt = lambda v: "-" if v is None else f"{v:.4g}"  # noqa: E731
    for r in rows:
        cells = [r["method"], str(r["size"] or "orig")]
        cells += [
            f"{r[m]:.4g} +- {r[m + '_std']:.3g}" if m in r else "-"
            for m in (*METRICS, "lpips_content")
        ]
        cells += [
            fmt(r.get(k)) for k in ("seconds", "seconds_without_style_encoding", "compile_seconds")
        ]
        lines.append("| " + " | ".join(cells) + " |")
    noted = {r["method"]: r["notes"] for r in rows if r.get("notes")}
    if noted:
        lines += ["", *(f"- {name}: {note}." for name, note in noted.items())]
    with files.atomic_open(out_dir / "report.md") as f:
        f.write("\n".join(lines) + "\n")
    plots.loss_scatter(out_dir / "losses.png", rows)
    if grid is not None:
        plots.save_png(out_dir / "grid.png", grid)


def compare(
    contents: dict[int, list[np.ndarray]],
    styles: dict[int, list[np.ndarray]],
    methods: list[tuple[str, Callable[[], Method]]],
    loss_encoder: dict,
    out_dir: str | os.PathLike,
    log: Callable[[str], None] = print,
    notes: dict[str, str] | None = None,
) -> list[dict]:
    """Evaluate every method at every size (``contents[size]``/``styles[size]``: the images at
    that size), write the report files, return the rows (``notes``: method name -> how it was
    run, each of its rows' ``notes``)."""
    rows, grid_cols, names = [], [], []
    first = next(iter(contents))
    for size in contents:
        for name, make in methods:
            row, outs = evaluate_method(
                name, make(), loss_encoder, contents[size], styles[size], size
            )
            if notes and name in notes:
                row["notes"] = notes[name]
            rows.append(row)
            log(
                f"{name} @ {size or 'orig'}: style {row['style_loss']:.4g}, content "
                f"{row['content_loss_target']:.4g}"
            )
            if size == first:
                n_styles = len(styles[size])
                grid_cols.append([outs[i * n_styles] for i in range(len(contents[size]))])
                names.append(name)
    grid = plots.grid(contents[first], grid_cols, names)
    write_report(Path(out_dir), rows, grid)
    return rows
