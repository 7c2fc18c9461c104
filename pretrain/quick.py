"""`unmix pretrain CONFIG --quick`: a recipe shortened for a first look, its schedule's shape kept.

The preset: at most QUICK_EPOCHS epochs of at most QUICK_ITERS_PER_EPOCH iterations each, and the
kNN monitor once, at the end, on the first QUICK_KNN_SAMPLES bank and query images. Everything
the recipe sets in epochs or iterations becomes the same share of the shortened run, so the lr
(and SwAV's queue start and prototype freezing, BYOL's momentum, which follow the run's progress)
has the full run's shape: at a given fraction of the run the lr is the full run's.

- epochs-based settings are scaled by epochs / full epochs: `schedule.milestones`, SwAV's
  `queue_start_epoch` and `freeze_prototypes_epochs` (fractions, no rounding: the loop and the
  methods compare them with fractional epochs);
- warm-up (`schedule.warmup_epochs` or `warmup_iters`) and SwAV's `freeze_prototypes_iters`
  become iterations of the short run, rounded (at least 1 when the recipe has any): the same share
  of the run up to that rounding (`fit_iterations`, which needs the training set's size).

Batch size, image size, model and lr are the recipe's: the preset shortens the run, it does not
change a step (add `--cfg-options train.batch_size=...` for a small machine). Applied after
`--cfg-options`. The run's checkpoints carry what was done (`meta['quick']`), `train.log` says it,
`config.py` holds the shortened sections, and the default work dir is
`work_dirs/pretrain/<config name>-quick`, never the full run's.
"""
from __future__ import annotations

from typing import Any

QUICK_EPOCHS = 5
QUICK_ITERS_PER_EPOCH = 20
QUICK_KNN_SAMPLES = 1000
WORK_DIR_SUFFIX = "-quick"


def shrink(scfg: dict, tcfg: dict, mcfg: dict, kcfg: dict) -> dict[str, Any]:
    """The preset onto the run's sections (in place), before the run is built; returns the
    record `fit_iterations` completes once the training set is known."""
    full_epochs = int(scfg.get("epochs", tcfg.get("epochs", 1)))
    epochs = min(full_epochs, QUICK_EPOCHS)
    ratio = epochs / full_epochs
    full_cap = tcfg.get("max_iters_per_epoch")
    tcfg["max_iters_per_epoch"] = min(int(full_cap), QUICK_ITERS_PER_EPOCH) if full_cap else QUICK_ITERS_PER_EPOCH
    scfg["epochs"] = epochs
    if scfg.get("milestones"):
        scfg["milestones"] = [m * ratio for m in scfg["milestones"]]
    for key in ("queue_start_epoch", "freeze_prototypes_epochs"):  # SwAV's, shares of the run
        if mcfg.get(key):
            mcfg[key] = mcfg[key] * ratio
    if "epochs" in mcfg:
        mcfg["epochs"] = epochs
    if kcfg.get("interval"):
        kcfg["interval"] = epochs  # once, after the last epoch
        kcfg["max_samples"] = min(int(kcfg.get("max_samples") or QUICK_KNN_SAMPLES), QUICK_KNN_SAMPLES)
    return {"quick": True, "epochs": epochs, "full_epochs": full_epochs,
            "max_iters_per_epoch": tcfg["max_iters_per_epoch"], "full_max_iters_per_epoch": full_cap,
            "knn_max_samples": kcfg.get("max_samples") if kcfg.get("interval") else None}


def _steps(images: int, batch: int, cap: int | None) -> int:
    """Iterations per epoch as the loop counts them (pretrain/train.py build_data)."""
    steps = images // batch
    return min(steps, int(cap)) if cap else steps


def _share(iters: float, total_full: int, total: int) -> int:
    return max(1, int(round(iters / total_full * total))) if iters else 0


def fit_iterations(record: dict[str, Any], scfg: dict, mcfg: dict, images: int, batch: int) -> None:
    """Warm-up and SwAV's `freeze_prototypes_iters` as the same share of the short run as of the
    full one (rounded to whole iterations); `record` gains the iteration counts."""
    full_steps = _steps(images, batch, record["full_max_iters_per_epoch"])
    steps = _steps(images, batch, record["max_iters_per_epoch"])
    total_full, total = record["full_epochs"] * full_steps, record["epochs"] * steps
    if scfg.get("warmup_iters") is not None:
        warm_full = float(scfg["warmup_iters"])
    else:  # as the loop rounds it (pretrain/optim.py lr_at)
        warm_full = float(int(round(float(scfg.get("warmup_epochs") or 0) * full_steps)))
    if warm_full:
        scfg["warmup_iters"] = _share(warm_full, total_full, total)
    if mcfg.get("freeze_prototypes_iters"):
        mcfg["freeze_prototypes_iters"] = _share(mcfg["freeze_prototypes_iters"], total_full, total)
    record.update({"iterations": total, "full_iterations": total_full,
                   "warmup_iters": scfg.get("warmup_iters") if warm_full else 0,
                   "full_warmup_iters": int(warm_full)})


def describe(record: dict[str, Any]) -> str:
    """One log line: what the quick run is, against the full run."""
    knn = (f"kNN monitor once on {record['knn_max_samples']} images" if record.get("knn_max_samples")
           else "kNN monitor off")
    return (f"quick run (--quick): {record['epochs']} of {record['full_epochs']} epochs, "
            f"{record.get('iterations')} of {record.get('full_iterations')} iterations, "
            f"warm-up {record.get('warmup_iters')} of {record.get('full_warmup_iters')} iterations, "
            f"{knn}; not comparable with a full run")
