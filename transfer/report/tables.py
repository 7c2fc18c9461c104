"""Result records -> paper-shaped tables: a model that the renderers (Markdown, LaTeX, CSV, HTML)
only format, so every number, difference, bold mark and footnote is decided once, here.

Records are loaded into a pandas frame (one row per record, `load_runs`); `build_tables` groups the
finished runs into tables (one per detection protocol, one per kNN/linear protocol and dataset, one
per flatness protocol), cells into mean +- std over seeds, and compares each row with its baseline.
"""
from __future__ import annotations

import math
import os
import statistics
from decimal import ROUND_HALF_UP, Decimal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from pretrain.schema import unmix_flag
from transfer.report import settings
from unmix.core import records
from unmix.core.errors import UnmixError

BN_TITLES = {"finetune": "No Freeze", "frozen": "Freeze BN", "sync": "SyncBN"}
BN_ORDER = ("finetune", "frozen", "sync")


@dataclass(frozen=True)
class Metric:
    key: str    # key in record["metrics"]
    text: str   # plain-text header (Markdown, CSV, HTML)
    tex: str    # LaTeX header; '' -> the renderer escapes `text`


@dataclass(frozen=True)
class TableSpec:
    title: str
    tex_title: str
    metrics: tuple[Metric, ...]
    bn_modes: tuple[str, ...] = ()  # shown even when no run used them (the paper's shape)


def _m(key: str, text: str, tex: str) -> Metric:
    return Metric(key, text, tex)


_VOC_DATA = ("VOC07+12 trainval -> VOC2007 test", r"VOC07+12 trainval $\rightarrow$ VOC2007 test")
_COCO_DATA = ("COCO train2017 -> val2017", r"COCO train2017 $\rightarrow$ val2017")
_AP50_RECALL = (_m("AP50", "AP50", r"AP$_{50}$"), _m("recall", "Recall", "Recall"))
_VOC_AP = (_m("AP50", "AP50", r"AP$_{50}$"), _m("AP", "AP", "AP"), _m("AP75", "AP75", r"AP$_{75}$"))
_COCO_BOX = (_m("bbox_AP", "AP", "AP"), _m("bbox_AP50", "AP50", r"AP$_{50}$"),
             _m("bbox_AP75", "AP75", r"AP$_{75}$"), _m("bbox_APs", "APs", r"AP$_{S}$"),
             _m("bbox_APm", "APm", r"AP$_{M}$"), _m("bbox_APl", "APl", r"AP$_{L}$"))
_COCO_BOX_MASK = (_m("bbox_AP", "APbb", r"AP$^{bb}$"), _m("bbox_AP50", "AP50bb", r"AP$^{bb}_{50}$"),
                  _m("bbox_AP75", "AP75bb", r"AP$^{bb}_{75}$"), _m("segm_AP", "APmk", r"AP$^{mk}$"),
                  _m("segm_AP50", "AP50mk", r"AP$^{mk}_{50}$"),
                  _m("segm_AP75", "AP75mk", r"AP$^{mk}_{75}$"))


def _spec(detector: str, data: tuple[str, str], metrics: tuple[Metric, ...],
          bn_modes: tuple[str, ...] = (), recipe: str = "") -> TableSpec:
    """'DETECTOR, DATA' (+ ' (recipe)'): the detector before the first comma, as
    `_detector_titles` expects."""
    tail = f" ({recipe})" if recipe else ""
    return TableSpec(f"{detector}, {data[0]}{tail}", f"{detector}, {data[1]}{tail}", metrics, bn_modes)


