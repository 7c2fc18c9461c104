"""`unmix sweep SPEC.yaml`: checkpoints x protocols x BN modes x seeds, one `unmix finetune` each.

SPEC (YAML): the schema is `unmix sweep --help` (transfer/detection/arguments.py SWEEP_SCHEMA).

A cell whose `result.json` says finished is skipped; a failed cell is recorded (its result.json
says failed, with the error) and the sweep goes on; an interrupted cell (Ctrl-C, SIGTERM: status
`interrupted`) resumes from its newest loadable checkpoint when the sweep is run again.

A shrunk sweep (`quick`, `scale`, `fraction`: `unmix finetune --quick` and friends on every cell)
puts its cells under WORK_ROOT/VARIANT/ (VARIANT: `quick`, `scale64x48`, `quick-fraction0.1`...),
so its finished cells never make the full sweep skip a cell, nor the other way round. A cell
whose record (any status) says it ran with other quick/scale/fraction/classes settings or other
`cfg_options` than the spec asks is neither skipped nor resumed as if it were this spec's: the sweep stops before
running anything, naming it (exit 1), and `--force` re-runs such cells from scratch, replacing
their records (the rule of every command: a finished record is replaced only with --force).

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
from transfer.detection.datacheck import CLASS_MODES
from transfer.detection.quick import QUICK_FRACTION

SPEC_KEYS = {"work_root", "data_root", "checkpoints", "protocols", "bn", "seeds", "cfg_options",
             "quick", "scale", "fraction", "classes"}


def load_spec(path: str | Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The spec file, validated; `overrides` (the command line's --quick, --scale...) replace
    its keys before the check."""
    import yaml

    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UnmixError(f"{path}: no such sweep spec") from None
    except yaml.YAMLError as e:
        raise UnmixError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
    if overrides and isinstance(spec, dict):
        spec = {**spec, **overrides}
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
    spec.update(_shrink_keys(spec, path))
    return spec


def _shrink_keys(spec: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """quick, scale, fraction and classes, checked and normalised (scale a (W, H) tuple)."""
    quick = spec.get("quick") or False
    if not isinstance(quick, bool):
        raise UnmixError(f"{path}: quick: expected true or false, got {spec['quick']!r}")
    scale = spec.get("scale")
    if scale is not None:
        if not (isinstance(scale, (list, tuple)) and len(scale) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in scale)):
            raise UnmixError(f"{path}: scale: expected [W, H], two positive integers, got {scale!r}")
        scale = (int(scale[0]), int(scale[1]))
    fraction = spec.get("fraction")
    if fraction is not None:
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
            raise UnmixError(f"{path}: fraction: expected a number in (0, 1], got {fraction!r}")
        fraction = float(fraction)
    classes = spec.get("classes") or "auto"
    if not isinstance(classes, str):
        raise UnmixError(f"{path}: classes: expected auto, protocol, data or a file, got {classes!r}")
    if classes not in CLASS_MODES and not Path(classes).is_file():
        raise UnmixError(f"{path}: classes: {classes}: no such class file (or auto, protocol, data)")
    return {"quick": quick, "scale": scale, "fraction": fraction, "classes": classes}


