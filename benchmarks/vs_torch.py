"""adain-jax against the PyTorch reference on the same machine, in one run.

Same random He-scaled weights for both (``tests.torch_reference``). Two jobs:

- stylize latency (content and style encode + AdaIN + decode, batch 1) at
  each ``--sizes`` px;
- one training step at ``--train-batch`` x ``--train-size`` px: forward,
  backward and an Adam update of the decoder with the paper's losses
  (content loss at relu4_1 + 10 x style loss on the mean/std of
  relu1_1..relu4_1, the PyTorch port's weights), VGG frozen.

Calls are interleaved round-robin (torch, jax, torch, ...) and medians
reported, so the noise of a shared machine hits both sides alike. Compile
time (first call) of the jax functions is reported separately. Needs torch
(the ``test`` extra)::

    python -m benchmarks.vs_torch --sizes 256,512 --repeats 5 --train-repeats 3
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import jax
import numpy as np

try:
    import torch
except ImportError:  # pragma: no cover - optional benchmark dependency
    sys.exit("vs_torch: needs torch (pip install -e '.[test]' -c constraints-cpu.txt)")

import adain_jax
from adain_jax import conv, train_lib
from benchmarks import train as train_bench
from benchmarks.common import fresh_stylize, machine_line, median, parse_list, time_calls
from tests import torch_reference as ref

STYLE_WEIGHT = 10.0  # the PyTorch port's default; content weight 1


# ---------------------------------------------------------------- torch side
class TorchTrainer:
    """The PyTorch port's ``Net`` training step (encoder frozen, Adam on the decoder)."""

    def __init__(self, vgg: torch.nn.Sequential, dec: torch.nn.Sequential):
        enc = vgg[:31]
        ends = ref.VGG_TAP_ENDS
        self.stages = [enc[a:b] for a, b in zip((0, *ends[:-1]), ends, strict=True)]
        for p in enc.parameters():
            p.requires_grad_(False)
        self.dec = dec
        self.opt = torch.optim.Adam(dec.parameters(), lr=1e-4)

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out

    def step(self, content: torch.Tensor, style: torch.Tensor) -> float:
        mse = torch.nn.functional.mse_loss
        style_taps = self.taps(style)
        content_feat = self.taps(content)[-1]
        t = ref.adain(content_feat, style_taps[-1])
        g_taps = self.taps(self.dec(t))
        loss_c = mse(g_taps[-1], t)
        loss_s = 0.0
        for g, s in zip(g_taps, style_taps, strict=True):
            g_mean, g_std = ref.calc_mean_std(g)
            s_mean, s_std = ref.calc_mean_std(s)
            loss_s = loss_s + mse(g_mean, s_mean) + mse(g_std, s_std)
        loss = loss_c + STYLE_WEIGHT * loss_s
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return float(loss.detach())


def random_nets_and_params() -> tuple[torch.nn.Sequential, torch.nn.Sequential, dict]:
    """Random He-scaled torch networks (port layout) and the same weights as adain-jax params,
    loaded through the real ``.pth`` conversion path."""
    vgg = ref.randomize(ref.vgg_normalised(), 1).eval()
    dec = ref.randomize(ref.decoder(), 2).eval()
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(vgg.state_dict(), os.path.join(tmp, "vgg.pth"))
        torch.save(dec.state_dict(), os.path.join(tmp, "dec.pth"))
        params = adain_jax.load_params(
            vgg=os.path.join(tmp, "vgg.pth"), decoder=os.path.join(tmp, "dec.pth")
        )
    return vgg, dec, params


def print_rows(
    job: str,
    impls: list[str],
    times: dict[str, list[float]],
    compile_s: dict[str, float],
    diff: dict[str, float] | None = None,
) -> None:
    """One table row per conv formulation: median seconds of torch and jax and their ratio."""
    t_torch = median(times["torch"])
    for impl in impls:
        t_jax = median(times[impl])
        err = f"{diff[impl]:.1e}" if diff else ""
        print(
            f"| {job} | {impl} | {t_torch:.3f} | {t_jax:.3f} | {t_jax / t_torch:.2f} "
            f"| {compile_s[impl]:.1f} | {err} |",
            flush=True,
        )


# --------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="256,512", help="stylize sizes in px (square)")
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed stylize calls per side; 0 skips stylize"
    )
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--train-size", type=int, default=256)
    parser.add_argument("--train-repeats", type=int, default=3, help="0 skips the train step")
    parser.add_argument(
        "--conv",
        default=os.environ.get(conv.ENV_VAR, "auto") or "auto",
        help=f"comma-separated reflect_conv formulations to time, each a row ({conv.ENV_VAR})",
    )
    args = parser.parse_args(argv)
    sizes = parse_list(args.sizes, int, "--sizes")
    impls = parse_list(args.conv, str, "--conv")
    for impl in impls:
        if impl not in conv.IMPLEMENTATIONS:
            sys.exit(f"vs_torch: --conv: unknown {impl!r}; choose from {conv.IMPLEMENTATIONS}")
    if min(sizes) < 9 or args.repeats < 0 or args.train_repeats < 0 or args.train_batch < 1:
        sys.exit("vs_torch: --sizes must be >= 9 px, --repeats and --train-repeats >= 0")

    torch.set_num_threads(os.cpu_count() or 1)
    vgg, dec, params = random_nets_and_params()
    print(machine_line())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    rng = np.random.default_rng(0)

    print("\n| job | conv | torch s | adain-jax s | jax/torch | jax compile s | max abs diff |")
    print("|---|---|---|---|---|---|---|")
    for size in sizes if args.repeats else []:
        content = rng.random((1, size, size, 3), dtype=np.float32)
        style = rng.random((1, size, size, 3), dtype=np.float32)
        want = ref.stylize(vgg, dec, content, style)
        fns = {"torch": lambda c=content, s=style: ref.stylize(vgg, dec, c, s)}
        compile_s, diff = {}, {}
        for impl in impls:
            os.environ[conv.ENV_VAR] = impl  # read when the fresh function is traced
            fn = fresh_stylize()
            start = time.perf_counter()
            got = np.asarray(fn(params, content, style))
            compile_s[impl] = time.perf_counter() - start
            diff[impl] = float(np.max(np.abs(got - want)))
            fns[impl] = lambda c=content, s=style, f=fn: f(params, c, s)
        times = time_calls(fns, args.repeats)
        print_rows(f"stylize 1x{size} px", impls, times, compile_s, diff)

    if args.train_repeats:
        b, s = args.train_batch, args.train_size
        trainer = TorchTrainer(vgg, dec)
        c_t = torch.from_numpy(rng.random((b, 3, s, s), dtype=np.float32))
        s_t = torch.from_numpy(rng.random((b, 3, s, s), dtype=np.float32))
        fns = {"torch": lambda: trainer.step(c_t, s_t)}
        compile_s = {}
        for impl in impls:
            os.environ[conv.ENV_VAR] = impl
            train_lib.make_train_step.cache_clear()  # trace again with this formulation
            fns[impl] = train_bench.make_jax_step("float32", b, s)
            start = time.perf_counter()
            jax.block_until_ready(fns[impl]())
            compile_s[impl] = time.perf_counter() - start
            print(f"(compiled train step {impl}: {compile_s[impl]:.1f} s)", file=sys.stderr)
        trainer.step(c_t, s_t)  # warm-up
        times = time_calls(fns, args.train_repeats)
        print_rows(f"train step {b}x{s} px (adain_jax.train_lib)", impls, times, compile_s)


if __name__ == "__main__":
    main()