# Known detection protocols and variants -> the paper's table shapes (the variant in the title).
# Unknown names get a generic table.
DETECTION_SPECS: dict[str, TableSpec] = {
    "voc-faster-rcnn-fpn": _spec("Faster R-CNN R50-FPN", _VOC_DATA, _AP50_RECALL, ("finetune", "frozen")),
    "voc-faster-rcnn-fpn-mmdet3": _spec("Faster R-CNN R50-FPN", _VOC_DATA, _AP50_RECALL,
                                        ("finetune", "frozen"), "mmdet 3.3 recipe"),
    "coco-retinanet-fpn": _spec("RetinaNet R50-FPN", _COCO_DATA, _COCO_BOX, ("frozen",)),
    "coco-retinanet-fpn-mmdet3": _spec("RetinaNet R50-FPN", _COCO_DATA, _COCO_BOX, ("frozen",),
                                       "mmdet 3.3 recipe"),
    "coco-mask-rcnn-fpn": _spec("Mask R-CNN R50-FPN", _COCO_DATA, _COCO_BOX_MASK, ("frozen",)),
    "coco-mask-rcnn-fpn-mmdet3": _spec("Mask R-CNN R50-FPN", _COCO_DATA, _COCO_BOX_MASK, ("frozen",),
                                       "mmdet 3.3 recipe"),
    "coco-mask-rcnn-fpn-mmselfsup": _spec("Mask R-CNN R50-FPN", _COCO_DATA, _COCO_BOX_MASK, (),
                                          "mmselfsup protocol"),
    "voc-faster-rcnn-c4": _spec("Faster R-CNN R50-C4", _VOC_DATA, _VOC_AP, (), "MoCo protocol"),
    "voc-faster-rcnn-c4-mmselfsup": _spec("Faster R-CNN R50-C4", _VOC_DATA, _VOC_AP, (),
                                          "mmselfsup's port of the MoCo protocol"),
    "coco-mask-rcnn-c4-2x": _spec("Mask R-CNN R50-C4", _COCO_DATA, _COCO_BOX_MASK, (),
                                  "2x schedule, MoCo protocol"),
}
CLASSIFICATION_METRICS = {"top1": _m("top1", "Top-1", "Top-1"), "top5": _m("top5", "Top-5", "Top-5")}


# ----------------------------------------------------------------------------- loading

def _check(cond: bool, path: Path, problem: str) -> None:
    if not cond:
        raise UnmixError(f"{path}: malformed result record, {problem}")


def _run_row(rec: dict[str, Any], path: Path) -> dict[str, Any]:
    """The fields a report needs from one validated record; UnmixError naming `path` if unusable."""
    ck, pr = rec["checkpoint"], rec["protocol"]
    label = ck.get("label")
    _check(isinstance(label, str) and label.strip() != "", path,
           f"checkpoint.label must be a non-empty string, got {label!r}")
    name = pr.get("name")
    _check(isinstance(name, str) and name.strip() != "", path,
           f"protocol.name must be a non-empty string, got {name!r}")
    seed = pr.get("seed")
    _check(seed is None or (isinstance(seed, int) and not isinstance(seed, bool)), path,
           f"protocol.seed must be an integer, got {seed!r}")
    for key in ("bn_requested", "bn_used", "dataset"):
        _check(pr.get(key) is None or isinstance(pr.get(key), str), path,
               f"protocol.{key} must be a string, got {pr.get(key)!r}")
    pre = ck.get("pretrain")
    _check(pre is None or isinstance(pre, dict), path,
           f"checkpoint.pretrain must be an object or null, got {pre!r}")
    pre = pre or {}
    unmix, epochs = pre.get("unmix"), pre.get("epochs")
    # records of older versions carried the Un-Mix config block here
    unmix = unmix_flag(unmix) if isinstance(unmix, dict) else unmix
    _check(unmix is None or isinstance(unmix, bool), path,
           f"checkpoint.pretrain.unmix must be true/false (or {{'enabled': bool, ...}}), got {unmix!r}")
    _check(epochs is None or (isinstance(epochs, (int, float)) and not isinstance(epochs, bool)),
           path, f"checkpoint.pretrain.epochs must be a number, got {epochs!r}")
    details = rec.get("details") if isinstance(rec.get("details"), dict) else {}
    probs = details.get("sorted_probs")
    if rec["kind"] == "flatness" and rec["status"] == "finished":
        _check(isinstance(probs, list) and len(probs) > 0
               and all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in probs),
               path, "a finished flatness record needs details.sorted_probs, a list of numbers")
    sha = ck.get("sha256")
    return {"classes": _classes_key(pr.get("classes")),
        "settings": settings.key(pr.get("effective"), pr.get("quick")),
        "cfg_options": pr.get("cfg_options") if isinstance(pr.get("cfg_options"), dict) else None,
        "path": str(path), "kind": rec["kind"], "status": rec["status"],
        "error": rec.get("error"), "finished": rec.get("finished") or "",
        "label": label.strip(), "protocol": name.strip(), "dataset": pr.get("dataset"),
        "bn_requested": pr.get("bn_requested"), "bn_used": pr.get("bn_used"),
        "seed": seed, "sha256": sha if isinstance(sha, str) else None,
        "arch": ck.get("arch"), "method": pre.get("method"), "unmix": unmix,
        "detector": pr.get("detector") if isinstance(pr.get("detector"), str) else None,
        "epochs": int(epochs) if isinstance(epochs, (int, float)) and epochs == int(epochs) else epochs,
        "pretrain_dataset": pre.get("dataset"), "pretrain_quick": bool(pre.get("quick")),
        "metrics": dict(rec["metrics"]), "sorted_probs": probs if isinstance(probs, list) else None,
        "per_class_AP": details.get("per_class_AP") if isinstance(details.get("per_class_AP"), dict) else None,
    }


