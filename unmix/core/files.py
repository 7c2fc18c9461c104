"""Files: written so that a crash never leaves a half-written or lost file, and their sha256.

One rule each, used by every command:

- **Atomic writes** (`atomic_path`, `write_text`, `write_bytes`, `torch_save`, `atomic_link`):
  a temp file next to the target, renamed over it only when complete. A killed save leaves the
  old file whole; the temp file is named so the next start can recognise it (`remove_orphans`).
- **Whole directories** (`atomic_dir`): a temp directory filled, then swapped into place, so a
  failure leaves the previous directory as it was (`unmix report`).
- **Modes**: what we write gets the mode `open()` would give it (0666 / 0777 minus the umask), not
  mkstemp's private 0600, so a group can share work dirs and reports.
- **One-line errors**: an `OSError` while writing becomes an `UnmixError` naming the file and the
  cause ("No space left on device: PATH"); `check_output` refuses an output that is a directory,
  sits under a file, or is one of the command's own inputs, before any work is done.
- **Containment** (`check_component`, `safe_component`, `inside`): names taken from labels or
  specs never leave the directory they are meant for.
- **Reading checkpoints as data** (`torch_load`): `weights_only=True`, and a truncated, empty or
  code-carrying file is a one-line error naming it.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from unmix.core.errors import UnmixError

# ------------------------------------------------------------------------------------- modes


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (other threads may be
    creating files meanwhile)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _share(path: Path, directory: bool = False) -> None:
    """The mode `open()`/`mkdir()` would have given: mkstemp/mkdtemp make files private."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


# ---------------------------------------------------------------------------------- errors


def os_error(err: OSError, path: str | os.PathLike) -> UnmixError:
    """An OSError met while writing `path`, as one line: 'No space left on device: PATH'."""
    reason = os.strerror(err.errno) if err.errno else (str(err) or type(err).__name__)
    return UnmixError(f"{reason}: {path}")


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Turn an OSError inside into the one-line UnmixError naming `path`."""
    try:
        yield
    except UnmixError:
        raise
    except OSError as e:
        raise os_error(e, path) from None


# The errors of a machine, not of the program: reported in one line naming the file.
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                                errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.EEXIST})


def make_dir(path: str | os.PathLike) -> Path:
    """`mkdir -p`, with a one-line error (e.g. a parent that is a file, a read-only disk)."""
    path = Path(path)
    with writing(path):
        path.mkdir(parents=True, exist_ok=True)
    return path


def check_output(dst: str | os.PathLike, sources: Iterable[str | os.PathLike] = (),
                 option: str = "-o", directory: bool = False) -> Path:
    """Refuse, before any work, an output that cannot be written or would destroy an input.

    A file output must not be a directory; a directory output (`directory=True`) must not be a
    file; no parent may be a file; and it must not be one of `sources` (same file, also through a
    link). Returns `dst` as a Path."""
    dst = Path(dst)
    if not directory and dst.is_dir():
        raise UnmixError(f"{option} {dst}: is a directory (give a file name)")
    if directory and dst.exists() and not dst.is_dir():
        raise UnmixError(f"{option} {dst}: exists and is not a directory")
    for parent in dst.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise UnmixError(f"{option} {dst}: {parent} is a file, not a directory")
            break
    for src in sources:
        src = Path(src)
        if same_file(src, dst):
            raise UnmixError(f"{option} {dst}: is the input {src} itself; writing it would destroy "
                             "the source (choose another output)")
    return dst


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    a, b = Path(a), Path(b)
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


# ------------------------------------------------------------------------- temp-file names

_MARK = "unmix"
_HOST = re.sub(r"[^A-Za-z0-9]+", "-", socket.gethostname()).strip("-")[:40] or "host"
# .NAME.unmix-HOST-PID-RANDOM.KIND: what a killed save leaves behind, recognisable as ours.
_TEMP_RE = re.compile(rf"^\.(?P<name>.+)\.{_MARK}-(?P<host>[A-Za-z0-9-]*?)-(?P<pid>\d+)-"
                      r"[A-Za-z0-9_]+\.(?P<kind>tmp|tmpdir|old)$")


def _prefix(name: str) -> str:
    return f".{name}.{_MARK}-{_HOST}-{os.getpid()}-"


def _alive(host: str, pid: int) -> bool:
    """Could the process that made a temp file still be writing it? (Only knowable on this host.)"""
    if host != _HOST:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_orphans(directory: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Remove the temp files and directories killed saves left in `directory` (only those of
    `name` when given); restore a directory whose swap was cut (see `atomic_dir`). Returns what
    was removed. Temp files of a process still running on this host are left alone."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed: list[Path] = []
    for path in sorted(directory.iterdir()):
        m = _TEMP_RE.match(path.name)
        if not m or (name is not None and m["name"] != name) or _alive(m["host"], int(m["pid"])):
            continue
        target = directory / m["name"]
        if m["kind"] == "old" and not target.exists():
            os.replace(path, target)  # the swap was cut between its two renames: put it back
            continue
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        removed.append(path)
    return removed


# ---------------------------------------------------------------------------- atomic files


@contextlib.contextmanager
def atomic_path(dst: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `dst`; on success it replaces `dst` atomically.

    On any exception the temporary file is removed and `dst` is left as it was; an OSError
    becomes an UnmixError naming `dst` and the cause."""
    dst = Path(dst)
    with writing(dst):
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_prefix(dst.name), suffix=".tmp", dir=dst.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            _share(tmp_path)
            yield tmp_path
            os.replace(tmp_path, dst)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp_path.unlink()


