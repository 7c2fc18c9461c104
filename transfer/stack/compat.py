"""Every fix mmengine 0.10 / mmdet 3.3 / mmcv 2.1 need on torch >= 2.6 and numpy 2, in one place.

Applied explicitly by `transfer.stack.ensure_stack()` (never at import), each fix idempotent and
each with a test in tests/test_compat.py that fails without it. Installed packages are never edited.

1. `weights_only` checkpoint loading: torch >= 2.6 loads with `weights_only=True` by default, and
   mmengine 0.10.7 can then not resume from its own checkpoints (its `message_hub` holds
   `HistoryBuffer`s of numpy arrays). Rather than turning the safety off, we re-register mmengine's
   local loader to load with `weights_only=True` and allow-list exactly the classes mmengine's own
   checkpoints contain (and `getattr` only as mmengine uses it: `history_buffer_getattr`).
   Foreign checkpoints still go through torch's safe unpickler.
2. numpy >= 1.24 refuses mmdet's ragged `eval_recalls` arrays (`fix_ragged_recalls`).
3. Speed, not correctness: mmengine reformats each config dump with yapf, six dumps per
   fine-tuning run; identical texts are formatted once (`memoize_config_format`).
"""
from __future__ import annotations

from typing import Callable

_applied: set[str] = set()


def history_buffer_getattr(obj, name):
    """What a checkpoint's `getattr` may do: fetch one of HistoryBuffer's statistics methods.

    mmengine pickles `HistoryBuffer._statistics_methods` (min, max, current, mean and any
    registered with `HistoryBuffer.register_statistics`) as `getattr(HistoryBuffer, 'min')`
    (pickle protocol 2 cannot name a method otherwise). Allow-listing `builtins.getattr` itself
    would let a file reach anything from an allowed object, e.g.
    `getattr(getattr(getattr, '__self__'), 'eval')` puts `builtins.eval` into the loaded object;
    this stands in for `getattr` in the unpickler and allows exactly mmengine's use."""
    import pickle

    from mmengine.logging.history_buffer import HistoryBuffer

    if obj is HistoryBuffer and isinstance(name, str) and name in HistoryBuffer._statistics_methods:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f"refused getattr({getattr(obj, '__qualname__', type(obj).__name__)}, {name!r}): mmengine "
        "checkpoints use getattr only for HistoryBuffer's statistics methods")


def mmengine_safe_globals() -> list:
    """The non-tensor objects mmengine 0.10.7 writes into its own checkpoints (measured by
    disassembling a Runner checkpoint): HistoryBuffers in the message hub, numpy arrays and
    scalars, numpy 2 dtype classes, and `getattr` restricted to HistoryBuffer's statistics
    methods (`history_buffer_getattr`, unpickled in place of `builtins.getattr`)."""
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    try:
        multiarray = np._core.multiarray  # numpy >= 2
    except AttributeError:  # pragma: no cover - numpy 1.x
        multiarray = np.core.multiarray
    dtypes = [type(np.dtype(t)) for t in (np.float64, np.float32, np.float16, np.int64, np.int32,
                                           np.int16, np.int8, np.uint8, np.bool_)]
    return [HistoryBuffer, np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar,
            (history_buffer_getattr, "builtins.getattr"), *dtypes]


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


def fix_ragged_recalls() -> None:
    """mmdet 3.3's `eval_recalls` (VOCMetric(metric='recall'), CocoMetric proposal recall) stacks
    per-image IoU matrices of different shapes with `np.array(list)`, which numpy >= 1.24 refuses
    ("inhomogeneous shape"). Same computation with an explicit object array, swapped in wherever
    mmdet imported the name."""
    import numpy as np
    from mmdet.evaluation.functional import recall as rec

    if getattr(rec.eval_recalls, "_unmix_fixed", False):
        return

    def eval_recalls(gts, proposals, proposal_nums=None, iou_thrs=0.5, logger=None,
                     use_legacy_coordinate=False):
        if len(gts) != len(proposals):
            raise ValueError(f"eval_recalls: {len(gts)} images of ground truth but "
                             f"{len(proposals)} of proposals")
        proposal_nums, iou_thrs = rec.set_recall_param(proposal_nums, iou_thrs)
        ious = np.empty(len(gts), dtype=object)  # one (num_gt, num_proposals) matrix per image
        for i, (gt, props) in enumerate(zip(gts, proposals)):
            if props.ndim == 2 and props.shape[1] == 5:  # scored: best first
                props = props[np.argsort(props[:, 4])[::-1]]
            top = props[:min(props.shape[0], proposal_nums[-1]), :4]
            if gt is None or gt.shape[0] == 0:
                ious[i] = np.zeros((0, props.shape[0]), dtype=np.float32)
            else:
                ious[i] = rec.bbox_overlaps(gt, top, use_legacy_coordinate=use_legacy_coordinate)
        recalls = rec._recalls(ious, proposal_nums, iou_thrs)
        rec.print_recall_summary(recalls, proposal_nums, iou_thrs, logger=logger)
        return recalls

    eval_recalls._unmix_fixed = True  # type: ignore[attr-defined]
    eval_recalls._unmix_original = rec.eval_recalls  # type: ignore[attr-defined]
    import importlib

    for name in ("mmdet.evaluation.functional.recall", "mmdet.evaluation.functional",
                 "mmdet.evaluation.metrics.voc_metric", "mmdet.evaluation.metrics.coco_metric",
                 "mmdet.evaluation.metrics.lvis_metric"):
        try:
            module = importlib.import_module(name)
        except ImportError:  # lvis_metric needs the optional lvis package at import? keep going
            continue
        if hasattr(module, "eval_recalls"):
            module.eval_recalls = eval_recalls


def memoize_config_format() -> None:
    """mmengine's `Config.pretty_text` reflows every dump with yapf, and a fine-tuning run dumps
    its config six times (the log, the work dir's config, the vis backends) with two distinct
    texts. Each reflow is ~0.2 s idle for a protocol config (cProfile had put the six at 27% of a
    demo cell: an overestimate, the profiler inflates pure-Python code). yapf's output is a
    function of its input text and style only, so the last few results are kept; the text
    written is unchanged."""
    from mmengine.config import config as mm_config

    original = getattr(mm_config.FormatCode, "_unmix_original", mm_config.FormatCode)
    cache: dict[tuple[str, str], tuple] = {}

    def format_code(text: str, style_config=None, **kwargs):
        key = (text, repr((style_config, sorted(kwargs.items()))))
        if key not in cache:
            if len(cache) >= 8:
                cache.pop(next(iter(cache)))
            cache[key] = original(text, style_config=style_config, **kwargs)
        return cache[key]

    format_code._unmix_original = original  # type: ignore[attr-defined]
    mm_config.FormatCode = format_code


FIXES: dict[str, Callable[[], None]] = {
    "checkpoint_loading": fix_checkpoint_loading,
    "ragged_recalls": fix_ragged_recalls,
    "config_format": memoize_config_format,
}


def apply(names: tuple[str, ...] | None = None) -> None:
    """Apply the named fixes (all by default); each only once per process."""
    for name in names or tuple(FIXES):
        if name not in _applied:
            FIXES[name]()
            _applied.add(name)
