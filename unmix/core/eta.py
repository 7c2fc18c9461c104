"""Remaining time of a long loop, said the same way by every command (pretraining's epochs,
fine-tuning's iterations): the mean time per step so far times the steps left."""
from __future__ import annotations


def remaining_s(elapsed_s: float, done: int, total: int) -> float | None:
    """Seconds left after `done` of `total` steps took `elapsed_s`; None before the first step."""
    if done <= 0:
        return None
    return max(total - done, 0) * elapsed_s / done


def format_duration(seconds: float | None) -> str:
    """'1h02m', '3m05s', '42s'; '?' when unknown."""
    if seconds is None:
        return "?"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m:02d}m"
    if m:
        return f"{m}m{s:02d}s"
    return f"{s}s"