def write_text(dst: str | os.PathLike, text: str) -> None:
    with atomic_path(dst) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(dst: str | os.PathLike, data: bytes) -> None:
    with atomic_path(dst) as tmp:
        tmp.write_bytes(data)


class _Writer:
    """A file wrapper that remembers the OSError of a failed write: torch.save reports a full
    disk as an anonymous RuntimeError ('unexpected pos ...')."""

    def __init__(self, f) -> None:
        self.f, self.error = f, None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self.f.flush()


def torch_save(obj: object, dst: str | os.PathLike) -> None:
    """`torch.save` through a temp file, so an interrupted save keeps the previous checkpoint."""
    import torch

    with atomic_path(dst) as tmp, open(tmp, "wb") as f:
        w = _Writer(f)
        try:
            torch.save(obj, w)
        except RuntimeError:
            if w.error is not None:
                raise w.error from None
            raise


def atomic_link(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """`dst` becomes a hard link to `src` (a copy where links are not possible), atomically."""
    src, dst = Path(src), Path(dst)
    with atomic_path(dst) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
                raise
            shutil.copyfile(src, tmp)
            _share(tmp)


# ------------------------------------------------------------------------ atomic directories


@contextlib.contextmanager
def atomic_dir(dst: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temp directory next to `dst`; on success it takes `dst`'s place.

    The old `dst` is renamed aside, the new one renamed in, then the old one removed; a crash
    between the two renames leaves the old one aside, and `remove_orphans` puts it back. On an
    exception the temp directory is removed and `dst` is untouched."""
    dst = Path(dst)
    with writing(dst):
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=_prefix(dst.name), suffix=".tmpdir", dir=dst.parent))
        try:
            _share(tmp, directory=True)
            yield tmp
            old = None
            if dst.exists():
                old = Path(tempfile.mkdtemp(prefix=_prefix(dst.name), suffix=".old", dir=dst.parent))
                os.replace(dst, old)  # an empty directory is replaced by rename(2)
            os.replace(tmp, dst)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------ containment

_SEPARATORS = ("/", "\\", "\0")


def component_problem(text: str) -> str | None:
    """Why `text` cannot be one path component (None when it can)."""
    if not text or not text.strip():
        return "is empty"
    if text in (".", ".."):
        return f"is {text!r}"
    if any(s in text for s in _SEPARATORS) or Path(text).is_absolute():
        return "contains a path separator"
    return None


def check_component(text: str, what: str) -> str:
    """`text` as a directory name, or a one-line UnmixError: no '..', no separators, no
    absolute paths (a label must never place files outside its root)."""
    problem = component_problem(str(text))
    if problem:
        raise UnmixError(f"{what} {text!r} {problem}; it names a directory, so it must be one "
                         "plain name (no '/', '\\' or '..')")
    return str(text)


def safe_component(text: str, fallback: str = "run") -> str:
    """`text` made into one plain directory name: anything but letters, digits and `._+-`
    becomes '_', and it never is '.' or '..'."""
    name = re.sub(r"[^A-Za-z0-9._+-]+", "_", str(text)).strip("_.")
    return name or fallback


def inside(root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """`path` (relative to `root`) resolved, or an UnmixError if it lies outside `root`."""
    root_r = Path(root).resolve()
    full = (root_r / path).resolve()
    if full != root_r and root_r not in full.parents:
        raise UnmixError(f"{path}: would be written outside {root}")
    return full


# ------------------------------------------------------------------------------ reading back


def torch_load(path: str | os.PathLike, safe_globals: Iterable[Any] = (), **kwargs: Any) -> Any:
    """`torch.load(path, weights_only=True, **kwargs)` with `safe_globals` allowed, and
    one-line UnmixErrors: a missing, empty, truncated or corrupt file, or one whose pickle names
    something that is not data (loading it would run code from the file)."""
    import pickle
    import zipfile

    import torch

    path = Path(path)
    if not path.is_file():
        raise UnmixError(f"{path}: no such checkpoint file")
    if path.stat().st_size == 0:
        raise UnmixError(f"{path}: empty file (a save that was cut?)")
    kwargs.setdefault("map_location", "cpu")
    try:
        with torch.serialization.safe_globals(list(safe_globals)):
            return torch.load(path, weights_only=True, **kwargs)
    except pickle.UnpicklingError as e:
        raise _unpickling(path, e) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, KeyError, IndexError,
            TypeError, AttributeError, OSError) as e:
        raise _corrupt(path, e) from None


_CODE = ("Unsupported global", "unrecognized function", "refused", "blocked")


def _unpickling(path: Path, err: BaseException) -> UnmixError:
    """torch's weights-only refusal, as one line: what the pickle names that is not data, or
    (an operand it cannot read) a corrupt file."""
    text = str(err)
    m = re.search(r"WeightsUnpickler error:(.*?)(Check the documentation|$)", text, re.S)
    why = " ".join((m[1] if m else text).split())
    why = re.sub(r"( was not an allowed global by default)?\.? Please use .*$", "", why)
    why = why.replace(" was not an allowed global by default", " is not allowed")
    if any(word in why for word in _CODE):
        return UnmixError(f"{path}: refused to load, not plain checkpoint data ({why}; loading "
                          "it could run code from the file)")
    return UnmixError(f"{path}: truncated or corrupt checkpoint ({why[:160] or type(err).__name__})")


def _corrupt(path: Path, err: BaseException) -> UnmixError:
    first = (str(err).strip().splitlines() or [type(err).__name__])[0].split(". ")[0][:160]
    return UnmixError(f"{path}: truncated or corrupt checkpoint ({type(err).__name__}: {first})")


# ------------------------------------------------------------------------------------ hashes


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file's bytes, read in `chunk`-byte blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
