"""`unmix sweep SPEC.yaml`: checkpoints x protocols x BN modes x seeds, one `unmix finetune` each.

SPEC (YAML): the schema is `unmix sweep --help` (transfer/detection/arguments.py SWEEP_SCHEMA).

A cell whose `result.json` says finished is skipped; a failed cell is recorded (its result.json
says failed, with the error) and the sweep goes on; an interrupted cell (Ctrl-C, SIGTERM: status
`interrupted`) resumes from its newest loadable checkpoint when the sweep is run again.

A label names a directory under WORK_ROOT, so it must be one plain name: '/', '\\' and '..' are
refused (a label such as '../x' or '/etc' would place cells outside the work root).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

from unmix.core import files, records
from unmix.core.errors import UnmixError
from transfer.detection import arguments, checkpoints, protocols

SPEC_KEYS = {"work_root", "data_root", "checkpoints", "protocols", "bn", "seeds", "cfg_options"}


def load_spec(path: str | Path) -> dict[str, Any]:
    import yaml

    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UnmixError(f"{path}: no such sweep spec") from None
    except yaml.YAMLError as e:
        raise UnmixError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
    return validate_spec(spec, path)


def validate_spec(spec: Any, path: str | Path = "<spec>") -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise UnmixError(f"{path}: a sweep spec is a mapping with checkpoints and protocols")
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise UnmixError(f"{path}: unknown keys {', '.join(unknown)} (allowed: {', '.join(sorted(SPEC_KEYS))})")
    for key in ("checkpoints", "protocols"):
        if not spec.get(key) or not isinstance(spec[key], list):
            raise UnmixError(f"{path}: '{key}' must be a non-empty list")
    for name in spec["protocols"]:
        if name not in protocols.PROTOCOLS:
            raise UnmixError(f"{path}: unknown protocol {name!r} (choose from {', '.join(protocols.PROTOCOLS)})")
    for mode in spec.get("bn") or []:
        if mode not in protocols.BN_MODES:
            raise UnmixError(f"{path}: unknown BN mode {mode!r} (choose from {', '.join(protocols.BN_MODES)})")
    spec = dict(spec)
    spec["checkpoints"] = [_checkpoint_entry(c, path) for c in spec["checkpoints"]]
    labels = [c["label"] for c in spec["checkpoints"]]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise UnmixError(f"{path}: checkpoint labels must be unique, repeated: {', '.join(dup)}")
    spec.setdefault("work_root", "work_dirs/sweep")
    spec["seeds"] = [int(s) for s in spec.get("seeds") or [0]]
    return spec


def _checkpoint_entry(entry: Any, path: str | Path) -> dict[str, str]:
    if isinstance(entry, str):
        entry = {"path": entry}
    if not (isinstance(entry, dict) and "path" in entry):
        raise UnmixError(f"{path}: a checkpoint entry is a path, 'none', or {{label, path}}; got {entry!r}")
    p = str(entry["path"])
    label = entry.get("label")
    if label is None or label == "":
        label = "random-init" if p.lower() == "none" else records.default_label(p)
    files.check_component(str(label), f"{path}: checkpoint label")
    return {"label": str(label), "path": p}


def cells(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    root = Path(spec["work_root"])
    for ck in spec["checkpoints"]:
        for proto in spec["protocols"]:
            for bn in spec.get("bn") or [protocols.get(proto)["default_bn"]]:
                for seed in spec["seeds"]:
                    rel = Path(ck["label"], proto, bn, f"seed{seed}")
                    files.inside(root, rel)  # labels are checked; this holds whatever they become
                    yield {"checkpoint": ck["path"], "label": ck["label"], "protocol": proto,
                           "bn": bn, "seed": seed, "work_dir": root / rel}


def _data_root(spec: dict[str, Any], protocol: str) -> str | None:
    dr = spec.get("data_root")
    if isinstance(dr, dict):
        return dr.get(protocols.get(protocol)["dataset"])
    return dr


def sweep(spec: dict[str, Any], finetune_fn: Callable[..., dict] | None = None,
          log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)) -> dict[str, list]:
    """Run every cell not yet finished. Returns {'finished', 'skipped', 'failed'} work dirs."""
    if finetune_fn is None:
        from transfer.detection.finetune import finetune as finetune_fn
    out: dict[str, list] = {"finished": [], "skipped": [], "failed": []}
    todo = list(cells(spec))
    for i, cell in enumerate(todo, 1):
        wd = cell["work_dir"]
        tag = f"[{i}/{len(todo)}] {cell['label']} {cell['protocol']} bn={cell['bn']} seed={cell['seed']}"
        if records.is_finished(wd):
            log(f"{tag}: finished before, skipped ({wd})")
            out["skipped"].append(str(wd))
            continue
        resume = checkpoints.newest_loadable(wd, lambda m, t=tag: log(f"{t}: not resuming from {m}")) is not None
        log(f"{tag}: {'resuming' if resume else 'running'} in {wd}")
        try:
            rec = finetune_fn(cell["checkpoint"], cell["protocol"], bn=cell["bn"], seed=cell["seed"],
                              work_dir=wd, data_root=_data_root(spec, cell["protocol"]),
                              cfg_options=dict(spec.get("cfg_options") or {}), resume=resume,
                              label=cell["label"])
        except KeyboardInterrupt:
            log(f"{tag}: interrupted; run the sweep again to resume")
            raise
        except Exception as err:  # recorded, and the grid goes on
            _record_failure(cell, err)
            log(f"{tag}: FAILED: {type(err).__name__}: {' '.join(str(err).split())[:300]}")
            out["failed"].append(str(wd))
            continue
        metrics = ", ".join(f"{k}={v:.2f}" for k, v in list(rec.get("metrics", {}).items())[:4])
        log(f"{tag}: finished {metrics}")
        out["finished"].append(str(wd))
    log(f"sweep: {len(out['finished'])} finished, {len(out['skipped'])} skipped, "
        f"{len(out['failed'])} failed")
    return out


def _record_failure(cell: dict[str, Any], err: BaseException) -> None:
    """finetune() writes its own failed record; this covers errors before it could."""
    path = Path(cell["work_dir"]) / records.RESULT_NAME
    try:
        if records.load(path)["status"] in ("failed", "finished"):
            return  # finetune's own record, or a finished run that must stay
    except UnmixError:
        pass
    rec = records.new_record(
        "detection", {"label": cell["label"], "path": cell["checkpoint"], "sha256": None,
                      "format": None},
        {"name": cell["protocol"], "task": "detection", "seed": cell["seed"],
         "bn_requested": cell["bn"], "bn_used": None})
    records.fail(rec, err)
    Path(cell["work_dir"]).mkdir(parents=True, exist_ok=True)
    records.write(rec, cell["work_dir"])


def refuse_cifar_stems(spec: dict[str, Any]) -> None:
    """Every checkpoint's stem, read before the first cell runs: a CIFAR stem stops the sweep
    (exit 1, nothing written) instead of failing each of its cells. A checkpoint that cannot be
    read is left to its cells, which record why."""
    from transfer.convert.conversion import convert_file

    for ck in spec["checkpoints"]:
        path = ck["path"]
        if path.lower() == "none" or not Path(path).is_file():
            continue
        try:
            stem = convert_file(path).stem
        except UnmixError:
            continue
        protocols.refuse_cifar_stem(stem, path)


add_arguments = arguments.sweep  # the options, in a module without torch (fast --help)


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    if args.dry_run:
        for cell in cells(spec):
            state = "finished" if records.is_finished(cell["work_dir"]) else "to run"
            print(f"{cell['label']}\t{cell['protocol']}\t{cell['bn']}\t{cell['seed']}\t{state}\t{cell['work_dir']}")
        return 0
    refuse_cifar_stems(spec)
    out = sweep(spec)
    return 1 if out["failed"] else 0
