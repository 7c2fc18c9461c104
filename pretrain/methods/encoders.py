"""Building blocks shared by the methods: MLP heads and momentum (EMA) encoders."""
from __future__ import annotations

import copy

import torch
from torch import nn


def mlp(in_dim: int, hidden_dim: int, out_dim: int, bn: bool = True) -> nn.Sequential:
    """Linear -> [BatchNorm1d] -> ReLU -> Linear. MoCo v2's head has no BN (bn=False); SimCLR,
    BYOL and SwAV put BN after the hidden layer."""
    layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm1d(hidden_dim))
    layers += [nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim)]
    return nn.Sequential(*layers)


def momentum_copy(module: nn.Module) -> nn.Module:
    """A frozen copy of `module` (same weights, no gradients) for a momentum/target encoder."""
    twin = copy.deepcopy(module)
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


@torch.no_grad()
def ema_update_(target: nn.Module, online: nn.Module, m: float) -> None:
    """target <- m * target + (1 - m) * online, parameter by parameter (buffers are left alone:
    the momentum encoder keeps its own BN running statistics, as in MoCo and BYOL)."""
    tp = [p.detach() for p in target.parameters()]
    # the same two operations per parameter (mul_, add_ with alpha), batched over the parameter
    # list: one call per op instead of two per tensor (ResNet-18: 62 tensors per encoder)
    torch._foreach_mul_(tp, m)
    torch._foreach_add_(tp, [p.detach() for p in online.parameters()], alpha=1.0 - m)
