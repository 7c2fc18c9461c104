"""`unmix finetune`: fine-tune an mmdet detector from any ResNet checkpoint under a named protocol.

    unmix finetune --checkpoint CKPT --protocol NAME [--bn MODE] [--seed N] [--work-dir DIR]
                   [--data-root DIR] [--cfg-options k=v ...] [--resume] [--force] [--launcher L]

CKPT is anything `unmix convert` reads (converted and verified on the fly into WORK_DIR/backbone.pth)
or `none` (random-init baseline). The run is mmdet's own Runner on the protocol's config, with the
BN mode, backbone and linearly scaled lr applied (transfer/detection/protocols.py); after weights are
initialised a hook asserts that every converted tensor reached the model (mmengine loads with
strict=False, so partial loading is otherwise silent). Every run writes WORK_DIR/result.json.

Nothing is written before the inputs (checkpoint, protocol, data root, the checkpoint to resume)
are checked, and a finished record is replaced only with `--force`. Checkpoints are saved
atomically and carry the RNG states, so `--resume` (from the newest loadable checkpoint) continues
the same sample (transfer/detection/checkpoints.py).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from unmix.core import files, records
from unmix.core.config import parse_options
from unmix.core.env import env_info
from unmix.core.files import sha256_file
from unmix.core.errors import Refused, UnmixError
from transfer.convert.conversion import save_conversion
from transfer.convert.mmdet_cfg import mmdet_backbone_cfg
from transfer.convert.verify import convert_and_verify
from transfer.detection import arguments, checkpoints, options, protocols
from transfer.detection import quick as quick_mod
from transfer.detection import schedule

DEFAULT_WORK_ROOT = Path("work_dirs") / "finetune"
BACKBONE_NAME = "backbone.pth"


# ------------------------------------------------------------------------------- checkpoints

def prepare_checkpoint(checkpoint: str, work_dir: Path, label: str | None = None
                       ) -> tuple[dict[str, Any], Any, dict | None]:
    """Convert CKPT in memory (nothing is written: `save_backbone` does that once every input
    is checked). Returns (record's checkpoint section, the conversion or None, backbone cfg
    naming WORK_DIR/backbone.pth, or None)."""
    if checkpoint.lower() == "none":
        return ({"label": label or "random-init", "path": None, "sha256": None, "format": "none",
                 "arch": None, "stem": None, "pretrain": None}, None, None)
    src = Path(checkpoint)
    if not src.is_file():
        raise UnmixError(f"{src}: no such checkpoint file")
    dst = work_dir / BACKBONE_NAME
    conv = convert_and_verify(str(src))
    protocols.refuse_cifar_stem(conv.stem, str(src))
    backbone = mmdet_backbone_cfg(conv, checkpoint=str(dst))
    section = {"label": label or records.default_label(src), "path": str(src.resolve()),
               "sha256": conv.meta.get("source_sha256") or sha256_file(src),
               "format": conv.format, "arch": conv.arch, "stem": conv.stem,
               "pretrain": conv.meta.get("pretrain")}
    return section, conv, backbone


def save_backbone(conv, work_dir: Path) -> None:
    """WORK_DIR/backbone.pth, plain meta: mmengine loads it with weights_only=True."""
    if conv is not None:
        save_conversion(conv, str(work_dir / BACKBONE_NAME))


# ----------------------------------------------------------------------------------- hooks

def check_loaded(model, expected: dict, layout: str) -> None:
    """Raise unless the backbone (and the C4 res5 head) hold exactly the converted tensors."""
    import torch

    model = getattr(model, "module", model)
    parts = [("backbone", model.backbone.state_dict())]
    if layout == "c4":
        head = model.roi_head.shared_head.state_dict()
        # The extra norm after res5 is a new layer: not expected in the checkpoint.
        parts.append(("roi_head.shared_head", {k: v for k, v in head.items()
                                               if not k.startswith("norm.")}))
    skip = "num_batches_tracked"
    expected = {k: v for k, v in expected.items() if not k.endswith(skip)}
    consumed: set[str] = set()
    problems = []
    for name, sd in parts:
        sd = {k: v for k, v in sd.items() if not k.endswith(skip)}
        missing = sorted(set(sd) - set(expected))
        differ = sorted(k for k in set(sd) & set(expected)
                        if sd[k].shape != expected[k].shape
                        or not torch.equal(sd[k].detach().cpu().to(expected[k].dtype), expected[k].cpu()))
        consumed |= set(sd) & set(expected)
        if missing:
            problems.append(f"{name}: {len(missing)} tensors not in the checkpoint ({', '.join(missing[:4])}...)")
        if differ:
            problems.append(f"{name}: {len(differ)} tensors differ from the checkpoint ({', '.join(differ[:4])}...)")
    unused = sorted(set(expected) - consumed)
    if unused:
        problems.append(f"{len(unused)} checkpoint tensors reached no layer ({', '.join(unused[:4])}...)")
    if problems:
        raise UnmixError("the converted backbone did not load completely: " + "; ".join(problems))


def _hooks(expected: dict | None, layout: str, verify: bool):
    from mmengine.hooks import Hook

    class LoadCheckHook(Hook):
        priority = "VERY_HIGH"

        def __init__(self) -> None:
            self.checked = False
            self.val_metrics: list[tuple[int, dict]] = []

        def before_train(self, runner) -> None:
            if verify and expected is not None:
                check_loaded(runner.model, expected, layout)
                runner.logger.info("unmix: all %d converted backbone tensors loaded", len(expected))
                self.checked = True

        def after_val_epoch(self, runner, metrics=None) -> None:
            self.val_metrics.append((runner.iter, dict(metrics or {})))

    return LoadCheckHook()


# ------------------------------------------------------------------------------ distributed

def world_info(launcher: str) -> tuple[int, int]:
    """(rank, world size) from the launcher's environment, before any process group exists."""
    if launcher == "slurm":
        return int(os.environ.get("SLURM_PROCID", 0)), int(os.environ.get("SLURM_NTASKS", 1))
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def init_distributed(launcher: str, cuda: bool) -> None:
    """torchrun on CPU: gloo, set up by us (mmengine's pytorch launcher assumes CUDA devices)."""
    import torch.distributed as dist

    if launcher != "pytorch" or cuda or dist.is_initialized():
        return
    dist.init_process_group(backend="gloo")


