"""AdaIN arbitrary style transfer (Huang & Belongie, ICCV 2017) in JAX/Flax.

Public API::

    params = adain_jax.load_params()            # pretrained (downloads once)
    out = adain_jax.stylize(params, content, style, alpha=1.0)   # NHWC in [0, 1]
    t = adain_jax.adain(content_feat, style_feat)

Runtime controls (style mixing, masks, a style-feature cache): see
``adain_jax.controls``; colour preservation: ``adain_jax.color``; large
images: ``adain_jax.tiling``.
"""

from adain_jax.color import match_color
from adain_jax.controls import StyleStats, encode_style, stylize_mix, stylize_with_stats
from adain_jax.models import Decoder, EncoderTaps, VGGEncoder
from adain_jax.ops import adain, channel_mean_std
from adain_jax.params import init_params, load_params
from adain_jax.stylize import decode, encode, stylize

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
    "load_params",
    "match_color",
    "stylize",
    "stylize_mix",
    "stylize_with_stats",
]
