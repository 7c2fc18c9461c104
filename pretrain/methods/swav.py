"""SwAV (Caron et al. 2020) with Un-Mix.

Crops of one resolution go through the network in one forward; with Un-Mix the mixtures of the
crops in `mix_crops` are appended to their resolution's forward, so batch norm sees clean and
mixed images in one batch (as the official code does). Codes come from the clean crops only
(Sinkhorn-Knopp, optional queue). Loss: `loss_ori + loss_mix` with `loss_mix` the mean over mixed
crops j and assignment crops i of `lam_j * swav(scores(mix_j), q_i) + (1 - lam_j) *
swav(scores(mix_j).flip(0), q_i)`; the reversal is a permutation of one forward's batch, so BN
gives the reversed mixture's scores exactly.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from pretrain.backbones import build_resnet
from pretrain.losses import sinkhorn, swav_loss
from pretrain.methods.encoders import mlp
from pretrain.mixing import MixParams, UnMixConfig, mix, sample_mix, unmix_loss


class SwAV(nn.Module):
    """Swapping assignments between views. Defaults are the paper's ImageNet ones (head
    2048 -> 128, 3000 prototypes, T 0.1, eps 0.05, 3 Sinkhorn iterations, prototypes frozen for
    the first epoch); Un-Mix's CIFAR setting is hidden_dim 512, n_prototypes 100.

    Args:
        arch, stem: the backbone; unmix: {'enabled', 'beta', 'prob'};
        dim, hidden_dim: projector output / hidden size; n_prototypes: number of prototypes;
        T: softmax temperature; eps, sinkhorn_iters: Sinkhorn-Knopp settings;
        crops_for_assign: crops whose codes are targets; mix_crops: crops mixed with Un-Mix
            (None: the even-indexed crops 0, 2, 4, ... as in the official multi-crop code);
        queue_length: per-process queue of past embeddings for the codes (0: none), used from
            `queue_start_epoch` on; freeze_prototypes_epochs: prototype gradients are dropped
            for this many epochs; freeze_prototypes_iters: the same in iterations, as the
            official `--freeze_prototypes_niters` (takes precedence; the training loop sets
            `steps_per_epoch`); epochs: the run's length, to turn epochs into progress;
        stem_padding: padding of the CIFAR stem's 3x3 conv1 (2 in the official CIFAR code).
    """

    def __init__(self, arch: str = "resnet50", stem: str = "imagenet",
                 unmix: Mapping | UnMixConfig | bool | None = None, dim: int = 128,
                 hidden_dim: int = 2048, n_prototypes: int = 3000, T: float = 0.1,
                 eps: float = 0.05, sinkhorn_iters: int = 3,
                 crops_for_assign: Sequence[int] = (0, 1), mix_crops: Sequence[int] | None = None,
                 queue_length: int = 0, queue_start_epoch: float = 15,
                 freeze_prototypes_epochs: float = 1, epochs: int = 800,
                 freeze_prototypes_iters: int | None = None, stem_padding: int = 1) -> None:
        super().__init__()
        self.unmix = UnMixConfig.from_any(unmix)
        self.T, self.eps, self.sinkhorn_iters = T, eps, sinkhorn_iters
        self.crops_for_assign = tuple(crops_for_assign)
        self.mix_crops = None if mix_crops is None else tuple(mix_crops)
        self.queue_start = queue_start_epoch / epochs
        self.freeze_until = freeze_prototypes_epochs / epochs
        self.freeze_iters, self.epochs = freeze_prototypes_iters, epochs
        self.steps_per_epoch: int | None = None  # set by the training loop (pretrain/train.py)
        self.backbone = build_resnet(arch, stem, stem_padding=stem_padding)
        self.projector = mlp(self.backbone.num_features, hidden_dim, dim, bn=True)
        self.prototypes = nn.Linear(dim, n_prototypes, bias=False)
        self.register_buffer("queue", torch.zeros(len(self.crops_for_assign), queue_length, dim))
        self._progress = 0.0
        self._normalize_prototypes()

    @torch.no_grad()
    def _normalize_prototypes(self) -> None:
        self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))

    def before_step(self, progress: float) -> None:
        """Prototypes back on the unit sphere before each step; remember progress for the queue."""
        self._progress = progress
        self._normalize_prototypes()

    def after_backward(self, progress: float) -> None:
        """SwAV keeps the prototypes fixed at the start: drop their gradients."""
        if self._frozen(progress):
            self.prototypes.weight.grad = None

    def _frozen(self, progress: float) -> bool:
        if self.freeze_iters is None:
            return progress < self.freeze_until
        if not self.steps_per_epoch:
            raise ValueError("freeze_prototypes_iters needs steps_per_epoch (set by the training loop)")
        # the official test `iteration < freeze_prototypes_niters`, iteration = progress * total
        return round(progress * self.epochs * self.steps_per_epoch) < self.freeze_iters

    def _embed(self, x: Tensor) -> Tensor:
        """(M, 3, H, W) -> L2-normalised embeddings (M, dim)."""
        return F.normalize(self.projector(self.backbone(x)), dim=1)

    def _mix_indices(self, n_crops: int) -> list[int]:
        if not self.unmix.enabled:
            return []
        idx = range(0, n_crops, 2) if self.mix_crops is None else self.mix_crops
        return [j for j in idx if j < n_crops]

    def _encode(self, views: list[Tensor], generator: torch.Generator | None
                ) -> tuple[list[Tensor], dict[int, Tensor], dict[int, MixParams]]:
        """Embeddings of the clean crops and of the mixtures, one forward per resolution."""
        mixed = self._mix_indices(len(views))
        params: dict[tuple[int, int], MixParams] = {}
        mix_params: dict[int, MixParams] = {}
        for j in mixed:
            hw = tuple(views[j].shape[-2:])
            if hw not in params:  # one draw per resolution: the box depends on the image size
                params[hw] = sample_mix(hw, self.unmix.beta, self.unmix.prob, generator)
            mix_params[j] = params[hw]
        clean: list[Tensor | None] = [None] * len(views)
        mixed_emb: dict[int, Tensor] = {}
        start = 0
        while start < len(views):  # runs of consecutive same-size crops, as SwAV's forward
            end = start
            while end < len(views) and views[end].shape[-2:] == views[start].shape[-2:]:
                end += 1
            group = list(range(start, end))
            mix_here = [j for j in mixed if j in group]
            # (len(group)*N + len(mix_here)*N, 3, H, W): clean and mixed crops in one BN batch
            batch = torch.cat([views[i] for i in group]
                              + [mix(views[j], mix_params[j]) for j in mix_here])
            chunks = self._embed(batch).split([views[i].shape[0] for i in group + mix_here])
            for i, z in zip(group, chunks[:len(group)]):
                clean[i] = z
            for j, z in zip(mix_here, chunks[len(group):]):
                mixed_emb[j] = z
            start = end
        return clean, mixed_emb, mix_params

    @torch.no_grad()
    def _codes(self, emb: Tensor, scores: Tensor, slot: int) -> Tensor:
        """Sinkhorn codes of one assignment crop (N, K), with the queue prepended when in use;
        then the queue takes this batch's embeddings."""
        n = emb.shape[0]
        use_queue = self.queue.shape[1] > 0 and self._progress >= self.queue_start
        if use_queue and self.training:
            if bool(self.queue[slot, -1].abs().sum() > 0):  # SwAV uses the queue once it is full
                scores = torch.cat([self.queue[slot] @ self.prototypes.weight.t(), scores])
            self.queue[slot, n:] = self.queue[slot, :-n].clone()
            self.queue[slot, :n] = emb
        return sinkhorn(scores, self.eps, self.sinkhorn_iters)[-n:]

    def forward(self, views: list[Tensor], generator: torch.Generator | None = None
                ) -> dict[str, Tensor]:
        """views: normalised crops (N, 3, H, W): 2 large crops, then optional small ones (same-size
        crops consecutive). Returns {'loss', 'loss_clean'[, 'loss_mix', 'lam']}."""
        clean, mixed_emb, mix_params = self._encode(views, generator)
        scores = [self.prototypes(z) for z in clean]
        n_crops = len(views)
        codes = {i: self._codes(clean[i].detach(), scores[i].detach(), s)
                 for s, i in enumerate(self.crops_for_assign)}
        loss_clean = sum(
            sum(swav_loss(scores[v], codes[i], self.T) for v in range(n_crops) if v != i)
            / (n_crops - 1) for i in self.crops_for_assign) / len(self.crops_for_assign)
        out = {"loss_clean": loss_clean.detach()}
        loss = loss_clean
        if mixed_emb:
            terms = [unmix_loss(lambda s, q: swav_loss(s, q, self.T), self.prototypes(z),
                                codes[i], mix_params[j].lam)
                     for j, z in mixed_emb.items() for i in self.crops_for_assign]
            loss_mix = sum(terms) / len(terms)
            loss = loss + loss_mix
            out["loss_mix"] = loss_mix.detach()
            out["lam"] = torch.tensor(mix_params[min(mix_params)].lam, device=loss.device)
        out["loss"] = loss
        return out
