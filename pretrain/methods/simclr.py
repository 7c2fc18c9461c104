"""SimCLR (Chen et al. 2020) with Un-Mix.

Un-Mix (authors' README pseudo-code): `loss(x1, x2) + lam * loss(x2, mix) + (1 - lam) *
loss(x2, mix_rev)` with `mix` the mixture of view 1 and NT-Xent for `loss`. The clean view-2
embeddings are reused (same network, same batch, so the same values as re-encoding them) and the
reversed mixture's embeddings are the reversed mixed embeddings: one extra forward in all.

`joint_head=True, out_bn=True` is the head of htdt/self-supervised (methods/contrastive.py:32-38),
the base the Un-Mix authors credit for SimCLR: the projector runs on the features of both views
concatenated (its batch norm sees 2N samples) and ends with BatchNorm1d(dim). With Un-Mix the pair
`[x2, mix]` goes through that head together, as `model([x[1], mixed_images])` would there.
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
        T: NT-Xent temperature; out_bn: BatchNorm1d(dim) after the projector;
        joint_head: the projector runs on both views of a pair at once (one BN batch of 2N).
    """

    def __init__(self, arch: str = "resnet50", stem: str = "imagenet",
                 unmix: Mapping | UnMixConfig | bool | None = None, dim: int = 128,
                 hidden_dim: int | None = None, T: float = 0.5, out_bn: bool = False,
                 joint_head: bool = False) -> None:
        super().__init__()
        self.unmix = UnMixConfig.from_any(unmix)
        self.T, self.joint_head = T, joint_head
        self.backbone = build_resnet(arch, stem)
        feat = self.backbone.num_features
        self.projector = mlp(feat, hidden_dim or feat, dim, bn=True)
        if out_bn:
            self.projector.append(nn.BatchNorm1d(dim))

    def _pair(self, h_a: Tensor, h_b: Tensor) -> tuple[Tensor, Tensor]:
        """Backbone features (N, F) of two views -> their embeddings (N, dim) each, unnormalised
        (NT-Xent normalises); in one projector batch with `joint_head`."""
        if self.joint_head:
            z_a, z_b = self.projector(torch.cat([h_a, h_b])).split([h_a.shape[0], h_b.shape[0]])
            return z_a, z_b
        return self.projector(h_a), self.projector(h_b)

    def forward(self, views: list[Tensor], generator: torch.Generator | None = None
                ) -> dict[str, Tensor]:
        """views: two normalised crops (N, 3, H, W). Returns {'loss', 'loss_clean'[, 'loss_mix',
        'lam']}; all but 'loss' detached."""
        x1, x2 = views[0], views[1]
        h2 = self.backbone(x2)
        z1, z2 = self._pair(self.backbone(x1), h2)
        loss_clean = nt_xent(z1, z2, self.T)
        out = {"loss_clean": loss_clean.detach()}
        loss = loss_clean
        def pair_loss(z_m: Tensor, z_t: Tensor) -> Tensor:
            return nt_xent(z_t, z_m, self.T)

        def mixed_loss(x_mix: Tensor, lam: float) -> Tensor:
            # the pair [x2, mix]: with a joint head x2 is re-projected beside the mixture; else
            # its clean embedding is reused (same network, same values)
            z_t, z_m = self._pair(h2, self.backbone(x_mix)) if self.joint_head else (z2, self.projector(
                self.backbone(x_mix)))
            return unmix_loss(pair_loss, z_m, z_t, lam)

        out["loss"] = add_unmix(out, loss, x1, self.unmix, generator, mixed_loss)
        return out
