"""AdaIN arbitrary style transfer (Huang & Belongie, ICCV 2017) in JAX/Flax.

Public API (images float NHWC in [0, 1]; params, content, style(s)/stats,
alpha, then keyword-only options such as ``dtype``)::

    params = adain_jax.load_params()            # pretrained (downloads once)
    out = adain_jax.stylize(params, content, style, alpha=1.0)
    stats = adain_jax.encode_style(params, style)            # style cache
    out = adain_jax.stylize_with_stats(params, content, stats, 0.8)
    out = adain_jax.stylize_mix(params, content, [s1, s2], weights=[1, 3])
    big = adain_jax.stylize_tiled(params, big_image, stats, max_tile=1024)
    style = adain_jax.match_color(content, style)            # colour preservation

The networks: ``adain_jax.nn`` (``encode``/``decode`` in ``adain_jax.nn.forward``);
the runtime controls: ``adain_jax.controls``.
"""

import importlib
from typing import TYPE_CHECKING

# name -> module: imported on first use (PEP 562), so ``import adain_jax`` and the
# command lines' flag checks do not import JAX and Flax (~2 s) until they are needed.
_EXPORTS = {
    "luminance_inputs": "adain_jax.controls.color",
    "match_color": "adain_jax.controls.color",
    "recombine_luminance": "adain_jax.controls.color",
    "labels_from_mask_image": "adain_jax.controls.masks",
    "StyleStats": "adain_jax.controls.stats",
    "encode_style": "adain_jax.controls.stats",
    "stack_stats": "adain_jax.controls.stats",
    "stylize_tiled": "adain_jax.controls.tiling",
    "stylize": "adain_jax.controls.transfer",
    "stylize_mix": "adain_jax.controls.transfer",
    "stylize_with_stats": "adain_jax.controls.transfer",
    "decode": "adain_jax.nn.forward",
    "encode": "adain_jax.nn.forward",
    "Decoder": "adain_jax.nn.models",
    "EncoderTaps": "adain_jax.nn.models",
    "VGGEncoder": "adain_jax.nn.models",
    "adain": "adain_jax.nn.ops",
    "channel_mean_std": "adain_jax.nn.ops",
    "init_params": "adain_jax.weights.params",
    "load_params": "adain_jax.weights.params",
}

if TYPE_CHECKING:  # static analysis sees the plain imports
    from adain_jax.controls.color import luminance_inputs, match_color, recombine_luminance
    from adain_jax.controls.masks import labels_from_mask_image
    from adain_jax.controls.stats import StyleStats, encode_style, stack_stats
    from adain_jax.controls.tiling import stylize_tiled
    from adain_jax.controls.transfer import stylize, stylize_mix, stylize_with_stats
    from adain_jax.nn.forward import decode, encode
    from adain_jax.nn.models import Decoder, EncoderTaps, VGGEncoder
    from adain_jax.nn.ops import adain, channel_mean_std
    from adain_jax.weights.params import init_params, load_params


def version() -> str:
    """The installed package's version (``pyproject.toml``), or ``"unknown"`` when it runs
    from a source tree that was never installed."""
    from importlib import metadata

    try:
        return metadata.version("adain-jax")
    except metadata.PackageNotFoundError:
        return "unknown"


def __getattr__(name: str):
    """Import a public name's module on first use (``__version__``: ``version()``)."""
    if name == "__version__":
        return version()
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'adain_jax' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = [
    "Decoder",
    "EncoderTaps",
    "StyleStats",
    "VGGEncoder",
    "adain",
    "channel_mean_std",
    "decode",
    "encode",
    "encode_style",
    "init_params",
    "labels_from_mask_image",
    "load_params",
    "luminance_inputs",
    "match_color",
    "recombine_luminance",
    "stack_stats",
    "stylize",
    "stylize_mix",
    "stylize_tiled",
    "stylize_with_stats",
]
