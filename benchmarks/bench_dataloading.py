"""Does data loading keep up? Two-view CIFAR augmentation (the MoCo CIFAR recipe), images/s:

- CPU pipeline: PIL transforms per image (pretrain.augment.build_views) in a DataLoader with N
  workers, as `unmix pretrain` runs by default;
- batched on the device: uint8 batches through pretrain.augment.DeviceAugment (here on the CPU,
  or on CUDA when available and --device cuda), as with `data.device_augment=True`.

Both are measured in this run, side by side. Data: CIFAR-shaped random images held in memory
(as torchvision's CIFAR10 holds them), so disk speed does not enter.

    .venv/bin/python benchmarks/bench_dataloading.py [--images 2048] [--batch 256] [--workers 0 2]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from PIL import Image

from pretrain.augment import DeviceAugment, build_views
from pretrain.data import MEAN_STD


class InMemory(torch.utils.data.Dataset):
    def __init__(self, n: int, transform) -> None:
        self.x = np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.x[i])), 0


def bench_cpu(n: int, batch: int, workers: int) -> float:
    ds = InMemory(n, build_views("moco_v2", "cifar10"))
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, num_workers=workers, drop_last=True)
    t = time.perf_counter()
    seen = 0
    for views, _ in loader:
        seen += views[0].shape[0]
    return seen / (time.perf_counter() - t)


def bench_device(n: int, batch: int, device: str) -> float:
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (n, 3, 32, 32), dtype=np.uint8))
    mean, std = MEAN_STD["cifar10"]
    aug = DeviceAugment(32, mean, std).to(device)
    g = torch.Generator().manual_seed(0)
    aug(x[:batch].to(device), generator=g)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    seen = 0
    for s in range(0, n - batch + 1, batch):
        xb = x[s:s + batch].to(device, non_blocking=True)
        views = [aug(xb, generator=g) for _ in range(2)]
        seen += views[0].shape[0]
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=2048)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    print(f"two-view CIFAR augmentation, {args.images} images, batch {args.batch}, "
          f"{torch.get_num_threads()} torch threads")
    rows = [(f"CPU pipeline, {w} workers", bench_cpu(args.images, args.batch, w)) for w in args.workers]
    rows.append((f"batched DeviceAugment on {args.device}", bench_device(args.images, args.batch, args.device)))
    base = rows[0][1]
    for name, ips in rows:
        print(f"  {name:<36} {ips:9.0f} images/s   x{ips / base:5.2f}")


if __name__ == "__main__":
    main()
