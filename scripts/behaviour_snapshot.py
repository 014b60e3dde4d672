"""Record what the command lines do, to prove a refactor changed nothing.

    python scripts/behaviour_snapshot.py --out before.json            # on the old tree
    python scripts/behaviour_snapshot.py --out after.json --compare before.json

Runs a fixed set of ``infer.py`` jobs (every runtime control, a directory, tiling, a
video, bfloat16, a training checkpoint), three short training runs (their per-step
losses), and a list of bad invocations of every command (their last stderr line and
exit status), all on small copies of the held-out images in ``data/real`` with the
built-in weights (no network). The JSON holds, per case, the exit status, the
normalised last stderr line, and a SHA-256 of every output's decoded pixels; the
outputs themselves are kept beside it (``OUT.files/``) so ``--compare`` can also
print the largest pixel difference of an output whose hash changed.

Paths in messages are replaced by ``<TMP>`` so two runs compare line for line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = "96"  # --content-size / --style-size of every job: small, so the whole run is minutes
CASE_TIMEOUT_S = 300


def _inputs(repo: Path, tmp: Path) -> dict[str, Path]:
    """Small PNG copies of held-out images, a mask, a 4-frame video, bad files."""
    held = repo / "data" / "real"
    contents = sorted((held / "content" / "held").iterdir())[:2]
    styles = sorted((held / "style" / "held").iterdir())[:2]
    (tmp / "contents").mkdir()
    (tmp / "styles").mkdir()
    paths: dict[str, Path] = {}
    for i, src in enumerate(contents):
        dst = tmp / "contents" / f"c{i}.png"
        Image.open(src).convert("RGB").resize((120, 96)).save(dst)
        paths[f"c{i}"] = dst
    for i, src in enumerate(styles):
        dst = tmp / "styles" / f"s{i}.png"
        Image.open(src).convert("RGB").resize((100, 100)).save(dst)
        paths[f"s{i}"] = dst
    big = tmp / "big.png"
    Image.open(contents[0]).convert("RGB").resize((400, 320)).save(big)
    paths["big"] = big
    mask = np.zeros((96, 120), np.uint8)
    mask[:, 60:] = 255
    Image.fromarray(mask).save(tmp / "mask.png")
    paths["mask"] = tmp / "mask.png"
    (tmp / "bad.png").write_bytes(b"this is not an image")
    paths["bad"] = tmp / "bad.png"
    (tmp / "bad.safetensors").write_bytes(b"\xff" * 64)
    paths["badweights"] = tmp / "bad.safetensors"
    (tmp / "bad.pth").write_bytes(b"PK\x03\x04 not a zip")
    paths["badpth"] = tmp / "bad.pth"
    try:
        import av

        video = tmp / "clip.mp4"
        frames = np.asarray(Image.open(paths["c0"]).resize((64, 48)))
        with av.open(str(video), "w") as out:
            stream = out.add_stream("mpeg4", rate=8)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            for k in range(4):
                frame = av.VideoFrame.from_ndarray(np.roll(frames, 2 * k, axis=1), format="rgb24")
                out.mux(stream.encode(frame))
            out.mux(stream.encode())
        paths["video"] = video
    except ImportError:
        pass
    return paths


def _pixels_digest(path: Path) -> str:
    if path.suffix.lower() in (".mp4", ".mov", ".webm", ".mkv", ".avi", ".gif"):
        import av

        h = hashlib.sha256()
        with av.open(str(path)) as f:
            for frame in f.decode(video=0):
                h.update(frame.to_ndarray(format="rgb24").tobytes())
        return "video:" + h.hexdigest()
    if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
        return (
            "pixels:"
            + hashlib.sha256(np.asarray(Image.open(path).convert("RGB")).tobytes()).hexdigest()
        )
    return "bytes:" + hashlib.sha256(path.read_bytes()).hexdigest()


TRAIN = (
    "--content-dir {contents} --style-dir {styles} --vgg builtin --batch-size 2 "
    "--image-size 64 --crop-size 64 --log-every 1 --save-every 100 --eval-every 0 "
    "--sample-every 0 --no-progress"
)
C = " --weights builtin --content-size {SIZE} --style-size {SIZE} --quiet"  # COMMON
CK = " --content-size {SIZE} --style-size {SIZE} --quiet --output {OUT}/o.png"
BIG = " --output {OUT}/o.png --weights builtin --style-size {SIZE} --quiet"
OK = [  # (name, command, arguments); {OUT} is the case's output directory
    ("train_adain", "train", "--workdir {run_a} --max-steps 3 " + TRAIN),
    ("train_concat", "train", "--workdir {run_c} --max-steps 2 --fusion concat " + TRAIN),
    ("train_bn", "train", "--workdir {run_b} --max-steps 2 --decoder-norm batch " + TRAIN),
    ("pair", "infer", "--content {c0} --style {s0} --output {OUT}/o.png" + C),
    ("alpha", "infer", "--content {c0} --style {s0} --alpha 0.5 --output {OUT}/o.png" + C),
    ("mix", "infer", "--content {c0} --style {s01} --style-weights 1,3 --output {OUT}/o.png" + C),
    ("mask", "infer", "--content {c0} --style {s01} --mask {mask} --output {OUT}/o.png" + C),
    ("coral", "infer", "--content {c0} --style {s0} --preserve-color --output {OUT}/o.png" + C),
    (
        "luminance",
        "infer",
        "--content {c0} --style {s0} --preserve-color luminance --output {OUT}/o.png" + C,
    ),
    ("crop_jpg", "infer", "--content {c1} --style {s1} --crop --output {OUT}/o.jpg" + C),
    ("directory", "infer", "--content {contents} --style {styles} --output {OUT}/" + C),
    (
        "directory_nobucket",
        "infer",
        "--content {contents} --style {s0} --bucket 0 --batch-size 1 --output {OUT}/" + C,
    ),
    ("tiled", "infer", "--content {big} --style {s0} --content-size 0 --max-tile 160" + BIG),
    ("untiled_big", "infer", "--content {big} --style {s0} --content-size 0 --max-tile 0" + BIG),
    ("bf16", "infer", "--content {c0} --style {s0} --dtype bfloat16 --output {OUT}/o.png" + C),
    ("checkpoint", "infer", "--content {c0} --style {s0} --checkpoint {run_a}" + CK),
    ("checkpoint_concat", "infer", "--content {c0} --style {s0} --checkpoint {run_c}" + CK),
    ("checkpoint_bn", "infer", "--content {c0} --style {s0} --checkpoint {run_b}" + CK),
]
VIDEO = [
    ("video", "infer", "--content {video} --style {s0} --output {OUT}/o.mp4" + C),
    (
        "video_stats",
        "infer",
        "--content {video} --style {s0} --temporal stats --output {OUT}/o.mp4" + C,
    ),
]
BAD = [
    ("err_missing_content", "infer", "--content {tmp}/nope.png --style {s0}" + C),
    ("err_bad_image", "infer", "--content {bad} --style {s0} --output {OUT}/o.png" + C),
    ("err_alpha", "infer", "--content {c0} --style {s0} --alpha 1.5" + C),
    ("err_weights_count", "infer", "--content {c0} --style {s0} --style-weights 1,2" + C),
    ("err_weights_negative", "infer", "--content {c0} --style {s01} --style-weights 1,-2" + C),
    ("err_mask_one_style", "infer", "--content {c0} --style {s0} --mask {mask}" + C),
    ("err_unknown_flag", "infer", "--content {c0} --style {s0} --frobnicate"),
    ("err_weights_dir", "infer", "--content {c0} --style {s0} --weights {tmp}/nodir"),
    (
        "err_bad_decoder",
        "infer",
        "--content {c0} --style {s0} --decoder {badweights} --output {OUT}/o.png" + C,
    ),
    ("err_bad_vgg", "infer", "--content {c0} --style {s0} --vgg {badpth} --output {OUT}/o.png" + C),
    (
        "err_concat_alpha",
        "infer",
        "--content {c0} --style {s0} --checkpoint {run_c} --alpha 0.5 --output {OUT}/o.png --quiet",
    ),
    (
        "err_concat_mask",
        "infer",
        "--content {c0} --style {s01} --mask {mask} --checkpoint {run_c} --output {OUT}/o.png "
        "--quiet",
    ),
    (
        "err_instance_tile",
        "infer",
        "--content {c0} --style {s0} --checkpoint {run_b} --max-tile 160 --output {OUT}/o.png "
        "--quiet",
    ),
    ("err_small_tile", "infer", "--content {c0} --style {s0} --max-tile 100" + C),
    ("err_no_checkpoint", "infer", "--content {c0} --style {s0} --checkpoint {contents}"),
    ("err_temporal", "infer", "--content {c0} --style {s0} --temporal wobble" + C),
    (
        "err_train_no_data",
        "train",
        "--workdir {tmp}/run_x --content-dir {tmp}/nodir --style-dir {styles} --vgg builtin "
        "--max-steps 1",
    ),
    ("err_train_batch", "train", "--workdir {tmp}/run_y " + TRAIN + " --batch-size 0"),
    ("err_train_crop", "train", "--workdir {tmp}/run_z " + TRAIN + " --crop-size 128"),
    (
        "err_train_resume_fusion",
        "train",
        "--workdir {run_a} --max-steps 3 --fusion concat " + TRAIN,
    ),
    ("err_cmd_none", "mod", ""),
    ("err_cmd_unknown", "mod", "frobnicate"),
    ("err_convert_missing", "mod", "convert --vgg {tmp}/nope.pth --out {OUT}/w"),
    ("err_convert_bad", "mod", "convert --vgg {badpth} --out {OUT}/w"),
    (
        "err_evaluate_bad",
        "mod",
        "evaluate --checkpoint {contents} --content-dir {contents} --style-dir {styles}",
    ),
    (
        "err_optimize_missing",
        "mod",
        "optimize --content {tmp}/nope.png --style {s0} --output {OUT}/o.png",
    ),
    ("err_export_format", "mod", "export --format nonsense --out {OUT}/x"),
    ("err_experiments_none", "mod", "experiments"),
]


def _cases(p: dict[str, Path], tmp: Path) -> list[tuple[str, list[str]]]:
    """(name, argv) for every job; {OUT} in argv is the case's output directory."""
    commands = {
        "infer": [sys.executable, "infer.py"],
        "train": [sys.executable, "train.py"],
        "mod": [sys.executable, "-m", "adain_jax"],
    }
    values = {k: str(v) for k, v in p.items()}
    values.update(
        s01=f"{p['s0']},{p['s1']}", contents=str(tmp / "contents"), styles=str(tmp / "styles"),
        run_a=str(tmp / "run_adain"), run_c=str(tmp / "run_concat"), run_b=str(tmp / "run_bn"),
        tmp=str(tmp), SIZE=SIZE, OUT="{OUT}",
    )  # fmt: skip
    specs = OK + (VIDEO if "video" in p else []) + BAD
    # split first, then fill in: a path with a space stays one argument
    return [
        (name, commands[cmd] + [a.format(**values) for a in args.split()])
        for name, cmd, args in specs
    ]