def _classes_key(classes: Any) -> str:
    """'' for the protocol's own classes (or a record from before class sets were recorded);
    'custom (N): a, b, ...' for a dataset of its own, whose runs never share a table with the
    standard rows."""
    if not isinstance(classes, dict) or classes.get("kind") != "custom":
        return ""
    names = [str(n) for n in classes.get("names") or []]
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    return f"custom ({len(names)}): {shown}"


def load_runs(roots: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Every record under `roots` as one row; raises UnmixError naming the first bad file."""
    paths = records.find(list(roots))
    if not paths:
        raise UnmixError(f"{', '.join(map(str, roots))}: no result records ({records.RESULT_NAME}) found")
    rows = [_run_row(records.load(p), p) for p in paths]
    runs = pd.DataFrame(rows)
    runs["seed"] = runs["seed"].astype("object")
    runs["superseded_by"] = None
    return _mark_duplicates(runs)


def _mark_duplicates(runs: pd.DataFrame) -> pd.DataFrame:
    """Two finished records of the same run (label, protocol, dataset, classes, effective settings,
    BN, seed): the latest counts, the others are listed as superseded instead of silently doubling
    a seed."""
    keys = ["kind", "label", "protocol", "dataset", "classes", "settings", "bn_used", "seed"]
    fin = runs[(runs.status == "finished") & runs.seed.notna()]
    # repr() keys: pandas 3 turns None into NaN under astype(str), and groupby drops NaN keys.
    for _, grp in fin.groupby([fin[k].map(repr) for k in keys], sort=False, dropna=False):
        if len(grp) > 1:
            order = grp.sort_values(["finished", "path"]).index
            for idx in order[:-1]:
                runs.at[idx, "superseded_by"] = runs.at[order[-1], "path"]
    return runs


# ----------------------------------------------------------------------------- statistics

def round_half_up(x: float, decimals: int) -> float:
    """Round as a reader does (75.25 -> 75.3), on the shortest decimal form of `x`: Python's round()
    rounds half to even on the binary value (round(75.25, 1) == 75.2)."""
    q = Decimal(1).scaleb(-decimals)
    return float(Decimal(repr(float(x))).quantize(q, rounding=ROUND_HALF_UP))


# Two-sided 95% t quantiles t_{0.975, df}; used when scipy is missing (it ships with mmdet).
_T975 = {1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.7764, 5: 2.5706, 6: 2.4469, 7: 2.3646, 8: 2.3060,
         9: 2.2622, 10: 2.2281, 11: 2.2010, 12: 2.1788, 13: 2.1604, 14: 2.1448, 15: 2.1314,
         16: 2.1199, 17: 2.1098, 18: 2.1009, 19: 2.0930, 20: 2.0860, 25: 2.0595, 30: 2.0423,
         40: 2.0211, 60: 2.0003, 120: 1.9799}


def t_quantile_975(df: int) -> float:
    """t_{0.975, df}: scipy's when installed, else the table (conservative: next smaller df)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    try:
        from scipy.special import stdtrit  # the inverse t CDF; scipy.stats takes seconds to import

        return float(stdtrit(df, 0.975))
    except ImportError:
        if df > 120:
            return 1.96
        return _T975[max(k for k in _T975 if k <= df)]


@dataclass(frozen=True)
class Paired:
    """Mean difference row - baseline over the seeds both have, with a t-based 95% CI."""
    row: str
    baseline: str
    group: str
    metric: str     # the record's metric key, as in cells.csv
    header: str     # its column header text
    seeds: tuple[int, ...]
    mean: float
    sd: float
    t: float
    lo: float
    hi: float

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def excludes_zero(self) -> bool:
        return self.lo > 0 or self.hi < 0


def paired_ci(row: dict[int, float], base: dict[int, float]
              ) -> tuple[tuple[int, ...], float, float, float, float, float] | None:
    """(seeds, mean diff, sd of diffs, t, lo, hi) over shared seeds; None with fewer than 2."""
    seeds = tuple(sorted(set(row) & set(base)))
    if len(seeds) < 2:
        return None
    diffs = [row[s] - base[s] for s in seeds]
    mean = statistics.fmean(diffs)
    sd = statistics.stdev(diffs)
    t = t_quantile_975(len(seeds) - 1)
    half = t * sd / math.sqrt(len(seeds))
    return seeds, mean, sd, t, mean - half, mean + half


# ----------------------------------------------------------------------------- table model

@dataclass
class Column:
    group: str          # BN title ('No Freeze') or '' when the table has no groups
    bn: str | None      # the BN mode as used, for provenance; None in ungrouped tables
    metric: Metric | None  # None: the group's "n" column

    @property
    def is_n(self) -> bool:
        return self.metric is None


@dataclass
class Cell:
    values: list[float] = field(default_factory=list)
    seeds: list[int | None] = field(default_factory=list)
    mean: float | None = None
    std: float | None = None  # sample std (ddof=1); None with one run
    diff: float | None = None  # mean - baseline mean
    best: bool = False
    note: str | None = None   # footnote marker of a dash
    n_differs: bool = False   # fewer values than the group's n (a record lacks this metric)

    @property
    def n(self) -> int:
        return len(self.values)


@dataclass
class Row:
    label: str
    lead: dict[str, str]  # method, Un-Mix, arch, epochs: columns of kNN/linear tables, CSV always
    cells: list[Cell]
    baseline: str | None = None
    is_baseline: bool = False


@dataclass
class Table:
    key: str
    kind: str
    protocol: str
    title: str
    tex_title: str  # '' -> the renderer escapes `title`
    columns: list[Column]
    lead_headers: list[str]
    rows: list[Row]
    higher_is_better: bool | None
    dataset: str | None = None  # kNN/linear tables: the evaluation dataset
    footnotes: list[tuple[str, str]] = field(default_factory=list)  # (marker, text)
    provenance: list[str] = field(default_factory=list)
    diff_note: str | None = None
    paired: list[Paired] = field(default_factory=list)
    # detection: the protocol's own classes and effective settings (published rows may be shown
    # beside it), and the BN modes its finished runs used
    nominal: bool = False
    bn_present: tuple[str, ...] = ()

    @property
    def groups(self) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        for c in self.columns:
            if out and out[-1][0] == c.group:
                out[-1] = (c.group, out[-1][1] + 1)
            else:
                out.append((c.group, 1))
        return out


def _markers() -> Iterable[str]:
    n = 0
    while True:
        q, r = divmod(n, 26)
        yield ("" if q == 0 else chr(ord("a") + q - 1)) + chr(ord("a") + r)
        n += 1


def _fmt_seeds(seeds: Iterable[Any]) -> str:
    return ", ".join("?" if s is None else str(s) for s in seeds)


def _row_sort_key(info: dict[str, Any], label: str) -> tuple:
    # No pretraining metadata first (random init, supervised), then method, budget, without Un-Mix
    # before with, as in the paper's tables.
    has = info.get("method") is not None
    return (has, str(info.get("method") or ""), info.get("epochs") or 0, bool(info.get("unmix")), label)


def _label_info(runs: pd.DataFrame) -> dict[str, dict[str, Any]]:
    info: dict[str, dict[str, Any]] = {}
    def one(grp: pd.DataFrame, col: str) -> Any:
        vals = list(dict.fromkeys(v for v in grp[col] if v is not None and not
                                  (isinstance(v, float) and math.isnan(v))))
        return vals[0] if len(vals) == 1 else (None if not vals else "/".join(map(str, vals)))

    for label, grp in runs.groupby("label", sort=False):
        info[label] = {c: one(grp, c) for c in ("method", "unmix", "epochs", "arch", "pretrain_dataset",
                                                 "pretrain_quick")}
        info[label]["sha256"] = sorted({s for s in grp.sha256 if isinstance(s, str)})
    return info


def _resolve_baselines(labels: list[str], info: dict[str, dict[str, Any]], baseline: str
                       ) -> tuple[dict[str, str], str | None]:
    """label -> its baseline label, and the footnote that says how baselines were chosen."""
    if baseline == "none":
        return {}, None
    if baseline != "auto":
        if baseline not in labels:
            return {}, f"Baseline {baseline!r} has no finished run in this table: no differences shown."
        return ({lab: baseline for lab in labels if lab != baseline},
                f"Signed differences are to the baseline row {baseline}.")
    out: dict[str, str] = {}
    for lab in labels:
        me = info[lab]
        if me["unmix"] is not True or me["method"] is None:
            continue
        cands = [o for o in labels if info[o]["unmix"] is False and info[o]["method"] == me["method"]
                 and info[o]["epochs"] == me["epochs"] and info[o]["pretrain_quick"] == me["pretrain_quick"]
                 and info[o]["pretrain_dataset"] == me["pretrain_dataset"]]
        if len(cands) == 1:
            out[lab] = cands[0]
    if not out:
        return {}, None
    pairs = "; ".join(f"{k} vs {v}" for k, v in out.items())
    return out, ("Signed differences are to the same method and pretraining budget "
                 f"without Un-Mix: {pairs}.")


def _columns(groups: list[tuple[str, str | None]], metrics: list[Metric]) -> list[Column]:
    cols: list[Column] = []
    for title, bn in groups:
        cols.append(Column(title, bn, None))
        cols.extend(Column(title, bn, m) for m in metrics)
    return cols


def _detector_titles(spec: TableSpec, sel: pd.DataFrame) -> tuple[str, str]:
    """The spec's title, with the detector the records name when they all name the same other
    one (e.g. the demo's R18-FPN under the R50-FPN protocol)."""
    names = set(sel["detector"].dropna()) if "detector" in sel else set()
    if len(names) != 1:
        return spec.title, spec.tex_title
    (actual,) = names
    head = spec.title.split(",", 1)[0]
    if actual == head:
        return spec.title, spec.tex_title
    return spec.title.replace(head, actual, 1), spec.tex_title.replace(head, actual, 1)


@dataclass
class Selection:
    """What one table is built from: its records and its shape."""
    key: str
    kind: str
    protocol: str
    title: str
    tex_title: str
    runs: pd.DataFrame            # finished, not superseded
    failed: pd.DataFrame          # failed or unfinished, for the dashes' footnotes
    metrics: list[Metric]
    groups: list[tuple[str, str | None]]  # (BN title, BN mode) or [("", None)]
    lead_headers: list[str]
    higher_is_better: bool | None


class _Notes:
    """Footnote markers, one per distinct text, in order of first use."""

    def __init__(self, table: Table) -> None:
        self.table, self.marker_of, self.markers = table, {}, _markers()

    def __call__(self, text: str) -> str:
        if text not in self.marker_of:
            self.marker_of[text] = next(self.markers)
            self.table.footnotes.append((self.marker_of[text], text))
        return self.marker_of[text]


def _index(frame: pd.DataFrame, grouped: bool) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(label, BN as used or '?') -> its runs sorted by seed, as plain dicts (no per-cell pandas)."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in frame.to_dict("records"):
        bn = r["bn_used"] if grouped and isinstance(r["bn_used"], str) else "?"
        out.setdefault((r["label"], bn), []).append(r)
    for lst in out.values():
        lst.sort(key=lambda r: -1 if r["seed"] is None else r["seed"])
    return out


def _cell(col: Column, sel: list[dict[str, Any]], bad: list[dict[str, Any]], where: str,
          note: _Notes) -> Cell:
    """One cell from the runs of its row and group: the n column, or mean +- std of a metric,
    or a dash with a footnote saying why."""
    cell = Cell()
    if col.is_n:
        cell.values = [float(len(sel))]
        cell.seeds = [r["seed"] for r in sel]
        return cell
    for r in sel:
        if col.metric.key in r["metrics"]:
            cell.values.append(float(r["metrics"][col.metric.key]))
            cell.seeds.append(r["seed"])
    if not all(map(math.isfinite, cell.values)):
        cell.note = note(_non_finite_note(col.metric.key, cell.values, cell.seeds, where))
        cell.values, cell.seeds = [], []
        return cell
    if cell.values:
        cell.mean = statistics.fmean(cell.values)
        cell.std = statistics.stdev(cell.values) if len(cell.values) > 1 else None
        cell.n_differs = len(cell.values) != len(sel)
    elif bad:
        cell.note = note(f"{where}: no finished run ({len(bad)} failed or unfinished, "
                         "see Runs not tabulated).")
    elif sel:
        cell.note = note(f"{where}: the records have no {col.metric.key!r} metric.")
    else:
        cell.note = note(f"{where}: no run.")
    return cell


def _non_finite_note(key: str, values: list[float], seeds: list[Any], where: str) -> str:
    """Why a cell is a dash when a record holds NaN or inf: a mean would hide the broken run."""
    bad = [(v, s) for v, s in zip(values, seeds) if not math.isfinite(v)]
    kinds = "/".join(sorted({"nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") for v, _ in bad}))
    return (f"{where}: {key} is {kinds} in {len(bad)} of {len(values)} runs (seeds "
            f"{_fmt_seeds(s for _, s in bad)}); not averaged, see the records.")


