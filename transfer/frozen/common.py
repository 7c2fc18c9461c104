"""Frozen-encoder feature extraction, and the plumbing `unmix knn|linear|flatness` share.

Features come from `pretrain.features.extract_features` (encoder in eval mode, no gradients,
pooled float32 features on the CPU), as in the pretraining loop's kNN monitor.

This module is what the three commands have in common (their options are in `arguments`):
reading any checkpoint through `transfer.convert` (so every format the converter knows works
here), building a data loader with clear errors for bad input, the work dir with its log file,
and the record's `checkpoint` block.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader

from pretrain import data
from pretrain.features import HeadFeatures
from transfer.convert.conversion import build_encoder, convert_file
from transfer.frozen.head import load_head
from unmix.core import files, records
from unmix.core.errors import UnmixError

# Which split is the "test" side when the user does not say; the train side is always 'train'.
DEFAULT_TEST_SPLIT = {"cifar10": "test", "cifar100": "test", "stl10": "test"}
FALLBACK_TEST_SPLIT = "val"  # tiny-imagenet, imagenet, imagenet100, folder


def amp_dtype(amp: bool, device: str | torch.device) -> torch.dtype | None:
    """--amp: bfloat16 autocast for the frozen encoder, on CUDA only."""
    return torch.bfloat16 if amp and torch.device(device).type == "cuda" else None


# --------------------------------------------------------------------------------------------
# Command-line plumbing shared by knn, linear and flatness.

def resolve_device(device: str | None) -> str:
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UnmixError(f"--device {device}: CUDA is not available on this machine")
    try:
        torch.device(device)
    except RuntimeError:
        raise UnmixError(f"--device {device!r}: not a device name (cpu, cuda, cuda:N)") from None
    return device


def label_for(path: str | os.PathLike, label: str | None) -> str:
    return label or records.default_label(path)


def safe_name(text: str) -> str:
    return files.safe_component(text)


def default_work_dir(kind: str, label: str, dataset: str, sha256: str | None = None) -> Path:
    """work_dirs/KIND/LABEL-SHA8_DATASET: unique per checkpoint, so two runs' latest.pth never
    share a work dir (and a rerun of the same checkpoint finds its finished record)."""
    return Path("work_dirs") / kind / records.run_name(label, sha256, dataset)


def check_dataset(name: str, root: str | os.PathLike) -> None:
    """Fail early, in one line, on an unknown dataset name or a missing data root."""
    data.spec(name)  # UnmixError naming the choices
    if not Path(root).expanduser().is_dir():
        raise UnmixError(f"{root}: data root does not exist or is not a directory")


def test_split(name: str, split: str | None) -> str:
    return split or DEFAULT_TEST_SPLIT.get(name, FALLBACK_TEST_SPLIT)


def eval_transform(name: str, size: int | None = None):
    return data.eval_transform(name, size)


def build_dataset(name: str, root: str | os.PathLike, split: str, transform=None,
                  image_size: int | None = None):
    """`pretrain.data.build_dataset` (eval transform unless given), with data errors turned into
    one-line UnmixErrors."""
    if transform is None:
        transform = data.eval_transform(name, image_size)
    try:
        return data.build_dataset(name, str(root), split, transform=transform, download=False)
    except UnmixError:
        raise
    except (FileNotFoundError, RuntimeError, KeyError, ValueError, OSError) as e:
        msg = " ".join(str(e).split()) or type(e).__name__
        raise UnmixError(f"{root}: cannot read {name} split {split!r}: {msg}") from None


def num_classes_of(name: str, dataset) -> int:
    """Class count: from pretrain.data, or from the dataset object for image folders."""
    return int(data.num_classes(name, dataset))


def make_loader(dataset, batch_size: int, workers: int, shuffle: bool = False, seed: int = 0,
                device: str = "cpu", drop_last: bool = False) -> DataLoader:
    if len(dataset) == 0:
        raise UnmixError("the dataset split is empty")
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=workers,
                      pin_memory=str(device).startswith("cuda"), drop_last=drop_last,
                      generator=gen, persistent_workers=workers > 0)


def check_checkpoint(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise UnmixError(f"{path}: no such checkpoint file")
    if not path.is_file():
        raise UnmixError(f"{path}: not a checkpoint file (it is a directory)")
    return path


def load_encoder(path: str | os.PathLike, arch: str | None = None, fmt: str | None = None,
                 encoder: str | None = None, trust_pickle: bool = False,
                 features: str = "backbone") -> tuple[nn.Module, dict]:
    """Any checkpoint `transfer.convert` reads -> (ResNet encoder, the record's checkpoint block).

    The checkpoint block is {label (filled by the caller), path, sha256, format, arch, stem,
    pretrain}; `pretrain` is {method, unmix, epochs, dataset} for our own pretraining checkpoints
    and None for foreign ones. `features='head'`: the encoder followed by its projector from the
    same file, L2-normalised (`pretrain.features.HeadFeatures`, `transfer.frozen.head`).
    """
    path = check_checkpoint(path)
    # Not verified against mmdet: evaluation uses our own encoder only, and a broken detection
    # stack must not stop `unmix knn`.
    conv = convert_file(str(path), arch=arch, fmt=fmt, encoder=encoder, trust_pickle=trust_pickle)
    model = build_encoder(conv)
    if features == "head":
        head, prefix = load_head(path, conv.meta, trust_pickle)
        model = HeadFeatures(model, head, source=prefix)
    block = {"label": None, "path": str(path.resolve()), "sha256": conv.meta["source_sha256"],
             "format": conv.format, "arch": conv.arch, "stem": conv.stem,
             "pretrain": conv.meta["pretrain"]}
    return model, block


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """Percent of rows whose label is among the `k` highest scores, as {'top1': .., 'top5': ..}.

    Shape: scores (N, C), labels (N,). With fewer than k classes, top-k is over all C classes.
    """
    out: dict[str, float] = {}
    n = labels.numel()
    maxk = min(max(ks), scores.size(1))
    top = scores.topk(maxk, dim=1).indices
    hit = top.eq(labels.view(-1, 1).to(top.device))
    for k in ks:
        out[f"top{k}"] = 100.0 * hit[:, :min(k, maxk)].any(dim=1).float().sum().item() / max(n, 1)
    return out


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # pragma: no cover
        pass


def describe_args(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if not k.startswith("_")}


def prepare(args) -> tuple[Any, str, str, Any, dict]:
    """What kNN, linear and flatness share before their own work: (device, label, test split,
    frozen encoder, the record's checkpoint section), with one-line errors for bad input."""
    device = resolve_device(args.device)
    check_dataset(args.dataset, args.data_root)
    args.data_root = str(Path(args.data_root).expanduser().absolute())  # resolved once, recorded
    label = label_for(args.checkpoint, args.label)
    split = test_split(args.dataset, args.test_split)
    encoder, ckpt = load_encoder(args.checkpoint, args.arch, args.fmt, args.encoder, args.trust_pickle,
                                 features=getattr(args, "features", "backbone"))
    ckpt["label"] = label
    return device, label, split, encoder, ckpt


def work_dir_for(args, kind: str, label: str, ckpt: dict) -> Path:
    """--work-dir or the default one; refuses (before anything is written) to replace a
    finished record without --force."""
    work_dir = Path(args.work_dir) if args.work_dir else default_work_dir(
        kind, label, args.dataset, ckpt.get("sha256"))
    records.refuse_finished(work_dir, getattr(args, "force", False))
    files.make_dir(work_dir)
    files.remove_orphans(work_dir)  # temp files of a save that was killed (linear's last.pth)
    return work_dir


@contextlib.contextmanager
def failure_recorded(record: dict, work_dir: Path, log: logging.Logger) -> Iterator[None]:
    """An unexpected error inside marks `record` failed (Ctrl-C or SIGTERM: interrupted),
    writes it unless a finished record is there, logs it and propagates; a user error
    (UnmixError) propagates as it is, leaving no failed record behind."""
    try:
        yield
    except UnmixError:
        raise
    except (Exception, KeyboardInterrupt) as e:
        records.write_stopped(record, e, work_dir)
        log.info("%s: %s", record["status"], record["error"])
        raise