# ------------------------------------------------------------------------- device, amp, W&B

def resolve_device(device: str | None) -> bool:
    """Whether the run uses CUDA: `device` None (CUDA when available), 'cpu', 'cuda' or 'cuda:N'
    (made the current device, which mmengine's Runner puts the model on)."""
    import torch

    available = torch.cuda.is_available()
    if device is None or device == "cpu":
        return available and device is None
    if not available:
        raise UnmixError(f"--device {device}: CUDA is not available on this machine")
    if ":" in device:
        index = int(device.split(":")[1])
        if index >= torch.cuda.device_count():
            raise UnmixError(f"--device {device}: this machine has {torch.cuda.device_count()} GPU(s)")
        torch.cuda.set_device(index)
    return True


@contextlib.contextmanager
def mmengine_device(cuda: bool) -> Iterator[None]:
    """mmengine picks the model's device once, at import (mmengine.device.utils.DEVICE, 'cuda'
    whenever CUDA exists) and reads no config for it: --device cpu on a GPU machine sets it to
    'cpu' for the length of the run."""
    from mmengine.device import utils as device_utils

    before = device_utils.DEVICE
    if not cuda and before == "cuda":
        device_utils.DEVICE = "cpu"
    try:
        yield
    finally:
        device_utils.DEVICE = before


def apply_amp(cfg, cuda: bool) -> str:
    """mmdet's tools/train.py --amp, item by item: AmpOptimWrapper with dynamic loss scaling
    (float16 autocast). mmengine's AmpOptimWrapper refuses to run without CUDA; so do we."""
    if not cuda:
        raise UnmixError("--amp: mixed precision is CUDA-only here (mmengine's AmpOptimWrapper); "
                         "this run is on the CPU")
    cfg.optim_wrapper.type = "AmpOptimWrapper"
    cfg.optim_wrapper.loss_scale = "dynamic"
    return "float16 autocast, dynamic loss scale (mmengine AmpOptimWrapper)"