def _apply_baselines(table: Table, labels: list[str], info: dict[str, dict[str, Any]],
                     baseline: str) -> None:
    """Each row's baseline, signed differences, and the paired intervals over shared seeds."""
    by_label = {r.label: r for r in table.rows}
    base_of, table.diff_note = _resolve_baselines(labels, info, baseline)
    for row in table.rows:
        row.is_baseline = row.label in base_of.values()
        row.baseline = base_of.get(row.label)
        if row.baseline is None:
            continue
        base = by_label[row.baseline]
        for col, cell, bcell in zip(table.columns, row.cells, base.cells):
            if col.is_n or cell.mean is None or bcell.mean is None:
                continue
            cell.diff = cell.mean - bcell.mean
            pc = paired_ci({s: v for s, v in zip(cell.seeds, cell.values) if s is not None},
                           {s: v for s, v in zip(bcell.seeds, bcell.values) if s is not None})
            if pc:
                seeds, mean, sd, t, lo, hi = pc
                table.paired.append(Paired(row.label, row.baseline, col.group, col.metric.key, col.metric.text,
                                           seeds, mean, sd, t, lo, hi))


def _mark_best(table: Table, decimals: int) -> None:
    """Bold the best mean of each metric column, compared as shown (rounded)."""
    if table.higher_is_better is None:
        return
    for j, col in enumerate(table.columns):
        shown = [(round_half_up(r.cells[j].mean, decimals), r.cells[j]) for r in table.rows
                 if not col.is_n and r.cells[j].mean is not None]
        if len(shown) < 2:
            continue
        best = (max if table.higher_is_better else min)(v for v, _ in shown)
        for v, cell in shown:
            cell.best = v == best


