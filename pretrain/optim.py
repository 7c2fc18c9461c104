"""Optimisers and learning-rate schedules of the pretraining methods.

- SGD (MoCo): torch's, weight decay on every parameter as in the official MoCo code.
- LARS (SimCLR, BYOL): SGD whose update of each tensor is `g + wd * w` scaled by the trust ratio
  `eta * ||w|| / ||g + wd * w||` (1 where a norm is 0); biases and norm layers are excluded from
  weight decay and adaptation (`exclude_bias_and_norm`), as in SimCLR/BYOL.
- LARC (SwAV, `type='larc'`): apex's LARC(clip=False) around SGD, as SwAV and the Un-Mix SwAV code
  use it (NVIDIA/apex apex/parallel/LARC.py, `LARC.step`): trust ratio
  `eta * ||w|| / (||g|| + wd * ||w|| + 1e-8)` from the raw gradient, every tensor adapted, and a
  tensor whose weight or gradient norm is 0 gets neither the ratio nor weight decay.
- Adam (the htdt/self-supervised presets of SimCLR/BYOL): torch's Adam with L2 weight decay on
  every parameter (htdt train.py:39, `--adam_l2` 1e-6 in cfg.py:67).
- `lr_at(step, ...)`: linear warm-up from `warmup_start` (over `warmup_epochs`, or `warmup_iters`
  iterations when given: htdt warms up over 500 iterations, train.py:43-54) then cosine to
  `min_lr` or step decay by `gamma` at `milestones` (epochs), evaluated per iteration, or once per
  epoch (`per_epoch`, MoCo's schedules).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn


class LARS(torch.optim.Optimizer):
    """SGD + momentum with layer-wise trust ratios; groups with `lars=False` are plain SGD."""

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 eta: float = 0.001, larc: bool = False) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, lars=True,
                                      larc=larc))

    @staticmethod
    def _update(p: torch.Tensor, group: dict) -> torch.Tensor:
        """The gradient the momentum step uses: decayed and trust-scaled (LARS or LARC)."""
        g, wd = p.grad, group["weight_decay"]
        if group["lars"] and group.get("larc"):
            w_norm, g_norm = torch.norm(p), torch.norm(g)
            if w_norm == 0 or g_norm == 0:
                return g
            return (g + wd * p) * (group["eta"] * w_norm / (g_norm + w_norm * wd + 1e-8))
        if wd:
            g = g.add(p, alpha=wd)
        if group["lars"]:
            w_norm, g_norm = torch.norm(p), torch.norm(g)
            g = g * torch.where((w_norm > 0) & (g_norm > 0), group["eta"] * w_norm / g_norm, torch.ones_like(w_norm))
        return g

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = self._update(p, group)
                buf = self.state[p].get("momentum_buffer")
                if buf is None:
                    buf = self.state[p]["momentum_buffer"] = g.clone()
                else:
                    buf.mul_(group["momentum"]).add_(g)
                p.add_(buf, alpha=-group["lr"])
        return loss


def param_groups(model: nn.Module, weight_decay: float, exclude_bias_and_norm: bool) -> list[dict]:
    """Trainable parameters; with `exclude_bias_and_norm`, 1-d tensors (biases, BN) get no weight
    decay and no LARS adaptation."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if exclude_bias_and_norm and p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0, "lars": False})
    return groups


def build_optimizer(model: nn.Module, cfg: Mapping, lr: float) -> torch.optim.Optimizer:
    """cfg: {'type': 'sgd'|'lars'|'larc'|'adam', 'momentum', 'weight_decay', 'eta', 'exclude_bias_and_norm',
    'betas' (adam)}."""
    kind = cfg.get("type", "sgd")
    wd = cfg.get("weight_decay", 0.0)
    groups = param_groups(model, wd, cfg.get("exclude_bias_and_norm", kind == "lars"))
    if kind == "sgd":
        for g in groups:
            g.pop("lars", None)
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.get("momentum", 0.9), weight_decay=wd)
    if kind in ("lars", "larc"):
        return LARS(groups, lr=lr, momentum=cfg.get("momentum", 0.9), weight_decay=wd, eta=cfg.get("eta", 0.001),
                    larc=kind == "larc")
    if kind == "adam":
        for g in groups:
            g.pop("lars", None)
        return torch.optim.Adam(groups, lr=lr, betas=tuple(cfg.get("betas", (0.9, 0.999))), weight_decay=wd)
    raise ValueError(f"optimizer type must be 'sgd', 'lars', 'larc' or 'adam', got {kind!r}")


def lr_at(step: int, steps_per_epoch: int, epochs: int, base_lr: float, policy: str = "cosine",
          warmup_epochs: float = 0.0, warmup_start: float = 0.0, min_lr: float = 0.0,
          milestones: Sequence[float] = (), gamma: float = 0.1, warmup_iters: int | None = None,
          per_epoch: bool = False) -> float:
    """Learning rate at global iteration `step` (0-based); with `per_epoch` the value of the
    epoch's first iteration, held for the whole epoch (MoCo's `adjust_learning_rate` at each
    epoch start)."""
    if per_epoch:
        step = step // steps_per_epoch * steps_per_epoch
    total = max(1, epochs * steps_per_epoch)
    warm = int(warmup_iters) if warmup_iters is not None else int(round(warmup_epochs * steps_per_epoch))
    if step < warm:
        return warmup_start + (base_lr - warmup_start) * (step + 1) / warm
    if policy == "cosine":
        t = (step - warm) / max(1, total - warm)
        return min_lr + (base_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    if policy == "step":
        epoch = step / steps_per_epoch
        return base_lr * gamma ** sum(epoch >= m for m in milestones)
    if policy == "constant":
        return base_lr
    raise ValueError(f"lr policy must be 'cosine', 'step' or 'constant', got {policy!r}")
