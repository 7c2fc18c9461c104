"""The one schedule mistake mmengine 0.10 does not catch: a warm-up over a single step.

mmengine's `LinearLR` sets `start_factor` x lr at its first step and moves towards `end_factor`
only on steps inside [begin, end). With `end - begin == 1` it never takes a second step, so the lr
stays at `start_factor` x (0.001x for mmdet's warm-ups) for the whole run, after the warm-up as
well: the shortened schedules of our earlier smoke options did exactly that. A run asking for it
is refused before it starts; a shortened schedule keeps every warm-up at least 2 steps long
(`MIN_WARMUP`), which is a 1-step warm-up: start_factor at step 0, the full lr from step 1 on.
"""
from __future__ import annotations

from typing import Any

from unmix.core.errors import Refused

MIN_WARMUP = 2
_RAMPS = ("LinearLR", "LinearParamScheduler", "LinearMomentum")


def frozen_ramps(schedulers: Any) -> list[str]:
    """A line per linear ramp over a single step (its value never leaves its start)."""
    out = []
    for i, s in enumerate(schedulers or []):
        if not isinstance(s, dict) or s.get("type") not in _RAMPS:
            continue
        begin, end = s.get("begin", 0), s.get("end")
        start, stop = s.get("start_factor", 1.0 / 3), s.get("end_factor", 1.0)
        if isinstance(end, int) and end - begin == 1 and start != stop:
            unit = "epoch" if s.get("by_epoch", True) else "iteration"
            out.append(f"param_scheduler.{i}: a {s['type']} from {start}x over one {unit} "
                       f"(begin {begin}, end {end}) never leaves {start}x in mmengine: the lr stays "
                       f"{start}x for the whole run")
    return out


def check(cfg, source: str) -> None:
    """Refuse a config whose warm-up would freeze its lr (module doc); `source` names the config."""
    bad = frozen_ramps(cfg.get("param_scheduler"))
    if bad:
        raise Refused(f"{source}: {bad[0]}; make it end at begin + {MIN_WARMUP} or later, or drop it")


def ramp_end(s: dict, end: int) -> int:
    """`end` for a scheduler `s`, kept at least MIN_WARMUP steps after its begin if it is a ramp."""
    if s.get("type") in _RAMPS:
        return max(end, s.get("begin", 0) + MIN_WARMUP)
    return end