def _build(sel: Selection, baseline: str, decimals: int) -> Table:
    info = _label_info(sel.runs)
    labels = sorted(info, key=lambda lab: _row_sort_key(info[lab], lab))
    if baseline not in ("auto", "none") and baseline in labels:  # the explicit baseline row first
        labels.remove(baseline)
        labels.insert(0, baseline)
    cols = _columns(sel.groups, sel.metrics)
    table = Table(sel.key, sel.kind, sel.protocol, sel.title, sel.tex_title, cols,
                  sel.lead_headers, [], sel.higher_is_better)
    note = _Notes(table)
    grouped = bool(sel.groups[0][0])
    ok_runs, bad_runs = _index(sel.runs, grouped), _index(sel.failed, grouped)
    for label in labels:
        row = Row(label, _lead(info[label]), [])
        for col in cols:
            key = (label, (col.bn or "?") if grouped else "?")
            where = f"{label}, {sel.protocol}" + (f", BN {col.bn}" if col.group else "")
            row.cells.append(_cell(col, ok_runs.get(key, []), bad_runs.get(key, []), where, note))
        table.rows.append(row)
    _apply_baselines(table, labels, info, baseline)
    _mark_best(table, decimals)
    table.provenance = _provenance(sel.runs, labels, sel.groups, sel.protocol)
    return table


