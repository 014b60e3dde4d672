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

On a GPU (jax's default backend ``gpu`` and a CUDA torch) torch runs on
``cuda`` too, with ``cudnn.benchmark`` and channels-last tensors (its fastest
settings); each timed torch call ends with ``torch.cuda.synchronize()``.
``--dtype bfloat16`` runs adain-jax's bfloat16 path beside torch's
``autocast(bfloat16)``::

    python -m benchmarks.vs_torch --dtype bfloat16 --repeats 50 --train-repeats 20

``--malloc tuned`` re-runs the benchmark with the glibc settings that
``train.py`` uses (``adain_jax.cli.malloc_tuning``); they apply to the whole
process, so to torch too.
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
from adain_jax.nn.conv import IMPLEMENTATIONS
from benchmarks import train as train_bench
from benchmarks.common import (
    add_malloc_flag,
    apply_malloc_flag,
    format_ms,
    machine_line,
    median,
    parse_list,
    stylize_fn,
    time_calls,
)
from tests import torch_reference as ref

STYLE_WEIGHT = 10.0  # the PyTorch port's default; content weight 1
# --dtype -> (adain-jax compute dtype, torch autocast dtype)
DTYPES = {
    "float32": (jax.numpy.float32, torch.float32),
    "bfloat16": (jax.numpy.bfloat16, torch.bfloat16),
}


# ---------------------------------------------------------------- torch side
class TorchTrainer:
    """The PyTorch port's ``Net`` training step (encoder frozen, Adam on the decoder).

    ``dtype`` bfloat16 runs the forward pass under ``torch.autocast`` (weights,
    Adam and the loss sums stay float32). Inputs must be on the nets' device.
    """

    def __init__(
        self,
        vgg: torch.nn.Sequential,
        dec: torch.nn.Sequential,
        dtype: torch.dtype = torch.float32,
    ):
        self.dtype = dtype
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
        with _autocast(content.device, self.dtype):
            style_taps = self.taps(style)
            content_feat = self.taps(content)[-1]
            t = ref.adain(content_feat.float(), style_taps[-1].float())
            g_taps = self.taps(self.dec(t))
        loss_c = mse(g_taps[-1].float(), t)
        loss_s = 0.0
        for g, s in zip(g_taps, style_taps, strict=True):
            g_mean, g_std = ref.calc_mean_std(g.float())
            s_mean, s_std = ref.calc_mean_std(s.float())
            loss_s = loss_s + mse(g_mean, s_mean) + mse(g_std, s_std)
        loss = loss_c + STYLE_WEIGHT * loss_s
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return float(loss.detach())


class TorchStylizer:
    """The port's ``style_transfer`` (alpha 1) with the nets and images kept on ``device``.

    ``__call__`` returns the NCHW output on the device, synchronized (so a
    host timer around it measures the device work).
    """

    def __init__(
        self, vgg: torch.nn.Sequential, dec: torch.nn.Sequential, dtype: torch.dtype = torch.float32
    ):
        self.enc, self.dec, self.dtype = vgg[:31], dec, dtype

    @torch.no_grad()
    def __call__(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        with _autocast(content.device, self.dtype):
            cf, sf = self.enc(content), self.enc(style)
            t = ref.adain(cf.float(), sf.float())
            out = self.dec(t)[:, :, : content.shape[2], : content.shape[3]].float().clamp(0, 1)
        if out.is_cuda:
            torch.cuda.synchronize()
        return out


def _autocast(device: torch.device, dtype: torch.dtype):
    """``torch.autocast`` to ``dtype`` (disabled for float32)."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)


def default_torch_device() -> str:
    """``cuda`` when jax runs on a GPU and torch sees one, else ``cpu``."""
    return "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"


def memory_format(device: str) -> torch.memory_format:
    """Channels-last on CUDA (cuDNN's fastest layout), torch's default elsewhere."""
    return torch.channels_last if device == "cuda" else torch.contiguous_format


def to_torch(images_nhwc: np.ndarray, device: str) -> torch.Tensor:
    """NHWC numpy -> NCHW tensor on ``device`` in its ``memory_format``."""
    x = torch.from_numpy(np.ascontiguousarray(images_nhwc.transpose(0, 3, 1, 2)))
    return x.to(device).contiguous(memory_format=memory_format(device))


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
    """One table row per conv formulation: median ms of torch and jax and their ratio."""
    t_torch = median(times["torch"])
    for impl in impls:
        t_jax = median(times[impl])
        err = f"{diff[impl]:.1e}" if diff else ""
        print(
            f"| {job} | {impl} | {format_ms(t_torch)} | {format_ms(t_jax)} | {t_jax / t_torch:.2f} "
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
        default="direct",
        help="comma-separated conv formulations (adain_jax.nn.conv.IMPLEMENTATIONS) to time, "
        "each a row; the train step runs 'direct' only",
    )
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=sorted(DTYPES),
        help="compute dtype of both sides (torch: autocast)",
    )
    parser.add_argument(
        "--torch-device",
        default=None,
        choices=("cpu", "cuda"),
        help="default: cuda when jax runs on a GPU and torch sees one, else cpu",
    )
    add_malloc_flag(parser, default="default")
    args = parser.parse_args(argv)
    apply_malloc_flag(args.malloc)
    sizes = parse_list(args.sizes, int, "--sizes")
    impls = parse_list(args.conv, str, "--conv")
    for impl in impls:
        if impl not in IMPLEMENTATIONS:
            names = IMPLEMENTATIONS
            sys.exit(f"vs_torch: --conv: unknown {impl!r}; choose from {names}")
    if min(sizes) < 9 or args.repeats < 0 or args.train_repeats < 0 or args.train_batch < 1:
        sys.exit("vs_torch: --sizes must be >= 9 px, --repeats and --train-repeats >= 0")
    device = args.torch_device or default_torch_device()
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("vs_torch: --torch-device cuda: torch sees no CUDA device")
    jax_dtype, torch_dtype = DTYPES[args.dtype]

    torch.set_num_threads(os.cpu_count() or 1)
    torch.backends.cudnn.benchmark = True
    vgg, dec, params = random_nets_and_params()
    vgg.to(device, memory_format=memory_format(device))
    dec.to(device, memory_format=memory_format(device))
    print(machine_line())
    torch_where = (
        torch.cuda.get_device_name() if device == "cuda" else f"{torch.get_num_threads()} threads"
    )
    print(f"torch {torch.__version__} on {device} ({torch_where}); dtype {args.dtype}")
    rng = np.random.default_rng(0)

    print("\n| job | conv | torch ms | adain-jax ms | jax/torch | jax compile s | max abs diff |")
    print("|---|---|---|---|---|---|---|")
    stylizer = TorchStylizer(vgg, dec, torch_dtype)
    for size in sizes if args.repeats else []:
        content = rng.random((1, size, size, 3), dtype=np.float32)
        style = rng.random((1, size, size, 3), dtype=np.float32)
        c_t, s_t = to_torch(content, device), to_torch(style, device)
        want = stylizer(c_t, s_t).permute(0, 2, 3, 1).cpu().numpy()
        fns = {"torch": lambda c=c_t, s=s_t: stylizer(c, s)}
        compile_s, diff = {}, {}
        for impl in impls:
            fn = stylize_fn(impl)
            c_j, s_j = jax.device_put(content), jax.device_put(style)
            start = time.perf_counter()
            got = np.asarray(fn(params, c_j, s_j, dtype=jax_dtype))
            compile_s[impl] = time.perf_counter() - start
            diff[impl] = float(np.max(np.abs(got - want)))
            fns[impl] = lambda c=c_j, s=s_j, f=fn: f(params, c, s, dtype=jax_dtype)
        times = time_calls(fns, args.repeats)
        print_rows(f"stylize 1x{size} px", impls, times, compile_s, diff)

    if args.train_repeats:
        b, s = args.train_batch, args.train_size
        trainer = TorchTrainer(vgg, dec, torch_dtype)
        c_t = to_torch(rng.random((b, s, s, 3), dtype=np.float32), device)
        s_t = to_torch(rng.random((b, s, s, 3), dtype=np.float32), device)
        fns = {"torch": lambda: trainer.step(c_t, s_t)}
        compile_s = {}
        # The train step runs the product's convolution only (no formulation switch).
        train_impls = [i for i in impls if i == "direct"] or ["direct"]
        for impl in train_impls:
            fns[impl], _ = train_bench.make_jax_step(args.dtype, b, s)
            start = time.perf_counter()
            jax.block_until_ready(fns[impl]())
            compile_s[impl] = time.perf_counter() - start
            print(f"(compiled train step {impl}: {compile_s[impl]:.1f} s)", file=sys.stderr)
        trainer.step(c_t, s_t)  # warm-up
        times = time_calls(fns, args.train_repeats)
        print_rows(
            f"train step {b}x{s} px (adain_jax.training.step)", train_impls, times, compile_s
        )


if __name__ == "__main__":
    main()
