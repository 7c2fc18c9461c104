"""Files: written so that a crash never leaves a half-written or lost file (temp file, then
rename), and their sha256."""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(dst: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `dst`; on success it replaces `dst` atomically.

    On any exception the temporary file is removed and `dst` is left as it was.
    """
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, dst)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(dst: str | os.PathLike, text: str) -> None:
    with atomic_path(dst) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(dst: str | os.PathLike, data: bytes) -> None:
    with atomic_path(dst) as tmp:
        tmp.write_bytes(data)


def torch_save(obj: object, dst: str | os.PathLike) -> None:
    """`torch.save` through a temp file, so an interrupted save keeps the previous checkpoint."""
    import torch

    with atomic_path(dst) as tmp:
        torch.save(obj, tmp)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file's bytes, read in `chunk`-byte blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
