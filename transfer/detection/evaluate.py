"""`unmix evaluate WORK_DIR`: re-evaluate a trained detector from its work dir.

The work dir is what `unmix finetune` leaves: the resolved config `config.py`, mmengine
checkpoints (`epoch_N.pth` / `iter_N.pth`, `last_checkpoint` naming the newest) and `result.json`.
We rebuild mmengine's Runner from the saved config with `load_from` = the chosen checkpoint, run
the test loop (the val loop when the config has no test loop), and write the metrics into
`result.json` through `unmix.core.records`, keeping the rest of the record (checkpoint, protocol, env,
status) and noting what was evaluated under `record["evaluation"]`.

    unmix evaluate WORK_DIR [--checkpoint FILE] [--metric-options eval_mode=area ...] [--show-dir DIR]
    unmix evaluate CONFIG CKPT [--work-dir DIR] [--data-root DIR] ...   # trained elsewhere

The second form is mmdet's `tools/test.py CONFIG CKPT`: transfer/detection/foreign.py makes the
work dir (config.py from CONFIG: a file, mmdet::PATH or a protocol name), then the first form runs.
`--show-dir` draws the first few images with their detections (transfer/detection/show.py).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from unmix.core import records
from unmix.core.config import parse_options
from unmix.core.files import sha256_file
from unmix.core.errors import UnmixError
from transfer.detection import arguments, checkpoints, foreign

CONFIG_NAME = "config.py"


def find_checkpoint(work_dir: str | Path, checkpoint: str | Path | None = None) -> Path:
    """The checkpoint to evaluate, checked to load (one-line error otherwise): `checkpoint` if
    given (absolute, or relative to the cwd or the work dir), else the file `last_checkpoint`
    names, looked up in this work dir (mmengine stores an absolute path: in a copied or moved
    work dir it names the original), else the newest loadable epoch_N/iter_N.pth."""
    work_dir = Path(work_dir)
    if checkpoint is not None:
        for cand in (Path(checkpoint), work_dir / checkpoint):
            if cand.is_file():
                checkpoints.check(cand)
                return cand.resolve()
        raise UnmixError(f"{checkpoint}: no such checkpoint (looked in the current directory "
                         f"and in {work_dir})")
    skipped: list[str] = []
    named = checkpoints.last_named(work_dir)
    if named is not None:
        try:
            checkpoints.check(named)
            return named.resolve()
        except UnmixError as e:
            skipped.append(str(e))
    newest = checkpoints.newest_loadable(work_dir, skipped.append, resumable=False)
    skipped = list(dict.fromkeys(skipped))  # last_checkpoint's file is met twice
    if newest is not None:
        for msg in skipped:
            print(f"unmix evaluate: {msg}", file=sys.stderr)
        return newest.resolve()
    if skipped:
        raise UnmixError(skipped[0] + (f" (and {len(skipped) - 1} more unloadable checkpoints)"
                                       if len(skipped) > 1 else ""))
    raise UnmixError(f"{work_dir}: no checkpoint to evaluate (expected last_checkpoint, "
                     "epoch_N.pth or iter_N.pth from `unmix finetune`; or pass --checkpoint)")


def _evaluators(cfg) -> list[dict]:
    out = []
    for key in ("val_evaluator", "test_evaluator"):
        ev = cfg.get(key)
        if ev is None:
            continue
        out.extend(ev if isinstance(ev, (list, tuple)) else [ev])
    return out


def use_show_hook(cfg, show: dict[str, Any], work_dir: Path) -> None:
    """--show-dir: our drawing hook in place of mmdet's (which draws every image), and mmdet's
    default_runtime visualizer where the config has none."""
    cfg.default_hooks = dict(cfg.get("default_hooks") or {})
    cfg.default_hooks["visualization"] = dict(type="UnmixShowHook", **show)
    if not cfg.get("visualizer"):
        cfg.visualizer = dict(type="DetLocalVisualizer", vis_backends=[dict(type="LocalVisBackend")])
    # a process-wide named instance: a second run in one process would draw with the first's
    cfg.visualizer.name = f"unmix-eval-vis-{work_dir}-{time.time_ns()}"


def build_runner(work_dir: Path, ckpt: Path, metric_options: dict[str, Any] | None = None,
                 show: dict[str, Any] | None = None):
    from mmengine.config import Config
    from mmengine.runner import Runner

    cfg_path = work_dir / CONFIG_NAME
    if not cfg_path.is_file():
        raise UnmixError(f"{work_dir}: no {CONFIG_NAME} (expected the resolved config that "
                         "`unmix finetune` saves in its work dir)")
    try:
        cfg = Config.fromfile(str(cfg_path))
    except Exception as e:  # a syntax error or a missing base: one line, naming the file
        raise UnmixError(f"{cfg_path}: cannot load config ({type(e).__name__}: {e})") from None
    cfg.work_dir = str(work_dir)
    cfg.load_from = str(ckpt)
    cfg.resume = False
    cfg.launcher = "none"
    if metric_options:
        evs = _evaluators(cfg)
        if not evs:
            raise UnmixError(f"{cfg_path}: no val_evaluator/test_evaluator to apply --metric-options to")
        for ev in evs:  # the same dicts may be shared between val and test: setting twice is fine
            ev.update(metric_options)
    if show:
        use_show_hook(cfg, show, work_dir)
    # The loops and evaluators the saved config names, nothing to train.
    for key in ("train_dataloader", "train_cfg", "optim_wrapper", "param_scheduler"):
        cfg.pop(key, None)
    _check_data(cfg, work_dir)
    return Runner.from_cfg(cfg), cfg


def _check_data(cfg, work_dir: Path) -> None:
    """Every annotation of the scored split parsed before the model runs (datacheck.py)."""
    from transfer.detection import datacheck, protocols
    from transfer.detection.datasets import standard_classes

    protocols.use_unmix_datasets(cfg)
    dc = datacheck.check_for_evaluation(cfg, work_dir, standard_classes)
    if dc is not None:
        print(datacheck.table(dc), end="", file=sys.stderr)


def evaluate_work_dir(work_dir: str | Path, checkpoint: str | Path | None = None,
                      metric_options: dict[str, Any] | None = None,
                      write_record: bool = True, show: dict[str, Any] | None = None,
                      new_record: dict[str, Any] | None = None) -> dict[str, float]:
    """Evaluate a work dir's checkpoint; update WORK_DIR/result.json; return the record metrics.

    `show`: {out_dir, max_images, score_thr} to draw detections; `new_record`: the record to
    finish where the work dir has none yet (transfer/detection/foreign.py)."""
    from transfer.detection import protocols

    protocols.register_modules()
    from transfer.detection.metrics import to_record_metrics

    work_dir = Path(work_dir).resolve()
    if not work_dir.is_dir():
        raise UnmixError(f"{work_dir}: no such work dir")
    ckpt = find_checkpoint(work_dir, checkpoint)
    t0 = time.time()
    if show:
        show = {**show, "out_dir": str(Path(show["out_dir"]).resolve())}
    runner, cfg = build_runner(work_dir, ckpt, metric_options, show)
    split = "test" if cfg.get("test_dataloader") and cfg.get("test_cfg") else "val"
    if split == "val" and not (cfg.get("val_dataloader") and cfg.get("val_cfg")):
        raise UnmixError(f"{work_dir / CONFIG_NAME}: neither a test nor a val loop to evaluate with")
    runner.logger.info(f"unmix evaluate: {split} loop with {ckpt}")
    raw = runner.test() if split == "test" else runner.val()
    metrics, details = to_record_metrics(raw)
    if not metrics:
        raise UnmixError(f"{work_dir / CONFIG_NAME}: the evaluators gave no known metrics "
                         f"(got {sorted(raw)})")
    if write_record:
        _update_record(work_dir, ckpt, split, metrics, details, metric_options,
                       round(time.time() - t0, 3), new_record, show)
    return metrics


def _update_record(work_dir: Path, ckpt: Path, split: str, metrics: dict[str, float],
                   details: dict[str, Any], metric_options: dict[str, Any] | None,
                   wall_time_s: float, new_record: dict[str, Any] | None = None,
                   show: dict[str, Any] | None = None) -> Path:
    path = work_dir / records.RESULT_NAME
    evaluation = {"checkpoint": str(ckpt), "checkpoint_sha256": sha256_file(ckpt),
                  "loop": split, "metric_options": metric_options or {},
                  "evaluated": records.now(), "wall_time_s": wall_time_s}
    if show:
        evaluation["show_dir"] = show["out_dir"]
    if path.exists():
        record = records.load(path)
        previous = record.get("metrics") or {}
        if previous and previous != metrics:
            evaluation["previous_metrics"] = previous
        if record.get("evaluation") or previous:
            # Nothing is lost by re-evaluating: each replaced result stays in the record.
            record.setdefault("evaluation_history", []).append(
                {"metrics": previous, "evaluation": record.get("evaluation")})
        record["metrics"] = {k: float(v) for k, v in metrics.items()}
        record["details"] = {**(record.get("details") or {}), **details}
        if record["status"] != "finished":
            evaluation["note"] = (f"the training run's status is {record['status']!r}; "
                                  "these metrics are of the checkpoint named here")
    elif new_record is not None:  # a checkpoint trained elsewhere, its config resolved by us
        record = new_record
        record["details"] = details
        records.finish(record, metrics, wall_time_s=wall_time_s)
    else:
        # No record (e.g. a work dir trained outside unmix): a minimal finished one.
        record = records.new_record(
            "detection",
            {"label": ckpt.stem, "path": str(ckpt), "sha256": evaluation["checkpoint_sha256"],
             "format": "mmengine", "arch": None, "stem": None, "pretrain": None},
            {"name": "unknown", "task": "detection", "config": str(work_dir / CONFIG_NAME)})
        record["details"] = details
        records.finish(record, metrics, wall_time_s=wall_time_s)
    record["evaluation"] = evaluation
    return records.write(record, path)


add_arguments = arguments.evaluate  # the options, in a module without torch (fast --help)


def run(args: argparse.Namespace) -> int:
    show = (dict(out_dir=args.show_dir, max_images=args.show_images, score_thr=args.score_thr)
            if args.show_dir else None)
    work_dir, checkpoint, new_record = args.target, args.checkpoint, None
    if args.ckpt is not None:  # CONFIG CKPT: a checkpoint trained elsewhere
        work_dir, new_record = foreign.prepare(
            args.target, args.ckpt, args.work_dir, args.data_root,
            parse_options(args.cfg_options), args.label, args.force)
        checkpoint = args.ckpt
    metrics = evaluate_work_dir(work_dir, checkpoint,
                                parse_options(args.metric_options, "--metric-options"),
                                write_record=not args.no_record, show=show, new_record=new_record)
    where = "" if args.no_record else f"{Path(work_dir) / records.RESULT_NAME}: "
    print(where + ", ".join(f"{k}={v:.2f}" for k, v in metrics.items()), file=sys.stderr)
    if show:
        print(f"drawn detections: {Path(args.show_dir).resolve()}", file=sys.stderr)
    return 0
