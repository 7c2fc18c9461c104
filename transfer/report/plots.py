"""Report plots (matplotlib, Agg, no pyplot state): accuracy against pretraining epochs (the
Figure 4 shape of arXiv 2003.05438v1), flattening curves (Figure 5 shape) and per-seed points for every table cell.

The data of each plot comes from a pure function (`epoch_series`, `flat_curves`), so the tests check
the numbers, not pixels; `render_plots` draws them to PNG and SVG bytes in memory.
"""
from __future__ import annotations

import io
import math
import statistics
import textwrap
from typing import Any

import pandas as pd

from transfer.report.render import Plot
from transfer.report.tables import Table

COLORS = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def color_map(names: list[str]) -> dict[str, str]:
    """One colour per name, distinct for every name given (not wrapped round the palette).

    Built once per report from every method and run label, so a method keeps its colour in all
    plots; past the fixed palette, evenly spaced hues (golden-ratio steps) that skip its colours."""
    import colorsys

    out: dict[str, str] = {}
    used = set(COLORS)
    k = 0
    for i, name in enumerate(sorted(set(names))):
        if i < len(COLORS):
            out[name] = COLORS[i]
            continue
        while True:
            k += 1
            r, g, b = colorsys.hsv_to_rgb((k * 0.618033988749895) % 1.0, 0.75, 0.45 + 0.4 * (k % 2))
            c = "#%02x%02x%02x" % (round(r * 255), round(g * 255), round(b * 255))
            if c not in used:
                used.add(c)
                out[name] = c
                break
    return out


def epoch_series(runs: pd.DataFrame, kind: str, protocol: str, dataset: str | None,
                 metric: str = "top1") -> dict[tuple[str, bool | None], list[dict[str, Any]]]:
    """(method, unmix) -> points sorted by epochs: {'epochs', 'mean', 'std', 'values'}."""
    sel = runs[(runs.kind == kind) & (runs.protocol == protocol) & (runs.status == "finished")
               & runs.superseded_by.isna() & runs.method.notna() & runs.epochs.notna()]
    sel = sel[sel.dataset.fillna("") == (dataset or "")]
    out: dict[tuple[str, bool | None], list[dict[str, Any]]] = {}
    for (method, unmix), grp in sel.groupby([sel.method, sel.unmix.astype(object)], sort=True, dropna=False):
        pts = []
        for ep, g in grp.groupby("epochs", sort=True):
            vals = [float(m[metric]) for m in g.metrics if metric in m]
            if vals and all(map(math.isfinite, vals)):  # NaN/inf: a dash with a note in the table
                pts.append({"epochs": ep, "mean": statistics.fmean(vals),
                            "std": statistics.stdev(vals) if len(vals) > 1 else 0.0, "values": vals})
        if pts:
            out[(method, None if pd.isna(unmix) else bool(unmix))] = pts
    return out


def flat_curves(runs: pd.DataFrame, protocol: str) -> dict[str, list[float]]:
    """label -> mean over seeds of details.sorted_probs (curves of unequal length are cut to the shortest)."""
    sel = runs[(runs.kind == "flatness") & (runs.protocol == protocol) & (runs.status == "finished")
               & runs.superseded_by.isna()]
    out: dict[str, list[float]] = {}
    for label, grp in sel.groupby("label", sort=True):
        curves = [list(map(float, c)) for c in grp.sorted_probs
                  if c and all(math.isfinite(float(v)) for v in c)]
        if not curves:
            continue
        n = min(map(len, curves))
        out[label] = [statistics.fmean(c[i] for c in curves) for i in range(n)]
    return out


def _figure(w: float = 6.0, h: float = 4.0):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=100, layout="constrained")


def _save(fig, key: str, title: str) -> Plot:
    png, svg = io.BytesIO(), io.BytesIO()
    fig.savefig(png, format="png", metadata={"Software": None})
    fig.set_layout_engine("none")  # keep the layout the PNG computed: half the cost of the SVG
    # Fixed hash salt and no date: the same records give byte-identical SVGs.
    import matplotlib

    with matplotlib.rc_context({"svg.hashsalt": "unmix"}):
        fig.savefig(svg, format="svg", metadata={"Date": None})
    return Plot(key, title, png.getvalue(), svg.getvalue())


