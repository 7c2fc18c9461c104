"""`unmix pretrain CONFIG`: pre-train an encoder with MoCo v1/v2, SimCLR, BYOL or SwAV, with or
without Un-Mix (final form, in the method) or the first form (dataset-level mixtures).

A plain PyTorch loop: SGD/LARS, warm-up + cosine/step schedule per iteration, bf16/fp16 autocast
(fp16 with a GradScaler), `torchrun` multi-process (DDP, DistributedSampler; gloo on CPU, nccl on
CUDA), seeded so that a run and its resumption follow the same trajectory, atomic checkpoints
(`pretrain.checkpoint`), a tqdm bar, `train.log`, `metrics.jsonl`, TensorBoard scalars and a kNN
monitor. Configs: mmengine `Config` files under configs/pretrain/ (see docs/pretrain.md).
"""
from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import logging
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from pretrain import arguments
from pretrain import checkpoint as ckpt
from pretrain import data as pdata
from pretrain import quick as pquick
from pretrain import schema
from pretrain.features import HeadFeatures, extract_features
from pretrain.knn import knn_predict
from pretrain.optim import build_optimizer, lr_at
from unmix.core.config import load_config as _load_config
from unmix.core import files
from unmix.core.config import parse_options, to_plain
from unmix.core.errors import UnmixError
from unmix.core.eta import format_duration, remaining_s
from unmix.core.logs import open_log

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


add_arguments = arguments.pretrain  # the options, in a module without torch (fast --help)


# ----------------------------------------------------------------------------- config
def load_config(path: str, options: dict | None = None):
    """The pretraining config, checked for the sections the loop reads."""
    cfg = _load_config(path, options)
    for section in ("model", "data", "optimizer", "schedule", "train"):
        if section not in cfg:
            raise UnmixError(f"{path}: config has no `{section}` section (see configs/pretrain/_base_/)")
    return cfg


