"""An independent PyTorch implementation of AdaIN, written as the PyTorch port
(naoto0804/pytorch-AdaIN) writes it: ``nn.Sequential`` networks whose state
dicts have the release files' layouts. Tests compare adain-jax against it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def _pad_conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d(cin, cout, (3, 3))]


def vgg_normalised() -> nn.Sequential:
    """The port's ``vgg`` up to relu5_4 (indices as in vgg_normalised.pth)."""
    pool = lambda: nn.MaxPool2d((2, 2), (2, 2), (0, 0), ceil_mode=True)  # noqa: E731
    relu = nn.ReLU
    return nn.Sequential(
        nn.Conv2d(3, 3, (1, 1)),
        *_pad_conv(3, 64), relu(),  # relu1_1: index 3
        *_pad_conv(64, 64), relu(),
        pool(),
        *_pad_conv(64, 128), relu(),  # relu2_1: index 10
        *_pad_conv(128, 128), relu(),
        pool(),
        *_pad_conv(128, 256), relu(),  # relu3_1: index 17
        *_pad_conv(256, 256), relu(),
        *_pad_conv(256, 256), relu(),
        *_pad_conv(256, 256), relu(),
        pool(),
        *_pad_conv(256, 512), relu(),  # relu4_1: index 30
        *_pad_conv(512, 512), relu(),
        *_pad_conv(512, 512), relu(),
        *_pad_conv(512, 512), relu(),
        pool(),
        *_pad_conv(512, 512), relu(),
        *_pad_conv(512, 512), relu(),
        *_pad_conv(512, 512), relu(),
        *_pad_conv(512, 512), relu(),
    )  # fmt: skip


VGG_TAP_ENDS = (4, 11, 18, 31)  # slice ends giving relu1_1, relu2_1, relu3_1, relu4_1


def decoder() -> nn.Sequential:
    """The port's ``decoder`` (indices as in decoder.pth)."""
    up = lambda: nn.Upsample(scale_factor=2, mode="nearest")  # noqa: E731
    return nn.Sequential(
        nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d(512, 256, (3, 3)), nn.ReLU(),
        up(),
        *_pad_conv(256, 256), nn.ReLU(),
        *_pad_conv(256, 256), nn.ReLU(),
        *_pad_conv(256, 256), nn.ReLU(),
        *_pad_conv(256, 128), nn.ReLU(),
        up(),
        *_pad_conv(128, 128), nn.ReLU(),
        *_pad_conv(128, 64), nn.ReLU(),
        up(),
        *_pad_conv(64, 64), nn.ReLU(),
        *_pad_conv(64, 3),
    )  # fmt: skip


VGG19_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
             512, 512, 512, 512, "M"]  # fmt: skip
VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
             512, 512, 512, "M"]  # fmt: skip


def torchvision_state_dict(cfg: list, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict with torchvision's VGG keys and shapes for ``cfg`` (``VGG19_CFG``,
    ``VGG16_CFG``; no torchvision needed)."""
    g = torch.Generator().manual_seed(seed)
    sd, index, cin = {}, 0, 3
    for v in cfg:
        if v == "M":
            index += 1
            continue
        sd[f"features.{index}.weight"] = (
            torch.randn(v, cin, 3, 3, generator=g) * (2 / (9 * cin)) ** 0.5
        )
        sd[f"features.{index}.bias"] = torch.randn(v, generator=g) * 0.01
        index, cin = index + 2, v
    for i in (0, 3, 6):
        # The converter ignores the classifier; small stand-ins keep test files small.
        sd[f"classifier.{i}.weight"] = torch.zeros(8, 16)
        sd[f"classifier.{i}.bias"] = torch.zeros(8)
    return sd


def torchvision_vgg19_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict with torchvision ``vgg19``'s keys and shapes."""
    return torchvision_state_dict(VGG19_CFG, seed)


def torchvision_vgg16_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict with torchvision ``vgg16``'s keys and shapes."""
    return torchvision_state_dict(VGG16_CFG, seed)


def _imagenet_input_conv(conv: nn.Conv2d) -> None:
    """Set a 1x1 conv to ``(x - mean) / std`` with ImageNet's RGB mean and std."""
    mean = torch.tensor([0.485, 0.456, 0.406])
    std = torch.tensor([0.229, 0.224, 0.225])
    conv.weight.copy_(torch.diag(1 / std)[:, :, None, None])
    conv.bias.copy_(-mean / std)


