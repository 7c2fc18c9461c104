"""SIGTERM handled as Ctrl-C: what slurm (pre-emption, time limit), `kill` and torchrun's agent
send is raised as a `Terminated` KeyboardInterrupt, so every command's interrupt path (record
`interrupted`, checkpoints kept, resumable) runs for it too.

    with sigterm_as_interrupt():   # unmix.cli wraps every command in this
        ...

Only the process that installed the handler keeps it: a forked child (a DataLoader worker,
mmdet's `eval_map` pool) gets SIGTERM's default back at fork. Otherwise `Pool.terminate()`
raises in a worker that holds the pool's queue lock and the parent's join waits forever.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Iterator


class Terminated(KeyboardInterrupt):
    """A KeyboardInterrupt raised by SIGTERM; `how` names the signal for the record."""

    how = "SIGTERM"


_installed_in: set[int] = set()  # pids whose SIGTERM handler is ours (or ours, now ignoring)


def _raise(signum, frame) -> None:
    # Further SIGTERMs while the interrupt path writes its record are ignored: the first one
    # is already being handled.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated()


def _default_in_child() -> None:
    if _installed_in:
        _installed_in.clear()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


os.register_at_fork(after_in_child=_default_in_child)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside, SIGTERM raises `Terminated`; the previous handler is restored on exit. Only the
    main thread can install handlers; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise)
    pid = os.getpid()
    nested = pid in _installed_in
    _installed_in.add(pid)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if not nested:
            _installed_in.discard(pid)