def add_wandb(cfg, name: str) -> None:
    """mmengine's WandbVisBackend beside the config's backends: the same scalars go to W&B
    (WANDB_MODE=offline keeps them in ./wandb without an account)."""
    import importlib.util

    if importlib.util.find_spec("wandb") is None:
        raise UnmixError("--wandb: the wandb package is not installed (pip install wandb)")
    if not cfg.get("visualizer"):
        raise UnmixError("--wandb: the protocol's config has no visualizer to add W&B to")
    backends = list(cfg.visualizer.get("vis_backends") or [])
    backends.append(dict(type="WandbVisBackend", init_kwargs=dict(project="unmix", name=name)))
    cfg.visualizer.vis_backends = backends


# ------------------------------------------------------------------------------------- run

def build_config(protocol: str, bn: str | None, seed: int, work_dir: Path, data_root: str | None,
                 cfg_options: dict | None, backbone: dict | None, launcher: str, world_size: int,
                 cuda: bool):
    """The protocol config with this run applied. Returns (cfg, protocol section of the record)."""
    meta = protocols.get(protocol)
    cfg = protocols.load_config(protocol)
    # lists where the config has tuples become tuples; a key naming nothing is refused
    cfg_options = options.apply(cfg, cfg_options)
    if data_root:
        protocols.set_data_root(cfg, data_root)
    root = protocols.data_root_of(cfg)
    if root and not Path(root).is_absolute():
        # Resolved once, against the directory the run starts in: config.py and the record
        # name the data wherever the work dir is evaluated or resumed from later.
        protocols.set_data_root(cfg, str(Path(root).expanduser().absolute()))
    protocols.check_data(cfg, meta["dataset"])
    protocols.use_unmix_datasets(cfg)
    bn_requested = bn or meta["default_bn"]
    bn_used, bn_note = protocols.resolve_bn(bn_requested, world_size, cuda)
    protocols.apply_backbone(cfg, meta["layout"], backbone)
    protocols.apply_bn(cfg, meta["layout"], bn_used, head_norm=meta.get("head_norm", False))
    per_gpu = int(cfg.train_dataloader.batch_size)
    lr_info = protocols.scale_lr(cfg, per_gpu * world_size)
    metric_types = protocols.use_unmix_metrics(cfg)
    cfg.work_dir = str(work_dir)
    if cfg.get("visualizer"):
        # mmengine's visualizer is a process-wide named instance: a second run in one process
        # (a sweep, the demo, tests) would otherwise write its TensorBoard into the first's dir.
        cfg.visualizer.name = f"unmix-vis-{work_dir}-{time.time_ns()}"
    cfg.randomness = dict(seed=seed, deterministic=False)
    cfg.launcher = launcher
    if not cuda:
        cfg.env_cfg.dist_cfg = dict(backend="gloo")
        if world_size > 1:
            # DDP on CPU modules refuses device_ids.
            cfg.model_wrapper_cfg = dict(type="MMDistributedDataParallel", device_ids=None,
                                         broadcast_buffers=False)
    loop = cfg.train_cfg
    precise = [h.get("num_iters", 200) for h in cfg.get("custom_hooks", [])
               if h.get("type") == "PreciseBNHook"]
    section = {
        "name": protocol, "task": "detection", "variant": meta["variant"],
        "source": meta["source"],
        "detector": protocols.detector_name(meta["detector"], cfg.model.backbone),
        "dataset": meta["dataset"], "train_split": meta["train_split"],
        "test_split": meta["test_split"], "seed": seed,
        "bn_requested": bn_requested, "bn_used": bn_used, "bn_note": bn_note,
        "iterations": None,
        "epochs": loop.get("max_epochs"),
        "max_iters": loop.get("max_iters"),
        "batch_size_total": per_gpu * world_size, "batch_per_process": per_gpu,
        "world_size": world_size, **lr_info,
        "frozen_stages": cfg.model.backbone.get("frozen_stages"),
        "precise_bn_iters": precise[0] if precise else None,
        "image_scale": meta["image_scale"], "metrics_types": metric_types,
        "data_root": protocols.data_root_of(cfg), "config": str(protocols.config_path(protocol)),
        "cfg_options": {k: v for k, v in (cfg_options or {}).items()},
    }
    return cfg, section


