"""Self-supervised losses of MoCo, SimCLR, BYOL and SwAV, as pure functions of embeddings.

Every loss averages over the local batch; Un-Mix's mixed terms reuse them unchanged (see
`pretrain.mixing.unmix_loss`).
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn import functional as F

from pretrain import distributed


def info_nce(q: Tensor, k: Tensor, queue: Tensor, temperature: float) -> Tensor:
    """MoCo's contrastive loss: logits [q.k, q.queue] / T, the positive at index 0.

    Shape: q (N, D) and k (N, D) L2-normalised; queue (K, D) L2-normalised negatives -> scalar.
    Backward reads `queue`: pass a copy if the caller enqueues in place before backward.
    """
    # (N, 1): positive logits
    l_pos = (q * k).sum(dim=1, keepdim=True)
    # (N, K): negative logits against the queue (detached: the queue holds past keys)
    l_neg = q @ queue.detach().t()
    # (N, 1 + K)
    logits = torch.cat([l_pos, l_neg], dim=1) / temperature
    labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, labels)


def nt_xent(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """SimCLR's NT-Xent: each of the 2N local embeddings against its positive and the 2(W*N)-2
    negatives of the batches of all W processes (gathered with gradient); mean over the 2N anchors.

    Shape: z1 (N, D), z2 (N, D) (any scale; normalised here), z1[i] and z2[i] positives -> scalar.
    """
    n = z1.shape[0]
    # (N, D) each
    z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    # (W*N, D) each: candidates from every process
    z1_all, z2_all = distributed.gather_with_grad(z1), distributed.gather_with_grad(z2)
    m = z1_all.shape[0]
    # (2N, D) anchors, (2M, D) candidates
    anchors = torch.cat([z1, z2], dim=0)
    cands = torch.cat([z1_all, z2_all], dim=0)
    # (2N, 2M)
    logits = anchors @ cands.t() / temperature
    local = torch.arange(n, device=z1.device) + distributed.rank() * n
    # (2N,): column of each anchor itself, and of its positive
    self_idx = torch.cat([local, local + m])
    pos_idx = torch.cat([local + m, local])
    rows = torch.arange(2 * n, device=z1.device)
    # dtype follows the logits: under autocast they are fp16/bf16 and index_put needs equal dtypes
    logits = logits.index_put((rows, self_idx), torch.tensor(float("-inf"), device=z1.device,
                                                             dtype=logits.dtype))
    return F.cross_entropy(logits, pos_idx)


def byol_loss(p: Tensor, z: Tensor) -> Tensor:
    """BYOL's regression loss ||p/|p| - z/|z|||^2 = 2 - 2 cos(p, z), mean over the batch; `z` (the
    target) gets no gradient. Shape: p (N, D), z (N, D) -> scalar."""
    return (2.0 - 2.0 * F.cosine_similarity(p, z.detach(), dim=1)).mean()


def swav_loss(scores: Tensor, codes: Tensor, temperature: float) -> Tensor:
    """SwAV's swapped prediction: cross-entropy between the codes of another view and the
    softmax of this view's prototype scores / T, mean over the batch.

    Shape: scores (N, K) (cosine scores of normalised embeddings and prototypes), codes (N, K)
    (rows sum to 1, no gradient) -> scalar.
    """
    return -(codes.detach() * F.log_softmax(scores / temperature, dim=1)).sum(dim=1).mean()


@torch.no_grad()
def sinkhorn(scores: Tensor, eps: float = 0.05, n_iters: int = 3) -> Tensor:
    """SwAV's equipartitioned soft codes by Sinkhorn-Knopp over the batches of all processes.

    Q = exp(scores / eps), scaled alternately so each prototype gets B/K of the mass (B = total
    batch over processes) and each sample 1: on return every row sums to 1 (exactly) and the
    prototype totals approach B/K as `n_iters` grows. Sums are all-reduced only when W > 1.

    Shape: scores (N, K) -> codes (N, K).
    """
    ws = distributed.world_size()
    # half precision (autocast) is too coarse for exp(score / 0.05); float64 stays float64
    if scores.dtype != torch.float64:
        scores = scores.float()
    # a global shift cancels in the normalisation; it keeps exp() finite for small eps
    top = scores.max()
    if ws > 1:
        dist.all_reduce(top, op=dist.ReduceOp.MAX)
    # (K, N): prototypes x samples, as in the SwAV paper
    q = torch.exp((scores - top) / eps).t()
    k, b = q.shape[0], q.shape[1] * ws
    total = q.sum()
    if ws > 1:
        dist.all_reduce(total)
    q /= total
    for _ in range(n_iters):
        # (K, 1): each prototype -> 1/K of the mass
        rows = q.sum(dim=1, keepdim=True)
        if ws > 1:
            dist.all_reduce(rows)
        q /= rows
        q /= k
        # (1, N): each sample -> 1/B
        q /= q.sum(dim=0, keepdim=True)
        q /= b
    q *= b
    return q.t()
