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
    # 'auto': RandomResizedCrop at >= 224 px, padded RandomCrop below; 'resized': RandomResizedCrop
    train_crop: str = "auto"
    # input normalisation (mean, std) of the probe's images; None: the dataset's (pretrain/data.py)
    mean_std: tuple[tuple[float, ...], tuple[float, ...]] | None = None


PROTOCOLS: dict[str, Protocol] = {
    "imagenet": Protocol(100, 30.0, "step", (60, 80), 0.9, 0.0, 256, True, "none",
                         "MoCo main_lincls (He et al. 2020), used by the final Un-Mix ImageNet results"),
    "imagenet-first": Protocol(100, 30.0, "step", (60, 80, 90), 0.9, 0.0, 256, True, "none",
                               "arXiv 2003.05438v1 section 4.2, ImageNet-1K"),
    "imagenet100": Protocol(60, 10.0, "step", (30, 40, 50), 0.9, 0.0, 256, True, "none",
                            "arXiv 2003.05438v1 section 4.2, ImageNet-100"),
    "cifar": Protocol(100, 0.1, "cosine", (), 0.9, 0.0, 256, False, "standardize",
                      "unmix: cached frozen features, standardised, SGD + cosine (docs/evaluation.md)"),
    # szq0214/Un-Mix UnMix_SwAV/for_CIFAR/eval_linear.py: epochs 100, batch 32, lr 0.3, wd 1e-6,
    # no nesterov, cosine to 0 (lines 63-80, 178-194), SGD momentum 0.9 (182),
    # RandomResizedCrop(32) + flip (115-120), CIFAR mean with std (0.2470, 0.2435, 0.2616) for
    # train and test (112-124), which is not the std its pretraining normalises with.
    "swav-cifar": Protocol(100, 0.3, "cosine", (), 0.9, 1e-6, 32, True, "none",
                           "Un-Mix SwAV CIFAR eval_linear.py (szq0214/Un-Mix UnMix_SwAV/for_CIFAR)",
                           train_crop="resized",
                           mean_std=((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))),
}
DEFAULT_PROTOCOL = {"imagenet": "imagenet", "imagenet100": "imagenet100"}  # everything else: cifar