def effective(cfg, section: dict[str, Any]) -> dict[str, Any]:
    """What will run, read from the resolved config (not the protocol's nominal settings): the
    report keeps runs whose effective settings differ apart."""
    import hashlib
    import json

    opts = section.get("cfg_options") or {}
    digest = hashlib.sha256(json.dumps(opts, sort_keys=True, default=repr).encode()).hexdigest()[:12]
    backbone = cfg.model.backbone
    return {"image_scale": quick_mod.describe_scale(cfg), "depth": backbone.get("depth"),
            "width": int(backbone.get("base_channels", 64)) // 64,  # R50w2: 2 (mmdet base_channels 128)
            "max_iters": cfg.train_cfg.get("max_iters"), "max_epochs": cfg.train_cfg.get("max_epochs"),
            "cfg_options_sha256": digest if opts else None, "quick": section.get("quick")}


def _final_metrics(runner, hook) -> dict:
    """The last evaluation if it ran after the last iteration, else one test pass."""
    if hook.val_metrics and hook.val_metrics[-1][0] == runner.iter:
        return hook.val_metrics[-1][1]
    return runner.test()


def default_work_dir(checkpoint: str, protocol: str, bn: str, seed: int, label: str | None) -> Path:
    """work_dirs/finetune/LABEL-SHA8_PROTOCOL_BN_sSEED: unique per checkpoint (two runs'
    latest.pth differ in their run directory and their bytes)."""
    if checkpoint.lower() == "none":
        return DEFAULT_WORK_ROOT / records.run_name(label or "random-init", None, protocol, bn, f"s{seed}")
    src = Path(checkpoint)
    sha = sha256_file(src) if src.is_file() else None
    return DEFAULT_WORK_ROOT / records.run_name(label or records.default_label(src), sha, protocol, bn,
                                                f"s{seed}")


def _running_record(checkpoint: str, protocol: str, bn: str, seed: int, label: str | None,
                    work_dir: Path, world_size: int, cuda: bool) -> dict[str, Any]:
    """The record as it stands before the checkpoint is converted: what was asked for."""
    from transfer.stack import mmcv_ops_kind

    env = env_info(device="cuda" if cuda else "cpu", world_size=world_size, mmcv_ops=mmcv_ops_kind())
    ck_section = {"label": label or ("random-init" if checkpoint.lower() == "none"
                                     else records.default_label(checkpoint)),
                  "path": checkpoint, "sha256": None,
                  "format": None, "arch": None, "stem": None, "pretrain": None}
    proto_section = {"name": protocol, "task": "detection",
                     "variant": protocols.get(protocol)["variant"], "seed": seed,
                     "bn_requested": bn, "bn_used": None}
    record = records.new_record("detection", ck_section, proto_section, env=env)
    record["work_dir"] = str(work_dir)
    return record


def _train_and_evaluate(cfg, section: dict[str, Any], expected: dict | None, layout: str,
                        resume_from: Path | None, verify_loading: bool) -> tuple[dict, dict, Any, Any]:
    """mmengine's Runner on the resolved config, with the load check and resume-state hooks;
    (metrics, details, runner, hook) of the final evaluation."""
    from mmengine.runner import Runner

    from transfer.detection.metrics import to_record_metrics
    from transfer.detection.progress import ProgressHook

    cfg.resume = resume_from is not None
    cfg.load_from = str(resume_from) if resume_from is not None else None
    # Only in the running config, not in config.py: mmdet's own tools can still use that file.
    checkpoints.use_atomic_saves(cfg)
    runner = Runner.from_cfg(cfg)
    runner.logger.info("unmix: lr %.6g = %.6g x total batch %d / %d (linear scaling)",
                       section["lr"], section["lr_base"], section["batch_size_total"],
                       section["lr_base_batch"])
    if section["bn_note"]:
        runner.logger.warning("unmix: %s", section["bn_note"])
    hook = _hooks(expected, layout, verify=verify_loading and resume_from is None)
    runner.register_hook(hook)
    runner.register_hook(checkpoints.resume_state_hook())
    # mmdet's configs log every 50 iterations; a line at least every 10 s, with an ETA, instead.
    runner.register_hook(ProgressHook())
    runner.train()
    metrics, details = to_record_metrics(_final_metrics(runner, hook))
    return metrics, details, runner, hook


