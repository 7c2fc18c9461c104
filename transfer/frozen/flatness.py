"""`unmix flatness`: how flat are an encoder's output distributions? (Figure 5 of
"Rethinking Image Mixture for Unsupervised Visual Representation Learning", arXiv 2003.05438v1)

Figure 5 of the first Un-Mix paper plots, for ResNet-50 encoders pretrained with MoCo and with
Un-Mix, "the sorted distribution of 2048 dimension outputs from the last layer" on the ImageNet
val set, with the maximum probabilities marked: the Un-Mix curve is flatter (lower max). 2048 is
the width of ResNet-50's pooled features (MoCo's projection fc is 128-d), so the outputs used here
are the encoder's pooled features, the same tensor kNN and the linear probe see; a projection
head, if the checkpoint has one, is not part of the converted encoder and is not used.

Per image: softmax(features / T) over the C feature dimensions, sorted in descending order. Per
checkpoint: the mean sorted curve (`details.sorted_probs`, C numbers), and statistics of the
per-image max probability and entropy.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from pretrain.features import extract_features
from transfer.frozen import arguments
from transfer.frozen import common as fx
from transfer.report.plots import plot_flat
from unmix.core.env import env_info
from unmix.core import files, records
from unmix.core.errors import UnmixError
from unmix.core.logs import work_dir_log


def sorted_softmax(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Shape: logits (N, C) -> softmax(logits / T) per row, sorted descending, (N, C) float32."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    return torch.softmax(logits.float() / temperature, dim=1).sort(dim=1, descending=True).values


def flatness_stats(logits: torch.Tensor, temperature: float = 1.0) -> dict:
    """Statistics of the sorted softmax distributions of `logits` (N, C).

    Returns {'sorted_probs': (C,) mean over images of the sorted probabilities,
    'max_prob': (N,), 'entropy': (N,) in nats, 'num_classes': C}.
    """
    p = sorted_softmax(logits, temperature)
    entropy = -(p * p.clamp_min(1e-30).log()).sum(dim=1)
    return {"sorted_probs": p.double().mean(0).float(), "max_prob": p[:, 0], "entropy": entropy,
            "num_classes": p.size(1)}


def flatness_metrics(stats: dict) -> dict[str, float]:
    """Percentages, as every record metric is: max-probability mean/median/std in percent, and
    the mean entropy in percent of the uniform distribution's (log C), so that encoders of
    different widths compare."""
    mp = stats["max_prob"].double()
    log_c = math.log(stats["num_classes"]) if stats["num_classes"] > 1 else 1.0
    return {"max_prob_mean": 100.0 * mp.mean().item(),
            "max_prob_median": 100.0 * mp.median().item(),
            "max_prob_std": 100.0 * mp.std(unbiased=False).item(),
            "entropy_mean": 100.0 * stats["entropy"].double().mean().item() / log_c}


add_arguments = arguments.flatness  # the options, in a module without torch (fast --help)


def _protocol_name(dataset: str, split: str, temperature: float) -> str:
    return f"flatness-{dataset}-{split}" + ("" if temperature == 1.0 else f"-T{temperature:g}")


def _labels(args: argparse.Namespace) -> list[str]:
    """One distinct label per checkpoint (given, or the file name); one-line errors otherwise."""
    given = args.label or []
    if given and len(given) != len(args.checkpoints):
        raise UnmixError(f"--label given {len(given)} times for {len(args.checkpoints)} checkpoints")
    labels = [fx.label_for(c, given[i] if given else None) for i, c in enumerate(args.checkpoints)]
    if len(set(labels)) != len(labels) or len({fx.safe_name(x) for x in labels}) != len(labels):
        raise UnmixError(f"checkpoint labels must be distinct (also as directory names), got "
                         f"{', '.join(labels)} (use --label)")
    return labels


def _details(stats: dict, feats: torch.Tensor, curve: list[float]) -> dict:
    ent = stats["entropy"].double()
    return {"sorted_probs": curve, "num_images": int(feats.size(0)), "feature_dim": int(feats.size(1)),
            "entropy_mean_nats": ent.mean().item(), "entropy_max_nats": math.log(feats.size(1)),
            "max_prob_quantiles": {str(q): stats["max_prob"].double().quantile(q).item()
                                   for q in (0.05, 0.25, 0.5, 0.75, 0.95)},
            "feature_nonzero_frac": (feats > 0).float().mean().item()}


def _one(args, ckpt_path: str, label: str, dataset, device, protocol: dict, work_dir: Path,
         log) -> tuple[dict, list[float]] | None:
    """Evaluate one checkpoint and write its record; (metrics, curve), or None if it failed."""
    encoder, ckpt = fx.load_encoder(ckpt_path, args.arch, args.fmt, args.encoder, args.trust_pickle)
    ckpt["label"] = label
    record = records.new_record("flatness", ckpt, protocol, env=env_info(device))
    t0 = time.time()
    try:
        fx.seed_everything(args.seed)
        feats, _ = extract_features(
            encoder.to(device), fx.make_loader(dataset, args.batch_size, args.workers, device=device),
            device, fx.amp_dtype(args.amp, device), desc=label)
        stats = flatness_stats(feats, args.temperature)
        metrics = flatness_metrics(stats)
    except UnmixError:
        raise
    except KeyboardInterrupt as e:
        records.write_stopped(record, e, work_dir)
        raise
    except Exception as e:
        records.write_stopped(record, e, work_dir)
        log.info("%s: failed: %s", label, e)
        return None
    finally:
        encoder.cpu()
    curve = [float(f"{v:.6g}") for v in stats["sorted_probs"].tolist()]
    record["details"] = _details(stats, feats, curve)
    records.finish(record, metrics, wall_time_s=round(time.time() - t0, 3))
    path = records.write(record, work_dir)
    log.info("%s: max prob mean %.4f%% median %.4f%% std %.4f%%, entropy %.2f%% of log C -> %s",
             label, metrics["max_prob_mean"], metrics["max_prob_median"],
             metrics["max_prob_std"], metrics["entropy_mean"], path)
    return metrics, curve


def run(args: argparse.Namespace) -> int:
    if args.temperature <= 0:
        raise UnmixError(f"--temperature {args.temperature}: must be positive")
    labels = _labels(args)
    for c in args.checkpoints:
        fx.check_checkpoint(c)
    device = fx.resolve_device(args.device)
    fx.check_dataset(args.dataset, args.data_root)
    args.data_root = str(Path(args.data_root).expanduser().absolute())  # resolved once, recorded
    split = fx.test_split(args.dataset, args.test_split)
    dataset = fx.build_dataset(args.dataset, args.data_root, split, image_size=args.image_size)
    work_root = Path(args.work_dir) if args.work_dir else Path("work_dirs") / "flatness" / fx.safe_name(args.dataset)
    name = _protocol_name(args.dataset, split, args.temperature)
    protocol = {"name": name, "task": "flatness", "dataset": args.dataset, "data_root": args.data_root,
                "train_split": None,
                "test_split": split, "seed": args.seed, "temperature": args.temperature,
                "outputs": "pooled encoder features", "batch_size_total": args.batch_size,
                "image_size": args.image_size}
    dirs = {label: work_root / fx.safe_name(label) for label in labels}
    for d in dirs.values():  # before anything is written
        records.refuse_finished(d, getattr(args, "force", False))
    rows, curves, failures = [], {}, 0
    with work_dir_log(work_root, "flatness") as log:
        log.info("flatness: %d checkpoint(s) on %s [%s], T=%g, device %s", len(labels), args.dataset,
                 split, args.temperature, device)
        for ckpt_path, label in zip(args.checkpoints, labels):
            done = _one(args, ckpt_path, label, dataset, device, dict(protocol), dirs[label], log)
            if done is None:
                failures += 1
                continue
            rows.append((label, *done))
            curves[label] = done[1]
        if rows:
            print(comparison_table(rows, args.head))
            plot = work_root / "flatness.png"
            files.write_bytes(plot, plot_flat("flatness", name, curves).png)
            log.info("plot -> %s", plot)
    return 1 if failures else 0


def comparison_table(rows: list[tuple[str, dict, list[float]]], head: int = 16) -> str:
    """Plain-text side-by-side comparison (stdout)."""
    width = max(len("checkpoint"), *(len(r[0]) for r in rows))
    lines = [f"{'checkpoint':<{width}}  {'max%mean':>9} {'max%median':>10} {'max%std':>8} "
             f"{'H%logC':>7}  top sorted probs (%)"]
    for label, m, curve in rows:
        top = " ".join(f"{100 * v:.3g}" for v in curve[:head])
        lines.append(f"{label:<{width}}  {m['max_prob_mean']:>9.4f} {m['max_prob_median']:>10.4f} "
                     f"{m['max_prob_std']:>8.4f} {m['entropy_mean']:>7.2f}  {top}")
    return "\n".join(lines)
