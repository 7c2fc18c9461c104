"""The options of `unmix pretrain`, apart from the loop (pretrain/train.py): importing this
imports no torch, so `unmix pretrain --help` answers at once."""
from __future__ import annotations

import argparse

from pretrain.quick import QUICK_EPOCHS, QUICK_ITERS_PER_EPOCH, QUICK_KNN_SAMPLES
from unmix.core.errors import UnmixError

# What the kNN (monitor and `unmix knn`) compares: the backbone's pooled features, or the
# L2-normalised output of the query encoder's projector (the official CIFAR MoCo monitor's).
FEATURES = ("backbone", "head")


def check_features(value: object, where: str, name: str = "--features") -> str:
    """`value` if it is one of FEATURES; else a one-line UnmixError naming `where` (a file) and
    the option or config key `name`."""
    if value not in FEATURES:
        raise UnmixError(f"{where}: {name} {value!r}: choose {' or '.join(FEATURES)}")
    return str(value)


def pretrain(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="config file, e.g. configs/pretrain/moco_v2_cifar10_unmix.py")
    parser.add_argument("--work-dir", help="output folder (default work_dirs/pretrain/<config name>)")
    parser.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override config entries, e.g. train.batch_size=256 data.root=/data/cifar")
    parser.add_argument("--resume", action="store_true",
                        help="continue from WORK_DIR/latest.pth on the same trajectory")
    parser.add_argument("--force", action="store_true",
                        help="start over in a work dir that holds a run (its checkpoints and "
                             "metrics.jsonl are replaced)")
    parser.add_argument("--quick", action="store_true",
                        help=f"a first look: at most {QUICK_EPOCHS} epochs of {QUICK_ITERS_PER_EPOCH} "
                             "iterations, the schedule's shape kept (warm-up, cosine, lr steps as "
                             f"shares of the short run), kNN monitor once on {QUICK_KNN_SAMPLES} images; "
                             "recorded in the checkpoints and train.log; default work dir "
                             "work_dirs/pretrain/<config name>-quick (docs/pretrain.md)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")
    parser.add_argument("--features", default=None, metavar="|".join(FEATURES),
                        help="what the kNN monitor compares: the backbone's pooled features or the "
                             "L2-normalised projector output (default: the config's knn.features, "
                             "else backbone; the MoCo CIFAR recipes say head, as the official monitor)")