def _lead(info: dict[str, Any]) -> dict[str, str]:
    unmix = {True: "yes", False: "no"}.get(info["unmix"], "")
    ep = info["epochs"]
    if isinstance(ep, float) and ep == int(ep):  # pandas turns ints next to None into floats
        ep = int(ep)
    return {"Method": str(info["method"] or ""), "Un-Mix": unmix, "Arch": str(info["arch"] or ""),
            # a `pretrain --quick` encoder: its few epochs are not the recipe's budget
            "Epochs": "" if ep is None else str(ep) + (" (quick)" if info.get("pretrain_quick") else "")}


def _provenance(runs: pd.DataFrame, labels: list[str], groups: list[tuple[str, str | None]],
                protocol: str) -> list[str]:
    lines = []
    for label in labels:
        sel = runs[runs.label == label]
        shas = sorted({s[:12] for s in sel.sha256 if isinstance(s, str)})
        sha = ("sha256 " + ", ".join(shas)) if shas else "sha256 unknown"
        if len(shas) > 1:
            sha += f" (WARNING: {len(shas)} different checkpoints under one label)"
        parts = []
        for title, bn in groups:
            g = sel if not title else sel[sel.bn_used.fillna("?") == (bn or "?")]
            if not len(g):
                continue
            seeds = _fmt_seeds(sorted(g.seed, key=lambda s: -1 if s is None else s))
            head = f"{title}: " if title else ""
            bn_text = ""
            used = sorted({b for b in g.bn_used if isinstance(b, str)}) or ["unrecorded"]
            req = sorted({b for b in g.bn_requested if isinstance(b, str)})
            if title or used != ["unrecorded"]:
                bn_text = f"BN {'/'.join(used)}"
                if req and req != used:
                    bn_text += f" (requested {'/'.join(req)})"
                bn_text += ", "
            parts.append(f"{head}{bn_text}seeds {seeds}")
        lines.append(f"{label}: checkpoint {sha}; protocol {protocol}; " + "; ".join(parts) + ".")
    return lines


