"""Our mmdet backbones, registered in mmdet's MODELS registry.

`CifarResNet`: mmdet's `ResNet` with the CIFAR/STL stem (3x3 stride-1 conv1, no max-pool), so
encoders pretrained on small images keep their stem in detection (rather than having conv1 dropped
or reshaped). Key names are mmdet's/torchvision's, so `unmix convert` output loads strictly.
Select it with `backbone=dict(type='CifarResNet', depth=18, ...)`, or get the whole config from
`transfer.convert.mmdet_cfg.mmdet_backbone_cfg`. `stem_padding` exists for solo-learn's CIFAR stem (pad 2)
and the Un-Mix SwAV CIFAR code's (pad 1 before a pad-1 conv). Depth 26 is that code's Bottleneck
[2, 2, 2, 2] (`resnet18_bottleneck` in pretrain/backbones.py).
"""
from __future__ import annotations

from transfer.stack import ensure_stack

ensure_stack()

from mmcv.cnn import build_conv_layer, build_norm_layer  # noqa: E402
from mmdet.models.backbones.resnet import Bottleneck, ResNet  # noqa: E402
from mmdet.registry import MODELS  # noqa: E402
from torch import nn  # noqa: E402


class CifarResNet(ResNet):
    """mmdet ResNet with a 3x3 stride-1 conv1 (padding `stem_padding`) and no max-pool."""

    arch_settings = {**ResNet.arch_settings, 26: (Bottleneck, (2, 2, 2, 2))}

    def __init__(self, *args, stem_padding: int = 1, **kwargs) -> None:
        if kwargs.get("deep_stem"):
            raise ValueError("CifarResNet has a single 3x3 stem conv; deep_stem is not supported")
        self.stem_padding = stem_padding
        super().__init__(*args, **kwargs)

    def _make_stem_layer(self, in_channels: int, stem_channels: int) -> None:
        self.conv1 = build_conv_layer(self.conv_cfg, in_channels, stem_channels, kernel_size=3,
                                      stride=1, padding=self.stem_padding, bias=False)
        self.norm1_name, norm1 = build_norm_layer(self.norm_cfg, stem_channels, postfix=1)
        self.add_module(self.norm1_name, norm1)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity()


if "CifarResNet" not in MODELS.module_dict:
    MODELS.register_module(module=CifarResNet)
