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

from adain_jax.controls.color import luminance_inputs, match_color, recombine_luminance
from adain_jax.controls.masks import labels_from_mask_image
from adain_jax.controls.stats import StyleStats, encode_style, stack_stats
from adain_jax.controls.tiling import stylize_tiled
from adain_jax.controls.transfer import stylize, stylize_mix, stylize_with_stats
from adain_jax.nn.forward import decode, encode
from adain_jax.nn.models import Decoder, EncoderTaps, VGGEncoder
from adain_jax.nn.ops import adain, channel_mean_std
from adain_jax.weights.params import init_params, load_params

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
