"""The options of `unmix knn|linear|flatness`, apart from the commands themselves: importing this
imports neither torch nor a dataset, so `--help` and a bad option answer at once."""
from __future__ import annotations

import argparse

from pretrain.arguments import FEATURES, check_features
from transfer.frozen.linear_protocols import PROTOCOLS
from unmix.core.env import default_workers


def add_data_arguments(parser: argparse.ArgumentParser, train_split: bool = True) -> None:
    parser.add_argument("--dataset", required=True,
                        help="cifar10, cifar100, stl10, tiny-imagenet, imagenet, imagenet100, folder")
    parser.add_argument("--data-root", required=True, help="the dataset's directory")
    if train_split:
        parser.add_argument("--train-split", default="train",
                            help="split used for training / the kNN bank")
    parser.add_argument("--test-split", default=None,
                        help="split evaluated (default: 'test' for CIFAR/STL-10, else 'val')")
    parser.add_argument("--image-size", type=int, default=None,
                        help="evaluation crop size (default: the dataset's native size, 224 for "
                        "ImageNet and image folders)")


def add_checkpoint_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", default=None, help="encoder architecture when the checkpoint "
                        "does not say (resnet18, resnet50, ...)")
    parser.add_argument("--format", dest="fmt", default=None,
                        help="checkpoint format when auto-detection is not enough (see docs/convert.md)")
    parser.add_argument("--encoder", default=None,
                        help="which encoder of a multi-encoder checkpoint (e.g. query / momentum)")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="allow full pickle loading of a checkpoint you trust")


def add_run_arguments(parser: argparse.ArgumentParser, many: bool = False) -> None:
    parser.add_argument("--work-dir", default=None, help="where the record and log go "
                        "(default: work_dirs/<kind>/<label>-<sha256 prefix>_<dataset>)")
    parser.add_argument("--force", action="store_true",
                        help="replace a finished record in the work dir (default: refuse)")
    if many:
        parser.add_argument("--label", action="append", default=None,
                            help="name of each checkpoint in records and reports, once per "
                            "checkpoint in order (default: the file name without extension; "
                            "for latest.pth and the like, the run directory's name)")
    else:
        parser.add_argument("--label", default=None, help="name of the checkpoint in records and "
                            "reports (default: the file name without extension; for latest.pth "
                            "and the like, the run directory's name)")
    parser.add_argument("--batch-size", type=int, default=256, help="images per feature batch")
    workers = default_workers()
    parser.add_argument("--workers", type=int, default=workers,
                        help=f"data-loader worker processes (default: the CPUs this process may "
                        f"use, at most 8: {workers} here)")
    parser.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda if available)")
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast for the frozen encoder (CUDA)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")


def knn(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="any checkpoint `unmix convert` reads")
    add_data_arguments(parser)
    parser.add_argument("--k", type=int, default=200, help="neighbours that vote (default 200)")
    parser.add_argument("--t", type=float, default=0.1, help="temperature of the vote weights exp(sim/t)")
    parser.add_argument("--features", default="backbone", metavar="|".join(FEATURES),
                        help="backbone: the encoder's pooled features (default); head: the "
                        "L2-normalised output of the encoder's projector from the same checkpoint "
                        "(what the official CIFAR MoCo monitor compares)")
    add_checkpoint_arguments(parser)
    add_run_arguments(parser)
    parser.set_defaults(check_args=check_knn)


def check_knn(args: argparse.Namespace) -> None:
    """The option values, before torch is imported."""
    check_features(args.features, args.checkpoint)


def linear(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="any checkpoint `unmix convert` reads")
    add_data_arguments(parser)
    parser.add_argument("--protocol", choices=list(PROTOCOLS), default=None,
                        help="imagenet (MoCo), imagenet-first / imagenet100 (arXiv 2003.05438v1, "
                        "section 4.2), cifar (default: imagenet for imagenet, imagenet100 for imagenet100, else cifar)")
    parser.add_argument("--aug", action=argparse.BooleanOptionalAction, default=None,
                        help="train-time augmentation (default: the protocol's); --no-aug trains "
                        "on features cached once (fast)")
    parser.add_argument("--epochs", type=int, default=None, help="override the protocol's epochs")
    parser.add_argument("--lr", type=float, default=None, help="override the protocol's lr")
    parser.add_argument("--train-batch-size", type=int, default=None,
                        help="override the protocol's training batch size (256)")
    add_checkpoint_arguments(parser)
    add_run_arguments(parser)


def flatness(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT",
                        help="one or more checkpoints `unmix convert` reads (e.g. MoCo and Un-Mix)")
    add_data_arguments(parser, train_split=False)
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="softmax temperature applied to the features (default 1, as in Fig. 5)")
    parser.add_argument("--head", type=int, default=16,
                        help="how many of the largest sorted probabilities to print (default 16)")
    add_checkpoint_arguments(parser)
    add_run_arguments(parser, many=True)
