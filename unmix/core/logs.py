"""The one work-dir logger: timestamped lines to a log file users can read later, and to stderr.

    with work_dir_log(work_dir, "knn") as log:      # work_dir/knn.log + stderr, closed at exit
        log.info("...")
    log = open_log(work_dir / "train.log", "unmix.pretrain.<dir>")   # for a whole run; close_log()
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Iterator

from unmix.core import files

DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def close_log(log: logging.Logger) -> None:
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()


def open_log(path: str | os.PathLike | None, name: str, stderr: bool = True,
             datefmt: str = DATE_FORMAT) -> logging.Logger:
    """Logger `name` writing INFO lines to `path` (None: no file) and, with `stderr`, to stderr.
    Handlers it had from an earlier run are closed first, so a rerun in one process never writes
    into the previous run's file. With neither a file nor stderr it logs nowhere."""
    log = logging.getLogger(name)
    log.setLevel(logging.INFO)
    log.propagate = False
    close_log(log)
    handlers: list[logging.Handler] = []
    if path is not None:
        files.make_dir(Path(path).parent)
        with files.writing(path):
            handlers.append(logging.FileHandler(path, encoding="utf-8"))
    if stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    fmt = logging.Formatter("%(asctime)s %(message)s", datefmt)
    for h in handlers or [logging.NullHandler()]:
        h.setFormatter(fmt)
        log.addHandler(h)
    return log


@contextlib.contextmanager
def work_dir_log(work_dir: str | os.PathLike, name: str) -> Iterator[logging.Logger]:
    """A logger writing to `work_dir/<name>.log` and to stderr, for the length of a command."""
    work_dir = Path(work_dir)
    log = open_log(work_dir / f"{name}.log", f"unmix.{name}.{work_dir.resolve()}")
    try:
        yield log
    finally:
        close_log(log)
