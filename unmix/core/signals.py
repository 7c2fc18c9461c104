"""SIGTERM handled as Ctrl-C: what slurm (pre-emption, time limit), `kill` and torchrun's agent
send is raised as a `Terminated` KeyboardInterrupt, so every command's interrupt path (record
`interrupted`, checkpoints kept, resumable) runs for it too.

    with sigterm_as_interrupt():   # unmix.cli wraps every command in this
        ...
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator


class Terminated(KeyboardInterrupt):
    """A KeyboardInterrupt raised by SIGTERM; `how` names the signal for the record."""

    how = "SIGTERM"


def _raise(signum, frame) -> None:
    # Further SIGTERMs while the interrupt path writes its record are ignored: the first one
    # is already being handled.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside, SIGTERM raises `Terminated`; the previous handler is restored on exit. Only the
    main thread can install handlers; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
