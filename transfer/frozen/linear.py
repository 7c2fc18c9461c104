"""`unmix linear`: linear-probe accuracy of a frozen encoder.

Protocols (`PROTOCOLS`, chosen by `--protocol`, default by dataset):

- `imagenet`: MoCo's `main_lincls` (He et al. 2020), which the final Un-Mix ImageNet numbers use:
  100 epochs, SGD momentum 0.9, lr 30, x0.1 at epochs 60 and 80, weight decay 0, batch 256,
  RandomResizedCrop(224) + flip, single centre crop for validation.
- `imagenet-first`: arXiv 2003.05438v1 section 4.2, ImageNet-1K: as `imagenet` but lr drops at 60, 80, 90.
- `imagenet100`: arXiv 2003.05438v1 section 4.2, ImageNet-100: 60 epochs, lr 10, x0.1 at 30, 40, 50, wd 0.
- `swav-cifar`: the Un-Mix SwAV CIFAR code's eval_linear.py, which its published CIFAR numbers
  use: 100 epochs, SGD momentum 0.9, lr 0.3, cosine to 0, weight decay 1e-6, batch 32,
  RandomResizedCrop(32) + flip, inputs normalised with the CIFAR mean and std (0.2470, 0.2435,
  0.2616). That script reports the best test accuracy over its 100 epochs; we report the last.
- `cifar` (CIFAR-10/100, STL-10, Tiny ImageNet, image folders): no paper gives one, so ours is
  chosen for speed and for comparability across methods: features of the un-augmented train
  set are computed once, standardised per dimension with the train mean/std (a fixed affine map,
  foldable into the linear layer, so the probe is still a single linear layer with no BN; it makes
  one lr work for encoders whose feature scales differ by orders of magnitude, which is why MoCo
  needs lr 30 and other methods do not), then a linear layer is trained 100 epochs with SGD
  momentum 0.9, lr 0.1, cosine decay to 0, weight decay 0, batch 256.

With augmentation (the ImageNet protocols; `--aug` elsewhere) the frozen encoder runs in eval mode
on every augmented batch of every epoch; without (`--no-aug`) features are precomputed once and
the probe trains on the cached tensors, which is orders of magnitude faster on a CPU.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from pretrain.features import extract_features, progress
from transfer.frozen import arguments
from transfer.frozen import common as fx
from transfer.frozen.linear_protocols import DEFAULT_PROTOCOL, PROTOCOLS, Protocol
from unmix.core.env import env_info
from unmix.core import files, records
from unmix.core.errors import UnmixError
from unmix.core.logs import work_dir_log




class LinearProbe(nn.Module):
    """`fc((x - mean) / std)`: one linear layer; mean/std are fixed buffers (0/1 unless the
    protocol standardises), so the probe is equivalent to a single affine map of the features."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.fc = nn.Linear(dim, num_classes)
        nn.init.normal_(self.fc.weight, std=0.01)  # MoCo's init of the linear classifier
        nn.init.zeros_(self.fc.bias)

    def set_standardization(self, feats: torch.Tensor, floor: float = 0.01, eps: float = 1e-8) -> None:
        """Per-dimension mean/std of the training features, shape (N, dim).

        A dimension with (almost) no variance, such as a ReLU unit that is dead on the training
        images, would be scaled up without bound; its std is floored at `floor` times the mean
        std so that it is amplified at most 100x relative to the others.
        """
        std = feats.std(0, unbiased=False)
        self.mean.copy_(feats.mean(0))
        self.std.copy_(std.clamp_min(floor * std.mean().item() + eps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc((x - self.mean) / self.std)


def lr_at(epoch: int, base_lr: float, epochs: int, schedule: str, milestones: tuple[int, ...]) -> float:
    """Learning rate for 0-based `epoch` (constant within an epoch, as in MoCo's main_lincls)."""
    if schedule == "step":
        return base_lr * 0.1 ** sum(epoch >= m for m in milestones)
    if schedule == "cosine":
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    raise ValueError(f"unknown schedule {schedule!r}")


def cached_batches(feats: torch.Tensor, labels: torch.Tensor, batch_size: int,
                   seed: int) -> Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]]:
    """Shuffled mini-batches of precomputed features; epoch e uses permutation seed + e."""
    def batches(epoch: int):
        g = torch.Generator().manual_seed(seed + epoch)
        perm = torch.randperm(feats.size(0), generator=g)
        for i in range(0, feats.size(0), batch_size):
            idx = perm[i:i + batch_size]
            yield feats[idx], labels[idx]
    return batches