def _bn_groups(runs: pd.DataFrame, required: tuple[str, ...]) -> list[tuple[str, str | None]]:
    present = {b if isinstance(b, str) else "?" for b in runs.bn_used}
    modes = list(required) + sorted(present - set(required),
                                    key=lambda b: (BN_ORDER.index(b) if b in BN_ORDER else 99, b))
    return [(BN_TITLES.get(b, "BN unrecorded" if b == "?" else f"BN {b}"), b) for b in modes]


def _metrics_present(runs: pd.DataFrame, known: dict[str, Metric]) -> list[Metric]:
    keys = list(dict.fromkeys(k for m in runs.metrics for k in m))
    ordered = [k for k in known if k in keys] + [k for k in keys if k not in known]
    return [known.get(k, Metric(k, k, "")) for k in ordered]


def _slug(*parts: Any) -> str:
    text = "-".join(str(p) for p in parts if p)
    return "".join(c if c.isalnum() or c in "-." else "-" for c in text).strip("-").lower()


def build_tables(runs: pd.DataFrame, baseline: str = "auto", decimals: int = 1) -> list[Table]:
    """All tables, in the paper's order: detection (known protocols first), kNN/linear, flatness."""
    usable = runs[(runs.status == "finished") & runs.superseded_by.isna()]
    failed = runs[runs.status != "finished"]
    tables: list[Table] = []

    det = usable[usable.kind == "detection"]
    names = [p for p in DETECTION_SPECS if p in set(det.protocol)]
    names += sorted(set(det.protocol) - set(DETECTION_SPECS))
    for name in names:
        mine = det[det.protocol == name]
        siblings = set(mine.settings)
        # the detector the records name (depth and width as built) splits too: R50w2 is not R50
        for classes, skey, detector in sorted(
                set(zip(mine.classes, mine.settings, mine.detector.fillna(""))),
                key=lambda c: (c[0], settings.order(name, c[1], siblings), c[1], c[2])):
            tables.append(_detection_table(det, failed, name, (classes, skey, detector, siblings),
                                           baseline, decimals))

    for kind, title in (("linear", "Linear classification"), ("knn", "kNN classification")):
        cls = usable[usable.kind == kind]
        keys = cls[["protocol", "dataset"]].fillna("").drop_duplicates().itertuples(index=False)
        for name, dataset in sorted(keys):
            sel = cls[(cls.protocol == name) & (cls.dataset.fillna("") == dataset)]
            on = f" on {dataset}" if dataset else ""
            t = f"{title} accuracy (%), {name}{on}"
            table = _build(Selection(
                _slug(kind, name, dataset), kind, name, t, "", sel,
                failed[(failed.kind == kind) & (failed.protocol == name)
                       & (failed.dataset.fillna("") == dataset)],
                _metrics_present(sel, CLASSIFICATION_METRICS), [("", None)],
                ["Method", "Un-Mix", "Arch", "Epochs"], True), baseline, decimals)
            table.dataset = dataset or None
            tables.append(table)

    flat = usable[usable.kind == "flatness"]
    for name in sorted(set(flat.protocol)):
        sel = flat[flat.protocol == name]
        t = f"Flatness of the softmax output, {name}"
        tables.append(_build(Selection(
            _slug("flatness", name), "flatness", name, t, "", sel,
            failed[(failed.kind == "flatness") & (failed.protocol == name)],
            _metrics_present(sel, {}), [("", None)], [], None), baseline, decimals))
    return tables


