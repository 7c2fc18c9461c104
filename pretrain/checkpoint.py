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