def torchvision_vgg16_encoder(state_dict: dict[str, torch.Tensor]) -> nn.Sequential:
    """torchvision ``vgg16`` features up to relu4_1 written with ``torch.nn`` layers:
    ImageNet normalisation as a 1x1 conv, reflection padding, ceil-mode pools.
    Slice ends of the taps: ``VGG16_TAP_ENDS``."""
    pool = lambda: nn.MaxPool2d((2, 2), (2, 2), (0, 0), ceil_mode=True)  # noqa: E731
    relu = nn.ReLU
    seq = nn.Sequential(
        nn.Conv2d(3, 3, (1, 1)),
        *_pad_conv(3, 64), relu(),  # relu1_1: index 3
        *_pad_conv(64, 64), relu(),
        pool(),
        *_pad_conv(64, 128), relu(),  # relu2_1: index 10
        *_pad_conv(128, 128), relu(),
        pool(),
        *_pad_conv(128, 256), relu(),  # relu3_1: index 17
        *_pad_conv(256, 256), relu(),
        *_pad_conv(256, 256), relu(),
        pool(),
        *_pad_conv(256, 512), relu(),  # relu4_1: index 27
    )  # fmt: skip
    with torch.no_grad():
        _imagenet_input_conv(seq[0])
        ours = [2, 5, 9, 12, 16, 19, 22, 26]
        theirs = [0, 2, 5, 7, 10, 12, 14, 17]
        for o, t in zip(ours, theirs, strict=True):
            seq[o].weight.copy_(state_dict[f"features.{t}.weight"])
            seq[o].bias.copy_(state_dict[f"features.{t}.bias"])
    return seq


VGG16_TAP_ENDS = (4, 11, 18, 28)


def torchvision_encoder(state_dict: dict[str, torch.Tensor]) -> nn.Module:
    """torchvision-style VGG-19 features with ImageNet normalisation in front,
    reflection padding and ceil-mode pools (the architecture adain-jax uses)."""
    seq = vgg_normalised()
    with torch.no_grad():
        _imagenet_input_conv(seq[0])
        ours = [2, 5, 9, 12, 16, 19, 22, 25, 29]
        theirs = [0, 2, 5, 7, 10, 12, 14, 16, 19]
        for o, t in zip(ours, theirs, strict=True):
            seq[o].weight.copy_(state_dict[f"features.{t}.weight"])
            seq[o].bias.copy_(state_dict[f"features.{t}.bias"])
    return seq


def encoder_taps(
    seq: nn.Sequential, images_nhwc: np.ndarray, ends: tuple[int, ...] = VGG_TAP_ENDS
) -> list[np.ndarray]:
    """relu1_1..relu4_1 of NHWC images, returned NHWC (``ends``: the taps' slice ends)."""
    x = torch.from_numpy(np.ascontiguousarray(images_nhwc.transpose(0, 3, 1, 2)))
    taps, start = [], 0
    with torch.no_grad():
        for end in ends:
            x = seq[start:end](x)
            taps.append(x.permute(0, 2, 3, 1).numpy())
            start = end
    return taps


def calc_mean_std(feat: torch.Tensor, eps: float = 1e-5):
    """Per-sample, per-channel mean and std of NCHW features (biased variance + eps)."""
    n, c = feat.shape[:2]
    var = feat.reshape(n, c, -1).var(dim=2, unbiased=False) + eps
    return feat.reshape(n, c, -1).mean(dim=2).view(n, c, 1, 1), var.sqrt().view(n, c, 1, 1)


def adain(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    c_mean, c_std = calc_mean_std(content)
    s_mean, s_std = calc_mean_std(style)
    return (content - c_mean) / c_std * s_std + s_mean


def stylize(
    vgg: nn.Sequential,
    dec: nn.Sequential,
    content: np.ndarray,
    style: np.ndarray,
    alpha: float = 1.0,
) -> np.ndarray:
    """The port's ``style_transfer`` on NHWC arrays in [0, 1]; output cropped, clipped, NHWC."""
    enc = vgg[:31]
    with torch.no_grad():
        c = torch.from_numpy(np.ascontiguousarray(content.transpose(0, 3, 1, 2)))
        s = torch.from_numpy(np.ascontiguousarray(style.transpose(0, 3, 1, 2)))
        cf, sf = enc(c), enc(s)
        t = alpha * adain(cf, sf) + (1 - alpha) * cf
        out = dec(t)[:, :, : content.shape[1], : content.shape[2]].clamp(0, 1)
    return out.permute(0, 2, 3, 1).numpy()


def randomize(module: nn.Module, seed: int) -> nn.Module:
    """He-scaled random weights so activations stay O(1) through the depth."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2 / fan_in) ** 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.05)
    return module
