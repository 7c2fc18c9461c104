"""Training-step time of each method, baseline vs Un-Mix, measured side by side in one run.

Builds each method from its CIFAR-10 config (configs/pretrain/<method>_cifar10.py; ResNet-18 CIFAR
stem) and times forward + backward + optimiser step + hooks on random normalised 32-px views.
The ratio column is the cost of Un-Mix's extra mixed forward/backward.

    .venv/bin/python benchmarks/bench_pretrain_step.py [--batch 32] [--steps 3] [--device cpu]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from pretrain.methods import build_method
from pretrain.optim import build_optimizer
from pretrain.train import load_config
from unmix.core.config import to_plain

REPO = Path(__file__).resolve().parents[1]


def step_time(config: str, unmix: bool, batch: int, steps: int, device: str) -> float:
    cfg = load_config(str(REPO / "configs" / "pretrain" / config))
    m = to_plain(cfg.model.to_dict())
    m["unmix"] = {**m.get("unmix", {}), "enabled": unmix}
    if m["type"] == "moco":
        m["K"], m["split_bn"] = 4096, 8 if batch % 8 == 0 else 0
    torch.manual_seed(0)
    model = build_method(m).to(device).train()
    opt = build_optimizer(model, to_plain(cfg.optimizer.to_dict()), 0.01)
    views = [torch.randn(batch, 3, 32, 32, device=device) for _ in range(2)]
    g = torch.Generator().manual_seed(0)
    times = []
    for i in range(steps + 1):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        for hook in ("before_step",):
            getattr(model, hook, lambda p: None)(i / (steps + 1))
        loss = model(views, generator=g)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        getattr(model, "after_backward", lambda p: None)(i / (steps + 1))
        opt.step()
        getattr(model, "after_step", lambda p: None)(i / (steps + 1))
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i:  # the first step warms up allocators / cudnn
            times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--methods", nargs="+", default=["moco_v1", "moco_v2", "simclr", "byol", "swav"])
    args = p.parse_args()
    print(f"median step time, batch {args.batch}, 32 px, ResNet-18 CIFAR stem, {args.device}, "
          f"{torch.get_num_threads()} threads")
    print(f"  {'method':<10} {'baseline':>10} {'Un-Mix':>10} {'ratio':>7}")
    for meth in args.methods:
        base = step_time(f"{meth}_cifar10.py", False, args.batch, args.steps, args.device)
        mix = step_time(f"{meth}_cifar10.py", True, args.batch, args.steps, args.device)
        print(f"  {meth:<10} {base * 1e3:8.0f}ms {mix * 1e3:8.0f}ms {mix / base:7.2f}")


if __name__ == "__main__":
    main()
