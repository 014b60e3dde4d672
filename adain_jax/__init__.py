"""AdaIN arbitrary style transfer (Huang & Belongie, ICCV 2017) in JAX/Flax.

Public API::

    params = adain_jax.load_params()            # pretrained (downloads once)
    out = adain_jax.stylize(params, content, style, alpha=1.0)   # NHWC in [0, 1]
    t = adain_jax.adain(content_feat, style_feat)
"""

from adain_jax.models import Decoder, EncoderTaps, VGGEncoder
from adain_jax.ops import adain, channel_mean_std
from adain_jax.params import init_params, load_params
from adain_jax.stylize import decode, encode, stylize

__all__ = [
    "Decoder",
    "EncoderTaps",
    "VGGEncoder",
    "adain",
    "channel_mean_std",
    "decode",
    "encode",
    "init_params",
    "load_params",
    "stylize",
]
