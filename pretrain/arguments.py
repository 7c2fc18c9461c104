"""The options of `unmix pretrain`, apart from the loop (pretrain/train.py): importing this
imports no torch, so `unmix pretrain --help` answers at once."""
from __future__ import annotations

import argparse


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
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")
