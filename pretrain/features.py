"""Frozen-encoder feature extraction: the one way images become features, for the pretraining
loop's kNN monitor and for `unmix knn|linear|flatness` (transfer.frozen)."""
from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable

import torch
from torch import nn
from torch.nn import functional as F

from unmix.core.errors import UnmixError


def progress(iterable: Iterable, desc: str, total: int | None = None) -> Iterable:
    """A tqdm bar on stderr (stdout stays parseable); off with UNMIX_NO_PROGRESS=1. Redrawn at
    most every 2 s when stderr is a log file rather than a terminal."""
    from tqdm import tqdm

    disable = os.environ.get("UNMIX_NO_PROGRESS") == "1"
    return tqdm(iterable, desc=desc, total=total, disable=disable, leave=False, dynamic_ncols=True,
                mininterval=2.0 if not sys.stderr.isatty() else 0.1)


def pooled(out: torch.Tensor) -> torch.Tensor:
    """An encoder's output as (N, C): maps are average-pooled, as the ResNet head does."""
    return torch.flatten(nn.functional.adaptive_avg_pool2d(out, 1), 1) if out.dim() > 2 else out


@torch.no_grad()
def extract_features(encoder: nn.Module, loader, device: str | torch.device,
                     amp_dtype: torch.dtype | None = None,
                     desc: str | None = "features") -> tuple[torch.Tensor, torch.Tensor]:
    """Run a frozen encoder over `loader` and return `(feats, labels)`.

    Shape: feats (N, C) float32 on the CPU, labels (N,) int64 on the CPU, in loader order.

    The encoder is put in eval mode (batch norm uses its running statistics; the caller restores
    train mode if it needs it). `amp_dtype` runs the encoder under that autocast dtype (features
    are still returned in float32). An encoder that returns maps is average-pooled, as the ResNet
    head does. `desc=None`: no progress bar.
    """
    device = torch.device(device)
    encoder.eval()
    feats: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    total = len(loader) if hasattr(loader, "__len__") else None
    autocast = (torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None
                else contextlib.nullcontext())
    batches = loader if desc is None else progress(loader, desc, total)
    for images, targets in batches:
        images = images.to(device, non_blocking=True)
        with autocast:
            out = encoder(images)
        feats.append(pooled(out).float().cpu())
        labels.append(torch.as_tensor(targets).long().cpu())
    if not feats:
        raise UnmixError("the dataset is empty: no images to extract features from")
    return torch.cat(feats), torch.cat(labels)


class HeadFeatures(nn.Module):
    """The L2-normalised head output `normalize(head(pool(encoder(x))))`: what the official Un-Mix
    CIFAR MoCo monitor compares (its `encoder_q` ends in the fc -> 128 projector)."""

    def __init__(self, encoder: nn.Module, head: nn.Module, source: str | None = None) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head
        self.source = source  # where the head was read from (a checkpoint's key prefix), for records

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: (N, 3, H, W) -> (N, D_head), unit rows."""
        return F.normalize(self.head(pooled(self.encoder(x))), dim=1)
