"""The linear-probe protocols of `unmix linear` as data (transfer/frozen/linear.py describes each
and where it comes from): plain values, so `unmix linear --help` lists them without torch."""
from __future__ import annotations

from typing import NamedTuple


class Protocol(NamedTuple):
    epochs: int
    lr: float
    schedule: str                   # 'step' (x0.1 at each milestone) or 'cosine' (to 0)
    milestones: tuple[int, ...]
    momentum: float
    weight_decay: float
    batch_size: int
    aug: bool                       # train-time RandomResizedCrop/RandomCrop + flip
    feature_norm: str               # 'none' or 'standardize' (train mean/std, fixed)
    source: str


PROTOCOLS: dict[str, Protocol] = {
    "imagenet": Protocol(100, 30.0, "step", (60, 80), 0.9, 0.0, 256, True, "none",
                         "MoCo main_lincls (He et al. 2020), used by the final Un-Mix ImageNet results"),
    "imagenet-first": Protocol(100, 30.0, "step", (60, 80, 90), 0.9, 0.0, 256, True, "none",
                               "arXiv 2003.05438v1 section 4.2, ImageNet-1K"),
    "imagenet100": Protocol(60, 10.0, "step", (30, 40, 50), 0.9, 0.0, 256, True, "none",
                            "arXiv 2003.05438v1 section 4.2, ImageNet-100"),
    "cifar": Protocol(100, 0.1, "cosine", (), 0.9, 0.0, 256, False, "standardize",
                      "unmix: cached frozen features, standardised, SGD + cosine (docs/evaluation.md)"),
}
DEFAULT_PROTOCOL = {"imagenet": "imagenet", "imagenet100": "imagenet100"}  # everything else: cifar
