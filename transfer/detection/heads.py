"""Detector parts the protocols need that mmdet 3.3 lacks (imported through `custom_imports`).

`ResLayerExtraNorm`: the C4 box head's res5 followed by one more norm layer, as in MoCo's
detectron2 protocol (`Res5ROIHeadsExtraNorm`) and mmselfsup's VOC/COCO C4 benchmarks. The res5
weights come from the checkpoint; the extra norm is new (its keys start with `norm.`).
"""
from __future__ import annotations

from mmcv.cnn import build_norm_layer
from mmdet.models.backbones import ResNet
from mmdet.models.roi_heads.shared_heads.res_layer import ResLayer
from mmdet.registry import MODELS
from torch import Tensor


@MODELS.register_module()
class ResLayerExtraNorm(ResLayer):
    """mmdet's `ResLayer` (res5 on RoI features) + a norm over its output channels."""

    def __init__(self, depth: int, stage: int = 3, **kwargs) -> None:
        super().__init__(depth, stage=stage, **kwargs)
        expansion = ResNet.arch_settings[depth][0].expansion
        self.add_module("norm", build_norm_layer(self.norm_cfg, 64 * 2**stage * expansion)[1])

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(getattr(self, f"layer{self.stage + 1}")(x))
