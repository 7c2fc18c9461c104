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
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from pretrain import checkpoint as ckpt
from pretrain import data as pdata
from pretrain import schema
from pretrain.knn import knn_predict
from pretrain.optim import build_optimizer, lr_at
from unmix.core.config import load_config as _load_config
from unmix.core.config import parse_options, to_plain
from unmix.core.errors import UnmixError
from unmix.core.logs import open_log

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="config file, e.g. configs/pretrain/moco_v2_cifar10_unmix.py")
    parser.add_argument("--work-dir", help="output folder (default work_dirs/pretrain/<config name>)")
    parser.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override config entries, e.g. train.batch_size=256 data.root=/data/cifar")
    parser.add_argument("--resume", action="store_true",
                        help="continue from WORK_DIR/latest.pth on the same trajectory")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")


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
        aug = augment.DeviceAugment(size or pdata.IMAGE_SIZE[name], mean, std, **(dcfg.get("device_augment_kwargs") or {}))
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
@torch.no_grad()
def _features(encoder: nn.Module, loader, device, autocast) -> tuple[torch.Tensor, torch.Tensor]:
    feats, labels = [], []
    for x, y in loader:
        with autocast():
            feats.append(encoder(x.to(device, non_blocking=True)).float().cpu())
        labels.append(torch.as_tensor(y))
    return torch.cat(feats), torch.cat(labels)


def knn_monitor(model: nn.Module, kcfg: dict, dcfg: dict, device, autocast, batch_size: int) -> float | None:
    """Weighted kNN top-1 (%) of the backbone's pooled features, bank = train split, queries = test."""
    name, tf = dcfg["name"], pdata.eval_transform(dcfg["name"], dcfg.get("size"))
    bank_ds = pdata.build_dataset(name, dcfg["root"], kcfg.get("bank_split", "train"), transform=tf)
    query_ds = pdata.build_dataset(name, dcfg["root"], kcfg.get("split", "test"), transform=tf)
    limit = kcfg.get("max_samples")
    if limit:
        bank_ds = torch.utils.data.Subset(bank_ds, range(min(limit, len(bank_ds))))
        query_ds = torch.utils.data.Subset(query_ds, range(min(limit, len(query_ds))))
    mk = lambda d: torch.utils.data.DataLoader(d, batch_size=batch_size, num_workers=dcfg.get("num_workers", 0))  # noqa: E731
    encoder = model.backbone
    was_training = encoder.training
    encoder.eval()
    try:
        bank, bank_y = _features(encoder, mk(bank_ds), device, autocast)
        q, q_y = _features(encoder, mk(query_ds), device, autocast)
    finally:
        encoder.train(was_training)
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
def _model_meta(cfg, mcfg: dict, dcfg: dict, epoch: int, epochs: int) -> dict:
    ff = dict(dcfg.get("first_form", {}) or {})
    meta = {"method": mcfg.get("type"), "arch": mcfg.get("arch"), "stem": mcfg.get("stem", "imagenet"),
            "version": mcfg.get("version"),
            # a plain bool: what reports pair runs by; the full settings are under `mixing`
            "unmix": bool((mcfg.get("unmix") or {}).get("enabled") or ff.get("enabled")),
            "mixing": {"final_form": dict(mcfg.get("unmix") or {"enabled": False}),
                       "first_form": ff if ff.get("enabled") else {"enabled": False}},
            "dataset": dcfg.get("name"), "epoch": epoch, "epochs": epochs, "config": cfg.pretty_text}
    meta["pretrain"] = schema.summary(meta)
    return meta


def _hook(model: nn.Module, name: str, progress: float) -> None:
    fn = getattr(model, name, None)
    if callable(fn):
        fn(progress)


