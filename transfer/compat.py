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
    """The non-tensor objects mmengine 0.10.7 writes into its own checkpoints (measured by
    disassembling a Runner checkpoint): HistoryBuffers in the message hub, numpy arrays and
    scalars, numpy 2 dtype classes, and `getattr` (HistoryBuffer pickles its statistics methods
    as `getattr(HistoryBuffer, 'min')`). The weights-only unpickler still calls only allow-listed
    callables, so `getattr` results are never called."""
    import builtins

    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    try:
        multiarray = np._core.multiarray  # numpy >= 2
    except AttributeError:  # pragma: no cover - numpy 1.x
        multiarray = np.core.multiarray
    dtypes = [type(np.dtype(t)) for t in (np.float64, np.float32, np.float16, np.int64, np.int32,
                                           np.int16, np.int8, np.uint8, np.bool_)]
    return [HistoryBuffer, np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar,
            builtins.getattr, *dtypes]


def fix_checkpoint_loading() -> None:
    """mmengine's local-file loader under weights_only=True, allowing mmengine's own classes
    only inside this loader (not process-wide, so other `torch.load` calls stay strict)."""
    import os.path as osp

    import torch
    from mmengine.runner.checkpoint import CheckpointLoader

    allowed = mmengine_safe_globals()

    def load_from_local(filename: str, map_location=None):
        filename = osp.expanduser(filename)
        if not osp.isfile(filename):
            raise FileNotFoundError(f"{filename} can not be found.")
        with torch.serialization.safe_globals(allowed):
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
