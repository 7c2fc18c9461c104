"""Fine-tuning checkpoints: written atomically, chosen and checked before mmengine loads them,
and carrying the random state that lets a resumed run continue the same sample.

- **Atomic saves.** mmengine's CheckpointHook writes `epoch_N.pth` through the file backend its
  `backend_args` name (`runner.save_checkpoint` -> `mmengine.runner.checkpoint.save_checkpoint`
  -> `backend.put(bytes, path)`), so registering `AtomicLocalBackend` (LocalBackend whose `put`
  goes through `unmix.core.files`: temp file, then rename) and naming it in the hook's
  `backend_args` makes every save atomic without patching mmengine. A killed save leaves the
  previous checkpoint whole and a temp file the next start removes. (`last_checkpoint` is still
  written by the hook with a plain `open`; nothing here trusts it blindly.)
- **Choosing.** `newest_loadable` takes the newest `epoch_N.pth` / `iter_N.pth` in the work dir
  that loads as an mmengine checkpoint, skipping truncated or foreign ones by name; `last_named`
  reads `last_checkpoint` as a file name in *this* work dir, since mmengine stores an absolute
  path, which in a copied work dir names the original.
- **Resuming the same sample.** `ResumeStateHook` stores the torch/numpy/python (and CUDA) RNG
  states and the sampler's seed in each checkpoint and restores them before the first resumed
  epoch; it also makes validation during training leave the training RNG as it found it, so the
  state saved at an epoch's end is the state the next epoch starts with. On CPU a resumed
  epoch-based run then gives the uninterrupted run's losses (tests/test_finetune_resume.py). An
  iteration-based run (the C4 protocol) is exact when data loading runs in worker processes:
  mmengine replays the skipped iterations' batches, which with `num_workers=0` draws from the
  main process's RNG after it was restored.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

from pretrain.checkpoint import rng_state, set_rng_state
from unmix.core import files
from unmix.core.errors import UnmixError

ATOMIC_BACKEND = "unmix_atomic_local"
RESUME_KEY = "unmix_resume"
_CKPT_RE = re.compile(r"^(epoch|iter)_(\d+)\.pth$")


# ------------------------------------------------------------------------------ atomic saves

def register_backend() -> None:
    from mmengine.fileio import LocalBackend, register_backend as register

    class AtomicLocalBackend(LocalBackend):
        """mmengine's local backend, writing through a temp file renamed into place."""

        def put(self, obj: bytes, filepath) -> None:
            files.write_bytes(filepath, obj)

        def put_text(self, obj: str, filepath, encoding: str = "utf-8") -> None:
            with files.atomic_path(filepath) as tmp:
                tmp.write_text(obj, encoding=encoding)

    register(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


def use_atomic_saves(cfg) -> None:
    """The config's CheckpointHook saves through `AtomicLocalBackend`."""
    hook = cfg.default_hooks.get("checkpoint")
    if hook is not None:
        hook["backend_args"] = dict(backend=ATOMIC_BACKEND)


# ---------------------------------------------------------------------------------- choosing

def candidates(work_dir: str | Path) -> list[Path]:
    """The work dir's epoch_N.pth / iter_N.pth, newest (highest N) first."""
    found = [(m.group(1) == "iter", int(m.group(2)), p) for p in Path(work_dir).glob("*.pth")
             if (m := _CKPT_RE.match(p.name))]
    return [p for *_, p in sorted(found, reverse=True)]


def check(path: str | Path) -> dict[str, Any]:
    """Load `path` as mmengine's loader would (weights only, mmengine's classes allowed), or a
    one-line UnmixError: truncated, empty, code-carrying, or not an mmengine checkpoint."""
    from transfer.stack.compat import mmengine_safe_globals

    path = Path(path)
    with open(path, "rb") as f:
        zipped = f.read(4) == b"PK\x03\x04"
    obj = files.torch_load(path, mmengine_safe_globals(), mmap=zipped)
    if not isinstance(obj, dict) or not isinstance(obj.get("state_dict"), dict):
        raise UnmixError(f"{path}: not a detector checkpoint (no state_dict; expected what "
                         "mmengine's CheckpointHook writes)")
    return obj


def newest_loadable(work_dir: str | Path, skipped: Callable[[str], None] = lambda m: None,
                    resumable: bool = True) -> Path | None:
    """The newest checkpoint of the work dir that loads (with `resumable`, one that also holds
    the loop position `meta.epoch/iter`); each one passed over is reported to `skipped` with
    its one-line problem."""
    for path in candidates(work_dir):
        try:
            obj = check(path)
        except UnmixError as e:
            skipped(str(e))
            continue
        meta = obj.get("meta")
        if resumable and not (isinstance(meta, dict) and "epoch" in meta and "iter" in meta):
            skipped(f"{path}: no meta.epoch/meta.iter to resume from")
            continue
        return path
    return None


def set_aside(work_dir: str | Path) -> tuple[Path | None, int]:
    """A run that starts over (no --resume) moves the work dir's earlier epoch_N/iter_N.pth and
    last_checkpoint into WORK_DIR/replaced-<UTC time>/: kept, but never what a later --resume of
    the new run would pick (an old run's iter_9000.pth outranks the new run's iter_500.pth).
    Returns (that folder, how many checkpoints moved); (None, 0) when there were none."""
    import time

    work_dir = Path(work_dir)
    old = candidates(work_dir)
    last = work_dir / "last_checkpoint"
    if not old:
        return None, 0
    dest = work_dir / time.strftime("replaced-%Y%m%dT%H%M%SZ", time.gmtime())
    dest.mkdir(exist_ok=True)
    for path in old + ([last] if last.is_file() else []):
        path.rename(dest / path.name)
    return dest, len(old)


def last_named(work_dir: str | Path) -> Path | None:
    """The file `last_checkpoint` names, looked up by name in this work dir (None when the file
    is missing, empty or names nothing here)."""
    last = Path(work_dir) / "last_checkpoint"
    try:
        name = Path(last.read_text(encoding="utf-8").strip()).name
    except (OSError, UnicodeDecodeError):
        return None
    cand = Path(work_dir) / name
    return cand if name and cand.is_file() else None


# ------------------------------------------------------------------------ resuming the sample

def _cpu(obj: Any) -> Any:
    """RNG states as `torch.set_rng_state` takes them: CPU tensors (mmengine loads a resumed
    checkpoint onto the training device)."""
    if hasattr(obj, "cpu"):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_cpu(v) for v in obj]
    return obj


