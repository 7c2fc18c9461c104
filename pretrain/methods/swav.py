"""SwAV (Caron et al. 2020) with Un-Mix, computing what the Un-Mix authors' SwAV code computes
(`UnMix_SwAV/for_{CIFAR,ImageNet}/main_swav_unmix.py` in szq0214/Un-Mix).

Crops come in pairs (2k, 2k+1). With Un-Mix each even crop 2k gets a mixture m_2k with its
reversed batch: one lam and one r per iteration, a fresh box per pair, each box sized by the
previous pair's corrected lam (`pretrain.mixing.sample_mix_chain`). One pass over
[x0, x1, m0, x2, x3, m2, ...] (backbone per run of same-size crops, the head over all of them, as
SwAV's multi-crop forward, so batch norm sees clean and mixed crops together) gives two crop sets:
the clean one [x0, x1, x2, x3, ...] and the mixed one [m0, x1, m2, x3, ...]. The loss is

    swav(clean) + lam * swav(mixed) + (1 - lam) * swav(mixed, reverse=True)

with swav(set) SwAV's swapped prediction inside the set: the Sinkhorn codes of each assignment
crop (queue prepended once full) predicted by every other crop of the set. In the mixed set crop 0
is the mixture, so its targets are the mixture's own codes, and the mixture predicts the clean
crop 1's codes. `reverse` flips crop 0's codes (and the embeddings it enqueues), never a
prediction. Every call enqueues, so mixed embeddings enter the queue. lam is the last pair's.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from pretrain import distributed
from pretrain.backbones import build_resnet
from pretrain.losses import sinkhorn, swav_loss
from pretrain.methods.encoders import mlp
from pretrain.mixing import UnMixConfig, mix, sample_mix_chain


def queue_rows(queue_length: int, world_size: int, batch_size: int | None) -> int:
    """Rows of one process's queue: `queue_length` (the total over processes) rounded down to a
    multiple of the global batch (when the per-process `batch_size` is known), split evenly
    over the processes, as the official code does before it builds the queue."""
    if queue_length < 0 or world_size < 1:
        raise ValueError(f"queue_length must be >= 0 and world_size >= 1, got {queue_length}, "
                         f"{world_size}")
    if batch_size:
        queue_length -= queue_length % (batch_size * world_size)
    return queue_length // world_size


class SwAV(nn.Module):
    """Swapping assignments between views. Defaults are the paper's ImageNet ones (head
    2048 -> 128, 3000 prototypes, T 0.1, eps 0.05, 3 Sinkhorn iterations, prototypes frozen for
    the first epoch); Un-Mix's CIFAR setting is hidden_dim 512, n_prototypes 100.

    Args:
        arch, stem: the backbone; unmix: {'enabled', 'beta', 'prob'} (needs an even number of
            crops: they are mixed in pairs);
        dim, hidden_dim: projector output / hidden size; n_prototypes: number of prototypes;
        T: softmax temperature; eps, sinkhorn_iters: Sinkhorn-Knopp settings;
        crops_for_assign: crops whose codes are targets;
        queue_length: queue of past embeddings for the codes, total over the processes as in the
            official code (each process keeps its own `queue_rows(...)` rows; 0: none), used from
            `queue_start_epoch` on; world_size, batch_size: processes and per-process batch the
            queue is sized for (None: the current process group, and no rounding);
        freeze_prototypes_epochs: prototype gradients are dropped for this many epochs;
        freeze_prototypes_iters: the same in iterations, as the official
            `--freeze_prototypes_niters` (takes precedence; the training loop sets
            `steps_per_epoch`); epochs: the run's length, to turn epochs into progress;
        stem_padding: padding of the CIFAR stem's 3x3 conv1 (2 in the official CIFAR code).
    """

    # saved and restored per process by the training loop (pretrain/checkpoint.py): each
    # process's queue holds its own embeddings, as the official queue<rank>.pth files
    per_process_buffers = ("queue",)

    def __init__(self, arch: str = "resnet50", stem: str = "imagenet",
                 unmix: Mapping | UnMixConfig | bool | None = None, dim: int = 128,
                 hidden_dim: int = 2048, n_prototypes: int = 3000, T: float = 0.1,
                 eps: float = 0.05, sinkhorn_iters: int = 3,
                 crops_for_assign: Sequence[int] = (0, 1), queue_length: int = 0,
                 queue_start_epoch: float = 15, freeze_prototypes_epochs: float = 1,
                 epochs: int = 800, freeze_prototypes_iters: int | None = None,
                 stem_padding: int = 1, world_size: int | None = None,
                 batch_size: int | None = None) -> None:
        super().__init__()
        self.unmix = UnMixConfig.from_any(unmix)
        self.T, self.eps, self.sinkhorn_iters = T, eps, sinkhorn_iters
        self.crops_for_assign = tuple(crops_for_assign)
        self.queue_start = queue_start_epoch / epochs
        self.freeze_until = freeze_prototypes_epochs / epochs
        self.freeze_iters, self.epochs = freeze_prototypes_iters, epochs
        self.steps_per_epoch: int | None = None  # set by the training loop (pretrain/train.py)
        self.backbone = build_resnet(arch, stem, stem_padding=stem_padding)
        self.projector = mlp(self.backbone.num_features, hidden_dim, dim, bn=True)
        self.prototypes = nn.Linear(dim, n_prototypes, bias=False)
        ws = distributed.world_size() if world_size is None else int(world_size)
        rows = queue_rows(int(queue_length), ws, batch_size)
        self.register_buffer("queue", torch.zeros(len(self.crops_for_assign), rows, dim))
        # every process has its own queue of its own embeddings (official: a tensor outside the
        # model); DDP would otherwise overwrite it with rank 0's at every forward
        nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
            self, ["queue"])
        self._progress = 0.0
        self._normalize_prototypes()

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        # a queue saved by a run with another process layout has another shape: start this one
        # empty (it refills within queue_rows / batch steps) instead of failing the resume
        key = prefix + "queue"
        if key in state_dict and state_dict[key].shape != self.queue.shape:
            state_dict[key] = torch.zeros_like(self.queue)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

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

    def _encode(self, inputs: list[Tensor]) -> list[Tensor]:
        """L2-normalised embeddings (N_i, dim) of each input (N_i, 3, H, W): the backbone once per
        run of consecutive same-size inputs, the head once over all of them (SwAV's forward)."""
        feats, start = [], 0
        while start < len(inputs):
            end = start
            while end < len(inputs) and inputs[end].shape[-2:] == inputs[start].shape[-2:]:
                end += 1
            feats.append(self.backbone(torch.cat(inputs[start:end])))
            start = end
        z = F.normalize(self.projector(torch.cat(feats)), dim=1)
        return list(z.split([x.shape[0] for x in inputs]))

    @torch.no_grad()
    def _codes(self, emb: Tensor, scores: Tensor, slot: int) -> Tensor:
        """Sinkhorn codes of one assignment crop (N, K), with the queue prepended once it is full;
        then the queue takes this batch's embeddings."""
        n = emb.shape[0]
        use_queue = self.queue.shape[1] > 0 and self._progress >= self.queue_start
        if use_queue and self.training:
            if bool(self.queue[slot, -1].abs().sum() > 0):
                scores = torch.cat([self.queue[slot] @ self.prototypes.weight.t(), scores])
            self.queue[slot, n:] = self.queue[slot, :-n].clone()
            self.queue[slot, :n] = emb
        return sinkhorn(scores, self.eps, self.sinkhorn_iters)[-n:]

    def swapped(self, scores: list[Tensor], embs: list[Tensor], reverse: bool = False) -> Tensor:
        """SwAV's loss inside one crop set: mean over assignment crops i of the mean over the
        other crops v of CE(codes_i, softmax(scores_v / T)). `reverse` flips crop 0's codes and
        the embeddings it enqueues (crop 0 of the mixed set is the mixture), nothing else.

        Shape: scores[v] (N, K) with gradient, embs[v] (N, dim) -> scalar."""
        n, total = len(scores), 0.0
        for slot, i in enumerate(self.crops_for_assign):
            s, e = scores[i].detach(), embs[i].detach()
            if reverse and i == 0:
                s, e = s.flip(0), e.flip(0)
            q = self._codes(e, s, slot)
            total = total + sum(swav_loss(scores[v], q, self.T) for v in range(n) if v != i) / (n - 1)
        return total / len(self.crops_for_assign)

    def forward(self, views: list[Tensor], generator: torch.Generator | None = None
                ) -> dict[str, Tensor]:
        """views: normalised crops (N, 3, H, W): 2 large crops, then optional small ones (same-size
        crops consecutive). Returns {'loss', 'loss_clean'[, 'loss_mix', 'lam']}."""
        n = len(views)
        if n < 2 or max(self.crops_for_assign) >= n:
            raise ValueError(f"SwAV got {n} crops; crops_for_assign {self.crops_for_assign} "
                             "needs more")
        if not self.unmix.enabled:
            embs = self._encode(views)
            loss = self.swapped([self.prototypes(z) for z in embs], embs)
            return {"loss": loss, "loss_clean": loss.detach()}
        if n % 2:
            raise ValueError(f"SwAV with Un-Mix mixes crops in pairs (0, 1), (2, 3), ...: got {n}")
        params = sample_mix_chain([views[k].shape for k in range(0, n, 2)], self.unmix.beta,
                                  self.unmix.prob, generator)
        inputs = []  # the official order: x0, x1, m0, x2, x3, m2, ...
        for k, p in zip(range(0, n, 2), params):
            inputs += [views[k], views[k + 1], mix(views[k], p)]
        embs = self._encode(inputs)
        scores = [self.prototypes(z) for z in embs]
        pairs = range(0, len(inputs), 3)
        clean = [j for t in pairs for j in (t, t + 1)]
        mixed = [j for t in pairs for j in (t + 2, t + 1)]  # each even crop replaced by its mixture
        loss_clean = self.swapped([scores[j] for j in clean], [embs[j] for j in clean])
        s_mix, e_mix = [scores[j] for j in mixed], [embs[j] for j in mixed]
        lam = params[-1].lam
        loss_mix = (lam * self.swapped(s_mix, e_mix)
                    + (1.0 - lam) * self.swapped(s_mix, e_mix, reverse=True))
        return {"loss": loss_clean + loss_mix, "loss_clean": loss_clean.detach(),
                "loss_mix": loss_mix.detach(),
                "lam": torch.tensor(lam, device=loss_mix.device)}