def _detection_table(det: pd.DataFrame, failed: pd.DataFrame, name: str,
                     group: tuple[str, str, str, set[str]], baseline: str, decimals: int) -> Table:
    """One table per (protocol, class set, effective settings, detector): runs on a custom class
    set, with other settings or another backbone than the protocol's get their own, titled and
    footnoted."""
    classes, skey, detector, siblings = group
    sel = det[(det.protocol == name) & (det.classes == classes) & (det.settings == skey)
              & (det.detector.fillna("") == detector)]
    var = settings.variant(name, skey, siblings)
    spec = DETECTION_SPECS.get(name)
    if spec is None:
        spec = TableSpec(f"Detection protocol {name}", "", tuple(_metrics_present(sel, {})))
    title, tex_title = _detector_titles(spec, sel)
    own = not detector or spec.title.startswith(f"{detector},")  # the protocol's backbone
    # A run that failed before its settings were known still explains a dash here.
    bad = failed[(failed.kind == "detection") & (failed.protocol == name) & (failed.classes == classes)
                 & failed.settings.isin([skey, settings.UNRECORDED])
                 & failed.detector.fillna("").isin([detector, ""])]
    tail = ", ".join(p for p in ("custom class set" if classes else "", "quick run" if var.quick else "")
                     if p)
    tail = (f", {tail}" if tail else "") + var.suffix()
    title, tex_title = title + tail, tex_title and tex_title + tail
    table = _build(Selection(
        _slug("detection", name, settings.custom_slug(classes), "quick" if var.quick else "", var.slug,
              "" if own else detector.rsplit(" ", 1)[-1]),
        "detection", name, title, tex_title, sel, bad, list(spec.metrics), _bn_groups(sel, spec.bn_modes),
        [], True), baseline, decimals)
    if classes:
        table.footnotes.append(("*", f"Trained and scored on the data's own classes, {classes}; not "
                                     f"comparable with the {name} protocol's standard-class rows."))
    table.footnotes.extend(var.notes)
    opts = next((o for o in sel.cfg_options if o), None)
    if opts and not var.nominal:  # the digest says they differ; the options say how
        table.footnotes.append(("O", "--cfg-options of these runs: " + settings.describe_options(opts) + "."))
    if var.nominal and not own and spec.title != f"Detection protocol {name}":
        table.footnotes.append(("D", f"Backbone as built: {detector}, not the {name} protocol's "
                                     f"{spec.title.split(',', 1)[0]}; no published rows are shown beside it."))
    table.nominal = var.nominal and not classes and own
    table.bn_present = tuple(sorted({b for b in sel.bn_used if isinstance(b, str)}))
    return table


def not_tabulated(runs: pd.DataFrame) -> pd.DataFrame:
    """Failed, unfinished and superseded records, for the 'Runs not tabulated' list."""
    out = runs[(runs.status != "finished") | runs.superseded_by.notna()].copy()
    out["reason"] = [f"superseded by {r.superseded_by}" if r.status == "finished"
                     else (f"{r.status}: {r.error}" if r.error else r.status)
                     for r in out.itertuples()]
    return out
