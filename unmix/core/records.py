"""The one result-record format: every evaluation (detection fine-tuning, kNN, linear, flatness)
writes a `result.json` with this schema, and `unmix report` reads nothing else.

Schema `unmix.result/1` (documented in README.md, "Result records"):

    {
      "schema": "unmix.result/1",
      "kind": "detection" | "knn" | "linear" | "flatness",
      "status": "finished" | "failed" | "running",
      "error": null | "one line",
      "checkpoint": {"label", "path", "sha256", "format", "arch", "stem",
                     "pretrain": {"method", "unmix", "epochs", "dataset"} | null},
      "protocol": {"name", "task", "dataset", "train_split", "test_split", "seed",
                   "bn_requested", "bn_used", "iterations", "epochs",
                   "batch_size_total", "lr", ...protocol-specific keys},
      "metrics": {"AP50": 81.2, ...},        # percentages (0-100), flat, floats
      "details": {...},                       # per-class AP, curves: free-form, JSON-able
      "env": {"unmix_commit", "python", "torch", "torchvision", "mmcv", "mmcv_ops",
              "mmengine", "mmdet", "device", "world_size"},
      "wall_time_s": 12.3,
      "started": "ISO-8601", "finished": "ISO-8601" | null
    }
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any

from unmix.core import files
from unmix.core.env import env_info
from unmix.core.errors import UnmixError

SCHEMA = "unmix.result/1"
KINDS = ("detection", "knn", "linear", "flatness")
STATUSES = ("finished", "failed", "running")
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


def is_finished(work_dir: str | os.PathLike) -> bool:
    """True when work_dir holds a valid record of a finished run (what `unmix sweep` skips)."""
    path = Path(work_dir) / RESULT_NAME
    if not path.exists():
        return False
    try:
        return load(path)["status"] == "finished"
    except UnmixError:
        return False
