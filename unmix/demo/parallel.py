"""Independent demo stages side by side: one pool of fresh processes, each task with its share of the cores.

A worker is a spawned interpreter whose thread policy (unmix.core.threads) is set before torch
starts (passive OpenMP wait); each task then runs `Task.threads` torch threads. A task starts as
soon as the tasks it comes `after` have finished and its threads fit in the free cores, so no core
waits for a whole stage to end (the demo's kNN and conversion of one encoder run while the other
still pretrains; its fine-tuning runs follow at once). Among ready tasks the list order decides.
A worker's console output goes to the task's own log file: two progress bars on one terminal would
be unreadable. `jobs == 1` runs the tasks one by one in this process, in list order, printing as
before. The same task with the same thread count computes the same numbers either way
(tests/test_demo.py); the records say the thread count (`env.threads`).
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
    after: tuple[str, ...] = ()  # names of tasks whose outputs this one reads
    threads: int = 1            # torch threads (= cores) it runs with in a worker
    result: Any = None
    started: float = 0.0        # time.time() when it was handed to a worker
    wall_s: float = 0.0
    cpu_s: float = 0.0
    extra: dict = field(default_factory=dict)


def check_order(tasks: list[Task]) -> None:
    """Names are unique and every `after` names an earlier task (list order is a valid order)."""
    seen: set[str] = set()
    for t in tasks:
        missing = [a for a in t.after if a not in seen]
        if t.name in seen or missing:
            raise ValueError(f"task {t.name!r}: duplicate name or `after` not listed before it: {missing}")
        seen.add(t.name)


def startable(pending: list[Task], finished: set[str], running: list[Task], cores: int,
              jobs: int) -> list[Task]:
    """The pending tasks to start now, in list order: every `after` finished, at most `jobs` running,
    their threads within `cores` (a task wider than the machine still runs, alone)."""
    free, slots, out = cores - sum(t.threads for t in running), jobs - len(running), []
    for t in pending:
        if slots <= 0:
            break
        if all(a in finished for a in t.after) and (t.threads <= free or (free == cores and not out)):
            out.append(t)
            free, slots = free - t.threads, slots - 1
    return out


def estimate(pending: list[Task], running: list[tuple[Task, float]], duration: Callable[[Task], float],
             cores: int, jobs: int) -> dict[str, float]:
    """Seconds from now until each task ends, scheduled as `run_tasks` does: `pending` tasks take
    `duration(task)` each, `running` ones the seconds left given. An `after` in neither list has
    finished already."""
    ends = {t.name: left for t, left in running}
    finished_before = {a for t in pending for a in t.after} - set(ends) - {t.name for t in pending}
    active, todo, now = [t for t, _ in running], list(pending), 0.0
    while todo or active:
        finished = finished_before | {n for n, end in ends.items() if end <= now}
        for t in startable(todo, finished, active, cores, jobs):
            todo.remove(t)
            active.append(t)
            ends[t.name] = now + duration(t)
        if not active:
            raise ValueError(f"tasks wait on each other: {[t.name for t in todo]}")
        now = min(ends[t.name] for t in active)
        active = [t for t in active if ends[t.name] > now]
    return ends


def cpu_seconds() -> float:
    """This process's CPU seconds (not its children's)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def wait_for_workers(timeout: float = 60.0) -> None:
    """Join the pools' finished workers, so that RUSAGE_CHILDREN holds their CPU time."""
    for proc in mp.active_children():
        proc.join(timeout)


def _init_worker() -> None:
    from unmix.core.threads import apply

    apply(1)  # before the task's module imports torch: the passive wait holds; _call sets the count


def _call(fn: Callable[..., Any], args: tuple, log: Path | None,
          threads: int | None) -> tuple[Any, float, float]:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    t, c = time.time(), cpu_seconds()
    if log is None:
        return fn(*args), time.time() - t, cpu_seconds() - c
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
    return result, time.time() - t, cpu_seconds() - c


def _collect(task: Task, fut: cf.Future) -> Task:
    try:
        task.result, task.wall_s, task.cpu_s = fut.result()
    except UnmixError as e:
        raise UnmixError(f"{task.name}: {e} (log: {task.log})") from None
    except cf.process.BrokenProcessPool:
        raise UnmixError(f"{task.name}: its worker process died (log: {task.log})") from None
    except Exception as e:  # a bug: keep its traceback, say where the task's output is
        e.add_note(f"in demo task {task.name!r}; its output: {task.log}")
        raise
    return task


def run_tasks(tasks: list[Task], jobs: int, cores: int,
              on_start: Callable[[Task], None] | None = None) -> Iterator[Task]:
    """Run `tasks` (list order respects every `after`), at most `jobs` at once within `cores`;
    call `on_start` as each starts and yield each as it finishes (result, wall and CPU seconds
    filled in). A failed task stops the rest and raises, naming
    its log file."""
    check_order(tasks)
    if jobs <= 1:
        for task in tasks:
            task.started = time.time()
            if on_start:
                on_start(task)
            task.result, task.wall_s, task.cpu_s = _call(task.fn, task.args, None, None)
            yield task
        return
    ctx = mp.get_context("spawn")  # fresh interpreters: the thread policy holds fully, nothing forked mid-OpenMP
    pending, finished, running = list(tasks), set(), {}
    pool = cf.ProcessPoolExecutor(max_workers=max(1, min(jobs, len(tasks))), mp_context=ctx,
                                  initializer=_init_worker)
    try:
        while True:
            for t in startable(pending, finished, list(running.values()), cores, jobs):
                pending.remove(t)
                t.started = time.time()
                running[pool.submit(_call, t.fn, t.args, t.log, t.threads)] = t
                if on_start:
                    on_start(t)
            if not running:
                break
            futs, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for fut in futs:  # the caller hears of each at once; the next start follows its reply
                task = _collect(running.pop(fut), fut)
                finished.add(task.name)
                yield task
    except BaseException:
        for fut in running:
            fut.cancel()
        pool.shutdown(wait=True)  # the running tasks end before the error leaves (their logs complete)
        raise
    # every result is in: the workers' interpreters wind down while the caller goes on (seconds each)
    pool.shutdown(wait=False)
