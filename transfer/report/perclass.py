"""Per-class AP tables: one per detection protocol and per-class metric, classes as rows, runs
(label, BN mode) as columns, each cell the mean over seeds of the recorded per-class AP.

The numbers are the records' `details.per_class_AP` (transfer/detection/metrics.py: VOC AP per class
from the VOC metric; COCO per-category AP from COCOeval's precision array, as mmdet's
`classwise=True`); COCO's -1 ("no ground truth") and non-finite values are left out of the mean.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import pandas as pd

from transfer.report import settings
from transfer.report.tables import round_half_up

# Which per-class metrics to show, in order: VOC's AP50 (the paper's number) and AP, COCO's boxes
# and masks.
METRICS = ("AP50", "AP", "bbox_AP", "segm_AP")


@dataclass(frozen=True)
class PerClassTable:
    key: str
    title: str
    columns: list[str]
    classes: list[str]
    values: dict[tuple[str, str], float]  # (class, column) -> mean AP over seeds
    seeds: dict[str, int]  # column -> number of runs averaged


def _column(row: pd.Series) -> str:
    return f"{row.label} ({row.bn_used})" if isinstance(row.bn_used, str) else str(row.label)


def _one_table(sel: pd.DataFrame, protocol: str, metric: str, tag: tuple[str, str] = ("", "")
               ) -> PerClassTable | None:
    """`tag`: (title suffix, key suffix) naming the class set and effective settings."""
    values: dict[tuple[str, str], list[float]] = {}
    seeds: dict[str, int] = {}
    classes: list[str] = []
    for _, row in sel.iterrows():
        per = (row.per_class_AP or {}).get(metric)
        if not isinstance(per, dict):
            continue
        col = _column(row)
        seeds[col] = seeds.get(col, 0) + 1
        for cls, v in per.items():
            if cls not in classes:
                classes.append(cls)
            if isinstance(v, (int, float)) and math.isfinite(v) and v >= 0:
                values.setdefault((cls, col), []).append(float(v))
    if not seeds:
        return None
    cols = sorted(seeds)
    return PerClassTable(key=f"perclass-{protocol}-{metric}{tag[1]}".replace("_", "-"),
                         title=f"Per-class {metric} (%), {protocol}{tag[0]}", columns=cols, classes=classes,
                         values={k: statistics.fmean(v) for k, v in values.items()}, seeds=seeds)


def per_class_tables(runs: pd.DataFrame) -> list[PerClassTable]:
    """Finished, not superseded detection runs that recorded per-class AP, grouped by protocol, class
    set and effective settings (as the main tables: runs that differ never share one)."""
    if "per_class_AP" not in runs or not len(runs):
        return []
    sel = runs[(runs.kind == "detection") & (runs.status == "finished") & runs.superseded_by.isna()
               & runs.per_class_AP.notna()]
    out = []
    for protocol in sorted(sel.protocol.unique()):
        mine = sel[sel.protocol == protocol]
        siblings = set(mine.settings)
        detectors = mine.detector.fillna("")
        for classes, skey, detector in sorted(
                set(zip(mine.classes, mine.settings, detectors)),
                key=lambda c: (c[0], settings.order(protocol, c[1], siblings), c[1], c[2])):
            grp = mine[(mine.classes == classes) & (mine.settings == skey) & (detectors == detector)]
            tag = _tag(protocol, classes, skey, siblings)
            if len(set(detectors)) > 1:  # as the main tables: one backbone per table
                tag = (f"{tag[0]}, {detector or 'detector not recorded'}",
                       f"{tag[1]}-{detector.rsplit(' ', 1)[-1].lower() or 'unrecorded'}")
            out += [t for m in METRICS if (t := _one_table(grp, protocol, m, tag)) is not None]
    return out


def _tag(protocol: str, classes: str, skey: str, siblings: set[str]) -> tuple[str, str]:
    var = settings.variant(protocol, skey, siblings)
    title = ("" if not classes else ", custom class set") + (", quick run" if var.quick else "")
    key = "".join(f"-{k}" for k in (settings.custom_slug(classes), var.slug) if k)
    return title + var.suffix(), key


def _cells(t: PerClassTable, d: int, dash: str) -> list[list[str]]:
    # half-up, as the main tables round (71.25 -> 71.3, not Python's 71.2)
    def text(c: str, col: str) -> str:
        return f"{round_half_up(t.values[(c, col)], d):.{d}f}" if (c, col) in t.values else dash
    return [[c] + [text(c, col) for col in t.columns] for c in t.classes]


def markdown_lines(tables: list[PerClassTable], d: int, escape, table) -> list[str]:
    """Markdown section; `escape` and `table` are render.py's helpers (passed in: no import cycle)."""
    lines: list[str] = []
    for t in tables:
        lines += [f"## {escape(t.title)}", ""]
        headers = ["class"] + [f"{escape(c)} (n={t.seeds[c]})" for c in t.columns]
        rows = [[escape(x) for x in r] for r in _cells(t, d, "—")]
        lines += table(headers, rows, ["l"] + ["r"] * len(t.columns)) + [""]
    return lines


def latex_lines(tables: list[PerClassTable], d: int, escape) -> list[str]:
    lines: list[str] = []
    for t in tables:
        lines += [r"\begin{table}[htbp]", r"\centering", r"\small", rf"\caption{{{escape(t.title)}}}",
                  rf"\label{{tab:unmix-{t.key}}}", r"\begin{tabular}{l" + "r" * len(t.columns) + "}",
                  r"\toprule", " & ".join(["class"] + [f"{escape(c)} ($n$={t.seeds[c]})" for c in t.columns])
                  + r" \\", r"\midrule"]
        lines += [" & ".join(escape(x) for x in r) + r" \\" for r in _cells(t, d, "---")]
        lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return lines


def html_lines(tables: list[PerClassTable], d: int, escape, table) -> list[str]:
    body: list[str] = []
    for t in tables:
        body.append(f'<h2 id="{escape(t.key)}">{escape(t.title)}</h2>')
        headers = ["class"] + [f"{c} (n={t.seeds[c]})" for c in t.columns]
        body += table(headers, [[escape(x) for x in r] for r in _cells(t, d, "—")], 1)
    return body
