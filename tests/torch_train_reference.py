"""The PyTorch port's training losses (naoto0804/pytorch-AdaIN ``net.Net``), as an
independent reference: content = MSE(f(g(t)) at relu4_1, t), style = sum over
relu1_1..relu4_1 of MSE(means) + MSE(stds). Statistics use the biased variance
(``torch_reference.calc_mean_std``), the convention adain-jax documents.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tests import torch_reference as ref


def _encode_taps(vgg: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    taps, start = [], 0
    for end in ref.VGG_TAP_ENDS:
        x = vgg[start:end](x)
        taps.append(x)
        start = end
    return taps


def _style_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a_mean, a_std = ref.calc_mean_std(a)
    b_mean, b_std = ref.calc_mean_std(b)
    return F.mse_loss(a_mean, b_mean) + F.mse_loss(a_std, b_std)


def losses_and_decoder_grads(
    vgg: nn.Sequential,
    dec: nn.Sequential,
    content: np.ndarray,
    style: np.ndarray,
    content_weight: float = 1.0,
    style_weight: float = 10.0,
) -> tuple[float, float, float, dict[str, np.ndarray]]:
    """``(content, style, total, {decoder state-dict key: grad})`` for NHWC float images.

    Computed in float64 on copies of the networks (the originals are untouched).
    """
    vgg, dec = copy.deepcopy(vgg).double(), copy.deepcopy(dec).double()  # float64 reference
    for p in vgg.parameters():
        p.requires_grad_(False)
    c = torch.from_numpy(np.ascontiguousarray(content.transpose(0, 3, 1, 2))).double()
    s = torch.from_numpy(np.ascontiguousarray(style.transpose(0, 3, 1, 2))).double()
    style_feats = _encode_taps(vgg, s)
    content_feat = _encode_taps(vgg, c)[-1]
    t = ref.adain(content_feat, style_feats[-1]).detach()
    g_t = dec(t)
    g_t_feats = _encode_taps(vgg, g_t)
    loss_c = F.mse_loss(g_t_feats[-1], t)
    loss_s = sum(_style_loss(g, sf) for g, sf in zip(g_t_feats, style_feats, strict=True))
    total = content_weight * loss_c + style_weight * loss_s
    total.backward()
    grads = {k: p.grad.numpy().copy() for k, p in dec.named_parameters()}
    return float(loss_c.detach()), float(loss_s.detach()), float(total.detach()), grads


def stylized_losses(
    vgg: nn.Sequential, dec: nn.Sequential, content: np.ndarray, style: np.ndarray
) -> tuple[float, float]:
    """The port's losses of its own stylization ``ref.stylize`` (alpha 1, clipped
    to [0, 1]) of one content/style pair (NHWC, batch 1), measured with ``vgg``."""
    return output_losses(vgg, ref.stylize(vgg, dec, content, style), content, style)


def output_losses(
    vgg: nn.Sequential, out: np.ndarray, content: np.ndarray, style: np.ndarray
) -> tuple[float, float]:
    """``(content loss vs AdaIN target, style loss)`` of any output for its pair (NHWC,
    batch 1, float32 in [0, 1]), measured with ``vgg``."""
    with torch.no_grad():
        to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))  # noqa: E731
        o, c, s = (_encode_taps(vgg, to_t(a)) for a in (out, content, style))
        t = ref.adain(c[-1], s[-1])
        loss_c = F.mse_loss(o[-1], t)
        loss_s = sum(_style_loss(a, b) for a, b in zip(o, s, strict=True))
    return float(loss_c), float(loss_s)
