"""ResNet-D ("Bag of Tricks for Image Classification with Convolutional Neural Networks",
arXiv 1812.01187): the reference encoder the converter checks mmdet's `ResNetV1d` against, and
the key names of the three libraries that write it.

The model: a deep stem of three 3x3 convs (C/2 stride 2, C/2, C; each with BN and ReLU) instead
of the 7x7 conv, then the usual 3x3/2 max-pool; in each stage's first block the shortcut is a 2x2
stride-2 average pool (ceil_mode, count_include_pad=False) before a stride-1 1x1 conv and BN.
Blocks are torchvision's (stride on the 3x3 conv). Key names here are mmdet's `ResNetV1d`
(mmdet/models/backbones/resnet.py `_make_stem_layer`, mmdet/models/layers/res_layer.py):
`stem.{0,3,6}.weight` convs, `stem.{1,4,7}.*` norms, shortcut `downsample.1` conv and
`downsample.2` norm (index 0 is the pool, a 1x1/1 pool in layer1).

Sources (renamed to those names by `deep_stem_names`):
- timm `resnet18d/34d/50d/101d/152d` (timm/models/resnet.py: `stem_type='deep'`, `stem_width=32`,
  `avg_down=True`): `conv1.{0,3,6}.weight`, norms `conv1.1`, `conv1.4` and `bn1`; shortcut
  `downsample_avg` = Sequential(pool or Identity at stride 1, conv, norm) -> `downsample.1/.2`;
- mmpretrain / mmcls `ResNetV1d` (mmpretrain/models/backbones/resnet.py): stem of three
  `ConvModule`s, `stem.{0,1,2}.conv.weight` and `stem.{0,1,2}.bn.*`; the pool is added only
  where the stride is not 1, so layer1's shortcut is `downsample.0` conv, `downsample.1` norm;
- mmdet `ResNetV1d`: the target names themselves.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

import torch
from torch import nn

from pretrain.backbones import ARCHS, ResNet, build_resnet
from transfer.convert.checks import ConvertError

STEM = "deep"
TITLE = "ResNet-D (deep stem, avg-pool downsample)"
# timm's deep stem: Sequential index -> mmdet stem index (bn1 is the third norm, outside it).
_TIMM_STEM = {"0": "0", "1": "1", "3": "3", "4": "4", "6": "6"}
_MMPRE_STEM = {("0", "conv"): "0", ("0", "bn"): "1", ("1", "conv"): "3", ("1", "bn"): "4",
               ("2", "conv"): "6", ("2", "bn"): "7"}
_DS = re.compile(r"^(layer[1-4]\.\d+\.downsample\.)(\d+)\.(.*)$")


class ResNetD(ResNet):
    """`pretrain.backbones.ResNet` with ResNet-D's stem and shortcuts, named as mmdet's ResNetV1d."""

    def __init__(self, block: type, layers: tuple[int, ...], width: int = 1) -> None:
        super().__init__(block, layers, width=width, stem="imagenet")
        c = 64 * width
        del self.conv1, self.bn1
        self.stem = nn.Sequential(
            nn.Conv2d(3, c // 2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(c // 2, c // 2, 3, stride=1, padding=1, bias=False), nn.BatchNorm2d(c // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(c // 2, c, 3, stride=1, padding=1, bias=False), nn.BatchNorm2d(c),
            nn.ReLU(inplace=True))
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            first = layer[0]
            if first.downsample is None:
                continue
            conv, norm = first.downsample[0], first.downsample[1]
            s = conv.stride[0]
            pool = (nn.AvgPool2d(s, s, ceil_mode=True, count_include_pad=False) if s != 1
                    else nn.Identity())
            first.downsample = nn.Sequential(
                pool, nn.Conv2d(conv.in_channels, conv.out_channels, 1, stride=1, bias=False), norm)
        self.stem_type = STEM

    def forward_stages(self, x):
        x = self.maxpool(self.stem(x))
        outs = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            outs.append(x)
        return outs

    def _forward_impl(self, x):  # torchvision's forward calls this
        return self.fc(self.avgpool(self.forward_stages(x)[-1]).flatten(1))


def deep_stem_channels(sd: Mapping[str, torch.Tensor]) -> int:
    """Output channels C of a ResNet-D deep stem (3x3 convs 3 -> C/2 -> C/2 -> C, mmdet names),
    after checking that its shortcuts are ResNet-D's (avg-pool, then a stride-1 conv)."""
    shapes = [tuple(sd[f"stem.{i}.weight"].shape) if f"stem.{i}.weight" in sd else None
              for i in (0, 3, 6)]
    if None in shapes or any(len(s) != 4 or s[2:] != (3, 3) for s in shapes):
        raise ConvertError(f"deep stem: expected three 3x3 convs, found {shapes}")
    c = shapes[2][0]
    if shapes[0][1] != 3:
        raise ConvertError(f"deep stem takes {shapes[0][1]} input channels, not 3 (RGB)")
    if not (shapes[0][0] == shapes[1][0] == shapes[1][1] == shapes[2][1] == c // 2):
        raise ConvertError(
            f"deep stem widths {shapes[0][0]}-{shapes[1][0]}-{c}: only ResNet-D's C/2-C/2-C stem "
            "(timm stem_type='deep', mmdet/mmpretrain ResNetV1d) is supported, not e.g. timm's "
            "'deep_tiered' (resnet*t)")
    plain = sorted(k for k in sd if re.match(r"layer[1-4]\.\d+\.downsample\.0\.weight$", k))
    if plain:
        raise ConvertError(
            f"deep stem with strided-conv shortcuts ({plain[0]}): ResNet-C (e.g. timm resnet50c) "
            "is not supported; ResNet-D (deep stem, avg-pool shortcuts) is")
    return c


def build_reference(arch: str, stem: str) -> nn.Module:
    """The reference encoder of a conversion: ResNet-D for the deep stem, else
    `pretrain.backbones.build_resnet`."""
    if stem != STEM:
        return build_resnet(arch, stem)
    spec = ARCHS[arch]
    return ResNetD(spec.block, spec.layers, width=spec.width)


def is_deep(keys: Any) -> bool:
    return any(k in keys for k in ("conv1.0.weight", "stem.0.weight", "stem.0.conv.weight"))


def deep_stem_names(local: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """`local` (keys relative to the ResNet) with a timm or mmpretrain deep stem and its shortcuts
    in mmdet ResNetV1d names, and which layout it was (None: no deep stem, `local` unchanged).
    A shortcut that is a strided 1x1 conv without a pool (ResNet-C: timm `resnet50c`) is left
    as it is, so the arch check refuses it by name."""
    if "conv1.0.weight" in local:
        layout = "timm"
    elif "stem.0.conv.weight" in local:
        layout = "mmpretrain"
    elif "stem.0.weight" in local:
        layout = "mmdet"
    else:
        return dict(local), None
    out: dict[str, Any] = {}
    for k, v in local.items():
        out[_stem_key(k, layout)] = v
    if layout == "mmpretrain":
        # Its layer1 shortcut has no pool (stride 1): conv at 0, norm at 1 -> mmdet's 1, 2.
        out = {(_DS.sub(lambda m: f"{m.group(1)}{int(m.group(2)) + 1}.{m.group(3)}", k)
                if k.startswith("layer1.0.downsample.") else k): v for k, v in out.items()}
    return out, layout


def _stem_key(k: str, layout: str) -> str:
    head, _, rest = k.partition(".")
    if layout == "timm":
        if head == "conv1":
            i, _, tail = rest.partition(".")
            return f"stem.{_TIMM_STEM.get(i, i)}.{tail}"
        if head == "bn1":
            return f"stem.7.{rest}"
    elif layout == "mmpretrain" and head == "stem":
        parts = rest.split(".", 2)
        if len(parts) == 3 and (parts[0], parts[1]) in _MMPRE_STEM:
            return f"stem.{_MMPRE_STEM[(parts[0], parts[1])]}.{parts[2]}"
    return k