def _losses(workdir: Path) -> list[dict]:
    rows = []
    metrics = workdir / "metrics.jsonl"
    if metrics.exists():
        for line in metrics.read_text().splitlines():
            row = json.loads(line)
            rows.append({k: v for k, v in row.items() if "loss" in k or k == "step"})
    return rows


def snapshot(repo: Path, out: Path) -> dict:
    """Run every case in ``repo``; outputs go to ``OUT.files/``; returns the record."""
    files = out.with_suffix(".files")
    shutil.rmtree(files, ignore_errors=True)
    files.mkdir(parents=True)
    record: dict = {}
    with tempfile.TemporaryDirectory(prefix="adain_snap_") as tmp_s:
        tmp = Path(tmp_s)
        paths = _inputs(repo, tmp)
        env = dict(os.environ, ADAIN_JAX_CACHE=str(tmp / "cache"), PYTHONHASHSEED="0")
        for name, argv in _cases(paths, tmp):
            case_out = tmp / "out" / name
            case_out.mkdir(parents=True)
            argv = [a.replace("{OUT}", str(case_out)) for a in argv]
            t0 = time.time()
            try:
                proc = subprocess.run(
                    argv, cwd=repo, env=env, capture_output=True, text=True, timeout=CASE_TIMEOUT_S
                )
            except subprocess.TimeoutExpired as e:  # a bad-flag case that trains instead of failing
                proc = subprocess.CompletedProcess(
                    argv, "timeout", "", (e.stderr or b"").decode(errors="replace")
                )
            lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
            last = lines[-1] if lines else ""
            entry = {
                "rc": proc.returncode,
                "stderr_last": last.replace(str(tmp), "<TMP>").replace(str(repo), "<REPO>"),
                "outputs": {},
            }
            for f in sorted(case_out.rglob("*")):
                if f.is_file():
                    rel = str(f.relative_to(case_out))
                    entry["outputs"][rel] = _pixels_digest(f)
                    dst = files / name / rel
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(f, dst)
            if name.startswith("train_"):
                entry["losses"] = _losses(tmp / name.replace("train_", "run_"))
            record[name] = entry
            print(
                f"{name:28s} rc={proc.returncode!s:<7s} {time.time() - t0:5.1f}s  "
                f"{entry['stderr_last'][:90]}",
                flush=True,
            )
    out.write_text(json.dumps(record, indent=1, sort_keys=True))
    return record