def _sampler(runner):
    loader = runner.train_loop.dataloader
    for s in (getattr(getattr(loader, "batch_sampler", None), "sampler", None),
              getattr(loader, "sampler", None)):
        if s is not None and hasattr(s, "seed"):
            return s
    return None


def resume_state_hook():
    """A `ResumeStateHook` (mmengine's Hook is imported only here, with the stack)."""
    from mmengine.hooks import Hook

    class ResumeStateHook(Hook):
        priority = "LOWEST"  # restores last, just before the epoch's data iterator is made

        def __init__(self) -> None:
            self.pending: dict | None = None
            self.outside_val: dict | None = None

        def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
            sampler = _sampler(runner)
            checkpoint[RESUME_KEY] = {"rng": rng_state(),
                                      "sampler_seed": getattr(sampler, "seed", None)}

        def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
            self.pending = checkpoint.get(RESUME_KEY)

        def before_train_epoch(self, runner) -> None:
            if not self.pending:
                return
            state, self.pending = self.pending, None
            sampler = _sampler(runner)
            if sampler is not None and state.get("sampler_seed") is not None:
                sampler.seed = int(state["sampler_seed"])
            set_rng_state(_cpu(state["rng"]))
            runner.logger.info("unmix: restored the RNG states and sampler seed of the checkpoint")

        def before_val(self, runner) -> None:
            self.outside_val = rng_state()

        def after_val(self, runner) -> None:
            if self.outside_val is not None:
                set_rng_state(self.outside_val)
                self.outside_val = None

    return ResumeStateHook()