def plot_epochs(key: str, title: str, series: dict[tuple[str, bool | None], list[dict[str, Any]]],
                ylabel: str, colors: dict[str, str] | None = None) -> Plot:
    fig = _figure()
    ax = fig.add_subplot()
    colors = colors or color_map([m for m, _ in series])
    for (method, unmix), pts in series.items():
        color = colors[method]
        xs = [p["epochs"] for p in pts]
        # Paper Figure 4: dotted = the method alone, solid = with Un-Mix.
        ax.errorbar(xs, [p["mean"] for p in pts], yerr=[p["std"] for p in pts], color=color,
                    linestyle="-" if unmix else ":", marker="o", capsize=3,
                    label=f"{method} + Un-Mix" if unmix else method)
        for p in pts:
            ax.scatter([p["epochs"]] * len(p["values"]), p["values"], color=color, s=10, alpha=0.5)
    ax.set_xticks(sorted({p["epochs"] for pts in series.values() for p in pts}))
    ax.set_xlabel("pretraining epochs")
    ax.set_ylabel(ylabel)
    ax.set_title(textwrap.fill(title, 80), fontsize=8)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, key, title)


def plot_flat(key: str, title: str, curves: dict[str, list[float]],
              colors: dict[str, str] | None = None) -> Plot:
    fig = _figure()
    ax = fig.add_subplot()
    colors = colors or color_map(list(curves))
    for label, c in curves.items():
        color = colors[label]
        ax.plot(range(1, len(c) + 1), c, color=color, label=label)
        # Paper Figure 5: dotted line at each model's maximum probability.
        ax.axhline(max(c), color=color, linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("output dimension, sorted by probability")
    ax.set_ylabel("mean softmax probability")
    ax.set_title(textwrap.fill(title, 80), fontsize=8)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, key, title)


def plot_cells(table: Table, colors: dict[str, str] | None = None) -> Plot | None:
    """One panel per column: per-seed points of every row (in the row's colour), with the mean +- std bar."""
    cols = [(j, c) for j, c in enumerate(table.columns) if not c.is_n]
    if not cols or not any(r.cells[j].values for r in table.rows for j, _ in cols):
        return None
    ncol = min(3, len(cols))
    nrow = (len(cols) + ncol - 1) // ncol
    fig = _figure(3.2 * ncol, 0.6 + 0.45 * len(table.rows) * nrow + 0.6 * nrow)
    axes = fig.subplots(nrow, ncol, squeeze=False)
    labels = [r.label for r in table.rows]
    colors = colors or color_map(labels)
    for k, (j, col) in enumerate(cols):
        ax = axes[k // ncol][k % ncol]
        for y, row in enumerate(table.rows):
            cell = row.cells[j]
            if not cell.values:
                continue
            # seeds just above the mean +- std bar, so neither hides the other
            ax.scatter(cell.values, [y - 0.18] * len(cell.values), s=14, color=colors[row.label], alpha=0.7,
                       zorder=3)
            ax.errorbar([cell.mean], [y], xerr=[cell.std or 0.0], color="k", marker="|", markersize=12,
                        capsize=3, zorder=2)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_ylim(-0.6, len(labels) - 0.4)
        ax.invert_yaxis()
        ax.set_title(col.metric.text + (f" ({col.group})" if col.group else ""), fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", alpha=0.3)
    for k in range(len(cols), nrow * ncol):
        axes[k // ncol][k % ncol].set_visible(False)
    fig.suptitle(textwrap.fill(f"Per-seed results: {table.title}", 110), fontsize=9)
    return _save(fig, f"seeds-{table.key}", f"Per-seed results (points) with mean ± std: {table.title}")


def report_colors(runs: pd.DataFrame, tables: list[Table]) -> dict[str, str]:
    """The report's one method/label -> colour map, shared by all its plots."""
    names = {str(m) for m in runs.method.dropna()} if "method" in runs else set()
    names |= {str(v) for v in runs.label.dropna()} if "label" in runs else set()
    names |= {r.label for t in tables for r in t.rows}
    return color_map(sorted(names))


def render_plots(runs: pd.DataFrame, tables: list[Table]) -> list[Plot]:
    plots: list[Plot] = []
    colors = report_colors(runs, tables)
    for t in tables:
        if t.kind in ("knn", "linear"):
            series = epoch_series(runs, t.kind, t.protocol, t.dataset)
            if series:
                plots.append(plot_epochs(f"epochs-{t.key}",
                                         f"Top-1 accuracy against pretraining epochs: {t.title}",
                                         series, f"{t.kind} top-1 accuracy (%)", colors))
        if t.kind == "flatness":
            curves = flat_curves(runs, t.protocol)
            if curves:
                plots.append(plot_flat(f"flat-{t.key}", f"Sorted softmax output: {t.title}", curves, colors))
    for t in tables:
        p = plot_cells(t, colors)
        if p is not None:
            plots.append(p)
    return plots
