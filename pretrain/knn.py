"""The weighted k-nearest-neighbour classifier, as a pure function of tensors.

The classifier is the one of InstDisc (Wu et al. 2018) as used by the official Un-Mix MoCo CIFAR
demo, whose monitor gives the published MoCo CIFAR numbers (k 200, t 0.1, on the normalised
128-d head output): cosine similarity between L2-normalised features, the k most similar training
images vote for their class with weight exp(sim / t). The pretraining loop's kNN monitor and
`unmix knn` (transfer.frozen.knn) both use it, on the features `--features` chooses.
"""
from __future__ import annotations


import torch
from torch.nn import functional as F



def knn_predict(features: torch.Tensor, bank_features: torch.Tensor, bank_labels: torch.Tensor,
                num_classes: int, k: int = 200, t: float = 0.1, chunk_size: int = 256) -> torch.Tensor:
    """Weighted kNN class scores.

    Shape: features (N, D) queries, bank_features (M, D), bank_labels (M,) in [0, num_classes)
    -> scores (N, num_classes) float32: for each query, the sum of exp(cos_sim / t) over its k
    most similar bank entries, per class of those entries. Zero for classes no neighbour has.

    Features need not be normalised (they are L2-normalised here). k is capped at M. Queries are
    processed `chunk_size` at a time, so memory is O(chunk_size * M), not O(N * M). Scores are
    computed on the bank's device.
    """
    if features.dim() != 2 or bank_features.dim() != 2 or features.size(1) != bank_features.size(1):
        raise ValueError(f"features {tuple(features.shape)} and bank {tuple(bank_features.shape)} "
                         "must be (N, D) and (M, D)")
    if bank_labels.numel() != bank_features.size(0):
        raise ValueError("bank_labels must have one label per bank row")
    if t <= 0 or k < 1:
        raise ValueError(f"need k >= 1 and t > 0, got k={k}, t={t}")
    device = bank_features.device
    bank = F.normalize(bank_features.float(), dim=1)
    bank_labels = bank_labels.to(device).long()
    k = min(k, bank.size(0))
    out = torch.zeros(features.size(0), num_classes, dtype=torch.float32)
    for start in range(0, features.size(0), chunk_size):
        q = F.normalize(features[start:start + chunk_size].to(device).float(), dim=1)
        sim = q @ bank.T                                        # (n, M) cosine similarities
        sim_w, idx = sim.topk(k, dim=1)                         # (n, k)
        weights = (sim_w / t).exp()
        neigh_labels = bank_labels[idx]                         # (n, k)
        # The reference builds a one-hot (n*k, C) matrix and sums weight * one_hot over the k
        # neighbours; scatter_add is the same sum without materialising the one-hots.
        scores = torch.zeros(q.size(0), num_classes, device=device)
        scores.scatter_add_(1, neigh_labels, weights)
        out[start:start + q.size(0)] = scores.cpu()
    return out
