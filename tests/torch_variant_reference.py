"""Independent PyTorch implementations of the paper's section 7.2 decoder variants
(Enc-Concat-Dec, Enc-AdaIN-BNDec, Enc-AdaIN-INDec) and their training losses, written
with torch's own layers (``nn.BatchNorm2d`` momentum 0.1 = Flax 0.9, ``nn.InstanceNorm2d``
affine, ``F.interpolate(mode="nearest-exact")``), and a plain Adam training loop
(``torch.optim.Adam`` with the port's ``lr / (1 + decay * i)`` schedule).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tests import torch_reference as ref
from tests import torch_train_reference as tref

# Decoder convs in order (our layer names) with their channels.
CONVS = (
    ("conv4_1", 256), "up", ("conv3_4", 256), ("conv3_3", 256), ("conv3_2", 256),
    ("conv3_1", 128), "up", ("conv2_2", 128), ("conv2_1", 64), "up", ("conv1_2", 64),
    ("conv1_1", 3),
)  # fmt: skip


def variant_decoder(fusion: str = "adain", norm: str = "none", seed: int = 0) -> nn.Sequential:
    """The decoder of a variant, random weights (He-scaled convs, random affine norms)."""
    g = torch.Generator().manual_seed(seed)
    cin = 1024 if fusion == "concat" else 512
    layers: list[nn.Module] = []
    for i, spec in enumerate(CONVS):
        if spec == "up":
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            continue
        _, cout = spec
        conv = nn.Conv2d(cin, cout, (3, 3))
        with torch.no_grad():
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * (2 / (9 * cin)) ** 0.5)
            conv.bias.copy_(torch.randn(cout, generator=g) * 0.05)
        layers += [nn.ReflectionPad2d((1, 1, 1, 1)), conv]
        if i < len(CONVS) - 1:
            if norm != "none":
                layer = (
                    nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)
                    if norm == "batch"
                    else nn.InstanceNorm2d(cout, eps=1e-5, affine=True)
                )
                with torch.no_grad():
                    layer.weight.copy_(1 + 0.2 * torch.randn(cout, generator=g))
                    layer.bias.copy_(0.1 * torch.randn(cout, generator=g))
                layers.append(layer)
            layers.append(nn.ReLU())
        cin = cout
    return nn.Sequential(*layers)


def decoder_with_stats(fusion: str, norm: str, seed: int = 5) -> nn.Sequential:
    """``variant_decoder`` with BatchNorm running statistics away from their initial 0 / 1
    (the variant tests' decoder)."""
    dec = variant_decoder(fusion, norm, seed)
    if norm == "batch":
        g = torch.Generator().manual_seed(seed + 1)
        for m in dec:
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.3 * torch.randn(m.num_features, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
    return dec


def to_params(dec: nn.Sequential, grads: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """Our decoder params tree (or the grads' tree) from the torch decoder, by layer order."""
    names = iter(spec[0] for spec in CONVS if spec != "up")
    tree, name = {}, None
    for module in dec:
        get = (lambda p: p.grad) if grads else (lambda p: p.data)
        if isinstance(module, nn.Conv2d):
            name = next(names)
            tree[name] = {
                "kernel": get(module.weight).double().numpy().transpose(2, 3, 1, 0),
                "bias": get(module.bias).double().numpy(),
            }
        elif isinstance(module, (nn.BatchNorm2d, nn.InstanceNorm2d)):
            leaves = {
                "scale": get(module.weight).double().numpy(),
                "bias": get(module.bias).double().numpy(),
            }
            if isinstance(module, nn.BatchNorm2d) and not grads:
                leaves["mean"] = module.running_mean.double().numpy()
                leaves["var"] = module.running_var.double().numpy()
            tree["norm_" + name] = leaves
    return tree


def fuse(fusion: str, content_feat: torch.Tensor, style_feat: torch.Tensor) -> torch.Tensor:
    if fusion == "adain":
        return ref.adain(content_feat, style_feat)
    style = F.interpolate(style_feat, size=content_feat.shape[2:], mode="nearest-exact")
    return torch.cat([content_feat, style.expand(content_feat.shape[0], -1, -1, -1)], dim=1)


def _nchw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))


def stylize(vgg, dec: nn.Sequential, fusion: str, content, style) -> np.ndarray:
    """The variant's stylization in torch: ``dec(fuse(f(c), f(s)))`` clipped to [0, 1],
    NHWC float32, for contents ``[N, H, W, 3]`` and a style ``[1, Hs, Ws, 3]`` in [0, 1]."""
    with torch.no_grad():
        cf = tref._encode_taps(vgg, _nchw(content))[-1]
        sf = tref._encode_taps(vgg, _nchw(style))[-1]
        return dec(fuse(fusion, cf, sf)).clamp(0, 1).numpy().transpose(0, 2, 3, 1)


def losses(vgg, dec, content, style, fusion, cw, sw):
    """The paper's losses (content target AdaIN(f(c), f(s)) for every variant)."""
    style_feats = tref._encode_taps(vgg, style)
    content_feat = tref._encode_taps(vgg, content)[-1]
    t = ref.adain(content_feat, style_feats[-1]).detach()
    g_t = dec(fuse(fusion, content_feat, style_feats[-1]).detach())
    g_t_feats = tref._encode_taps(vgg, g_t)
    loss_c = F.mse_loss(g_t_feats[-1], t)
    loss_s = sum(tref._style_loss(a, b) for a, b in zip(g_t_feats, style_feats, strict=True))
    return loss_c, loss_s, cw * loss_c + sw * loss_s, g_t


def losses_and_grads(vgg, dec, content, style, fusion="adain", cw=1.0, sw=10.0, train=True):
    """float64 ``(content, style, total, output NHWC, grads tree, decoder after)``; the
    decoder in train mode (BatchNorm: batch statistics, running ones updated)."""
    vgg, dec = copy.deepcopy(vgg).double(), copy.deepcopy(dec).double()
    for p in vgg.parameters():
        p.requires_grad_(False)
    dec.train(train)
    c, s = _nchw(content).double(), _nchw(style).double()
    loss_c, loss_s, total, g_t = losses(vgg, dec, c, s, fusion, cw, sw)
    total.backward()
    out = g_t.detach().numpy().transpose(0, 2, 3, 1)
    return float(loss_c), float(loss_s), float(total), out, to_params(dec, grads=True), dec


def train_loop(vgg, dec, content, style, steps, lr, lr_decay, cw, sw, fusion="adain"):
    """The port's training loop on one fixed batch, float64: Adam (torch defaults), lr set
    to ``lr / (1 + lr_decay * i)`` before step i. Returns per-step (content, style)."""
    vgg, dec = copy.deepcopy(vgg).double(), copy.deepcopy(dec).double()
    for p in vgg.parameters():
        p.requires_grad_(False)
    dec.train()
    opt = torch.optim.Adam(dec.parameters(), lr=lr)
    c, s = _nchw(content).double(), _nchw(style).double()
    out = []
    for i in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr / (1.0 + lr_decay * i)
        loss_c, loss_s, total, _ = losses(vgg, dec, c, s, fusion, cw, sw)
        opt.zero_grad()
        total.backward()
        opt.step()
        out.append((float(loss_c), float(loss_s)))
    return out
