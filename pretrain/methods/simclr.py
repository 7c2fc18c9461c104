"""SimCLR (Chen et al. 2020) with Un-Mix.

Un-Mix (authors' README pseudo-code): `loss(x1, x2) + lam * loss(x2, mix) + (1 - lam) *
loss(x2, mix_rev)` with `mix` the mixture of view 1 and NT-Xent for `loss`. The clean view-2
embeddings are reused (same network, same batch, so the same values as re-encoding them) and the
reversed mixture's embeddings are the reversed mixed embeddings: one extra forward in all.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from pretrain.backbones import build_resnet
from pretrain.losses import nt_xent
from pretrain.methods.encoders import mlp
from pretrain.mixing import UnMixConfig, add_unmix, unmix_loss


class SimCLR(nn.Module):
    """Contrastive learning with in-batch negatives (gathered over processes).

    Defaults are the paper's: MLP projector (hidden = feature dim, BN, ReLU) -> 128,
    temperature 0.5 (its CIFAR-10 setting; 0.1 with batch 4096 on ImageNet).

    Args:
        arch, stem: the backbone; unmix: {'enabled', 'beta', 'prob'};
        dim: embedding size; hidden_dim: projector hidden size (None: feature dim);
        T: NT-Xent temperature.
    """

    def __init__(self, arch: str = "resnet50", stem: str = "imagenet",
                 unmix: Mapping | UnMixConfig | bool | None = None, dim: int = 128,
                 hidden_dim: int | None = None, T: float = 0.5) -> None:
        super().__init__()
        self.unmix = UnMixConfig.from_any(unmix)
        self.T = T
        self.backbone = build_resnet(arch, stem)
        feat = self.backbone.num_features
        self.projector = mlp(feat, hidden_dim or feat, dim, bn=True)

    def _embed(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) -> (N, dim), unnormalised (NT-Xent normalises)."""
        return self.projector(self.backbone(x))

    def forward(self, views: list[Tensor], generator: torch.Generator | None = None
                ) -> dict[str, Tensor]:
        """views: two normalised crops (N, 3, H, W). Returns {'loss', 'loss_clean'[, 'loss_mix',
        'lam']}; all but 'loss' detached."""
        x1, x2 = views[0], views[1]
        z1, z2 = self._embed(x1), self._embed(x2)
        loss_clean = nt_xent(z1, z2, self.T)
        out = {"loss_clean": loss_clean.detach()}
        loss = loss_clean
        def pair_loss(z_m: Tensor, z_t: Tensor) -> Tensor:
            return nt_xent(z_t, z_m, self.T)

        out["loss"] = add_unmix(out, loss, x1, self.unmix, generator,
                                lambda x_mix, lam: unmix_loss(pair_loss, self._embed(x_mix), z2, lam))
        return out
