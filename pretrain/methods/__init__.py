"""The pretraining methods as nn.Modules, by name.

Interface every method follows (the training loop and the checkpoint converter rely on it):
`forward(views, generator=None) -> {'loss': scalar to backprop, detached scalars to log}`;
optional hooks `before_step(progress)`, `after_backward(progress)`, `after_step(progress)` with
progress in [0, 1] over the run; submodules/buffers named by role: `backbone` (the evaluated
encoder), `projector`, `predictor`, `momentum_backbone`, `momentum_projector`, `prototypes`,
`queue`, `queue_ptr`. See docs/methods.md.
"""
from __future__ import annotations

import inspect
from collections.abc import Mapping

from torch import nn

from pretrain.methods.byol import BYOL
from pretrain.methods.moco import MoCo
from pretrain.methods.simclr import SimCLR
from pretrain.methods.swav import SwAV

METHODS: dict[str, type[nn.Module]] = {"moco": MoCo, "simclr": SimCLR, "byol": BYOL, "swav": SwAV}


def build_method(cfg: Mapping) -> nn.Module:
    """Build a method from its config: {'type': 'moco', 'arch': 'resnet18', 'stem': 'cifar',
    'unmix': {'enabled': True, 'beta': 1.0, 'prob': 0.5}, ...method kwargs}. Missing kwargs take
    the published defaults; an unknown type or key raises ValueError naming it."""
    cfg = dict(cfg)
    name = cfg.pop("type", None)
    if name not in METHODS:
        raise ValueError(f"method type must be one of {sorted(METHODS)}, got {name!r}")
    cls = METHODS[name]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(cfg) - accepted)
    if unknown:
        raise ValueError(f"unknown {name} option(s) {unknown}; accepted: {sorted(accepted)}")
    return cls(**cfg)


__all__ = ["BYOL", "METHODS", "MoCo", "SimCLR", "SwAV", "build_method"]
