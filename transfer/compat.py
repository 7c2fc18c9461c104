"""Every fix mmengine 0.10 / mmdet 3.3 / mmcv 2.1 need on torch >= 2.6 and numpy 2, in one place.

Applied explicitly by `transfer.stack.ensure_stack()` (never at import), each fix idempotent and
each with a test in tests/test_compat.py that fails without it. Installed packages are never edited.

1. `weights_only` checkpoint loading: torch >= 2.6 loads with `weights_only=True` by default, and
   mmengine 0.10.7 can then not resume from its own checkpoints (its `message_hub` holds
   `HistoryBuffer`s of numpy arrays). Rather than turning the safety off, we re-register mmengine's
   local loader to load with `weights_only=True` and allow-list exactly the classes mmengine's own
   checkpoints contain. Foreign checkpoints still go through torch's safe unpickler.
"""
from __future__ import annotations

from typing import Callable

_applied: set[str] = set()


def mmengine_safe_globals() -> list:
    """The non-tensor classes mmengine writes into its checkpoints (meta, message hub, loops)."""
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    safe: list = [HistoryBuffer, np.ndarray, np.dtype, np.core.multiarray._reconstruct]
    # numpy 2 pickles scalars and dtypes through these:
    safe += [np.core.multiarray.scalar]
    safe += [type(np.dtype(t)) for t in (np.float64, np.float32, np.int64, np.int32, np.bool_,
                                           np.uint8)]
    return safe


def fix_checkpoint_loading() -> None:
    """mmengine's local-file loader under weights_only, with mmengine's own classes allowed."""
    import torch
    from mmengine.runner.checkpoint import CheckpointLoader

    torch.serialization.add_safe_globals(mmengine_safe_globals())

    def load_from_local(filename: str, map_location=None):
        import os.path as osp

        filename = osp.expanduser(filename)
        if not osp.isfile(filename):
            raise FileNotFoundError(f"{filename} can not be found.")
        return torch.load(filename, map_location=map_location, weights_only=True)

    CheckpointLoader.register_scheme(prefixes="", loader=load_from_local, force=True)


FIXES: dict[str, Callable[[], None]] = {
    "checkpoint_loading": fix_checkpoint_loading,
}


def apply(names: tuple[str, ...] | None = None) -> None:
    """Apply the named fixes (all by default); each only once per process."""
    for name in names or tuple(FIXES):
        if name not in _applied:
            FIXES[name]()
            _applied.add(name)
