"""AdaIN arbitrary style transfer (Huang & Belongie, ICCV 2017) in JAX/Flax.

Public API::

    params = adain_jax.load_params()            # pretrained (downloads once)
    out = adain_jax.stylize(params, content, style, alpha=1.0)   # NHWC in [0, 1]
    t = adain_jax.adain(content_feat, style_feat)

Runtime controls (style mixing, masks, a style-feature cache): see
``adain_jax.controls.mixing``; colour preservation: ``adain_jax.controls.color``; large
images: ``adain_jax.controls.tiling``.
"""

from adain_jax.controls.color import match_color
from adain_jax.controls.mixing import StyleStats, encode_style, stylize_mix, stylize_with_stats
from adain_jax.controls.transfer import decode, encode, stylize
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
    "load_params",
    "match_color",
    "stylize",
    "stylize_mix",
    "stylize_with_stats",
]