def variant(spec: dict[str, Any]) -> str | None:
    """The directory a shrunk sweep's cells go under (None for a full sweep): one per setting,
    so a quick cell's record is never found where a full cell (or another shrink) looks."""
    parts = (["quick"] if spec.get("quick") else []) \
        + ([f"scale{spec['scale'][0]}x{spec['scale'][1]}"] if spec.get("scale") else []) \
        + ([f"fraction{spec['fraction']:g}"] if spec.get("fraction") is not None else [])
    return "-".join(parts) or None


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
    shrunk = variant(spec)
    if shrunk:
        root = root / shrunk
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


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return "x".join(str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _quick_differences(ran: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    """The record's `protocol.quick` (finetune's; None/{} for a full run) against the spec."""
    asked = {"quick": spec["quick"], "scale": list(spec["scale"]) if spec["scale"] else None,
             "fraction": spec["fraction"] if spec["fraction"] is not None
             else (QUICK_FRACTION if spec["quick"] else None)}
    have = {"quick": bool(ran.get("quick")), "scale": ran.get("scale"), "fraction": ran.get("fraction")}
    if spec["quick"] and spec["scale"] is None:
        del asked["scale"]  # --quick alone: finetune's quarter of the protocol's scale, as recorded
    out = []
    for key, want in asked.items():
        got = have[key]
        same = (got is None) == (want is None) and (
            got is None or (abs(got - want) < 1e-12 if key == "fraction" else got == want))
        if not same:
            out.append(f"{key} {_shown(got)} (the spec: {_shown(want)})")
    return out


def _as_json(value: Any) -> Any:
    """A value as a record holds it (JSON: tuples are lists), so the spec's and a record's compare."""
    import json

    return json.loads(json.dumps(value, sort_keys=True, default=repr))


def _options_difference(ran: Any, asked: Any) -> str | None:
    """The record's `protocol.cfg_options` (as finetune merged them) against the spec's."""
    have, want = _as_json(ran or {}), _as_json(asked or {})
    keys = sorted(k for k in set(have) | set(want) if have.get(k, "<unset>") != want.get(k, "<unset>"))
    if not keys:
        return None
    k = keys[0]
    more = f" and {len(keys) - 1} more" if len(keys) > 1 else ""
    return (f"cfg_options {k}={have.get(k, '<unset>')!r} (the spec: {want.get(k, '<unset>')!r}){more}")


def _classes_difference(ran: dict[str, Any], mode: str) -> str | None:
    """The record's class set (datacheck's ClassSet.record) against the spec's `classes` mode."""
    if ran.get("requested") is not None:  # a record that names the mode it was asked for
        return None if ran["requested"] == mode else f"classes {ran['requested']} (the spec: {mode})"
    source = ran.get("source")
    if source == "config":
        return None  # classes set in the config itself win under every mode
    # auto resolves to the protocol's classes or the data's, so a record says only which it got
    fits = {"auto": source in ("protocol", "data"), "protocol": source == "protocol",
            "data": source == "data"}.get(mode, source == f"file {mode}")
    return None if fits else f"classes from the {source} (the spec: {mode})"


def differences(record: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    """Where a cell's record says it ran otherwise than `spec` asks (quick, scale, fraction,
    classes, cfg_options); empty when they agree, or when the record was written before finetune resolved
    them (a failure that early ran nothing to keep)."""
    proto = record.get("protocol") or {}
    out = []
    if "quick" in proto or record.get("status") == "finished":  # finished before --quick: full
        out += _quick_differences(proto.get("quick") or {}, spec)
    if proto.get("classes"):
        diff = _classes_difference(proto["classes"], spec["classes"])
        out += [diff] if diff else []
    if "cfg_options" in proto:  # absent only in the failure records of cells that never started
        diff = _options_difference(proto["cfg_options"], spec.get("cfg_options"))
        out += [diff] if diff else []
    return out


def stale_cells(todo: list[dict[str, Any]], spec: dict[str, Any]) -> dict[str, tuple[str, list[str]]]:
    """work dir -> (record status, differences) of every cell whose record disagrees with spec."""
    out = {}
    for cell in todo:
        path = Path(cell["work_dir"]) / records.RESULT_NAME
        if not path.exists():
            continue
        try:
            rec = records.load(path)
        except UnmixError:
            continue  # unreadable: the cell runs again, as before
        diffs = differences(rec, spec)
        if diffs:
            out[str(cell["work_dir"])] = (rec["status"], diffs)
    return out


def _refuse_stale(stale: dict[str, tuple[str, list[str]]], total: int) -> None:
    wd, (status, diffs) = next(iter(stale.items()))
    raise UnmixError(f"{Path(wd) / records.RESULT_NAME}: a {status} run with {'; '.join(diffs)}; "
                     f"{len(stale)} of {total} cells ran otherwise than the spec asks: pass --force "
                     "to re-run them from scratch (their records are replaced), or choose another "
                     "work_root")


def sweep(spec: dict[str, Any], finetune_fn: Callable[..., dict] | None = None,
          log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True),
          force: bool = False) -> dict[str, list]:
    """Run every cell not yet finished. Returns {'finished', 'skipped', 'failed'} work dirs.
    Cells whose record disagrees with the spec (`differences`) stop the sweep before anything
    runs, unless `force`: then they run from scratch."""
    if finetune_fn is None:
        from transfer.detection.finetune import finetune as finetune_fn
    out: dict[str, list] = {"finished": [], "skipped": [], "failed": []}
    todo = list(cells(spec))
    stale = stale_cells(todo, spec)
    if stale and not force:
        _refuse_stale(stale, len(todo))
    shrink = {k: spec[k] for k in ("classes", "quick", "scale", "fraction")}
    for i, cell in enumerate(todo, 1):
        wd = cell["work_dir"]
        tag = f"[{i}/{len(todo)}] {cell['label']} {cell['protocol']} bn={cell['bn']} seed={cell['seed']}"
        redo = str(wd) in stale
        if redo:
            log(f"{tag}: ran with {'; '.join(stale[str(wd)][1])}; re-running from scratch (--force)")
        elif records.is_finished(wd):
            log(f"{tag}: finished before, skipped ({wd})")
            out["skipped"].append(str(wd))
            continue
        resume = not redo and checkpoints.newest_loadable(
            wd, lambda m, t=tag: log(f"{t}: not resuming from {m}")) is not None
        log(f"{tag}: {'resuming' if resume else 'running'} in {wd}")
        try:
            rec = finetune_fn(cell["checkpoint"], cell["protocol"], bn=cell["bn"], seed=cell["seed"],
                              work_dir=wd, data_root=_data_root(spec, cell["protocol"]),
                              cfg_options=dict(spec.get("cfg_options") or {}), resume=resume,
                              label=cell["label"], force=redo, **shrink)
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
    spec = load_spec(args.spec, arguments.sweep_overrides(args))
    if args.dry_run:
        todo = list(cells(spec))
        stale = stale_cells(todo, spec)
        for cell in todo:
            wd = str(cell["work_dir"])
            state = (f"ran otherwise: {'; '.join(stale[wd][1])}" if wd in stale
                     else "finished" if records.is_finished(wd) else "to run")
            print(f"{cell['label']}\t{cell['protocol']}\t{cell['bn']}\t{cell['seed']}\t{state}\t{wd}")
        return 0
    refuse_cifar_stems(spec)
    out = sweep(spec, force=args.force)
    return 1 if out["failed"] else 0