def run(args: argparse.Namespace) -> int:
    options = parse_options(getattr(args, "cfg_options", None))
    cfg = load_config(args.config, options)
    mcfg, dcfg = to_plain(cfg.model.to_dict()), to_plain(cfg.data.to_dict())
    ocfg, scfg, tcfg = to_plain(cfg.optimizer.to_dict()), to_plain(cfg.schedule.to_dict()), to_plain(cfg.train.to_dict())
    kcfg = to_plain(cfg.knn.to_dict()) if "knn" in cfg else {"interval": 0}
    work_dir = Path(args.work_dir or Path("work_dirs") / "pretrain" / Path(args.config).stem)

    device, rank, local, world = setup_distributed(getattr(args, "device", None))
    try:
        return _train(cfg, mcfg, dcfg, ocfg, scfg, tcfg, kcfg, work_dir, device, rank, world, args.resume)
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _train(cfg, mcfg, dcfg, ocfg, scfg, tcfg, kcfg, work_dir: Path, device, rank: int, world: int,
           resume: bool) -> int:
    from tqdm import tqdm

    from pretrain.methods import METHODS, build_method

    seed = int(tcfg.get("seed", 0))
    epochs = int(scfg.get("epochs", tcfg.get("epochs", 1)))
    batch = int(tcfg.get("batch_size", 256))
    if batch % world:
        raise UnmixError(f"train.batch_size={batch}: not divisible by the {world} processes")
    per_proc = batch // world
    amp = tcfg.get("amp", "none")
    if amp not in ("none", *AMP_DTYPES):
        raise UnmixError(f"train.amp={amp!r}: choose none, bf16 or fp16")
    if "root" not in dcfg or dcfg["root"] is None:
        raise UnmixError("data.root: not set (e.g. --cfg-options data.root=/data/cifar10)")
    if mcfg.get("type") not in METHODS:
        raise UnmixError(f"model.type={mcfg.get('type')!r}: choose from {', '.join(sorted(METHODS))}")

    work_dir.mkdir(parents=True, exist_ok=True)
    log = open_log(work_dir / "train.log" if rank == 0 else None, f"unmix.pretrain.{work_dir}",
                   stderr=rank == 0)
    if rank == 0:
        cfg.dump(str(work_dir / "config.py"))

    # the model: same init on every process (seeded), then DDP keeps them in step
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    margs = dict(mcfg)
    accepted = inspect.signature(METHODS[margs["type"]].__init__).parameters
    if "epochs" in accepted and "epochs" not in margs:
        margs["epochs"] = epochs  # SwAV schedules its queue / prototype freezing in epochs
    try:
        model = build_method(margs).to(device)
    except ValueError as e:
        raise UnmixError(f"model: {e}") from None
    if world > 1 and device.type == "cuda" and tcfg.get("sync_bn", False):
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    base_lr = float(ocfg.get("lr", 0.03))
    if ocfg.get("base_batch_size"):
        base_lr = base_lr * batch / float(ocfg["base_batch_size"])  # linear scaling rule
    optimizer = build_optimizer(model, ocfg, base_lr)
    scaler = torch.amp.GradScaler(device.type) if amp == "fp16" else None
    autocast = (lambda: torch.autocast(device.type, dtype=AMP_DTYPES[amp])) if amp != "none" \
        else contextlib.nullcontext
    start_epoch = 0
    if resume:
        state = ckpt.load(work_dir / ckpt.LATEST)
        meta = state.get("meta", {})
        for key, want in (("method", mcfg.get("type")), ("arch", mcfg.get("arch")), ("dataset", dcfg.get("name"))):
            if meta.get(key) != want:
                raise UnmixError(f"{work_dir / ckpt.LATEST}: was trained with {key} {meta.get(key)!r}, "
                                 f"the config says {want!r}; use another --work-dir")
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        ckpt.set_rng_state(state["rng"])
        start_epoch = int(state["epoch"])
        log.info(f"resumed from {work_dir / ckpt.LATEST} at epoch {start_epoch}")
        if start_epoch >= epochs:
            log.info(f"nothing to do: {start_epoch} of {epochs} epochs done")
            return 0
    ddp = model
    if world > 1:
        ddp = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=bool(tcfg.get("find_unused_parameters", False)))

    ds, device_aug, n_views = build_train_data(dcfg, seed)
    if device_aug is not None:
        device_aug = device_aug.to(device)
    workers = int(dcfg.get("num_workers", 4))
    steps_per_epoch = len(ds) // batch
    cap = tcfg.get("max_iters_per_epoch")
    if cap:
        steps_per_epoch = min(steps_per_epoch, int(cap))
    if steps_per_epoch < 1:
        raise UnmixError(f"{dcfg['root']}: {len(ds)} images make no full batch of train.batch_size={batch}")
    total_steps = epochs * steps_per_epoch
    ckpt_interval = int(tcfg.get("checkpoint_interval", 10))
    log_interval = int(tcfg.get("log_interval", 10))
    writer = _tb_writer(work_dir, rank == 0 and tcfg.get("tensorboard", True))
    metrics_path = work_dir / "metrics.jsonl"
    if rank == 0 and not resume and metrics_path.exists():
        metrics_path.unlink()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = bool(tcfg.get("cudnn_benchmark", True))

    log.info(f"pretrain {mcfg['type']} {mcfg.get('arch')} on {dcfg['name']} ({len(ds)} images): "
             f"{epochs} epochs x {steps_per_epoch} iterations, batch {batch} ({world} x {per_proc}), "
             f"lr {base_lr:g} ({ocfg.get('type', 'sgd')}, {scfg.get('policy', 'cosine')}), amp {amp}, "
             f"device {device}, unmix {mcfg.get('unmix')}, first form "
             f"{(dcfg.get('first_form') or {}).get('enabled', False)}; work dir {work_dir}")
    t_run = time.time()
    for epoch in range(start_epoch, epochs):
        # Everything random in an epoch is a function of (seed, epoch, rank, step): a resumed run
        # continues the same trajectory as an uninterrupted one.
        es = epoch_seed(seed, epoch, rank)
        torch.manual_seed(es)
        random.seed(es)
        np.random.seed(es)
        if hasattr(ds, "set_epoch"):
            ds.set_epoch(epoch)
        loader = make_loader(ds, per_proc, workers, seed, epoch, rank, world, device.type == "cuda")
        model.train()
        bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{epochs}", disable=rank != 0,
                   dynamic_ncols=True, leave=False, file=sys.stderr)
        sums: dict[str, float] = {}
        t0, n_img = time.time(), 0
        for i, (views, _) in enumerate(loader):
            if i >= steps_per_epoch:
                break
            step = epoch * steps_per_epoch + i
            progress = step / total_steps
            lr = lr_at(step, steps_per_epoch, epochs, base_lr, scfg.get("policy", "cosine"),
                       scfg.get("warmup_epochs", 0), scfg.get("warmup_start", 0.0), scfg.get("min_lr", 0.0),
                       scfg.get("milestones", ()), scfg.get("gamma", 0.1))
            for g in optimizer.param_groups:
                g["lr"] = lr
            gen = torch.Generator().manual_seed((seed * 1_000_003 + step * world + rank) % 2**62)
            if device_aug is not None:
                x = views.to(device, non_blocking=True)
                views = [device_aug(x, generator=gen) for _ in range(n_views)]
            else:
                views = [v.to(device, non_blocking=True) for v in views]
            _hook(model, "before_step", progress)
            with autocast():
                out = ddp(views, generator=gen)
            loss = out["loss"].float()
            finite = torch.isfinite(loss.detach()).float()
            if world > 1:
                dist.all_reduce(finite, op=dist.ReduceOp.MIN)
            if finite.item() < 1:
                bar.close()
                last = ckpt.load(work_dir / ckpt.LATEST)["epoch"] if (work_dir / ckpt.LATEST).exists() else None
                msg = (f"{work_dir}: loss is {loss.item()} at epoch {epoch + 1} iteration {i + 1} "
                       f"(step {step}, lr {lr:g}); stopped. "
                       + (f"Last good checkpoint: {work_dir / ckpt.LATEST} (epoch {last})." if last is not None
                          else "No checkpoint was written yet."))
                log.info(msg)
                writer.close()
                raise UnmixError(msg)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                _hook(model, "after_backward", progress)
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                _hook(model, "after_backward", progress)
                optimizer.step()
            _hook(model, "after_step", progress)

            scalars = {k: float(v.detach()) for k, v in out.items() if torch.is_tensor(v) and v.numel() == 1}
            scalars["loss"] = float(loss.detach())
            for k, v in scalars.items():
                sums[k] = sums.get(k, 0.0) + v
            n_img += batch
            if rank == 0:
                with open(metrics_path, "a") as f:
                    f.write(json.dumps({"epoch": epoch, "iter": i, "step": step, "lr": lr, **scalars}) + "\n")
                if step % log_interval == 0:
                    for k, v in scalars.items():
                        writer.add_scalar(f"train/{k}", v, step)
                    writer.add_scalar("train/lr", lr, step)
                bar.set_postfix(loss=f"{scalars['loss']:.4f}", lr=f"{lr:.3g}")
                bar.update(1)
        bar.close()
        dt = time.time() - t0
        means = {k: v / steps_per_epoch for k, v in sums.items()}
        msg = f"epoch {epoch + 1}/{epochs} " + " ".join(f"{k} {v:.4f}" for k, v in means.items()) + \
              f" | {dt:.1f} s, {n_img / max(dt, 1e-9):.1f} img/s"
        if kcfg.get("interval") and ((epoch + 1) % kcfg["interval"] == 0 or epoch + 1 == epochs):
            acc = knn_monitor(model, kcfg, dcfg, device, autocast, per_proc) if rank == 0 else None
            if acc is not None:
                msg += f" | kNN top-1 {acc:.2f}"
                writer.add_scalar("knn/top1", acc, epoch + 1)
            if world > 1:
                dist.barrier()
        log.info(msg)
        for k, v in means.items():
            writer.add_scalar(f"epoch/{k}", v, epoch + 1)
        if rank == 0:
            keep = (epoch + 1) % ckpt_interval == 0 or epoch + 1 == epochs
            path = ckpt.save(work_dir, model, _model_meta(cfg, mcfg, dcfg, epoch + 1, epochs), optimizer, scaler,
                             epoch + 1, keep)
            log.info(f"saved {path}")
        if world > 1:
            dist.barrier()
    writer.close()
    log.info(f"done in {(time.time() - t_run) / 60:.1f} min; encoder checkpoint: {work_dir / ckpt.LATEST} "
             f"(`unmix convert {work_dir / ckpt.LATEST}`)")
    return 0
