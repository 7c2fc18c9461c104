"""ResNet encoders with torchvision key names, a CIFAR-stem option and SwAV-style widening.

Keys are exactly torchvision's (`conv1`, `bn1`, `layer{i}.{j}.convK`, `downsample.0/1`), with no
`fc`: this is the layout `unmix convert` writes and mmdet's `ResNet` loads. `width=2` widens every
stage (SwAV's ResNet-50 w2: stem 128, stages 128..1024 planes, 4096-d output), which is what
mmdet's `ResNet(stem_channels=64*w, base_channels=64*w)` builds, not torchvision's
`wide_resnet50_2` (which widens only the bottleneck's inner conv).

`resnet18_bottleneck` is what the Un-Mix SwAV CIFAR code calls `resnet18`
(UnMix_SwAV/for_CIFAR/src/resnet50.py:340-341 in szq0214/Un-Mix): Bottleneck blocks [2, 2, 2, 2],
2048-d output (26 weighted layers). That code also pads the input by 1 before its 3x3 conv1
(padding 1), i.e. a CIFAR stem with `stem_padding=2` (resnet50.py:158, 177, 279).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torchvision.models import resnet as tvr


class ArchSpec(NamedTuple):
    block: type
    layers: tuple[int, int, int, int]
    width: int
    depth: int


ARCHS: dict[str, ArchSpec] = {
    "resnet18": ArchSpec(tvr.BasicBlock, (2, 2, 2, 2), 1, 18),
    "resnet34": ArchSpec(tvr.BasicBlock, (3, 4, 6, 3), 1, 34),
    "resnet50": ArchSpec(tvr.Bottleneck, (3, 4, 6, 3), 1, 50),
    "resnet101": ArchSpec(tvr.Bottleneck, (3, 4, 23, 3), 1, 101),
    "resnet152": ArchSpec(tvr.Bottleneck, (3, 8, 36, 3), 1, 152),
    "resnet50w2": ArchSpec(tvr.Bottleneck, (3, 4, 6, 3), 2, 50),
    "resnet18_bottleneck": ArchSpec(tvr.Bottleneck, (2, 2, 2, 2), 1, 26),
}
STEMS = ("imagenet", "cifar")


class ResNet(tvr.ResNet):
    """torchvision's ResNet with `stem` ('imagenet': 7x7/2 + max-pool; 'cifar': 3x3/1 padded by
    `stem_padding`, no max-pool) and `width`; `fc` is an Identity, so `forward` returns pooled
    features (N, C)."""

    def __init__(self, block: type, layers: tuple[int, ...], width: int = 1, stem: str = "imagenet",
                 norm_layer: type[nn.Module] | None = None, zero_init_residual: bool = False,
                 stem_padding: int = 1) -> None:
        nn.Module.__init__(self)  # torchvision's __init__ hard-codes 64 channels and the 7x7 stem
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {stem!r}")
        if stem_padding != 1 and stem != "cifar":
            raise ValueError(f"stem_padding {stem_padding}: only the 'cifar' stem takes a padding")
        self._norm_layer = norm_layer or nn.BatchNorm2d
        self.stem = stem
        self.inplanes = 64 * width
        self.dilation, self.groups, self.base_width = 1, 1, 64
        if stem == "cifar":
            self.conv1 = nn.Conv2d(3, self.inplanes, 3, stride=1, padding=stem_padding, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(3, self.inplanes, 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.bn1 = self._norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        planes = 64 * width
        self.layer1 = self._make_layer(block, planes, layers[0])
        self.layer2 = self._make_layer(block, planes * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, planes * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, planes * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Identity()
        self.num_features = planes * 8 * block.expansion
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, tvr.Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, tvr.BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four stage outputs C2..C5 (what a detector's neck consumes)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            outs.append(x)
        return outs


def build_resnet(arch: str = "resnet50", stem: str = "imagenet", **kwargs) -> ResNet:
    """Build an encoder by name; see `ARCHS` for the names."""
    try:
        spec = ARCHS[arch]
    except KeyError:
        raise ValueError(f"unknown arch {arch!r}; choose from {', '.join(ARCHS)}") from None
    return ResNet(spec.block, spec.layers, width=spec.width, stem=stem, **kwargs)
