"""Figures drawn with Pillow only (no matplotlib): the loss scatter of ``compare`` (the paper's
figure: style vs content loss, log axes, optimization as a curve over its steps), training loss
curves (``curves``), and thumbnail grids."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from adain_jax.io import images as image_io
from adain_jax.io.png import write_png as save_png

COLORS = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
]
W, H, PAD = 720, 480, 60
THUMB = 96


def _log_axis(values: Sequence[float]) -> tuple[float, float]:
    logs = [math.log10(v) for v in values if v > 0 and math.isfinite(v)] or [0.0]
    lo, hi = math.floor(min(logs)), math.ceil(max(logs))
    return lo, hi if hi > lo else lo + 1


class _Axes:
    """Log-log (or log-y) axes on a white canvas with decade ticks."""

    def __init__(self, xs, ys, xlabel: str, ylabel: str, title: str, log_x: bool = True):
        self.img = Image.new("RGB", (W, H), "white")
        self.draw = ImageDraw.Draw(self.img)
        self.log_x = log_x
        self.x0, self.x1 = _log_axis(xs) if log_x else (min(xs), max(max(xs), min(xs) + 1))
        self.y0, self.y1 = _log_axis(ys)
        d = self.draw
        d.rectangle([PAD, PAD // 2, W - PAD // 2, H - PAD], outline="black")
        d.text((W // 2 - 60, H - 25), xlabel, fill="black")
        d.text((5, 8), f"{title}   (y: {ylabel}, log10)", fill="black")
        for e in range(int(self.y0), int(self.y1) + 1):
            y = self.py(10.0**e)
            d.line([PAD - 4, y, PAD, y], fill="black")
            d.text((5, y - 6), f"1e{e}", fill="black")
        ticks = range(int(self.x0), int(self.x1) + 1) if log_x else np.linspace(self.x0, self.x1, 5)
        for e in ticks:
            x = self.px(10.0**e if log_x else e)
            d.line([x, H - PAD, x, H - PAD + 4], fill="black")
            d.text((x - 12, H - PAD + 6), f"1e{e}" if log_x else f"{e:.0f}", fill="black")

    def px(self, v: float) -> float:
        t = math.log10(max(v, 1e-30)) if self.log_x else v
        return PAD + (t - self.x0) / (self.x1 - self.x0) * (W - 1.5 * PAD)

    def py(self, v: float) -> float:
        t = math.log10(max(v, 1e-30))
        return H - PAD - (t - self.y0) / (self.y1 - self.y0) * (H - 1.5 * PAD)

    def legend(self, i: int, label: str, color) -> None:
        y = PAD // 2 + 8 + 14 * i
        self.draw.rectangle([W - 250, y, W - 242, y + 8], fill=color)
        self.draw.text((W - 236, y - 2), label[:36], fill="black")


def loss_scatter(path: str | os.PathLike, rows: Sequence[dict]) -> None:
    """Style loss (y) vs content loss vs the AdaIN target (x), log axes: one marker per method and
    size; rows named ``optimization OBJECTIVE (N steps)`` joined as a curve."""
    xs = [r["content_loss_target"] for r in rows]
    ys = [r["style_loss"] for r in rows]
    ax = _Axes(xs, ys, "content loss (vs AdaIN target, log10)", "style loss", "losses")
    groups: dict[str, list[dict]] = {}
    for r in rows:
        key = r["method"].split(" (")[0] if r["method"].startswith("optimization") else r["method"]
        groups.setdefault(f"{key} @ {r['size'] or 'orig'}", []).append(r)
    for i, (label, rs) in enumerate(groups.items()):
        color = COLORS[i % len(COLORS)]
        pts = [(ax.px(r["content_loss_target"]), ax.py(r["style_loss"])) for r in rs]
        if len(pts) > 1:
            ax.draw.line(pts, fill=color, width=2)
        for x, y in pts:
            ax.draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=color)
        ax.legend(i, label, color)
    save_png(path, np.asarray(ax.img))


def loss_curves(path: str | os.PathLike, runs: dict[str, list[dict]]) -> None:
    """Training curves: ``loss/content`` (solid) and ``loss/style`` (thin) per run vs step."""
    pts = [
        (r["step"], r[k])
        for recs in runs.values()
        for r in recs
        for k in ("loss/content", "loss/style")
    ]
    if not pts:
        raise ValueError("no training losses to plot")
    steps, values = zip(*pts, strict=True)
    ax = _Axes(
        steps, values, "step", "loss", "training losses (thick: content, thin: style)", log_x=False
    )
    for i, (label, recs) in enumerate(runs.items()):
        color = COLORS[i % len(COLORS)]
        for key, width in (("loss/content", 3), ("loss/style", 1)):
            line = [(ax.px(r["step"]), ax.py(r[key])) for r in recs]
            if len(line) > 1:
                ax.draw.line(line, fill=color, width=width)
        ax.legend(i, label, color)
    save_png(path, np.asarray(ax.img))


def _thumb(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    scale = THUMB / max(h, w)
    pil = Image.fromarray(image_io.to_uint8(image))
    small = image_io.resize_rgb(pil, max(1, round(h * scale)), max(1, round(w * scale)))
    cell = np.ones((THUMB, THUMB, 3), np.float32)
    cell[: small.shape[0], : small.shape[1]] = small
    return cell


def grid(
    contents: Sequence[np.ndarray], columns: Sequence[Sequence[np.ndarray]], names
) -> np.ndarray:
    """uint8 grid: one row per content (first column: the content), one column per method
    (``columns[m][i]``: method m's output for content i); 96 px thumbnails with the method names in
    a header row."""
    n_rows, n_cols = len(contents), 1 + len(columns)
    canvas = np.ones(((n_rows + 1) * THUMB, n_cols * THUMB, 3), np.float32)
    for i, content in enumerate(contents):
        cells = [content, *(col[i] for col in columns)]
        for j, cell in enumerate(cells):
            canvas[(i + 1) * THUMB : (i + 2) * THUMB, j * THUMB : (j + 1) * THUMB] = _thumb(cell)
    img = Image.fromarray(image_io.to_uint8(canvas))
    draw = ImageDraw.Draw(img)
    for j, name in enumerate(["content", *names]):
        words = name.split(" ")
        for k in range(0, min(len(words), 6), 2):
            draw.text(
                (j * THUMB + 2, 4 + 10 * (k // 2)), " ".join(words[k : k + 2])[:15], fill="black"
            )
    return np.asarray(img)
