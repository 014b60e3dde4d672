"""Gatys et al.'s "normalised" VGG: each filter rescaled to a mean activation of 1.

The authors' ``vgg_normalised`` is VGG-19 rescaled this way (Gatys, Ecker & Bethge 2016: "we
normalized the network by scaling the weights such that the mean activation of each
convolutional filter over images and positions is equal to one"), and the paper's loss weights
(content 1, style 10) were chosen for it. torchvision's ImageNet VGGs are not normalised: their
relu1_1 activations are about 3x smaller than relu3_1's, so the colour statistics count ~10x
less in the style loss than with ``vgg_normalised``.

The rescaling keeps the network's function up to a positive factor per channel: channel k of
conv L is divided by its mean activation m_k, and conv L+1's input weights of channel k
multiplied by m_k (ReLU, max-pooling and reflection padding commute with positive per-channel
scales). Every tap is then the original tap with each channel divided by its mean over the
given images.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from adain_jax.nn.models import ENCODER_ARCHS, VGGEncoder, encoder_arch
from adain_jax.weights.convert import conv_names

# A channel whose mean activation is below this (a dead filter) is left as it is.
MIN_MEAN = 1e-6


def _mean_activations(params: dict, images: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Per-channel mean ReLU activation of every 3x3 conv over ``images``."""
    sums: dict[str, np.ndarray] = {}
    count = 0
    module = VGGEncoder(arch=encoder_arch(params))

    def means_of(p, x):
        _, state = module.apply(
            {"params": p}, x, capture_intermediates=True, mutable=["intermediates"]
        )
        convs = state["intermediates"]  # each conv's output before its ReLU
        return {
            k: jnp.mean(jax.nn.relu(v["__call__"][0]), axis=(0, 1, 2))
            for k, v in convs.items()
            if k in names
        }

    names = set(conv_names(ENCODER_ARCHS[module.arch]))
    fn = jax.jit(means_of)
    for image in images:
        means = fn(params, jnp.asarray(image, jnp.float32)[None])
        for k, v in means.items():
            sums[k] = sums.get(k, 0.0) + np.asarray(v, np.float64)
        count += 1
    return {k: v / count for k, v in sums.items()}


def normalise_encoder(params: dict, images: Sequence[np.ndarray]) -> dict:
    """The encoder rescaled so each 3x3 conv's mean ReLU activation over ``images`` is 1.

    Args:
      params: encoder params (``VGGEncoder``'s, either architecture).
      images: float ``[H, W, 3]`` RGB images in [0, 1] (any sizes, at least 9 px).

    Returns:
      new encoder params (float32 NumPy), the same architecture.
    """
    out = jax.tree.map(lambda a: np.array(a, np.float32), params)
    means = _mean_activations(out, images)
    previous = None
    for name in conv_names(ENCODER_ARCHS[encoder_arch(out)]):
        m = means[name]
        scale = np.where(m > MIN_MEAN, m, 1.0).astype(np.float32)
        out[name]["kernel"] = out[name]["kernel"] / scale
        out[name]["bias"] = out[name]["bias"] / scale
        if previous is not None:  # undo the previous layer's scale on this layer's inputs
            out[name]["kernel"] = out[name]["kernel"] * previous[None, None, :, None]
        previous = scale
    return out