def _max_diff(a: Path, b: Path) -> str:
    try:
        x = np.asarray(Image.open(a).convert("RGB"), np.int16)
        y = np.asarray(Image.open(b).convert("RGB"), np.int16)
    except Exception:  # a video or unreadable file: the hash says enough
        return "?"
    if x.shape != y.shape:
        return f"shape {x.shape} vs {y.shape}"
    return f"max |diff| {int(np.abs(x - y).max())}/255"


def compare(before_path: Path, after_path: Path) -> int:
    """Print every difference; returns the number of cases that differ."""
    before, after = json.loads(before_path.read_text()), json.loads(after_path.read_text())
    differ = 0
    for name in sorted(set(before) | set(after)):
        a, b = before.get(name), after.get(name)
        if a == b:
            continue
        differ += 1
        if a is None or b is None:
            print(f"{name}: only in {'after' if a is None else 'before'}")
            continue
        for key in ("rc", "stderr_last", "losses"):
            if a.get(key) != b.get(key):
                print(f"{name}: {key}\n  before: {a.get(key)}\n  after:  {b.get(key)}")
        for rel in sorted(set(a["outputs"]) | set(b["outputs"])):
            if a["outputs"].get(rel) != b["outputs"].get(rel):
                fa = before_path.with_suffix(".files") / name / rel
                fb = after_path.with_suffix(".files") / name / rel
                print(f"{name}: output {rel} differs ({_max_diff(fa, fb)})")
    print(f"{differ} of {len(set(before) | set(after))} cases differ")
    return differ


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    p.add_argument("--out", type=Path, required=True, help="JSON record to write")
    p.add_argument("--compare", type=Path, help="a record from before: print the differences")
    a = p.parse_args()
    snapshot(a.repo.resolve(), a.out.resolve())
    return 1 if a.compare and compare(a.compare, a.out) else 0


if __name__ == "__main__":
    sys.exit(main())
