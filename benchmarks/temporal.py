"""Flicker of stylized video: warping error, style/content loss and speed of ``--temporal``.

    python -m benchmarks.temporal                                  # built-in weights
    python -m benchmarks.temporal --options off stats flow stats,flow --frames 16
    python -m benchmarks.temporal --clip my_clip.mp4               # plus a real clip

Test clips with known camera motion are made from real photos (the held-out split of
``scripts/build_image_set.py``): each frame views the photo through an affine map (a pan
of 1.3 x 0.4 px/frame, a zoom of 1.2 %/frame, a rotation of 0.5 deg/frame, about the frame
centre), rendered bilinearly. The true flow from frame t to t-1 is then known exactly, and
so are the occlusions (the pixels that come into view at the frame border). A real clip
(``--clip``) has no true flow: it is measured with OpenCV's DIS flow and its
forward/backward check (the same flow ``--temporal flow`` uses, so that row favours it).

For every option (``--temporal`` values) and clip x style, it reports:

* the warping error (``adain_jax.controls.temporal.warping_error``, Lai et al. 2018):
  squared RGB distance (values in [0, 1], summed over channels) between each stylized
  frame and the previous one warped to it, over the non-occluded pixels, averaged over
  the frame pairs; the input clip's own error (resampling only) is the floor;
* the style loss and content loss of the frames (``training.losses.output_losses`` with
  the built-in VGG-16 as loss encoder; content target ``AdaIN(f(c_t), f(s))`` of each
  frame), and their change against ``off``: the style must not fade;
* frames/s of the whole stream (stylization, flow and blending; after a warm-up call),
  on this machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from adain_jax.cli.weight_flags import add_weight_flags, load_weights
from adain_jax.controls import temporal
from adain_jax.inference import backend
from adain_jax.inference import temporal as stream
from adain_jax.inference.plan import JobOptions, make_plan
from adain_jax.io import images as image_io
from adain_jax.training import losses
from adain_jax.weights import pretrained
from benchmarks.common import machine_line

MOTIONS = ("pan", "zoom", "rotate")


def motion_matrix(kind: str, t: int, width: int, height: int) -> np.ndarray:
    """3x3 affine map from frame ``t``'s pixel coordinates to coordinates relative to the
    photo's centre (pixel centres at integers)."""
    cx, cy = (width - 1) / 2, (height - 1) / 2
    centre = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]], np.float64)
    if kind == "pan":
        m = np.array([[1, 0, 1.3 * t], [0, 1, 0.4 * t], [0, 0, 1]], np.float64)
    elif kind == "zoom":
        s = 1.012**-t  # zoom in: each frame sees a smaller part of the photo
        m = np.diag([s, s, 1.0])
    elif kind == "rotate":
        a = np.deg2rad(0.5 * t)
        m = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    else:
        raise ValueError(f"unknown motion {kind!r}; use {', '.join(MOTIONS)}")
    return m @ centre


