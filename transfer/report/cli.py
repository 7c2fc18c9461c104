"""`unmix report RESULTS_DIR... -o reports/NAME`: paper-style tables and plots from result records.

Reads every `result.json` under the given directories (detection fine-tuning, kNN, linear,
flatness), and writes the output directory as one unit, only after everything was computed (a
bad record stops the report before anything is written): the files go into a temp directory
next to it, which then takes its place, so a full disk or a kill leaves the previous report
whole, never half old and half new. Files of the previous directory that the report did not
write (per its manifest.json) are kept.

    report.md      Markdown tables (GitHub-flavoured), notes, paired comparisons, plot links
    report.tex     LaTeX fragment: one booktabs `table` per table, for \\input
    cells.csv      one row per table cell, full precision; paired.csv; references.csv (the
                   published rows shown beside the tables); runs.csv (every record)
    report.html    one self-contained page: tables, notes, plots embedded as base64 PNG
    plots/*.png, plots/*.svg
    manifest.json  the files this report wrote, with their sha256

See docs/report.md for the table shapes, the baseline rule and the statistics.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from unmix.core import files, records
from unmix.core.errors import UnmixError

FORMATS = ("md", "tex", "csv", "html")
FILE_OF = {"md": "report.md", "tex": "report.tex", "html": "report.html"}
MANIFEST = "manifest.json"
# What reports wrote before they had a manifest: replaced, not carried over.
_REPORT_NAMES = {*FILE_OF.values(), "cells.csv", "paired.csv", "references.csv", "runs.csv"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", metavar="RESULTS_DIR",
                        help="directories searched recursively for result.json (or result files)")
    parser.add_argument("-o", "--output", required=True, metavar="DIR",
                        help="output directory, e.g. reports/NAME")
    parser.add_argument("--baseline", default="auto", metavar="LABEL",
                        help="checkpoint label every row is compared with; 'auto' (default): each "
                             "Un-Mix row against the same method and epochs without Un-Mix; "
                             "'none': no differences")
    parser.add_argument("--formats", default=",".join(FORMATS),
                        help=f"comma-separated subset of {','.join(FORMATS)} (default: all)")
    parser.add_argument("--decimals", type=int, default=1, help="decimals shown (default 1, as the paper)")
    parser.add_argument("--no-plots", action="store_true", help="skip the matplotlib plots")
    parser.add_argument("--name", default=None, help="report title (default: the output directory name)")


def parse_formats(text: str) -> list[str]:
    fmts = [f.strip().lower() for f in text.split(",") if f.strip()]
    bad = [f for f in fmts if f not in FORMATS]
    if bad or not fmts:
        raise UnmixError(f"--formats: unknown format(s) {', '.join(bad) or '(none given)'} "
                         f"(choose from {', '.join(FORMATS)})")
    return list(dict.fromkeys(fmts))


def build_report(results: list[str], name: str, baseline: str = "auto", decimals: int = 1,
                 plots: bool = True):
    """(Report, runs frame): everything computed in memory, nothing written."""
    from transfer.report.render import Report
    from transfer.report.perclass import per_class_tables
    from transfer.report.tables import build_tables, load_runs, not_tabulated

    if not 0 <= decimals <= 6:
        raise UnmixError(f"--decimals: {decimals} is out of range 0..6")
    runs = load_runs(results)
    tables = build_tables(runs, baseline=baseline, decimals=decimals)
    plot_list = []
    if plots:
        from transfer.report.plots import render_plots

        plot_list = render_plots(runs, tables)
    rep = Report(name=name, sources=[str(r) for r in results], tables=tables,
                 skipped=not_tabulated(runs), n_records=len(runs), plots=plot_list, decimals=decimals,
                 per_class=per_class_tables(runs))
    return rep, runs


def render_files(rep, runs, formats: list[str]) -> dict[str, bytes]:
    """Relative path -> content, for every file the report consists of."""
    from transfer.report.render import RENDERERS, render_csv, render_runs_csv

    contents: dict[str, bytes] = {}
    for fmt in formats:
        if fmt == "csv":
            for fname, text in render_csv(rep).items():
                contents[fname] = text.encode("utf-8")
            contents["runs.csv"] = render_runs_csv(runs).encode("utf-8")
        else:
            contents[FILE_OF[fmt]] = RENDERERS[fmt](rep).encode("utf-8")
    for p in rep.plots:
        contents[f"plots/{p.key}.png"] = p.png
        contents[f"plots/{p.key}.svg"] = p.svg
    return contents


def _previous_files(out: Path) -> set[str] | None:
    """The files the previous report in `out` wrote (its manifest), or None without one."""
    try:
        listed = json.loads((out / MANIFEST).read_text(encoding="utf-8"))["files"]
        return {str(k) for k in listed}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _carry_over(out: Path, new: Path, ours: set[str]) -> None:
    """Hard-link (or copy) into `new` every file of the old `out` a report did not write, so
    the swap never loses a user's file kept next to the report."""
    previous = _previous_files(out)
    for path in sorted(out.rglob("*")) if out.is_dir() else []:
        rel = path.relative_to(out).as_posix()
        mine = rel in ours or (rel in previous if previous is not None else
                               rel in _REPORT_NAMES or rel.startswith("plots/"))
        if mine or path.is_dir():
            continue
        dst = new / rel
        with files.writing(out / rel):
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, dst, follow_symlinks=False)
            except OSError:
                shutil.copy2(path, dst, follow_symlinks=False)


def write_report(out: Path, contents: dict[str, bytes]) -> None:
    """All of `contents` (relative path -> bytes) and manifest.json as `out`, in one swap."""
    import hashlib

    with files.atomic_dir(out) as tmp:
        for rel, data in contents.items():
            dst = files.inside(tmp, rel)  # plot keys come from record fields: never outside
            with files.writing(out / rel):
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_bytes(data)
        manifest = {"schema": "unmix.report-files/1", "written": records.now(),
                    "files": {rel: hashlib.sha256(data).hexdigest() for rel, data in contents.items()}}
        with files.writing(out / MANIFEST):
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        _carry_over(out, tmp, set(contents) | {MANIFEST})


def run(args: argparse.Namespace) -> int:
    formats = parse_formats(args.formats)
    out = files.check_output(args.output, option="-o", directory=True)
    files.remove_orphans(out.parent, out.name)  # a cut swap is put back, temp dirs go
    rep, runs = build_report(args.results, args.name or out.name, args.baseline, args.decimals,
                             plots=not args.no_plots)
    contents = render_files(rep, runs, formats)
    write_report(out, contents)
    n_fin = int((runs.status == "finished").sum())
    print(f"unmix report: {len(runs)} records ({n_fin} finished, {len(rep.skipped)} not tabulated), "
          f"{len(rep.tables)} tables, {len(rep.plots)} plots -> {out}/")
    for rel in contents:
        if not rel.startswith("plots/"):
            print(f"  {out / rel}")
    return 0
