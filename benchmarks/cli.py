"""What a user waits for: whole ``infer.py`` processes, cold and warm compile cache,
against a PyTorch script doing what the port's ``test.py`` does, same machine, same run.

Jobs (each a fresh process, timed from start to exit):

- ``one 512 px``: one content and one style, shorter side 512 (the default size);
- ``dir of 8``: a directory of 8 contents of mixed aspect ratios with one style;
- ``bad flag``: ``--alpha 2`` (the error path).

adain-jax runs ``python infer.py --vgg vgg_normalised.pth --decoder decoder.pth ...``
(the same files torch loads; ``--weights DIR``, converted safetensors as the default
download uses, is a row of its own) with ``ADAIN_JAX_XLA_CACHE`` set to an empty folder
(``cold``: everything compiles) or to a folder an earlier run filled (``warm``). The
PyTorch script (``TORCH_SCRIPT``, written next to the images) is the port's ``test.py``:
``torch.load`` of ``vgg_normalised.pth`` and ``decoder.pth``, the encoder cut at
relu4_1, resize so the shorter side is 512, AdaIN, decode, save a PNG; its networks are
built here as the port's ``net.py`` builds them, with random weights saved in the
port's layout (speed does not depend on the values). Runs are interleaved round-robin
and medians reported, so a shared machine's noise hits both sides alike::

    python -m benchmarks.cli --repeats 3

Needs torch (the ``test`` extra). Prints one table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

TORCH_SCRIPT = r'''
"""The PyTorch port's test.py (naoto0804/pytorch-AdaIN), with net.py's networks inline."""
import argparse, os, sys
import numpy as np
import torch
from torch import nn
from PIL import Image

def pad_conv(cin, cout):
    return [nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d(cin, cout, (3, 3))]

def vgg_net():
    pool = lambda: nn.MaxPool2d((2, 2), (2, 2), (0, 0), ceil_mode=True)
    r = nn.ReLU
    return nn.Sequential(
        nn.Conv2d(3, 3, (1, 1)), *pad_conv(3, 64), r(), *pad_conv(64, 64), r(), pool(),
        *pad_conv(64, 128), r(), *pad_conv(128, 128), r(), pool(),
        *pad_conv(128, 256), r(), *pad_conv(256, 256), r(), *pad_conv(256, 256), r(),
        *pad_conv(256, 256), r(), pool(),
        *pad_conv(256, 512), r(), *pad_conv(512, 512), r(), *pad_conv(512, 512), r(),
        *pad_conv(512, 512), r(), pool(),
        *pad_conv(512, 512), r(), *pad_conv(512, 512), r(), *pad_conv(512, 512), r(),
        *pad_conv(512, 512), r())

def decoder_net():
    r = nn.ReLU
    up = lambda: nn.Upsample(scale_factor=2, mode="nearest")
    return nn.Sequential(
        *pad_conv(512, 256), r(), up(),
        *pad_conv(256, 256), r(), *pad_conv(256, 256), r(), *pad_conv(256, 256), r(),
        *pad_conv(256, 128), r(), up(), *pad_conv(128, 128), r(), *pad_conv(128, 64), r(),
        up(), *pad_conv(64, 64), r(), *pad_conv(64, 3))

def calc_mean_std(feat, eps=1e-5):
    n, c = feat.size()[:2]
    var = feat.view(n, c, -1).var(dim=2) + eps
    return var.sqrt().view(n, c, 1, 1), feat.view(n, c, -1).mean(dim=2).view(n, c, 1, 1)

def adain(content, style):
    s_std, s_mean = calc_mean_std(style)
    c_std, c_mean = calc_mean_std(content)
    return (content - c_mean) / c_std * s_std + s_mean

def load(path, size=512):
    img = Image.open(path).convert("RGB")
    w, h = img.size
    short = min(w, h)
    img = img.resize((int(w * size / short), int(h * size / short)), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(img, np.float32) / 255.0).permute(2, 0, 1)
    return x.unsqueeze(0)

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--content"); p.add_argument("--content_dir"); p.add_argument("--style")
    p.add_argument("--vgg", default="vgg_normalised.pth")
    p.add_argument("--decoder", default="decoder.pth")
    p.add_argument("--output", default="output"); p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--init", action="store_true", help="write random weights and exit")
    args = p.parse_args()
    if not 0 <= args.alpha <= 1:
        p.error("--alpha must be in [0, 1]")
    vgg, decoder = vgg_net(), decoder_net()
    if args.init:
        torch.manual_seed(0)
        for m in [*vgg.modules(), *decoder.modules()]:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight); nn.init.zeros_(m.bias)
        torch.save(vgg.state_dict(), args.vgg); torch.save(decoder.state_dict(), args.decoder)
        return
    decoder.eval(); vgg.eval()
    decoder.load_state_dict(torch.load(args.decoder))
    vgg.load_state_dict(torch.load(args.vgg))
    vgg = nn.Sequential(*list(vgg.children())[:31])
    os.makedirs(args.output, exist_ok=True)
    contents = ([os.path.join(args.content_dir, f) for f in sorted(os.listdir(args.content_dir))]
                if args.content_dir else [args.content])
    style = load(args.style)
    for path in contents:
        with torch.no_grad():
            c_f, s_f = vgg(load(path)), vgg(style)
            feat = args.alpha * adain(c_f, s_f) + (1 - args.alpha) * c_f
            out = decoder(feat).clamp(0, 1)[0].permute(1, 2, 0).numpy()
        name = os.path.splitext(os.path.basename(path))[0]
        Image.fromarray((out * 255 + 0.5).astype(np.uint8)).save(
            os.path.join(args.output, f"{name}_stylized.png"))

if __name__ == "__main__":
    main()
'''

# Aspect ratios (width, height) of the mixed-size directory: 8 shapes after resizing the
# shorter side to 512, in 5 buckets of 64 px (two pairs share one).
MIXED = [(512, 512), (640, 480), (480, 640), (800, 600), (600, 800), (1024, 683), (683, 1024),
         (700, 525)]  # fmt: skip


def make_inputs(root: Path) -> dict[str, Path]:
    """The images and the port-layout weights (random) in ``root``."""
    content = Image.open(EXAMPLES / "content" / "astronaut.jpg").convert("RGB")
    style = Image.open(EXAMPLES / "style" / "starry_night.jpg").convert("RGB")
    content.resize((512, 512)).save(root / "content.png")
    style.resize((683, 512)).save(root / "style.png")
    mixed = root / "mixed"
    mixed.mkdir()
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate(MIXED):
        img = content.resize((w, h))
        noise = rng.integers(-8, 8, (h, w, 3))
        pixels = np.clip(np.asarray(img, np.int16) + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(mixed / f"c{i}.png")
    script = root / "torch_test.py"
    script.write_text(TORCH_SCRIPT)
    vgg, dec = root / "vgg_normalised.pth", root / "decoder.pth"
    subprocess.run(
        [sys.executable, str(script), "--init", "--vgg", str(vgg), "--decoder", str(dec)],
        check=True,
    )
    weights = root / "weights"
    subprocess.run(
        [sys.executable, "-m", "adain_jax", "convert", "--vgg", str(vgg), "--decoder", str(dec),
         "--out", str(weights)],
        check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return {
        "root": root,
        "content": root / "content.png",
        "style": root / "style.png",
        "mixed": mixed,
        "script": script,
        "vgg": vgg,
        "decoder": dec,
        "weights": weights,
    }


def timed(cmd: list[str], env: dict[str, str], expect: int = 0) -> float:
    """Seconds from the start of ``cmd`` to its exit (its status must be ``expect``)."""
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != expect:
        raise SystemExit(f"{' '.join(cmd)}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return took


def jobs(f: dict[str, Path], tmp: Path) -> dict[str, tuple[list[str], str, int]]:
    """name -> (command, cache mode: 'cold' / 'warm' / 'none', expected exit status)."""
    py = sys.executable
    infer = [py, "infer.py", "--quiet", "--overwrite"]
    pth = ["--vgg", str(f["vgg"]), "--decoder", str(f["decoder"])]
    one = ["--content", str(f["content"]), "--style", str(f["style"])]
    out1 = ["--output", str(tmp / "out_jax.png")]
    outd = ["--output", str(tmp / "out_jax") + "/"]
    torch = [py, str(f["script"]), "--vgg", str(f["vgg"]), "--decoder", str(f["decoder"])]
    return {
        "one 512 px | torch test.py": ([*torch, *one, "--output", str(tmp / "t1")], "none", 0),
        "one 512 px | adain-jax cold": ([*infer, *pth, *one, *out1], "cold", 0),
        "one 512 px | adain-jax warm": ([*infer, *pth, *one, *out1], "warm", 0),
        "one 512 px | adain-jax warm, --weights DIR": (
            [*infer, "--weights", str(f["weights"]), *one, *out1], "warm", 0),
        "dir of 8 | torch test.py": (
            [*torch, "--content_dir", str(f["mixed"]), "--style", str(f["style"]),
             "--output", str(tmp / "t8")], "none", 0),
        "dir of 8 | adain-jax cold": (
            [*infer, *pth, "--content", str(f["mixed"]), "--style", str(f["style"]), *outd],
            "cold", 0),
        "dir of 8 | adain-jax warm": (
            [*infer, *pth, "--content", str(f["mixed"]), "--style", str(f["style"]), *outd],
            "warm", 0),
        "bad flag | torch test.py": ([*torch, *one, "--alpha", "2"], "none", 2),
        "bad flag | adain-jax": ([*infer, *one, "--alpha", "2"], "none", 2),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run every job ``--repeats`` times round-robin; print the medians as a table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3, help="runs per job (median reported)")
    p.add_argument("--only", default="", help="run the jobs whose name contains this text")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="adain_cli_bench_") as d:
        tmp = Path(d)
        files = make_inputs(tmp)
        table = {k: v for k, v in jobs(files, tmp).items() if args.only in k}
        warm_dir = tmp / "xla_warm"
        base = {**os.environ, "ADAIN_JAX_CACHE": str(tmp / "cache")}
        base.pop("JAX_COMPILATION_CACHE_DIR", None)
        # Fill the warm cache: one run of each warm job first (not timed).
        for cmd, mode, expect in table.values():
            if mode == "warm":
                timed(cmd, {**base, "ADAIN_JAX_XLA_CACHE": str(warm_dir)}, expect)
        times: dict[str, list[float]] = {k: [] for k in table}
        for rep in range(args.repeats):
            for name, (cmd, mode, expect) in table.items():
                env = dict(base)
                if mode == "warm":
                    env["ADAIN_JAX_XLA_CACHE"] = str(warm_dir)
                elif mode == "cold":
                    env["ADAIN_JAX_XLA_CACHE"] = str(tmp / f"xla_cold_{rep}_{len(times[name])}")
                times[name].append(timed(cmd, env, expect))
                print(f"  {name}: {times[name][-1]:.2f} s", file=sys.stderr, flush=True)
    print(f"\n{_machine()}; {args.repeats} runs each, median (min-max) wall seconds\n")
    print("| job | command | wall s |")
    print("|---|---|---:|")
    for name, values in times.items():
        job, who = name.split(" | ")
        med = statistics.median(values)
        print(f"| {job} | {who} | {med:.2f} ({min(values):.2f}-{max(values):.2f}) |")
    return 0


def _machine() -> str:
    import platform

    import torch

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load "
        f"{load:.1f}; python {platform.python_version()}, torch {torch.__version__}"
    )


if __name__ == "__main__":
    sys.exit(main())
