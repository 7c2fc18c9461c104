"""Proof that a conversion is complete and faithful.

1. Structure (done in `rules`): every parameter and buffer of the target arch filled exactly
   once, shapes equal, nothing left over under the encoder.
2. Here: mmdet's `ResNet` (or `CifarResNet`, `ResNetV1d`) built from `mmdet_backbone_cfg` loads
   the converted tensors with `strict=True`, and its last stage output equals that of the source
   encoder rebuilt with `pretrain.backbones.build_resnet` (ResNet-D: `resnet_d.ResNetD`) from the
   source tensors, on a fixed random batch.
"""
from __future__ import annotations

import torch

from transfer.convert.conversion import convert_file
from transfer.convert.mmdet_cfg import mmdet_backbone_cfg
from transfer.convert.resnet_d import build_reference
from transfer.convert.rules import Conversion, ConvertError
from transfer.stack import ensure_stack
from unmix.core.errors import UnmixError

RTOL = 1e-4


def build_mmdet_backbone(conv: Conversion, **overrides) -> torch.nn.Module:
    """mmdet backbone for `conv`, loaded strictly (tensors shared with `conv.state_dict`)."""
    ensure_stack()
    import transfer.stack.backbones  # noqa: F401  registers CifarResNet
    from mmdet.registry import MODELS

    cfg = mmdet_backbone_cfg(conv, **overrides)
    with torch.device("meta"):
        model = MODELS.build(cfg)
    result = model.load_state_dict(conv.state_dict, strict=True, assign=True)
    if result.missing_keys or result.unexpected_keys:  # strict raises first; belt and braces
        raise ConvertError(f"mmdet {cfg['type']} load: missing {result.missing_keys}, "
                           f"unexpected {result.unexpected_keys}")
    model.eval()  # mmdet's ResNet.train() returns None, so no chaining
    return model


def build_source_encoder(conv: Conversion) -> torch.nn.Module:
    """The source encoder as the reference implementation builds it, from the source tensors."""
    with torch.device("meta"):
        ref = build_reference(conv.arch, conv.stem)
    if conv.stem == "cifar":
        p = int(conv.meta.get("stem_padding", 1))
        ref.conv1.padding = (p, p)
    src = {k: (v.float() if v.is_floating_point() else v) for k, v in conv.source_tensors.items()}
    ref.load_state_dict(src or conv.state_dict, strict=True, assign=True)
    return ref.eval()


def verify_features(conv: Conversion, *, batch: int = 2, size: int | None = None,
                    seed: int = 0) -> dict:
    """Compare final-stage features; returns the numbers, raises ConvertError on any gap."""
    size = size or (32 if conv.stem == "cifar" else 64)
    try:
        mm = build_mmdet_backbone(conv, out_indices=(3,))
    except RuntimeError as e:
        raise ConvertError(f"mmdet ResNet refuses the converted tensors: {str(e).splitlines()[0]}") \
            from None
    ref = build_source_encoder(conv)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, size, size, generator=g)
    with torch.no_grad():
        a = mm(x)[-1]
        b = ref.forward_stages(x)[-1]
    if not bool(torch.isfinite(b).all()):
        # Finite tensors and non-negative variances (checked in rules) can still overflow.
        raise ConvertError("the source encoder's own output is not finite on a random batch "
                           f"{tuple(x.shape)} (its weights overflow float32)")
    if a.shape != b.shape:
        raise ConvertError(f"feature shapes differ: mmdet {tuple(a.shape)} vs source {tuple(b.shape)}")
    diff = (a - b).abs().max().item()
    scale = b.abs().max().item()
    ok = bool(torch.isfinite(a).all()) and diff <= RTOL * max(scale, 1.0)
    out = {"input": [batch, 3, size, size], "seed": seed, "max_abs_diff": diff,
           "max_abs_feature": scale, "feature_shape": list(a.shape), "ok": ok}
    if not ok:
        raise ConvertError(f"converted mmdet backbone differs from the source encoder: max |diff| "
                           f"{diff:.3g} at feature scale {scale:.3g}")
    return out


def convert_and_verify(src, *, arch: str | None = None, fmt: str | None = None,
                       encoder: str | None = None, trust_pickle: bool = False,
                       verify: bool = True, stem_padding: int | None = None) -> Conversion:
    """`convert_file` and, unless `verify=False`, `verify_features` (its numbers go into
    `meta.verification`). Raises UnmixError('SRC: problem')."""
    conv = convert_file(src, arch=arch, fmt=fmt, encoder=encoder, trust_pickle=trust_pickle,
                        stem_padding=stem_padding)
    if verify:
        try:
            conv.meta["verification"] = verify_features(conv)
        except UnmixError as e:
            raise UnmixError(f"{src}: {e}") from None
    return conv