def train_linear(probe: LinearProbe, batches: Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]],
                 epochs: int, lr: float, schedule: str = "step", milestones: tuple[int, ...] = (),
                 momentum: float = 0.9, weight_decay: float = 0.0, device: str | torch.device = "cpu",
                 start_epoch: int = 0, optimizer: torch.optim.Optimizer | None = None,
                 on_epoch: Callable[[int, float, torch.optim.Optimizer], None] | None = None) -> list[float]:
    """Train `probe` with SGD + cross-entropy on `batches(epoch)` of (features, labels).

    Returns the mean training loss of each epoch. `on_epoch(epoch, loss, optimizer)` runs after
    each epoch (logging, checkpointing). Only the probe's `fc` is optimised.
    """
    device = torch.device(device)
    probe.to(device).train()
    opt = optimizer or torch.optim.SGD(probe.fc.parameters(), lr=lr, momentum=momentum,
                                       weight_decay=weight_decay)
    losses: list[float] = []
    for epoch in range(start_epoch, epochs):
        for group in opt.param_groups:
            group["lr"] = lr_at(epoch, lr, epochs, schedule, milestones)
        total, count = 0.0, 0
        for x, y in batches(epoch):
            x, y = x.to(device, non_blocking=True).float(), y.to(device, non_blocking=True)
            loss = F.cross_entropy(probe(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * y.numel()
            count += y.numel()
        if count == 0:
            raise UnmixError("no training batches (empty training set?)")
        if not math.isfinite(total):
            raise UnmixError(f"linear probe diverged at epoch {epoch + 1} (loss {total}); lower --lr")
        losses.append(total / count)
        if on_epoch is not None:
            on_epoch(epoch, losses[-1], opt)
    return losses


@torch.no_grad()
def predict(probe: nn.Module, feats: torch.Tensor, device: str | torch.device = "cpu",
            batch_size: int = 4096) -> torch.Tensor:
    """Shape: feats (N, D) -> logits (N, C) on the CPU."""
    probe.to(device).eval()
    return torch.cat([probe(feats[i:i + batch_size].to(device).float()).cpu()
                      for i in range(0, feats.size(0), batch_size)])


def train_transform(dataset: str, size: int | None = None, crop: str = "auto",
                    mean_std: tuple | None = None):
    """MoCo's linear-probe augmentation for ImageNet-size data (RandomResizedCrop + flip); for
    small images (CIFAR, STL-10, Tiny ImageNet) the usual RandomCrop with padding + flip, since a
    0.08-1 area crop of a 32-px image destroys most of it -- unless the protocol asks for
    RandomResizedCrop at any size (`crop='resized'`, SwAV's CIFAR probe). `mean_std` overrides
    the dataset's normalisation."""
    from torchvision import transforms as T

    from pretrain import data

    size = size or data.IMAGE_SIZE[dataset]
    crop_t = (T.RandomResizedCrop(size) if size >= 224 or crop == "resized"
              else T.RandomCrop(size, padding=max(size // 8, 1), pad_if_needed=True))
    pre = [] if size >= 224 else [T.Resize(size), T.CenterCrop(size)]  # folders of odd sizes
    norm = T.Normalize(*mean_std) if mean_std is not None else data.normalize(dataset)
    return T.Compose(pre + [crop_t, T.RandomHorizontalFlip(), T.ToTensor(), norm])


def probe_eval_transform(dataset: str, size: int | None, mean_std: tuple | None):
    """The deterministic evaluation transform, with the protocol's normalisation if it has one
    (None: the dataset's, `fx.build_dataset`'s default)."""
    if mean_std is None:
        return None
    from torchvision import transforms as T

    from pretrain import data

    tf = data.eval_transform(dataset, size)
    return T.Compose(tf.transforms[:-1] + [T.Normalize(*mean_std)])


add_arguments = arguments.linear  # the options, in a module without torch (fast --help)


class Settings(NamedTuple):
    """The protocol as run: its base, and the epochs/lr/batch/augmentation actually used."""
    base: str
    p: Protocol
    epochs: int
    lr: float
    bs: int
    aug: bool

    @property
    def name(self) -> str:
        name = f"linear-{self.base}"
        if self.aug != self.p.aug:
            name += "-aug" if self.aug else "-noaug"
        if self.epochs != self.p.epochs:
            name += f"-e{self.epochs}"
        if self.lr != self.p.lr:
            name += f"-lr{self.lr:g}"
        if self.bs != self.p.batch_size:
            name += f"-b{self.bs}"
        return name


def settings(args: argparse.Namespace) -> Settings:
    """The protocol's values with the command line's overrides; one-line errors for bad ones."""
    base = args.protocol or DEFAULT_PROTOCOL.get(args.dataset, "cifar")
    p = PROTOCOLS[base]
    s = Settings(base, p, p.epochs if args.epochs is None else args.epochs,
                 p.lr if args.lr is None else args.lr,
                 p.batch_size if args.train_batch_size is None else args.train_batch_size,
                 p.aug if args.aug is None else args.aug)
    if s.epochs < 1:
        raise UnmixError(f"--epochs {s.epochs}: must be at least 1")
    if s.lr <= 0 or s.bs < 1:
        raise UnmixError(f"--lr {s.lr} / --train-batch-size {s.bs}: must be positive")
    return s


def _protocol_block(args: argparse.Namespace, s: Settings, test_split: str) -> dict:
    p = s.p
    return {"name": s.name, "task": "classification", "base_protocol": s.base,
            "dataset": args.dataset, "data_root": args.data_root,
            "train_split": args.train_split, "test_split": test_split,
            "seed": args.seed, "epochs": s.epochs, "lr": s.lr, "batch_size_total": s.bs,
            "schedule": p.schedule, "milestones": list(p.milestones), "momentum": p.momentum,
            "weight_decay": p.weight_decay, "aug": s.aug, "feature_norm": p.feature_norm,
            "train_crop": p.train_crop, "mean_std": [list(v) for v in p.mean_std] if p.mean_std else None,
            "features": "pooled encoder output", "image_size": args.image_size, "source": p.source}


def run(args: argparse.Namespace) -> int:
    s = settings(args)
    device, label, test_split, encoder, ckpt = fx.prepare(args)
    p = s.p
    test_tf = probe_eval_transform(args.dataset, args.image_size, p.mean_std)
    train_tf = (train_transform(args.dataset, args.image_size, p.train_crop, p.mean_std) if s.aug
                else test_tf)
    train_set = fx.build_dataset(args.dataset, args.data_root, args.train_split, transform=train_tf,
                                 image_size=args.image_size)
    test_set = fx.build_dataset(args.dataset, args.data_root, test_split, transform=test_tf,
                                image_size=args.image_size)
    num_classes = fx.num_classes_of(args.dataset, train_set)

    work_dir = fx.work_dir_for(args, "linear", label, ckpt)
    protocol = _protocol_block(args, s, test_split)
    record = records.new_record("linear", ckpt, protocol, env=env_info(device))
    t0 = time.time()
    with work_dir_log(work_dir, "linear") as log:
        log.info("linear: %s (%s) on %s [%s -> %s], protocol %s, %d epochs, lr %g, batch %d, aug %s, "
                 "device %s", label, ckpt["path"], args.dataset, args.train_split, test_split,
                 s.name, s.epochs, s.lr, s.bs, s.aug, device)
        with fx.failure_recorded(record, work_dir, log):
            data = (train_set, test_set, num_classes, test_split)
            metrics, details, probe = _run_probe(args, s, encoder, data, device, work_dir, log)
        files.torch_save({"state_dict": probe.state_dict(), "protocol": protocol,
                          "checkpoint": ckpt}, work_dir / "probe.pth")
        record["details"] = details
        records.finish(record, metrics, wall_time_s=round(time.time() - t0, 3))
        path = records.write(record, work_dir)
        (work_dir / "last.pth").unlink(missing_ok=True)
        log.info("top1 %.2f  top5 %.2f  -> %s", metrics["top1"], metrics["top5"], path)
    print(f"{label}\t{protocol['name']}\t{args.dataset}\ttop1 {metrics['top1']:.2f}\t"
          f"top5 {metrics['top5']:.2f}\t{path}")
    return 0


def _augmented_batches(args, s: Settings, encoder, train_set, probe: LinearProbe, device):
    """Batches of features of freshly augmented images, each epoch in a seeded order (so a
    resumed probe sees the same order); standardisation from one pass over up to ~10k images."""
    loader = fx.make_loader(train_set, s.bs, args.workers, shuffle=True, seed=args.seed, device=device)
    dtype = fx.amp_dtype(args.amp, device)

    @torch.no_grad()
    def encode(x):
        with torch.autocast(torch.device(device).type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            return encoder(x.to(device, non_blocking=True)).float()

    def batches(epoch: int):
        encoder.eval()  # frozen: BN running stats must not move
        loader.generator.manual_seed(args.seed + epoch)  # same order on resume
        for x, y in progress(loader, f"epoch {epoch + 1}/{s.epochs}", len(loader)):
            yield encode(x), y

    if s.p.feature_norm == "standardize":
        sample = []
        for i, (x, _) in enumerate(loader):
            sample.append(encode(x).cpu())
            if (i + 1) * s.bs >= 10_000:
                break
        probe.set_standardization(torch.cat(sample))
    return batches, len(train_set)


def _cached_batches(args, s: Settings, encoder, train_set, probe: LinearProbe, device):
    """Batches of the training features, extracted once."""
    train_feats, train_labels = extract_features(
        encoder, fx.make_loader(train_set, args.batch_size, args.workers, device=device),
        device, fx.amp_dtype(args.amp, device), desc="features (train)")
    if s.p.feature_norm == "standardize":
        probe.set_standardization(train_feats)
    return cached_batches(train_feats, train_labels, s.bs, args.seed), train_feats.size(0)


def _resume_probe(args, s: Settings, probe: LinearProbe, last: Path, device, log):
    """(start epoch, optimizer, loss history) of a killed run of the same protocol (long ImageNet
    probes), or a fresh start; an unreadable or foreign `last.pth` is ignored."""
    if not last.exists():
        return 0, None, []
    try:
        state = torch.load(last, map_location=device, weights_only=True)
        if state.get("key") != _resume_key(args, s):
            return 0, None, []
        probe.load_state_dict(state["probe"])
        opt = torch.optim.SGD(probe.fc.parameters(), lr=s.lr, momentum=s.p.momentum,
                              weight_decay=s.p.weight_decay)
        opt.load_state_dict(state["optimizer"])
        log.info("resuming from %s at epoch %d", last, int(state["epoch"]) + 1)
        return int(state["epoch"]), opt, list(state["history"])
    except Exception as e:  # unreadable or foreign: start over
        log.info("ignoring %s (%s)", last, e)
        return 0, None, []


def _run_probe(args, s: Settings, encoder, data, device, work_dir: Path, log):
    train_set, test_set, num_classes, test_split = data
    fx.seed_everything(args.seed)
    encoder.to(device).eval()
    for param in encoder.parameters():
        param.requires_grad_(False)
    test_feats, test_labels = extract_features(
        encoder, fx.make_loader(test_set, args.batch_size, args.workers, device=device),
        device, fx.amp_dtype(args.amp, device), desc=f"features ({test_split})")
    dim = test_feats.size(1)
    probe = LinearProbe(dim, num_classes)
    make = _augmented_batches if s.aug else _cached_batches
    batches, n_train = make(args, s, encoder, train_set, probe, device)
    log.info("train %d images, test %d images, %d-d features, %d classes", n_train,
             test_feats.size(0), dim, num_classes)
    last = work_dir / "last.pth"
    probe.to(device)
    start, opt, history = _resume_probe(args, s, probe, last, device, log)

    def on_epoch(epoch: int, loss: float, optimizer) -> None:
        history.append(loss)
        log.info("epoch %d/%d  lr %.4g  loss %.4f", epoch + 1, s.epochs, optimizer.param_groups[0]["lr"], loss)
        if s.aug:  # epochs are expensive only with augmentation; cached-feature epochs take ms
            files.torch_save({"key": _resume_key(args, s), "epoch": epoch + 1,
                              "probe": probe.state_dict(), "optimizer": optimizer.state_dict(),
                              "history": history}, last)

    p = s.p
    train_linear(probe, batches, s.epochs, s.lr, p.schedule, p.milestones, p.momentum, p.weight_decay,
                 device, start_epoch=start, optimizer=opt, on_epoch=on_epoch)
    logits = predict(probe, test_feats, device)
    metrics = fx.topk_accuracy(logits, test_labels)
    details = {"num_classes": num_classes, "num_train": n_train, "num_test": int(test_feats.size(0)),
               "feature_dim": dim, "train_loss": [round(v, 5) for v in history]}
    return metrics, details, probe.cpu()


def _resume_key(args, s: Settings) -> str:
    return "|".join(map(str, (Path(args.checkpoint).resolve(), args.dataset, args.train_split,
                               args.protocol, s.epochs, s.lr, s.bs, s.aug, args.seed, args.image_size)))
