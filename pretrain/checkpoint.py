"""Pretraining checkpoints: one layout (`pretrain.schema`), written atomically, readable with
`weights_only=True`.

`unmix convert` reads them directly (format 'unmix-pretrain'). RNG states are stored as tensors
and plain lists (no numpy objects), so `torch.load(path, weights_only=True)` loads every field.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pretrain.schema import FORMAT, READABLE_VERSIONS, VERSION
from unmix.core.files import atomic_link, torch_load, torch_save
from unmix.core.errors import UnmixError

LATEST = "latest.pth"


def rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, mt, gauss = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached": float(cached)},
             "python": {"version": version, "state": list(mt), "gauss": gauss}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(work_dir: str | os.PathLike, model: torch.nn.Module, meta: dict, optimizer, scaler, epoch: int,
         keep: bool) -> Path:
    """Write `latest.pth` atomically; with `keep`, also `epoch_NNNN.pth` (a hard link, or a copy)."""
    work_dir = Path(work_dir)
    obj = {"format": FORMAT, "version": VERSION, "state_dict": model.state_dict(), "meta": meta,
           "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict() if scaler is not None else None,
           "epoch": epoch, "rng": rng_state()}
    latest = work_dir / LATEST
    torch_save(obj, latest)
    if keep:
        named = work_dir / f"epoch_{epoch:04d}.pth"
        atomic_link(latest, named)
        return named
    return latest


def load(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UnmixError(f"{path}: checkpoint not found (nothing to resume; run without --resume)")
    obj = torch_load(path)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        what = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise UnmixError(f"{path}: not an unmix pretraining checkpoint (format {what!r})")
    if obj.get("version") not in READABLE_VERSIONS:
        raise UnmixError(f"{path}: checkpoint version {obj.get('version')} (this unmix reads "
                         f"{', '.join(map(str, READABLE_VERSIONS))})")
    return obj


def rank_state_path(work_dir: str | os.PathLike, rank: int) -> Path:
    """One file per process, as the official SwAV code's `queue<rank>.pth` (main_swav_unmix.py)."""
    return Path(work_dir) / f"queue{int(rank)}.pth"


def save_rank_state(work_dir: str | os.PathLike, buffers: dict[str, torch.Tensor], rank: int,
                    world: int, epoch: int) -> Path:
    """Write this process's own buffers (SwAV's queue: each process enqueues only its own
    embeddings, so rank 0's copy in latest.pth is not the others'), tagged with the process
    layout and the epoch so a resume can tell a stale or foreign file."""
    path = rank_state_path(work_dir, rank)
    torch_save({"buffers": {k: v.detach().cpu() for k, v in buffers.items()}, "rank": int(rank),
                "world_size": int(world), "epoch": int(epoch)}, path)
    return path


def load_rank_state(work_dir: str | os.PathLike, rank: int, world: int,
                    epoch: int) -> tuple[dict[str, torch.Tensor] | None, str]:
    """This process's buffers saved at `epoch` by a run with `world` processes, or None and the
    one-line reason (the caller then starts them empty, as the official code does when no queue
    file is found)."""
    path = rank_state_path(work_dir, rank)
    if not path.is_file():
        return None, f"{path}: not found; rank {rank} starts its queue empty"
    try:
        obj = torch_load(path)
    except UnmixError as e:  # the weights resume fine; only this process's queue is lost
        return None, f"{e}; rank {rank} starts its queue empty"
    if not isinstance(obj, dict) or not isinstance(obj.get("buffers"), dict):
        return None, f"{path}: not a queue file; rank {rank} starts its queue empty"
    if int(obj.get("world_size", -1)) != int(world):
        return None, (f"{path}: saved by a run with {obj.get('world_size')} processes, this one has "
                      f"{world}; rank {rank} starts its queue empty")
    if int(obj.get("epoch", -1)) != int(epoch):
        return None, (f"{path}: saved at epoch {obj.get('epoch')}, the checkpoint is at epoch "
                      f"{epoch}; rank {rank} starts its queue empty")
    return obj["buffers"], f"{path}: rank {rank} restored its own queue"