# ----------------------------------------------------------------------------- distributed
def setup_distributed(device_arg: str | None) -> tuple[torch.device, int, int, int]:
    """(device, rank, local_rank, world); init_process_group from torchrun's env when WORLD_SIZE>1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    want = device_arg or ("cuda" if torch.cuda.is_available() else "cpu")
    if want.startswith("cuda") and not torch.cuda.is_available():
        raise UnmixError(f"--device {want}: CUDA is not available on this machine")
    if world > 1:
        if want.startswith("cuda"):
            torch.cuda.set_device(local)
            device = torch.device("cuda", local)
        else:
            device = torch.device("cpu")
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        return device, dist.get_rank(), local, dist.get_world_size()
    return torch.device(want), 0, 0, 1


# ----------------------------------------------------------------------------- data
def build_train_data(dcfg: dict, seed: int):
    """The training dataset (views per item) and, for `device_augment`, the on-device augmenter."""
    from pretrain import augment, first_form

    name = dcfg["name"]
    views = dcfg.get("views", "moco_v2")
    vkw = dcfg.get("view_kwargs", {}) or {}
    size = dcfg.get("size")
    ffc = dict(dcfg.get("first_form", {}) or {})
    ff_on = ffc.pop("enabled", False)
    if dcfg.get("device_augment", False):
        if ff_on:
            raise UnmixError("data.device_augment: not combinable with data.first_form (mixes PIL-side views)")
        from torchvision import transforms as T

        ds = pdata.build_dataset(name, dcfg["root"], dcfg.get("split", "train"), transform=T.PILToTensor())
        mean, std = pdata.MEAN_STD[name]
        aug = augment.DeviceAugment(size or pdata.IMAGE_SIZE[name], mean, std,
                                    **(dcfg.get("device_augment_kwargs") or {}))
        return ds, aug, int(dcfg.get("num_views", 2))
    mv = augment.build_views(views, name, size=size, normalize=not ff_on, **vkw)
    ds = pdata.build_dataset(name, dcfg["root"], dcfg.get("split", "train"), transform=mv)
    if ff_on:
        mean, std = pdata.MEAN_STD[name]
        from torchvision import transforms as T

        if "erase_area" in ffc:
            ffc["erase_area"] = tuple(ffc["erase_area"])
        params = first_form.FirstFormParams(**ffc)
        ds = first_form.FirstFormDataset(ds, params, post=T.Normalize(mean, std), seed=seed, fill=mean)
    return ds, None, len(mv)


def _worker_init(worker_id: int) -> None:
    # DataLoader seeds torch and random per worker from its generator; numpy too, for user transforms.
    np.random.seed(torch.initial_seed() % 2**32)


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    return (seed * 7919 + epoch * 104_729 + rank) % 2**31


def make_loader(ds, batch_size: int, workers: int, seed: int, epoch: int, rank: int, world: int,
                pin: bool) -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(epoch_seed(seed, epoch))
    sampler = None
    if world > 1:
        sampler = torch.utils.data.DistributedSampler(ds, num_replicas=world, rank=rank, shuffle=True,
                                                      seed=seed, drop_last=True)
        sampler.set_epoch(epoch)
    return torch.utils.data.DataLoader(
        ds, batch_size=batch_size, shuffle=sampler is None, sampler=sampler, num_workers=workers,
        pin_memory=pin, drop_last=True, generator=g, worker_init_fn=_worker_init if workers else None,
        persistent_workers=False)


# ----------------------------------------------------------------------------- kNN monitor
def monitor_encoder(model: nn.Module, features: str) -> nn.Module:
    """What the kNN monitor runs: the backbone, or backbone + the query projector, normalised
    (`features='head'`, the official CIFAR MoCo monitor: `test(model.encoder_q, ...)`)."""
    return model.backbone if features == "backbone" else HeadFeatures(model.backbone, model.projector)


def knn_monitor(model: nn.Module, kcfg: dict, dcfg: dict, device, amp_dtype, batch_size: int) -> float:
    """Weighted kNN top-1 (%) of `kcfg['features']` (backbone: pooled features; head: the
    normalised projector output), bank = train split, queries = test."""
    name, tf = dcfg["name"], pdata.eval_transform(dcfg["name"], dcfg.get("size"))
    bank_ds = pdata.build_dataset(name, dcfg["root"], kcfg.get("bank_split", "train"), transform=tf)
    query_ds = pdata.build_dataset(name, dcfg["root"], kcfg.get("split", "test"), transform=tf)
    limit = kcfg.get("max_samples")
    if limit:
        bank_ds = torch.utils.data.Subset(bank_ds, range(min(limit, len(bank_ds))))
        query_ds = torch.utils.data.Subset(query_ds, range(min(limit, len(query_ds))))
    mk = lambda d: torch.utils.data.DataLoader(d, batch_size=batch_size, num_workers=dcfg.get("num_workers", 0))  # noqa: E731
    encoder = monitor_encoder(model, kcfg.get("features", "backbone"))
    modes = [(m, m.training) for m in encoder.modules()]
    try:
        bank, bank_y = extract_features(encoder, mk(bank_ds), device, amp_dtype, desc=None)
        q, q_y = extract_features(encoder, mk(query_ds), device, amp_dtype, desc=None)
    finally:
        for m, training in modes:  # back to the training loop's modes, module by module
            m.training = training
    keep = bank_y >= 0  # STL-10 unlabeled images have label -1
    n_cls = pdata.num_classes(name, getattr(bank_ds, "dataset", bank_ds))
    scores = knn_predict(q, bank[keep], bank_y[keep], n_cls, k=kcfg.get("k", 200), t=kcfg.get("t", 0.1))
    return float((scores.argmax(1) == q_y).float().mean() * 100)


# ----------------------------------------------------------------------------- logging
class _NullWriter:
    def add_scalar(self, *a, **k) -> None:
        pass

    def close(self) -> None:
        pass


def _tb_writer(work_dir: Path, enabled: bool):
    if not enabled:
        return _NullWriter()
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return _NullWriter()
    return SummaryWriter(str(work_dir / "tb"))


# ----------------------------------------------------------------------------- the loop
def _model_meta(cfg, mcfg: dict, dcfg: dict, epoch: int, epochs: int, quick: dict | None = None) -> dict:
    ff = dict(dcfg.get("first_form", {}) or {})
    meta = {"method": mcfg.get("type"), "arch": mcfg.get("arch"), "stem": mcfg.get("stem", "imagenet"),
            "version": mcfg.get("version"),
            # read by `unmix convert` (transfer/convert/stem.py): padding is not in the weights
            "stem_padding": int(mcfg.get("stem_padding", 1)),
            # a plain bool: what reports pair runs by; the full settings are under `mixing`
            "unmix": bool((mcfg.get("unmix") or {}).get("enabled") or ff.get("enabled")),
            "mixing": {"final_form": dict(mcfg.get("unmix") or {"enabled": False}),
                       "first_form": ff if ff.get("enabled") else {"enabled": False}},
            "dataset": dcfg.get("name"), "epoch": epoch, "epochs": epochs, "config": cfg.pretty_text,
            # --quick (pretrain/quick.py): a short run, never to be taken for the recipe's
            "quick": quick}
    meta["pretrain"] = schema.summary(meta)
    return meta


def _hook(model: nn.Module, name: str, progress: float) -> None:
    fn = getattr(model, name, None)
    if callable(fn):
        fn(progress)


def run(args: argparse.Namespace) -> int:
    options = parse_options(getattr(args, "cfg_options", None))
    cfg = load_config(args.config, options)
    section = {k: to_plain(cfg[k].to_dict()) for k in ("model", "data", "optimizer", "schedule", "train")}
    kcfg = to_plain(cfg.knn.to_dict()) if "knn" in cfg else {"interval": 0}
    if getattr(args, "features", None) is not None:
        kcfg["features"] = arguments.check_features(args.features, args.config)
    kcfg["features"] = arguments.check_features(kcfg.get("features", "backbone"), args.config, "knn.features")
    quick = None
    if getattr(args, "quick", False):
        quick = pquick.shrink(section["schedule"], section["train"], section["model"], kcfg)
    suffix = pquick.WORK_DIR_SUFFIX if quick else ""  # a quick run's default dir is its own
    work_dir = Path(args.work_dir or Path("work_dirs") / "pretrain" / (Path(args.config).stem + suffix))
    if section["data"].get("root"):
        # Resolved once: config.py and the checkpoint's meta name the data wherever resumed from.
        root = str(Path(section["data"]["root"]).expanduser().absolute())
        section["data"]["root"] = root
        cfg.data.root = root

    device, rank, local, world = setup_distributed(getattr(args, "device", None))
    try:
        return train(Run(cfg, mcfg=section["model"], dcfg=section["data"], ocfg=section["optimizer"],
                         scfg=section["schedule"], tcfg=section["train"], kcfg=kcfg,
                         work_dir=work_dir, device=device, rank=rank, world=world, quick=quick),
                     args.resume,
                     force=getattr(args, "force", False))
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


@dataclass
class Run:
    """One pretraining run: its config sections, where it runs, and what it builds on the way."""
    cfg: Any
    mcfg: dict
    dcfg: dict
    ocfg: dict
    scfg: dict
    tcfg: dict
    kcfg: dict
    work_dir: Path
    device: torch.device
    rank: int
    world: int
    quick: dict | None = None  # the --quick record (pretrain/quick.py), None for the recipe's run
    log: logging.Logger = field(init=False)
    model: nn.Module = field(init=False)
    ddp: nn.Module = field(init=False)
    optimizer: torch.optim.Optimizer = field(init=False)
    scaler: Any = field(init=False)
    base_lr: float = field(init=False)
    ds: Any = field(init=False)
    device_aug: Any = field(init=False)
    n_views: int = field(init=False)
    steps_per_epoch: int = field(init=False)
    writer: Any = field(init=False)
    # where this process started (time, epoch): the overall ETA counts only what it ran
    t_start: float = field(init=False, default=0.0)
    start_epoch: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.seed = int(self.tcfg.get("seed", 0))
        self.epochs = int(self.scfg.get("epochs", self.tcfg.get("epochs", 1)))
        self.batch = int(self.tcfg.get("batch_size", 256))
        self.amp = self.tcfg.get("amp", "none")

    @property
    def per_proc(self) -> int:
        return self.batch // self.world

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return AMP_DTYPES.get(self.amp)

    @property
    def metrics_path(self) -> Path:
        return self.work_dir / "metrics.jsonl"


def check_settings(run: Run) -> None:
    """One-line errors for settings the loop cannot run with, before anything is written."""
    from pretrain.methods import METHODS

    if run.batch % run.world:
        raise UnmixError(f"train.batch_size={run.batch}: not divisible by the {run.world} processes")
    if run.amp not in ("none", *AMP_DTYPES):
        raise UnmixError(f"train.amp={run.amp!r}: choose none, bf16 or fp16")
    if "root" not in run.dcfg or run.dcfg["root"] is None:
        raise UnmixError("data.root: not set (e.g. --cfg-options data.root=/data/cifar10)")
    if run.mcfg.get("type") not in METHODS:
        raise UnmixError(f"model.type={run.mcfg.get('type')!r}: choose from {', '.join(sorted(METHODS))}")


def build_model(run: Run) -> None:
    """The method (same init on every process: seeded; DDP keeps them in step), its optimizer
    with the linearly scaled lr, and the fp16 grad scaler."""
    from pretrain.methods import METHODS, build_method

    torch.manual_seed(run.seed)
    random.seed(run.seed)
    np.random.seed(run.seed)
    margs = dict(run.mcfg)
    accepted = inspect.signature(METHODS[margs["type"]].__init__).parameters
    if "epochs" in accepted and "epochs" not in margs:
        margs["epochs"] = run.epochs  # SwAV schedules its queue / prototype freezing in epochs
    for key, value in (("world_size", run.world), ("batch_size", run.per_proc)):
        if key in accepted and key not in margs:
            margs[key] = value  # SwAV sizes each process's queue from the run's layout
    try:
        model = build_method(margs).to(run.device)
    except ValueError as e:
        raise UnmixError(f"model: {e}") from None
    if hasattr(model, "steps_per_epoch") and getattr(run, "steps_per_epoch", None):
        model.steps_per_epoch = run.steps_per_epoch  # a --quick run's data is built first
    if run.world > 1 and run.device.type == "cuda" and run.tcfg.get("sync_bn", False):
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    run.model = model
    run.base_lr = float(run.ocfg.get("lr", 0.03))
    if run.ocfg.get("base_batch_size"):
        run.base_lr = run.base_lr * run.batch / float(run.ocfg["base_batch_size"])  # linear scaling
    run.optimizer = build_optimizer(model, run.ocfg, run.base_lr)
    run.scaler = torch.amp.GradScaler(run.device.type) if run.amp == "fp16" else None


def check_work_dir(run: Run, resume: bool, force: bool) -> None:
    """Before anything is written: a work dir holding a run is continued (--resume) or replaced
    (--force), never silently overwritten (its checkpoints and metrics.jsonl would be)."""
    latest = run.work_dir / ckpt.LATEST
    if resume or force or not latest.is_file():
        return
    done = ckpt.load(latest)
    epoch, epochs = int(done["epoch"]), int(done.get("meta", {}).get("epochs") or run.epochs)
    state = "a finished run" if epoch >= epochs else f"a run at epoch {epoch} of {epochs}"
    raise UnmixError(f"{run.work_dir}: holds {state} ({latest}); pass --resume to continue it, "
                     "--force to start over, or choose another --work-dir")


def trim_metrics(path: Path, start_epoch: int) -> int:
    """Keep the metrics.jsonl lines of the epochs before `start_epoch` (the ones a checkpoint
    covers); the lines of a cut epoch go, since it is run again and logs its steps anew. Written
    atomically; returns the lines kept."""
    if not path.exists():
        return 0
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if int(json.loads(line)["epoch"]) < start_epoch:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by the kill
    files.write_text(path, "".join(x + "\n" for x in kept))
    return len(kept)


def resume_state(run: Run) -> int:
    """Load WORK_DIR/latest.pth into the run (weights, optimizer, scaler, RNG); the epochs done."""
    path = run.work_dir / ckpt.LATEST
    state = ckpt.load(path)
    meta = state.get("meta", {})
    for key, want in (("method", run.mcfg.get("type")), ("arch", run.mcfg.get("arch")),
                      ("dataset", run.dcfg.get("name"))):
        if meta.get(key) != want:
            raise UnmixError(f"{path}: was trained with {key} {meta.get(key)!r}, "
                             f"the config says {want!r}; use another --work-dir")
    if bool(meta.get("quick")) != (run.quick is not None):
        was, now = ("a quick run", "a full one") if meta.get("quick") else ("a full run", "--quick")
        raise UnmixError(f"{path}: was {was}, this is {now} (another schedule); use another --work-dir")
    run.model.load_state_dict(state["state_dict"])
    run.optimizer.load_state_dict(state["optimizer"])
    if run.scaler is not None and state.get("scaler"):
        run.scaler.load_state_dict(state["scaler"])
    ckpt.set_rng_state(state["rng"])
    restore_process_state(run, int(state["epoch"]))
    run.log.info(f"resumed from {path} at epoch {int(state['epoch'])}")
    return int(state["epoch"])


def save_process_state(run: Run, epoch: int) -> None:
    """Every process writes its own per-process buffers (SwAV's queue); latest.pth has rank 0's."""
    names = getattr(run.model, "per_process_buffers", ())
    if names:
        ckpt.save_rank_state(run.work_dir, {n: getattr(run.model, n) for n in names}, run.rank,
                             run.world, epoch)


@torch.no_grad()
def restore_process_state(run: Run, epoch: int) -> None:
    """Each process reloads its own buffers; without a matching file (another process count, a
    stale epoch, an older run) they start empty, as the official code's queue without a file,
    never as rank 0's copy from latest.pth."""
    names = getattr(run.model, "per_process_buffers", ())
    if not names:
        return
    saved, msg = ckpt.load_rank_state(run.work_dir, run.rank, run.world, epoch)
    for n in names:
        buf = getattr(run.model, n)
        if saved is not None and n in saved and saved[n].shape == buf.shape:
            buf.copy_(saved[n])
        else:
            if saved is not None:
                msg = f"{ckpt.rank_state_path(run.work_dir, run.rank)}: {n} has shape " \
                      f"{tuple(saved[n].shape) if n in saved else None}, this run's is " \
                      f"{tuple(buf.shape)}; rank {run.rank} starts it empty"
            buf.zero_()
    run.log.info(msg)


def build_data(run: Run) -> None:
    """The training set, the on-device augmenter if any, and the iterations per epoch."""
    run.ds, device_aug, run.n_views = build_train_data(run.dcfg, run.seed)
    run.device_aug = device_aug.to(run.device) if device_aug is not None else None
    steps = len(run.ds) // run.batch
    cap = run.tcfg.get("max_iters_per_epoch")
    if cap:
        steps = min(steps, int(cap))
    if steps < 1:
        raise UnmixError(f"{run.dcfg['root']}: {len(run.ds)} images make no full batch of "
                         f"train.batch_size={run.batch}")
    run.steps_per_epoch = steps
    if getattr(run, "model", None) is not None and hasattr(run.model, "steps_per_epoch"):
        run.model.steps_per_epoch = steps  # SwAV's prototype freezing counts iterations


def train(run: Run, resume: bool, force: bool = False) -> int:
    """Check, build, (resume,) then train epoch by epoch; 0 when done."""
    check_settings(run)
    check_work_dir(run, resume, force)
    files.make_dir(run.work_dir)
    if run.rank == 0:
        files.remove_orphans(run.work_dir)  # temp files of a save that was killed
    run.log = open_log(run.work_dir / "train.log" if run.rank == 0 else None,
                       f"unmix.pretrain.{run.work_dir}", stderr=run.rank == 0)
    if run.quick is not None:
        # the data first: the preset sizes warm-up and SwAV's iteration settings from it
        build_data(run)
        quick_config(run)
    if run.rank == 0:
        run.cfg.dump(str(run.work_dir / "config.py"))
    build_model(run)
    start_epoch = resume_state(run) if resume else 0
    if start_epoch >= run.epochs:
        run.log.info(f"nothing to do: {start_epoch} of {run.epochs} epochs done")
        return 0
    run.ddp = run.model
    if run.world > 1:
        run.ddp = nn.parallel.DistributedDataParallel(
            run.model, device_ids=[run.device.index] if run.device.type == "cuda" else None,
            find_unused_parameters=bool(run.tcfg.get("find_unused_parameters", False)))
    if run.quick is None:
        build_data(run)
    run.writer = _tb_writer(run.work_dir, run.rank == 0 and run.tcfg.get("tensorboard", True))
    if run.rank == 0:
        trim_metrics(run.metrics_path, start_epoch)
    if run.device.type == "cuda":
        torch.backends.cudnn.benchmark = bool(run.tcfg.get("cudnn_benchmark", True))
    _log_settings(run)
    t_run = run.t_start = time.time()
    run.start_epoch = start_epoch
    for epoch in range(start_epoch, run.epochs):
        run_epoch(run, epoch)
    run.writer.close()
    run.log.info(f"done in {(time.time() - t_run) / 60:.1f} min; encoder checkpoint: "
                 f"{run.work_dir / ckpt.LATEST} (`unmix convert {run.work_dir / ckpt.LATEST}`)")
    return 0


def quick_config(run: Run) -> None:
    """The preset's iteration settings (warm-up, SwAV's frozen prototypes: shares of the short
    run, from the training set's size), then config.py (and the checkpoints' meta['config']) of
    the shortened sections it runs and the preset's record, not the recipe's schedule."""
    pquick.fit_iterations(run.quick, run.scfg, run.mcfg, len(run.ds), run.batch)
    for key, value in (("schedule", run.scfg), ("train", run.tcfg), ("model", run.mcfg), ("knn", run.kcfg)):
        run.cfg[key] = value
    run.cfg["quick"] = run.quick
    run.log.info(pquick.describe(run.quick))


def _log_settings(run: Run) -> None:
    m, d, o, s = run.mcfg, run.dcfg, run.ocfg, run.scfg
    run.log.info(
        f"pretrain {m['type']} {m.get('arch')} on {d['name']} ({len(run.ds)} images): "
        f"{run.epochs} epochs x {run.steps_per_epoch} iterations, batch {run.batch} "
        f"({run.world} x {run.per_proc}), lr {run.base_lr:g} ({o.get('type', 'sgd')}, "
        f"{s.get('policy', 'cosine')}), amp {run.amp}, device {run.device}, unmix {m.get('unmix')}, "
        f"first form {(d.get('first_form') or {}).get('enabled', False)}, kNN monitor features "
        f"{run.kcfg.get('features', 'backbone')}; work dir {run.work_dir}")


def run_epoch(run: Run, epoch: int) -> None:
    """One epoch: every iteration, the epoch's log line (+ kNN monitor), the checkpoint."""
    from tqdm import tqdm

    # Everything random in an epoch is a function of (seed, epoch, rank, step): a resumed run
    # continues the same trajectory as an uninterrupted one.
    es = epoch_seed(run.seed, epoch, run.rank)
    torch.manual_seed(es)
    random.seed(es)
    np.random.seed(es)
    if hasattr(run.ds, "set_epoch"):
        run.ds.set_epoch(epoch)
    loader = make_loader(run.ds, run.per_proc, int(run.dcfg.get("num_workers", 4)), run.seed, epoch,
                         run.rank, run.world, run.device.type == "cuda")
    run.model.train()
    bar = tqdm(total=run.steps_per_epoch, desc=f"epoch {epoch + 1}/{run.epochs}",
               disable=run.rank != 0, dynamic_ncols=True, leave=False, file=sys.stderr)
    sums: dict[str, float] = {}
    t0 = time.time()
    try:
        for i, (views, _) in enumerate(loader):
            if i >= run.steps_per_epoch:
                break
            scalars, lr = train_step(run, views, epoch, i)
            for k, v in scalars.items():
                sums[k] = sums.get(k, 0.0) + v
            if run.rank == 0:
                bar.set_postfix(loss=f"{scalars['loss']:.4f}", lr=f"{lr:.3g}", eta_all=eta_all(run, epoch, i + 1))
                bar.update(1)
    finally:
        bar.close()
    end_epoch(run, epoch, {k: v / run.steps_per_epoch for k, v in sums.items()}, time.time() - t0)


def eta_all(run: Run, epoch: int, steps_in_epoch: int) -> str:
    """The whole run's remaining time (all epochs left, not only this one's) from the mean step
    time since this process started."""
    done = (epoch - run.start_epoch) * run.steps_per_epoch + steps_in_epoch
    total = (run.epochs - run.start_epoch) * run.steps_per_epoch
    return format_duration(remaining_s(time.time() - run.t_start, done, total))


def train_step(run: Run, views, epoch: int, i: int) -> tuple[dict[str, float], float]:
    """One optimisation step; returns (the logged scalars, lr). A non-finite loss stops the run."""
    step = epoch * run.steps_per_epoch + i
    progress = step / (run.epochs * run.steps_per_epoch)
    s = run.scfg
    lr = lr_at(step, run.steps_per_epoch, run.epochs, run.base_lr, s.get("policy", "cosine"),
               s.get("warmup_epochs", 0), s.get("warmup_start", 0.0), s.get("min_lr", 0.0),
               s.get("milestones", ()), s.get("gamma", 0.1), s.get("warmup_iters"),
               bool(s.get("per_epoch", False)))
    for g in run.optimizer.param_groups:
        g["lr"] = lr
    gen = torch.Generator().manual_seed((run.seed * 1_000_003 + step * run.world + run.rank) % 2**62)
    if run.device_aug is not None:
        x = views.to(run.device, non_blocking=True)
        views = [run.device_aug(x, generator=gen) for _ in range(run.n_views)]
    else:
        views = [v.to(run.device, non_blocking=True) for v in views]
    _hook(run.model, "before_step", progress)
    autocast = torch.autocast(run.device.type, dtype=run.amp_dtype) if run.amp_dtype else contextlib.nullcontext()
    with autocast:
        out = run.ddp(views, generator=gen)
    loss = out["loss"].float()
    _stop_unless_finite(run, loss, epoch, i, step, lr)
    run.optimizer.zero_grad(set_to_none=True)
    if run.scaler is not None:
        run.scaler.scale(loss).backward()
        run.scaler.unscale_(run.optimizer)
        _hook(run.model, "after_backward", progress)
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        loss.backward()
        _hook(run.model, "after_backward", progress)
        run.optimizer.step()
    _hook(run.model, "after_step", progress)
    scalars = {k: float(v.detach()) for k, v in out.items() if torch.is_tensor(v) and v.numel() == 1}
    scalars["loss"] = float(loss.detach())
    if run.rank == 0:
        _log_step(run, epoch, i, step, lr, scalars)
    return scalars, lr


def _stop_unless_finite(run: Run, loss: torch.Tensor, epoch: int, i: int, step: int, lr: float) -> None:
    finite = torch.isfinite(loss.detach()).float()
    if run.world > 1:
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    if finite.item() >= 1:
        return
    latest = run.work_dir / ckpt.LATEST
    last = ckpt.load(latest)["epoch"] if latest.exists() else None
    msg = (f"{run.work_dir}: loss is {loss.item()} at epoch {epoch + 1} iteration {i + 1} "
           f"(step {step}, lr {lr:g}); stopped. "
           + (f"Last good checkpoint: {latest} (epoch {last})." if last is not None
              else "No checkpoint was written yet."))
    run.log.info(msg)
    run.writer.close()
    raise UnmixError(msg)


def _log_step(run: Run, epoch: int, i: int, step: int, lr: float, scalars: dict[str, float]) -> None:
    with files.writing(run.metrics_path), open(run.metrics_path, "a") as f:
        f.write(json.dumps({"epoch": epoch, "iter": i, "step": step, "lr": lr, **scalars}) + "\n")
    if step % int(run.tcfg.get("log_interval", 10)) == 0:
        for k, v in scalars.items():
            run.writer.add_scalar(f"train/{k}", v, step)
        run.writer.add_scalar("train/lr", lr, step)


def end_epoch(run: Run, epoch: int, means: dict[str, float], seconds: float) -> None:
    """The epoch's log line (means, img/s, kNN top-1 when due) and its checkpoint."""
    n_img = run.steps_per_epoch * run.batch
    msg = f"epoch {epoch + 1}/{run.epochs} " + " ".join(f"{k} {v:.4f}" for k, v in means.items()) + \
          f" | {seconds:.1f} s, {n_img / max(seconds, 1e-9):.1f} img/s"
    k = run.kcfg
    if k.get("interval") and ((epoch + 1) % k["interval"] == 0 or epoch + 1 == run.epochs):
        if run.rank == 0:
            acc = knn_monitor(run.model, k, run.dcfg, run.device, run.amp_dtype, run.per_proc)
            msg += f" | kNN top-1 ({k['features']}) {acc:.2f}"
            run.writer.add_scalar("knn/top1", acc, epoch + 1)
        if run.world > 1:
            dist.barrier()
    if epoch + 1 < run.epochs:
        msg += f" | ETA {eta_all(run, epoch, run.steps_per_epoch)} for {run.epochs - epoch - 1} more epochs"
    run.log.info(msg)
    for key, v in means.items():
        run.writer.add_scalar(f"epoch/{key}", v, epoch + 1)
    save_process_state(run, epoch + 1)
    if run.rank == 0:
        keep = (epoch + 1) % int(run.tcfg.get("checkpoint_interval", 10)) == 0 or epoch + 1 == run.epochs
        meta = _model_meta(run.cfg, run.mcfg, run.dcfg, epoch + 1, run.epochs, run.quick)
        path = ckpt.save(run.work_dir, run.model, meta, run.optimizer, run.scaler, epoch + 1, keep)
        run.log.info(f"saved {path}")
    if run.world > 1:
        dist.barrier()
