"""MoCo v1/v2 (He et al. 2020; Chen et al. 2020) with Un-Mix, in the style of moco/builder.py.

Un-Mix mixes view 1 with its reversed batch and adds, per key set k used by a clean term,
`lam * l(q_mix, k) + (1 - lam) * l(q_mix.flip(0), k)` with the same queue, temperature and label.
The mixture is encoded ONCE: its reversal's embeddings are the reversed embeddings (BN is
order-invariant), so a symmetric step costs 3 query forward/backward passes + 2 key forwards
(the official code encodes the mixture once per symmetric term: 4 + 2). Only clean keys are
enqueued. Loss and gradients are the official ones either way (tests/test_moco_official.py); the
query encoder's BN running statistics are not: officially the mixture's batch statistics enter
them twice per symmetric step, in the order x1, mix, x2, mix. `bn_stats='official'` reproduces
that order and count (one extra no-grad forward of the mixture); the default 'once' (x1, x2,
mix) is the faster, deliberate difference (docs/fidelity.md).
"""
from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from pretrain import distributed
from pretrain.backbones import build_resnet
from pretrain.distributed import SplitBatchNorm
from pretrain.losses import info_nce
from pretrain.methods.encoders import ema_update_, mlp, momentum_copy
from pretrain.mixing import UnMixConfig, add_unmix, unmix_loss

DEFAULT_T = {"v1": 0.07, "v2": 0.2}


class MoCo(nn.Module):
    """Momentum contrast. Defaults are MoCo v2 on ImageNet (K 65536, m 0.999, T 0.2, asymmetric);
    the Un-Mix CIFAR demo is version 'v1', K 4096, m 0.99, T 0.1, symmetric, split_bn 8.

    Args:
        arch, stem: the backbone (`pretrain.backbones.build_resnet`).
        unmix: {'enabled', 'beta', 'prob'} (see `pretrain.mixing.UnMixConfig`).
        version: 'v1' (linear projector) or 'v2' (MLP projector, hidden = feature dim, no BN).
        dim: embedding size; K: queue length; m: key-encoder momentum;
        T: temperature (None: 0.07 for v1, 0.2 for v2); symmetric: add the swapped term;
        split_bn: SplitBatchNorm groups in the backbones (0: plain BN).
        bn_stats: 'once' (default) or 'official': the query encoder's BN running statistics of a
            symmetric Un-Mix step as the official code leaves them (module doc).
    """

    def __init__(self, arch: str = "resnet50", stem: str = "imagenet",
                 unmix: Mapping | UnMixConfig | bool | None = None, version: str = "v2",
                 dim: int = 128, K: int = 65536, m: float = 0.999, T: float | None = None,
                 symmetric: bool = False, split_bn: int = 0, bn_stats: str = "once") -> None:
        super().__init__()
        if version not in DEFAULT_T:
            raise ValueError(f"MoCo version must be 'v1' or 'v2', got {version!r}")
        if bn_stats not in ("once", "official"):
            raise ValueError(f"MoCo bn_stats must be 'once' or 'official', got {bn_stats!r}")
        self.bn_stats = bn_stats
        self.unmix = UnMixConfig.from_any(unmix)
        self.version, self.K, self.m, self.symmetric = version, K, m, symmetric
        self.T = DEFAULT_T[version] if T is None else T
        self.split_bn = split_bn
        norm = partial(SplitBatchNorm, num_splits=split_bn) if split_bn else None
        self.backbone = build_resnet(arch, stem, norm_layer=norm)
        feat = self.backbone.num_features
        self.projector = (nn.Linear(feat, dim) if version == "v1"
                          else mlp(feat, feat, dim, bn=False))
        self.momentum_backbone = momentum_copy(self.backbone)
        self.momentum_projector = momentum_copy(self.projector)
        self.register_buffer("queue", F.normalize(torch.randn(K, dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    def _query(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) -> (N, dim), L2-normalised."""
        return F.normalize(self.projector(self.backbone(x)), dim=1)

    @torch.no_grad()
    def _key(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """Momentum encoder with shuffle-BN: (N, 3, H, W) -> (N, dim), L2-normalised. On one
        process the shuffle only matters with SplitBatchNorm (the CIFAR demo's local shuffle)."""
        x, idx_unshuffle = distributed.batch_shuffle(x, generator, local=self.split_bn > 0)
        k = F.normalize(self.momentum_projector(self.momentum_backbone(x)), dim=1)
        return distributed.batch_unshuffle(k, idx_unshuffle)

    @torch.no_grad()
    def _momentum_update(self) -> None:
        ema_update_(self.momentum_backbone, self.backbone, self.m)
        ema_update_(self.momentum_projector, self.projector, self.m)

    @torch.no_grad()
    def _enqueue(self, keys: Tensor) -> None:
        """Write the keys of all processes at the queue pointer (wrapping). keys (N, dim)."""
        keys = distributed.concat_all_gather(keys)
        n = keys.shape[0]
        if n > self.K:
            raise ValueError(f"MoCo: {n} keys per step exceed the queue length K={self.K}")
        ptr = int(self.queue_ptr)
        idx = (torch.arange(n, device=keys.device) + ptr) % self.K
        self.queue[idx] = keys.to(self.queue.dtype)
        self.queue_ptr[0] = (ptr + n) % self.K

    def forward(self, views: list[Tensor], generator: torch.Generator | None = None
                ) -> dict[str, Tensor]:
        """views: two normalised crops (N, 3, H, W). Returns {'loss', 'loss_clean'[, 'loss_mix',
        'lam']}; all but 'loss' detached."""
        x1, x2 = views[0], views[1]
        if self.training:
            # MoCo updates the key encoder before computing this step's keys
            self._momentum_update()
        # a snapshot: the enqueue below writes the buffer before backward needs it
        loss_fn = partial(info_nce, queue=self.queue.clone(), temperature=self.T)

        # the official BN-statistics order encodes view 2 after the mixture (module doc)
        late = self.symmetric and self.unmix.enabled and self.bn_stats == "official" and self.training
        q1 = self._query(x1)
        k2 = self._key(x2, generator)
        loss_clean = loss_fn(q1, k2)
        keys, q2 = [k2], None
        if self.symmetric:
            q2 = None if late else self._query(x2)
            k1 = self._key(x1, generator)
            if q2 is not None:
                loss_clean = loss_clean + loss_fn(q2, k1)
            keys = [k1, k2]
        loss = loss_clean

        def mixed_loss(x_mix: Tensor, lam: float) -> Tensor:
            nonlocal q2
            # (N, dim): the mixture's only forward with gradients; its reversal is q_mix.flip(0)
            q_mix = self._query(x_mix)
            if late:
                q2 = self._query(x2)
                with torch.no_grad():
                    self._query(x_mix)  # the official second pass, for its BN statistics only
            # asymmetric: against k2; symmetric: against k2 and k1 (view 1's own keys)
            return sum(unmix_loss(loss_fn, q_mix, k, lam) for k in reversed(keys))

        out: dict[str, Tensor] = {}
        loss = add_unmix(out, loss, x1, self.unmix, generator, mixed_loss)
        if late:
            loss_21 = loss_fn(q2, k1)
            loss, loss_clean = loss + loss_21, loss_clean + loss_21
        out = {"loss_clean": loss_clean.detach(), **out}

        if self.training:
            # only clean keys: mixed embeddings never enter the queue
            self._enqueue(torch.cat(keys, dim=0))
        out["loss"] = loss
        return out
