"""The one result-record format: every evaluation (detection fine-tuning, kNN, linear, flatness)
writes a `result.json` with this schema, and `unmix report` reads nothing else.

Schema `unmix.result/1` (documented in README.md, "Result records"):

    {
      "schema": "unmix.result/1",
      "kind": "detection" | "knn" | "linear" | "flatness",
      "status": "finished" | "failed" | "interrupted" | "running",
      "error": null | "one line",
      "checkpoint": {"label", "path", "sha256", "format", "arch", "stem",
                     "pretrain": {"method", "unmix", "epochs", "dataset"} | null},
      "protocol": {"name", "task", "dataset", "train_split", "test_split", "seed",
                   "bn_requested", "bn_used", "iterations", "epochs",
                   "batch_size_total", "lr", ...protocol-specific keys},
      "metrics": {"AP50": 81.2, ...},        # percentages (0-100), flat, floats
      "details": {...},                       # per-class AP, curves: free-form, JSON-able
      "env": {"unmix_commit", "python", "torch", "torchvision", "mmcv", "mmcv_ops",
              "mmengine", "mmdet", "device", "world_size", "threads"},
      "wall_time_s": 12.3,
      "started": "ISO-8601", "finished": "ISO-8601" | null
    }
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import re
from pathlib import Path
from typing import Any

from unmix.core import files
from unmix.core.env import env_info
from unmix.core.errors import UnmixError

SCHEMA = "unmix.result/1"
KINDS = ("detection", "knn", "linear", "flatness")
# interrupted: stopped by Ctrl-C or SIGTERM (a cluster's pre-emption); resumable where the
# command resumes (finetune --resume, the sweep), rerun otherwise.
STATUSES = ("finished", "failed", "interrupted", "running")
REQUIRED = ("schema", "kind", "status", "checkpoint", "protocol", "metrics", "env")
RESULT_NAME = "result.json"


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def new_record(kind: str, checkpoint: dict[str, Any], protocol: dict[str, Any],
               env: dict[str, Any] | None = None) -> dict[str, Any]:
    """A record in status 'running'; fill `metrics` and call `finish` or `fail`."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return {
        "schema": SCHEMA,
        "kind": kind,
        "status": "running",
        "error": None,
        "checkpoint": checkpoint,
        "protocol": protocol,
        "metrics": {},
        "details": {},
        "env": env if env is not None else env_info(),
        "wall_time_s": None,
        "started": now(),
        "finished": None,
    }


def _elapsed(record: dict[str, Any]) -> float:
    start = _dt.datetime.fromisoformat(record["started"])
    return round((_dt.datetime.now(_dt.timezone.utc) - start).total_seconds(), 3)


def finish(record: dict[str, Any], metrics: dict[str, float], wall_time_s: float | None = None) -> dict:
    record["metrics"] = {k: float(v) for k, v in metrics.items()}
    record["status"] = "finished"
    record["error"] = None
    record["finished"] = now()
    record["wall_time_s"] = wall_time_s if wall_time_s is not None else _elapsed(record)
    return record


def fail(record: dict[str, Any], error: BaseException | str) -> dict[str, Any]:
    msg = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    record["status"] = "failed"
    record["error"] = " ".join(str(msg).split())[:2000]
    record["finished"] = now()
    record["wall_time_s"] = _elapsed(record)
    return record


def interrupt(record: dict[str, Any], how: str = "KeyboardInterrupt") -> dict[str, Any]:
    """Mark a record stopped from outside (Ctrl-C, SIGTERM): not a failure of the run itself."""
    record["status"] = "interrupted"
    record["error"] = f"interrupted ({how})"
    record["finished"] = now()
    record["wall_time_s"] = _elapsed(record)
    return record


def stop(record: dict[str, Any], error: BaseException) -> dict[str, Any]:
    """`interrupt` for a KeyboardInterrupt (SIGTERM arrives as one: `unmix.core.signals`), else
    `fail`."""
    if isinstance(error, KeyboardInterrupt):
        return interrupt(record, getattr(error, "how", None) or "KeyboardInterrupt")
    return fail(record, error)


def write_stopped(record: dict[str, Any], error: BaseException, work_dir: str | os.PathLike) -> dict:
    """Mark `record` failed or interrupted (`stop`) and write it, unless `work_dir` holds a
    finished record: a run that stopped never replaces a finished result."""
    stop(record, error)
    if not is_finished(work_dir):
        files.make_dir(work_dir)
        write(record, work_dir)
    return record


