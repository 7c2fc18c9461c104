"""`--quick`, `--scale W H` and `--fraction F` of `unmix finetune`: a protocol shrunk for a first
look, with its schedule's shape kept. Applied to the resolved config (after `--cfg-options`), by
step type, never by a pipeline index, so every protocol and any wrapper (Repeat/Concat) is met:

- scale: every `Resize` / `RandomResize` scale and `RandomChoiceResize` scales of every loader
  multiplied by f = the factor that fits the protocol's test scale into W x H (the multi-scale
  range keeps its shape); `filter_cfg.min_size` and `bbox_min_size` are scaled by f too (a 32-px
  filter on quarter-size images would drop what the full-size run keeps).
- fraction: an iteration-based schedule (C4) runs F of its iterations, with its warm-up end, lr
  steps, evaluation/checkpoint intervals and Precise BN batches scaled by F (at least 1 each; a
  warm-up at least 2 steps, as one step would freeze its lr: transfer/detection/schedule.py). An
  epoch-based one (FPN) keeps its epochs and lr-step epochs and trains on the first F of each
  training split's images (mmengine's `indices`); its iteration warm-up is scaled by F, as an
  epoch has F of its iterations.
`--quick` is `--scale` a quarter of the test scale and `--fraction 0.02`. The record says what ran
(`protocol.quick`, `protocol.image_scale`); the report never mixes such runs with full ones.
"""
from __future__ import annotations

import math
from typing import Any

from unmix.core.errors import UnmixError
from transfer.detection import schedule
from transfer.detection.datacheck import walk

QUICK_FACTOR = 0.25
QUICK_FRACTION = 0.02
_RESIZES = {"Resize": "scale", "RandomResize": "scale", "RandomChoiceResize": "scales"}
_LOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")


def _times(value: Any, f: float) -> Any:
    """A scale (an int, a pair, a list of pairs) times f, rounded, at least 16 px."""
    if isinstance(value, (list, tuple)):
        return type(value)(_times(v, f) for v in value)
    return max(16, int(round(value * f)))


def scored_scale(cfg) -> tuple[int, int]:
    for d in walk(cfg.get("test_dataloader")):
        if d.get("type") == "Resize" and isinstance(d.get("scale"), (list, tuple)):
            return tuple(d["scale"])  # type: ignore[return-value]
    raise UnmixError("the protocol's test pipeline has no Resize with a (width, height) scale")


def rescale(cfg, scale: tuple[int, int]) -> float:
    """Every resize step scaled so the test scale fits `scale`; returns the factor."""
    tw, th = scored_scale(cfg)
    f = min(scale[0] / tw, scale[1] / th)
    seen: set[int] = set()  # loaders and datasets may share one pipeline dict: scale it once
    for key in _LOADERS:
        for d in walk(cfg.get(key)):
            if id(d) in seen:
                continue
            seen.add(id(d))
            field = _RESIZES.get(d.get("type"))
            if field and d.get(field) is not None:
                d[field] = _times(d[field], f)
            filt = d.get("filter_cfg")
            if isinstance(filt, dict):
                for k in ("min_size", "bbox_min_size"):
                    if filt.get(k):
                        filt[k] = max(1, int(round(filt[k] * f)))
    return f


def _iters(n: int, fraction: float) -> int:
    return max(1, int(math.ceil(n * fraction)))


def shorten(cfg, fraction: float, train_sets: list[tuple[list[dict], int]]) -> None:
    """The schedule cut to `fraction`, its shape kept (module doc). `train_sets`: each training
    annotation file's dataset configs and image count (the data check's), for an epoch-based one."""
    loop = cfg.train_cfg
    by_iter = loop.get("max_iters") is not None
    if by_iter:
        n = _iters(loop.max_iters, fraction)
        loop.max_iters = n
        if loop.get("val_interval"):
            loop.val_interval = min(n, _iters(loop.val_interval, fraction))
        ckpt = cfg.get("default_hooks", {}).get("checkpoint")
        if ckpt and ckpt.get("interval"):
            ckpt.interval = min(n, _iters(ckpt.interval, fraction))
        for h in cfg.get("custom_hooks", []):
            if h.get("type") == "PreciseBNHook":
                h["num_iters"] = _iters(h.get("num_iters", 200), fraction)
    else:
        for configs, images in train_sets:
            for d in configs:
                d["indices"] = _iters(images, fraction)
    for s in cfg.get("param_scheduler") or []:
        if s.get("by_epoch", True) and not by_iter:
            continue  # epochs are kept
        for k in ("begin", "end"):
            if isinstance(s.get(k), int) and s[k] > 0:
                s[k] = _iters(s[k], fraction)
        if isinstance(s.get("end"), int):
            s["end"] = schedule.ramp_end(s, s["end"])  # a 1-step warm-up would freeze the lr
        if s.get("milestones"):
            s["milestones"] = [_iters(m, fraction) for m in s["milestones"]]


def describe_scale(cfg) -> str:
    """'<train scales> train, <test> test' of the config as it will run."""
    train = [d.get(_RESIZES[d["type"]]) for d in walk(cfg.get("train_dataloader"))
             if d.get("type") in _RESIZES]
    tw, th = scored_scale(cfg)
    return f"{_fmt(train[0]) if train else '?'} train, {tw}x{th} test"


def _fmt(s: Any) -> str:
    if isinstance(s, (list, tuple)) and len(s) == 2 and all(isinstance(v, int) for v in s):
        return f"{s[0]}x{s[1]}"
    if isinstance(s, (list, tuple)) and s:
        return f"{_fmt(s[0])}..{_fmt(s[-1])}"
    return str(s)


def apply(cfg, scale: tuple[int, int] | None, fraction: float | None, quick: bool,
          train_sets: list[tuple[list[dict], int]]) -> dict[str, Any] | None:
    """The options onto `cfg`; the record's `quick` section (None when nothing was asked)."""
    if quick:
        tw, th = scored_scale(cfg)
        scale = scale or (max(16, round(tw * QUICK_FACTOR)), max(16, round(th * QUICK_FACTOR)))
        fraction = fraction if fraction is not None else QUICK_FRACTION
    if scale is None and fraction is None:
        return None
    if fraction is not None and not 0 < fraction <= 1:
        raise UnmixError(f"--fraction {fraction}: expected a number in (0, 1]")
    factor = rescale(cfg, scale) if scale is not None else 1.0
    if fraction is not None:
        shorten(cfg, fraction, train_sets)
    return {"quick": quick, "scale": list(scale) if scale else None, "factor": round(factor, 4),
            "fraction": fraction}
