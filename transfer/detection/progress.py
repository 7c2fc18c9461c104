"""A progress line at least every few seconds during fine-tuning.

mmengine's LoggerHook writes every `interval` iterations (50 in mmdet's configs): a slow CPU run,
or the first minutes of any run, prints nothing for minutes. This hook writes one line, on time
rather than on an iteration count: the iteration, the loss, the lr and the ETA (mean time per
iteration of this run so far times the iterations left, unmix.core.eta), to the runner's logger
(stderr and the work dir's log), on process 0 only.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from mmdet.registry import HOOKS
from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from unmix.core.eta import format_duration, remaining_s

DEFAULT_INTERVAL_S = 10.0


def _scalar(value: Any) -> float | None:
    try:
        return float(value.detach().float().mean()) if hasattr(value, "detach") else float(value)
    except (TypeError, ValueError):
        return None


@HOOKS.register_module()
class ProgressHook(Hook):
    """`interval_s`: the most seconds between two lines (0: a line after every iteration)."""

    priority = "BELOW_NORMAL"  # after the optimizer and the param scheduler hooks' updates

    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = float(interval_s)
        self.clock = clock
        self.lines: list[str] = []  # what was written, for the caller (and tests)

    def before_train(self, runner) -> None:
        # A resumed run starts at runner.iter: its ETA counts only the iterations this process ran.
        self.t0 = self.last = self.clock()
        self.start_iter = runner.iter

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        now = self.clock()
        done, total = runner.iter + 1, runner.max_iters
        if now - self.last < self.interval_s and done < total:
            return
        self.last = now
        left = remaining_s(now - self.t0, done - self.start_iter, total - self.start_iter)
        loss = _scalar((outputs or {}).get("loss"))
        lrs = runner.optim_wrapper.get_lr().get("lr") or [float("nan")]
        line = (f"unmix: iter {done}/{total} ({100 * done / max(total, 1):.0f}%)"
                + (f" loss {loss:.4f}" if loss is not None else "")
                + f" lr {lrs[0]:.4g} eta {format_duration(left)}")
        self.lines.append(line)
        if is_main_process():
            runner.logger.info(line)
