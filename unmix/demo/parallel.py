"""Independent demo stages side by side: a pool of fresh processes, each with its share of the cores.

A worker is a spawned interpreter whose thread policy (unmix.core.threads) is set before torch
starts, so each runs `threads` torch threads with a passive OpenMP wait. Its console output goes to
the task's own log file: two pretraining bars on one terminal would be unreadable. `jobs == 1` runs
the tasks one by one in this process, printing as before. The same task with the same thread
count computes the same numbers either way (tests/test_demo.py); the records say the thread count
(`env.threads`).
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from unmix.core.errors import UnmixError


@dataclass
class Task:
    name: str
    fn: Callable[..., Any]      # a module-level function (pickled by reference)
    args: tuple = ()
    log: Path | None = None     # where the worker's stdout/stderr go
    result: Any = None
    wall_s: float = 0.0
    cpu_s: float = 0.0
    extra: dict = field(default_factory=dict)


def _cpu_seconds() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _init_worker(threads: int) -> None:
    from unmix.core.threads import apply

    apply(threads)  # before the task's module imports torch


def _call(fn: Callable[..., Any], args: tuple, log: Path | None) -> tuple[Any, float, float]:
    t, c = time.time(), _cpu_seconds()
    if log is None:
        return fn(*args), time.time() - t, _cpu_seconds() - c
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush(), sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "a") as f:
        os.dup2(f.fileno(), 1), os.dup2(f.fileno(), 2)
        try:
            result = fn(*args)
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            os.close(saved[0]), os.close(saved[1])
    return result, time.time() - t, _cpu_seconds() - c


def run_tasks(tasks: list[Task], jobs: int, threads: int) -> Iterator[Task]:
    """Run `tasks`, at most `jobs` at once with `threads` torch threads each; yield each as it
    finishes (result, wall and CPU seconds filled in). A failed task stops the rest and raises,
    naming its log file."""
    if jobs <= 1:
        for task in tasks:
            task.result, task.wall_s, task.cpu_s = _call(task.fn, task.args, None)
            yield task
        return
    ctx = mp.get_context("spawn")  # fresh interpreters: the thread policy holds fully, nothing forked mid-OpenMP
    with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker,
                                initargs=(threads,)) as pool:
        futures = {pool.submit(_call, t.fn, t.args, t.log): t for t in tasks}
        try:
            for fut in cf.as_completed(futures):
                task = futures[fut]
                try:
                    task.result, task.wall_s, task.cpu_s = fut.result()
                except UnmixError as e:
                    raise UnmixError(f"{task.name}: {e} (log: {task.log})") from None
                except cf.process.BrokenProcessPool:
                    raise UnmixError(f"{task.name}: its worker process died (log: {task.log})") from None
                except Exception as e:  # a bug: keep its traceback, say where the task's output is
                    e.add_note(f"in demo task {task.name!r}; its output: {task.log}")
                    raise
                yield task
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
