"""Whole-network float error of each ``reflect_conv`` formulation.

Random He-scaled weights (``tests.torch_reference.randomize``) and random
images; for each formulation: max |error| / max |reference| of the relu4_1
features and of the (unclipped) decoded AdaIN output, against (a) the plain
VALID ``lax.conv`` formulation and (b) the independent PyTorch network::

    python -m benchmarks.conv_error --size 64
"""

from __future__ import annotations

import argparse
import sys

import jax
import numpy as np

try:
    import torch
except ImportError:  # pragma: no cover - optional benchmark dependency
    sys.exit("conv_error: needs torch (pip install -e '.[test]' -c constraints-cpu.txt)")

import adain_jax
from adain_jax.nn import forward
from benchmarks import conv_formulations
from benchmarks.common import machine_line
from benchmarks.vs_torch import random_nets_and_params
from tests import torch_reference as ref


def _rel(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=64, help="square image size in px (>= 9)")
    parser.add_argument("--batch", type=int, default=2)
    args = parser.parse_args(argv)
    if args.size < 9 or args.batch < 1:
        sys.exit("conv_error: --size must be >= 9 and --batch >= 1")
    vgg, dec, params = random_nets_and_params()
    rng = np.random.default_rng(0)
    content = rng.random((args.batch, args.size, args.size, 3), dtype=np.float32)
    style = rng.random((args.batch, args.size, args.size, 3), dtype=np.float32)

    def network(p, c, s, impl):
        cf = forward.encode(p, c, conv_impl=impl).relu4_1
        sf = forward.encode(p, s, conv_impl=impl).relu4_1
        return cf, forward.decode(p, adain_jax.adain(cf, sf), conv_impl=impl)

    with torch.no_grad():
        to_nchw = lambda a: torch.from_numpy(a.transpose(0, 3, 1, 2).copy())  # noqa: E731
        cf_t, sf_t = vgg[:31](to_nchw(content)), vgg[:31](to_nchw(style))
        out_t = dec(ref.adain(cf_t, sf_t))
    torch_feat = cf_t.permute(0, 2, 3, 1).numpy()
    torch_out = out_t.permute(0, 2, 3, 1).numpy()

    results = {}
    names = ("valid", *[n for n in conv_formulations.FORMULATIONS if n != "valid"])
    for name in names:
        impl = conv_formulations.conv_impl(name)
        fn = jax.jit(lambda p, c, s, impl=impl: network(p, c, s, impl))
        results[name] = [np.asarray(a) for a in fn(params, content, style)]
    print(machine_line().rsplit(";", 1)[0])
    print(f"\n{args.batch} x {args.size} px, max |error| / max |reference|\n")
    print("| conv | relu4_1 vs valid | output vs valid | relu4_1 vs torch | output vs torch |")
    print("|---|---|---|---|---|")
    feat0, out0 = results["valid"]
    for impl, (feat, out) in results.items():
        print(
            f"| {impl} | {_rel(feat, feat0):.1e} | {_rel(out, out0):.1e} "
            f"| {_rel(feat, torch_feat):.1e} | {_rel(out, torch_out):.1e} |"
        )


if __name__ == "__main__":
    main()