def _resume_from(work_dir: Path, resume: bool) -> Path | None:
    """The newest loadable checkpoint to resume from (None without --resume)."""
    if not resume:
        return None
    found = checkpoints.newest_loadable(work_dir, lambda m: protocols.warn(f"not resuming from {m}"))
    if found is None:
        raise UnmixError(f"{work_dir}: nothing to resume (no loadable epoch_N.pth or iter_N.pth); "
                         "run without --resume to start over")
    return found


def data_check(cfg, dataset: str, classes: str, work_dir: Path):
    """The data check (transfer/detection/datacheck.py) on the resolved config, applied to it:
    (the check, the COCO splits whose normalised copy `_start_writing` writes). Printed here."""
    from transfer.detection import datacheck
    from transfer.detection.datasets import standard_classes

    dc = datacheck.check(cfg, dataset, standard_classes(dataset), classes)
    copied = datacheck.apply(cfg, dc, work_dir)
    print(datacheck.table(dc), end="", file=sys.stderr)
    return dc, copied


def _start_writing(work_dir: Path, conv, cfg, record: dict[str, Any], rank: int,
                   data: tuple | None = None, fresh: bool = True) -> None:
    """The first writes, once every input is checked: orphans of killed saves removed, a fresh
    run's predecessors' checkpoints set aside, then backbone.pth, config.py and the 'running'
    record (process 0; the others wait for it where a process group exists already, else each
    writes backbone.pth itself, atomically)."""
    import torch.distributed as dist

    grouped = dist.is_available() and dist.is_initialized()
    if rank == 0:
        files.make_dir(work_dir)
        files.remove_orphans(work_dir)
        if fresh:
            dest, n = checkpoints.set_aside(work_dir)
            if dest is not None:
                protocols.warn(f"{work_dir}: starting over, so the earlier run's {n} checkpoint(s) "
                               f"moved to {dest} (a later --resume picks only this run's)")
        save_backbone(conv, work_dir)
        if data is not None:
            from transfer.detection import datacheck

            datacheck.write(data[0], data[1], work_dir)
        cfg.dump(str(work_dir / "config.py"))
        records.write(record, work_dir)
    elif not grouped:
        save_backbone(conv, work_dir)
    if grouped:
        dist.barrier()  # backbone.pth exists before any process builds its model


def _write_failure(record: dict[str, Any], err: BaseException, work_dir: Path, rank: int) -> None:
    """The record of a run that stopped: failed, or interrupted (Ctrl-C, SIGTERM); never over a
    finished one (inputs are checked before `--force` replaces anything)."""
    if rank == 0:
        records.write_stopped(record, err, work_dir)
    else:
        records.stop(record, err)


