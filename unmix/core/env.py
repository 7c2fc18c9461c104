"""The `env` block of a result record: versions of everything that can move a number, the unmix
commit, the device and the world size. Versions are read from the installed distributions'
metadata, so nothing heavy (mmdet, mmcv) is imported to describe a kNN run."""
from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

# record key -> distribution names that provide it, first installed one wins
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "torchvision": ("torchvision",),
    "mmcv": ("mmcv", "mmcv-lite"),
    "mmengine": ("mmengine",),
    "mmdet": ("mmdet",),
}


def git_commit() -> str | None:
    """The unmix checkout's commit, or None when installed without git."""
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def installed_version(names: tuple[str, ...]) -> str | None:
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def env_info(device: str | None = None, world_size: int = 1,
             mmcv_ops: str | None = None) -> dict[str, Any]:
    """Versions, commit, device, world size and torch's CPU thread count. `mmcv_ops` is the kernel set the caller's run
    uses ('compiled' / 'stand-in'); None for runs that use no mmcv kernel."""
    import torch

    info: dict[str, Any] = {
        "unmix_commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    for key, names in DISTRIBUTIONS.items():
        info[key] = installed_version(names)
    info["mmcv_ops"] = mmcv_ops
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and torch.cuda.is_available():
        device = f"{device} ({torch.cuda.get_device_name(0)})"
    info["device"] = device
    info["world_size"] = world_size
    info["threads"] = torch.get_num_threads()  # CPU results move (summation order) with it
    return info


def default_workers(cap: int = 8) -> int:
    """Data-loader workers by default: the CPUs this process may run on (a slurm or taskset
    allocation, not the whole node), at most `cap` (more rarely helps and costs memory each)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        n = os.cpu_count() or 1
    return max(1, min(n, cap))
