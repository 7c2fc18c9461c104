"""BYOL (Grill et al. 2020) with Un-Mix.

Symmetric loss `L(p(x1), z'(x2)) + L(p(x2), z'(x1))` with L = 2 - 2cos, online network
backbone -> projector -> predictor, target network momentum_backbone -> momentum_projector
updated after each optimiser step with the cosine momentum schedule (`after_step`).

Un-Mix mixes view 1. `mix_branch='online'` (default): the mixture goes through the online network
only and regresses onto the clean target of view 2, `lam * L(p(mix), z'(x2)) + (1 - lam) *
L(p(mix).flip(0), z'(x2))` -- the clean side provides the labels, as the clean keys do in MoCo
(SwAV's official objective also uses the mixture's own codes). `mix_branch='both'` follows the
authors' README pseudo-code `model([x2, mix])` with the symmetric loss, adding `lam * L(p(x2), z'(mix)) + (1 - lam) *
L(p(x2), z'(mix).flip(0))` (one extra target forward). See docs/methods.md.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from pretrain.backbones import build_resnet
from pretrain.losses import byol_loss
from pretrain.methods.encoders import ema_update_, mlp, momentum_copy
from pretrain.mixing import UnMixConfig, mix, sample_mix, unmix_loss

MIX_BRANCHES = ("online", "both")


class BYOL(nn.Module):
    """Bootstrap your own latent. Defaults are the paper's: projector and predictor MLPs
    4096 -> 256 with BN, base target momentum 0.996 increased to 1 on a cosine schedule.

    Args:
        arch, stem: the backbone; unmix: {'enabled', 'beta', 'prob'};
        dim: projection size; hidden_dim: MLP hidden size; tau: base target momentum;
        mix_branch: 'online' (mixture through the online network only) or 'both'.
    """

    def __init__(self, arch: str = "resnet50", stem: str = "imagenet",
                 unmix: Mapping | UnMixConfig | bool | None = None, dim: int = 256,
                 hidden_dim: int = 4096, tau: float = 0.996, mix_branch: str = "online") -> None:
        super().__init__()
        if mix_branch not in MIX_BRANCHES:
            raise ValueError(f"BYOL mix_branch must be one of {MIX_BRANCHES}, got {mix_branch!r}")
        self.unmix = UnMixConfig.from_any(unmix)
        self.tau_base, self.mix_branch = tau, mix_branch
        self.backbone = build_resnet(arch, stem)
        feat = self.backbone.num_features
        self.projector = mlp(feat, hidden_dim, dim, bn=True)
        self.predictor = mlp(dim, hidden_dim, dim, bn=True)
        self.momentum_backbone = momentum_copy(self.backbone)
        self.momentum_projector = momentum_copy(self.projector)

    def _online(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) -> predictions (N, dim)."""
        return self.predictor(self.projector(self.backbone(x)))

    @torch.no_grad()
    def _target(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) -> target projections (N, dim), no gradient."""
        return self.momentum_projector(self.momentum_backbone(x))

    def momentum(self, progress: float) -> float:
        """tau = 1 - (1 - tau_base) * (cos(pi * progress) + 1) / 2 (BYOL's schedule)."""
        return 1.0 - (1.0 - self.tau_base) * (math.cos(math.pi * progress) + 1.0) / 2.0

    @torch.no_grad()
    def after_step(self, progress: float) -> None:
        """EMA update of the target network after the optimiser step."""
        tau = self.momentum(progress)
        ema_update_(self.momentum_backbone, self.backbone, tau)
        ema_update_(self.momentum_projector, self.projector, tau)

    def forward(self, views: list[Tensor], generator: torch.Generator | None = None
                ) -> dict[str, Tensor]:
        """views: two normalised crops (N, 3, H, W). Returns {'loss', 'loss_clean'[, 'loss_mix',
        'lam']}; all but 'loss' detached."""
        x1, x2 = views[0], views[1]
        p1, p2 = self._online(x1), self._online(x2)
        t1, t2 = self._target(x1), self._target(x2)
        loss_clean = byol_loss(p1, t2) + byol_loss(p2, t1)
        out = {"loss_clean": loss_clean.detach()}
        loss = loss_clean
        if self.unmix.enabled:
            params = sample_mix(x1.shape, self.unmix.beta, self.unmix.prob, generator)
            x_mix = mix(x1, params)
            # mixed prediction -> clean target of view 2 (and its reversal)
            loss_mix = unmix_loss(byol_loss, self._online(x_mix), t2, params.lam)
            if self.mix_branch == "both":
                # clean prediction of view 2 -> mixed target (and its reversal)
                loss_mix = loss_mix + unmix_loss(lambda t_m, p: byol_loss(p, t_m),
                                                 self._target(x_mix), p2, params.lam)
            loss = loss + loss_mix
            out["loss_mix"] = loss_mix.detach()
            out["lam"] = torch.tensor(params.lam, device=x1.device)
        out["loss"] = loss
        return out