def finetune(checkpoint: str, protocol: str, bn: str | None = None, seed: int = 0,
             work_dir: str | os.PathLike | None = None, data_root: str | None = None,
             cfg_options: dict | None = None, resume: bool = False, launcher: str = "none",
             label: str | None = None, verify_loading: bool = True, force: bool = False,
             device: str | None = None, amp: bool = False, wandb: bool = False,
             classes: str = "auto", quick: bool = False, scale: tuple[int, int] | None = None,
             fraction: float | None = None) -> dict[str, Any]:
    """Fine-tune and evaluate; returns the result record (also written to WORK_DIR/result.json).

    `classes`: auto, protocol, data or a file of names (transfer/detection/datacheck.py);
    `quick`, `scale`, `fraction`: a shrunk run with the schedule's shape (transfer/detection/quick.py).
    A finished record in WORK_DIR is replaced only with `force`. A failure writes a 'failed'
    record (an interruption an 'interrupted' one) and re-raises.
    """
    t0 = time.time()
    meta = protocols.get(protocol)
    rank, world_size = world_info(launcher)
    if world_size > 1 and launcher == "none":
        launcher = "pytorch"  # started by torchrun without --launcher
    bn_requested = bn or meta["default_bn"]
    work_dir = Path(work_dir or default_work_dir(checkpoint, protocol, bn_requested, seed, label)).resolve()
    records.refuse_finished(work_dir, force)

    protocols.register_modules()
    cuda = resolve_device(device)
    init_distributed(launcher, cuda)
    record = _running_record(checkpoint, protocol, bn_requested, seed, label, work_dir, world_size, cuda)
    try:
        # Every input is checked before anything is written into the work dir.
        ck_section, conv, backbone = prepare_checkpoint(checkpoint, work_dir, label)
        record["checkpoint"] = ck_section
        cfg, section = build_config(protocol, bn, seed, work_dir, data_root, cfg_options,
                                    backbone, launcher, world_size, cuda)
        data = None
        if protocols.data_root_of(cfg):
            data = data_check(cfg, meta["dataset"], classes, work_dir)
            # what was asked (auto, protocol, data or the file) beside what it resolved to:
            # a sweep compares the request, as `auto` may resolve to either set
            section["classes"] = {**data[0].classes.record(), "requested": classes}
            record["data"] = data[0].record()
        section["quick"] = quick_mod.apply(
            cfg, scale, fraction, quick,
            [(s.configs, s.images) for s in (data[0].splits if data else []) if s.role == "train"])
        schedule.check(cfg, f"{protocol} as configured (--cfg-options, --quick/--fraction)")
        section["effective"] = effective(cfg, section)
        section["amp"] = apply_amp(cfg, cuda) if amp else None
        if wandb:
            add_wandb(cfg, work_dir.name)
        record["protocol"] = section
        resume_from = _resume_from(work_dir, resume)
        if section["bn_note"]:
            protocols.warn(section["bn_note"])
        _start_writing(work_dir, conv, cfg, record, rank, data, fresh=resume_from is None)
        expected = dict(conv.state_dict) if conv is not None else None
        with mmengine_device(cuda):
            metrics, details, runner, hook = _train_and_evaluate(cfg, section, expected, meta["layout"],
                                                                 resume_from, verify_loading)
        section["iterations"] = runner.iter
        if section.get("epochs") is not None:
            section["epochs"] = runner.epoch
        record["details"] = details
        record["backbone_load_checked"] = hook.checked
        if resume_from is not None:
            record["resumed_from"] = str(resume_from)
        records.finish(record, metrics, wall_time_s=round(time.time() - t0, 3))
    except Refused:
        raise  # refused before the run began: nothing written
    except BaseException as err:
        record["wall_time_s"] = round(time.time() - t0, 3)
        _write_failure(record, err, work_dir, rank)
        raise
    if rank == 0:
        records.write(record, work_dir)
    return record


# ------------------------------------------------------------------------------------- CLI

add_arguments = arguments.finetune  # the options, in a module without torch (fast --help)


def run(args: argparse.Namespace) -> int:
    protocols.register_modules()
    rec = finetune(args.checkpoint, args.protocol, bn=args.bn, seed=args.seed,
                   work_dir=args.work_dir, data_root=args.data_root,
                   cfg_options=parse_options(args.cfg_options), resume=args.resume,
                   launcher=args.launcher, label=args.label, force=args.force,
                   device=args.device, amp=args.amp, wandb=args.wandb, classes=args.classes,
                   quick=args.quick, scale=tuple(args.scale) if args.scale else None,
                   fraction=args.fraction)
    print(f"{rec['work_dir']}/result.json: " + ", ".join(
        f"{k}={v:.2f}" for k, v in rec["metrics"].items()), file=sys.stderr)
    return 0
