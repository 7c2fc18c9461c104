"""Checks and repairs on an encoder's tensors, each loud (torch only): non-finite values and
negative variances, lightly's SplitBatchNorm statistics, `shortcut` block naming. `ConvertError`
lives here so that `rules` and `resnet_d` can both raise it."""
from __future__ import annotations

import re
from typing import Any, Mapping

import torch

from unmix.core.errors import UnmixError


class ConvertError(UnmixError):
    """A conversion problem; `convert_file` prefixes the file name."""


def short(keys: list[str], n: int = 4) -> str:
    more = f", ... ({len(keys)} in all)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def check_finite(tensors: Mapping[str, torch.Tensor], local: Mapping[str, tuple[str, Any]]) -> None:
    """A NaN/inf weight (a diverged run) makes every feature NaN: name it instead of letting the
    verification report 'max |diff| nan'."""
    bad = [local[k][0] if k in local else k for k, t in tensors.items()
           if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise ConvertError(f"the source has non-finite tensors: {short(bad)}")
    # A negative variance makes BN's output NaN (sqrt of var + eps) just the same.
    neg = [local[k][0] if k in local else k for k, t in tensors.items()
           if k.endswith("running_var") and bool((t < 0).any())]
    if neg:
        raise ConvertError(f"the source has negative BN running_var (its output is NaN): {short(neg)}")


def collate_split_bn(tensors: dict[str, torch.Tensor], shapes: Mapping[str, tuple[int, ...]]
                     ) -> int | None:
    """lightly's SplitBatchNorm (lightly/models/batchnorm.py; ResNetGenerator(num_splits=S), its
    MoCo CIFAR examples) keeps running statistics per simulated GPU, shape (C*S,), and evaluates
    with their mean over the S splits (`SplitBatchNorm.train(False)`: `torch.mean(running_mean.
    view(S, C), dim=0)`). Collated the same way when every BN of the encoder is split alike;
    returns S (None: no split statistics)."""
    stats = {k: t for k, t in tensors.items()
             if k.endswith(("running_mean", "running_var")) and k in shapes and t.dim() == 1}
    ratios = {k: t.shape[0] / shapes[k][0] for k, t in stats.items()}
    if not stats or all(r == 1 for r in ratios.values()):
        return None
    s = ratios[next(iter(ratios))]
    if s != int(s) or s < 2 or any(r != s for r in ratios.values()):
        return None  # not SplitBatchNorm's layout: the shape check names the mismatch
    s = int(s)
    for k, t in stats.items():
        tensors[k] = torch.mean(t.view(s, shapes[k][0]), dim=0)
    return s


# lightly's ResNetGenerator (lightly/models/resnet.py) and kuangliu/pytorch-cifar (models/resnet.py) name a block's
# projection shortcut `shortcut` = Sequential(1x1 conv with the block's stride, BN), where
# torchvision has `downsample`; the blocks are otherwise torchvision's (same names, stride on the
# 3x3 conv, ReLU after the sum).
_SHORTCUT = re.compile(r"^(layer[1-4]\.\d+\.)shortcut\.([01])\.")


def shortcut_names(local: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """`local` with `shortcut` blocks as `downsample` (and `linear` as `fc`), and 'shortcut' when
    that naming was found (None: unchanged)."""
    if not any(_SHORTCUT.match(k) for k in local):
        return local, None
    if any(".downsample." in k for k in local):
        raise ConvertError("blocks named both `shortcut` and `downsample`: unsupported block naming")
    # ResNetGenerator's classifier is `linear` (torchvision's `fc`): dropped as a head.
    return {re.sub(r"^linear\.", "fc.", _SHORTCUT.sub(r"\1downsample.\2.", k)): v
            for k, v in local.items()}, "shortcut"
