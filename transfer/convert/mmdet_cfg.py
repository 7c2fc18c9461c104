"""The mmdet backbone config that loads a converted checkpoint (no mmdet import needed)."""
from __future__ import annotations

import os
from typing import Any, Mapping

from pretrain.backbones import ARCHS
from transfer.convert.conversion import load_conversion


def _meta_of(conv_or_meta: Any) -> Mapping[str, Any]:
    if isinstance(conv_or_meta, (str, os.PathLike)):
        return load_conversion(conv_or_meta).meta
    meta = getattr(conv_or_meta, "meta", conv_or_meta)
    if not isinstance(meta, Mapping) or "arch" not in meta:
        raise TypeError("mmdet_backbone_cfg wants a Conversion, its meta dict or a DST path")
    return meta


def mmdet_backbone_cfg(conv_or_meta: Any, checkpoint: str | os.PathLike | None = None,
                       **overrides: Any) -> dict:
    """mmdet backbone config for a conversion (a `Conversion`, its `meta`, or a DST path).

    `type` is mmdet's `ResNet`, `ResNetV1d` for ResNet-D (deep stem, avg-pool shortcuts), or our
    `CifarResNet` (registered by `transfer.stack.backbones`) for a CIFAR stem; SwAV-style widening
    becomes `stem_channels = base_channels = 64 * width`. With `checkpoint`,
    `init_cfg=dict(type='Pretrained', checkpoint=...)` loads the DST. Everything else (norm_cfg,
    norm_eval, frozen_stages, out_indices...) can be overridden by keyword.
    """
    meta = _meta_of(conv_or_meta)
    spec = ARCHS[meta["arch"]]
    stem = meta.get("stem", "imagenet")
    cifar = stem == "cifar"
    # mmdet's ResNetV1d = ResNet(deep_stem=True, avg_down=True): ResNet-D, same key names.
    cfg: dict[str, Any] = dict(
        type="CifarResNet" if cifar else "ResNetV1d" if stem == "deep" else "ResNet",
        depth=spec.depth,
        stem_channels=64 * spec.width,
        base_channels=64 * spec.width,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        style="pytorch",
    )
    if cifar and int(meta.get("stem_padding", 1)) != 1:
        cfg["stem_padding"] = int(meta["stem_padding"])
    if checkpoint is not None:
        cfg["init_cfg"] = dict(type="Pretrained", checkpoint=str(checkpoint))
    cfg.update(overrides)
    return cfg