def write(record: dict[str, Any], path: str | os.PathLike) -> Path:
    """Validate, then write atomically. `path` is a file or a work dir (-> work_dir/result.json)."""
    path = Path(path)
    if path.is_dir() or path.suffix != ".json":
        path = path / RESULT_NAME
    validate(record, path)
    files.write_text(path, json.dumps(record, indent=2, sort_keys=False, default=_jsonable) + "\n")
    return path


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def validate(record: Any, path: str | os.PathLike = "<record>") -> dict[str, Any]:
    """Raise UnmixError naming `path` and the first problem found."""
    if not isinstance(record, dict):
        raise UnmixError(f"{path}: not a result record (top level is {type(record).__name__}, "
                         "expected an object)")
    if record.get("schema") != SCHEMA:
        raise UnmixError(f"{path}: not an unmix result record (schema is {record.get('schema')!r}, "
                         f"expected {SCHEMA!r})")
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise UnmixError(f"{path}: malformed result record, missing keys: {', '.join(missing)}")
    if record["kind"] not in KINDS:
        raise UnmixError(f"{path}: unknown record kind {record['kind']!r} (expected one of {KINDS})")
    if record["status"] not in STATUSES:
        raise UnmixError(f"{path}: unknown status {record['status']!r} (expected one of {STATUSES})")
    for key in ("checkpoint", "protocol", "metrics", "env"):
        if not isinstance(record[key], dict):
            raise UnmixError(f"{path}: malformed result record, {key!r} must be an object")
    for name, value in record["metrics"].items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise UnmixError(f"{path}: metric {name!r} is {value!r}, expected a number")
    return record


def load(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UnmixError(f"{path}: no such result record") from None
    except UnicodeDecodeError:
        raise UnmixError(f"{path}: not a result record (not UTF-8 text)") from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        raise UnmixError(f"{path}: malformed JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    return validate(record, path)


def find(roots: list[str | os.PathLike]) -> list[Path]:
    """Every result.json under the given directories (or the given files themselves), sorted."""
    found: list[Path] = []
    for root in map(Path, roots):
        if root.is_file():
            found.append(root)
        elif root.is_dir():
            found.extend(sorted(root.rglob(RESULT_NAME)))
        else:
            raise UnmixError(f"{root}: no such file or directory")
    return found


def refuse_finished(work_dir: str | os.PathLike, force: bool = False,
                    what: str = "--work-dir") -> None:
    """The one rule for reruns: a finished record is replaced only with `--force`. Call it
    before anything is written to `work_dir`."""
    path = Path(work_dir) / RESULT_NAME
    if force or not is_finished(work_dir):
        return
    metrics = load(path)["metrics"]
    shown = ", ".join(f"{k} {v:.2f}" for k, v in list(metrics.items())[:3])
    raise UnmixError(f"{path}: a finished run is recorded here ({shown or 'no metrics'}); "
                     f"pass --force to replace it, or choose another {what}")


# Checkpoint file names that say nothing of what was trained (a run directory's latest.pth).
_GENERIC = re.compile(r"^(latest|last|final|checkpoint|ckpt|model|model_best|best|weights|"
                      r"epoch|iter|step)([_-]?\d+)?$", re.IGNORECASE)


def default_label(path: str | os.PathLike) -> str:
    """A checkpoint's label when none is given: its file name without extensions, or for a
    generic name (latest.pth, epoch_0200.pth, checkpoint.pth.tar) its run directory's name
    first, so two runs' `latest.pth` never share a label."""
    p = Path(path)
    stem = p.name.split(".")[0] or p.name
    if not _GENERIC.match(stem):
        return stem
    run = Path(os.path.abspath(p)).parent.name
    if not run:
        return stem
    return run if stem.lower() in ("latest", "last", "final") else f"{run}-{stem}"


def run_name(label: str, sha256: str | None, *parts: str) -> str:
    """A default work-dir name, unique per checkpoint: the label (made a plain name), the first
    8 hex digits of the checkpoint's sha256, then `parts` (dataset, protocol, ...)."""
    head = files.safe_component(label) + (f"-{sha256[:8]}" if sha256 else "")
    return "_".join([head, *(files.safe_component(str(p)) for p in parts)])


def is_finished(work_dir: str | os.PathLike) -> bool:
    """True when work_dir holds a valid record of a finished run (what `unmix sweep` skips)."""
    path = Path(work_dir) / RESULT_NAME
    if not path.exists():
        return False
    try:
        return load(path)["status"] == "finished"
    except UnmixError:
        return False
