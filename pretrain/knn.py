"""`unmix knn`: weighted k-nearest-neighbour accuracy of a frozen encoder.

The classifier is the one of InstDisc (Wu et al. 2018) as used by the MoCo CIFAR demo that the
Un-Mix CIFAR numbers come from (k 200, t 0.1): cosine similarity between L2-normalised features,
the k most similar training images vote for their class with weight exp(sim / t).
`knn_predict` is a pure function; the pretraining loop's kNN monitor imports it.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from pretrain import features as fx
from unmix.core.env import env_info
from unmix.core import records
from unmix.core.errors import UnmixError


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="any checkpoint `unmix convert` reads")
    fx.add_data_arguments(parser)
    parser.add_argument("--k", type=int, default=200, help="neighbours that vote (default 200)")
    parser.add_argument("--t", type=float, default=0.1, help="temperature of the vote weights exp(sim/t)")
    fx.add_checkpoint_arguments(parser)
    fx.add_run_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.k < 1:
        raise UnmixError(f"--k {args.k}: must be at least 1")
    if args.t <= 0:
        raise UnmixError(f"--t {args.t}: must be positive")
    device, label, test_split, encoder, ckpt = fx.prepare(args)
    train_set = fx.build_dataset(args.dataset, args.data_root, args.train_split,
                                 image_size=args.image_size)
    test_set = fx.build_dataset(args.dataset, args.data_root, test_split, image_size=args.image_size)
    num_classes = fx.num_classes_of(args.dataset, train_set)

    work_dir = Path(args.work_dir) if args.work_dir else fx.default_work_dir("knn", label, args.dataset)
    protocol = {"name": f"knn-k{args.k}-t{args.t:g}", "task": "classification",
                "dataset": args.dataset, "train_split": args.train_split, "test_split": test_split,
                "k": args.k, "t": args.t, "seed": args.seed, "features": "pooled encoder output",
                "batch_size_total": args.batch_size}
    record = records.new_record("knn", ckpt, protocol, env=env_info(device))
    t0 = time.time()
    with fx.work_dir_log(work_dir, "knn") as log:
        log.info("knn: %s (%s) on %s [%s -> %s], k=%d t=%g, device %s", label, ckpt["path"],
                 args.dataset, args.train_split, test_split, args.k, args.t, device)
        try:
            fx.seed_everything(args.seed)
            encoder.to(device)
            bank, bank_labels = fx.extract_features(
                encoder, fx.make_loader(train_set, args.batch_size, args.workers, device=device),
                device, args.amp, desc=f"bank ({args.train_split})")
            log.info("bank: %d x %d features", *bank.shape)
            feats, labels = fx.extract_features(
                encoder, fx.make_loader(test_set, args.batch_size, args.workers, device=device),
                device, args.amp, desc=f"query ({test_split})")
            log.info("queries: %d x %d features", *feats.shape)
            scores = knn_predict(feats, bank.to(device), bank_labels, num_classes, args.k, args.t)
            metrics = fx.topk_accuracy(scores, labels)
        except UnmixError:
            raise
        except Exception as e:
            records.write(records.fail(record, e), work_dir)
            log.info("failed: %s", e)
            raise
        record["details"] = {"num_classes": num_classes, "bank_size": int(bank.size(0)),
                             "num_test": int(feats.size(0)), "feature_dim": int(bank.size(1))}
        records.finish(record, metrics, wall_time_s=round(time.time() - t0, 3))
        path = records.write(record, work_dir)
        log.info("top1 %.2f  top5 %.2f  -> %s", metrics["top1"], metrics["top5"], path)
    print(f"{label}\tknn k={args.k} t={args.t:g}\t{args.dataset}\ttop1 {metrics['top1']:.2f}\t"
          f"top5 {metrics['top5']:.2f}\t{path}")
    return 0