def synthetic_clip(
    photo: np.ndarray, kind: str, frames: int, width: int, height: int
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Frames float ``[T, H, W, 3]`` viewing ``photo`` under motion ``kind``, and for
    t = 1..T-1 the true flow t -> t-1 (``[H, W, 2]``, px) and its visible mask."""
    ph, pw = photo.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    grid = np.stack([xs, ys, np.ones_like(xs)], -1)  # [H, W, 3]
    mats = [motion_matrix(kind, t, width, height) for t in range(frames)]
    out = []
    for m in mats:
        src = grid @ m.T
        px, py = src[..., 0] + (pw - 1) / 2, src[..., 1] + (ph - 1) / 2
        if px.min() < 0 or py.min() < 0 or px.max() > pw - 1 or py.max() > ph - 1:
            sys.exit(f"{kind}: the view leaves the photo; use a smaller --size or fewer frames")
        out.append(temporal.bilinear_sample(photo, px, py))
    flows, visible = [], []
    for t in range(1, frames):
        q = grid @ (np.linalg.inv(mats[t - 1]) @ mats[t]).T
        flow = (q[..., :2] - grid[..., :2]).astype(np.float32)
        flows.append(flow)
        visible.append(temporal.warp(np.zeros((height, width, 1)), flow)[1])
    return np.stack(out), flows, visible


def estimated_flows(clip: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """DIS flow t -> t-1 and its consistency mask for a real clip (needs OpenCV)."""
    flow = stream.Flow()
    greys = [flow.grey(f) for f in clip]
    pairs = [flow.between(greys[t - 1], greys[t]) for t in range(1, len(clip))]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def read_clip(path: str, frames: int, width: int) -> np.ndarray:
    """The first ``frames`` frames of a video, resized to ``width`` px wide (even sides)."""
    from adain_jax.io import video

    info = video.probe(path)
    height = max(2, round(info.height * width / info.width) // 2 * 2)
    out = []
    for batch in video.iter_batches(path, 8, (width, height)):
        out.extend(batch)
        if len(out) >= frames:
            break
    return np.stack(out[:frames]).astype(np.float32) / 255.0


def run_stream(params, stats, opts: JobOptions, clip: np.ndarray) -> tuple[np.ndarray, float]:
    """Stylize ``clip`` ``[T, H, W, 3]`` as ``infer.py`` streams a video: batches of
    ``opts.video_batch`` frames, the last padded. Returns ``(frames, seconds)``."""
    plan = make_plan(opts, [])
    plain = lambda f: backend.stylize_exact(params, f, stats, plan)  # noqa: E731
    fn = stream.TemporalStream(params, stats, plan, opts.temporal, plain)
    b = opts.video_batch
    outs = []
    start = time.perf_counter()
    for i in range(0, len(clip), b):
        batch = clip[i : i + b]
        n = len(batch)
        if n < b:
            batch = np.concatenate([batch, np.repeat(batch[-1:], b - n, axis=0)])
        outs.append(np.asarray(fn(batch))[:n])
    return np.concatenate(outs), time.perf_counter() - start


def mean_warping_error(frames: np.ndarray, flows, visible) -> float:
    errs = [
        temporal.warping_error(frames[t - 1], frames[t], flows[t - 1], visible[t - 1])
        for t in range(1, len(frames))
    ]
    return float(np.mean(errs))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_weight_flags(p)
    p.add_argument("--content-dir", default="data/real/content/held")
    p.add_argument("--style-dir", default="data/real/style/held")
    p.add_argument("--contents", type=int, default=2, help="photos used (default 2)")
    p.add_argument("--styles", type=int, default=2, help="styles used (default 2)")
    p.add_argument(
        "--motions", default=",".join(MOTIONS), help="comma list of " + "/".join(MOTIONS)
    )
    p.add_argument("--clip", action="append", default=[], help="a real clip (repeatable)")
    p.add_argument("--frames", type=int, default=12, help="frames per clip (default 12)")
    p.add_argument("--width", type=int, default=256, help="frame width px (default 256)")
    p.add_argument("--height", type=int, default=192, help="frame height px (default 192)")
    p.add_argument("--style-size", type=int, default=256)
    p.add_argument("--batch", type=int, default=4, help="frames per call (default 4)")
    p.add_argument(
        "--options",
        nargs="+",
        default=["off", "stats", "flow", "stats,flow"],
        help="--temporal values to compare (default: off stats flow stats,flow)",
    )
    p.add_argument("--json", help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    try:
        options = {text: stream.parse_temporal(text) for text in args.options}
    except ValueError as e:
        sys.exit(str(e))
    if "off" not in options:
        options = {"off": stream.OFF, **options}
    if not (args.vgg or args.decoder or args.weights or args.checkpoint):
        args.weights = pretrained.BUILTIN
    params = load_weights(args)
    loss_enc = params["encoder"]  # the built-in VGG-16 by default

    content_paths = sorted(Path(args.content_dir).iterdir())[: args.contents]
    style_paths = sorted(Path(args.style_dir).iterdir())[: args.styles]
    photo_side = int(1.6 * max(args.width, args.height))
    clips = []  # (name, frames, flows, visible)
    for path in content_paths:
        photo = image_io.load_image(path, photo_side)
        for kind in args.motions.split(","):
            clips.append((f"{path.stem}/{kind}", kind, *synthetic_clip(
                photo, kind, args.frames, args.width, args.height)))  # fmt: skip
    for path in args.clip:
        frames = read_clip(path, args.frames, args.width)
        clips.append((Path(path).name, "real", frames, *estimated_flows(frames)))
    styles = [(s.stem, image_io.load_image(s, args.style_size)) for s in style_paths]

    eval_losses = jax.jit(
        lambda out, c, s: losses.output_losses(
            loss_enc, out, c, jnp.broadcast_to(s, (out.shape[0], *s.shape))
        )
    )
    rows: dict[str, dict] = {name: {"we": [], "style": [], "content": [], "time": 0.0,
                                    "frames": 0, "by_kind": {}} for name in options}  # fmt: skip
    floor = {}
    for _, kind, frames, flows, visible in clips:
        floor.setdefault(kind, []).append(mean_warping_error(frames, flows, visible))
    for s_name, style in styles:
        stats = backend.encode_styles(params, [style], jnp.float32)
        for opt_name, opt in options.items():
            opts = JobOptions(video_batch=args.batch, progress=False, bucket=0, temporal=opt)
            run_stream(params, stats, opts, clips[0][2][: 2 * args.batch])  # warm-up/compile
            for name, kind, frames, flows, visible in clips:
                out, seconds = run_stream(params, stats, opts, frames)
                we = mean_warping_error(out, flows, visible)
                c_loss, s_loss = eval_losses(out, frames, style)
                row = rows[opt_name]
                row["we"].append(we)
                row["by_kind"].setdefault(kind, []).append(we)
                row["style"].append(float(s_loss))
                row["content"].append(float(c_loss))
                row["time"] += seconds
                row["frames"] += len(frames)
                print(f"  {opt_name:>12} {s_name:>20} {name:>24}: warping error {we:.5f}",
                      file=sys.stderr)  # fmt: skip

    kinds = list(floor)
    base = {k: float(np.mean(rows["off"][k])) for k in ("we", "style", "content")}
    print(machine_line())
    print(
        f"{len(clips)} clips ({', '.join(kinds)}) x {len(styles)} styles, {args.frames} "
        f"frames of {args.width}x{args.height}, batch {args.batch}; weights "
        f"{args.weights or args.decoder or args.checkpoint}"
    )
    head = " | ".join(f"WE {k}" for k in kinds)
    print(f"| --temporal | warping error | vs off | {head} | style loss | vs off | "
          "content loss | vs off | frames/s |")  # fmt: skip
    print("|---|---:|---:|" + "---:|" * len(kinds) + "---:|---:|---:|---:|---:|")
    floor_cells = " | ".join(f"{np.mean(floor[k]):.5f}" for k in kinds)
    print(f"| (input clip) | {np.mean([v for k in kinds for v in floor[k]]):.5f} | | "
          f"{floor_cells} | | | | | |")  # fmt: skip
    table = {}
    for opt_name, row in rows.items():
        r = {k: float(np.mean(row[k])) for k in ("we", "style", "content")}
        r["fps"] = row["frames"] / row["time"]
        r["by_kind"] = {k: float(np.mean(v)) for k, v in row["by_kind"].items()}
        table[opt_name] = r
        cells = " | ".join(f"{r['by_kind'][k]:.5f}" for k in kinds)
        print(
            f"| {options[opt_name].describe()} | {r['we']:.5f} | "
            f"{100 * (r['we'] / base['we'] - 1):+.0f}% | {cells} | {r['style']:.3f} | "
            f"{100 * (r['style'] / base['style'] - 1):+.1f}% | {r['content']:.3f} | "
            f"{100 * (r['content'] / base['content'] - 1):+.1f}% | {r['fps']:.1f} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
