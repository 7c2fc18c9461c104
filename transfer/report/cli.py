"""`unmix report RESULTS_DIR... -o reports/NAME`: paper-style tables and plots from result records.

Reads every `result.json` under the given directories (detection fine-tuning, kNN, linear,
flatness), and writes into the output directory, each file atomically and only after everything
was computed (a bad record stops the report before anything is written):

    report.md      Markdown tables (GitHub-flavoured), notes, paired comparisons, plot links
    report.tex     LaTeX fragment: one booktabs `table` per table, for \\input
    cells.csv      one row per table cell, full precision; paired.csv; runs.csv (every record)
    report.html    one self-contained page: tables, notes, plots embedded as base64 PNG
    plots/*.png, plots/*.svg

See docs/report.md for the table shapes, the baseline rule and the statistics.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from unmix.core import files
from unmix.core.errors import UnmixError

FORMATS = ("md", "tex", "csv", "html")
FILE_OF = {"md": "report.md", "tex": "report.tex", "html": "report.html"}


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
                 skipped=not_tabulated(runs), n_records=len(runs), plots=plot_list, decimals=decimals)
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


def run(args: argparse.Namespace) -> int:
    formats = parse_formats(args.formats)
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise UnmixError(f"{out}: exists and is not a directory")
    rep, runs = build_report(args.results, args.name or out.name, args.baseline, args.decimals,
                             plots=not args.no_plots)
    contents = render_files(rep, runs, formats)
    for rel, data in contents.items():
        files.write_bytes(out / rel, data)
    n_fin = int((runs.status == "finished").sum())
    print(f"unmix report: {len(runs)} records ({n_fin} finished, {len(rep.skipped)} not tabulated), "
          f"{len(rep.tables)} tables, {len(rep.plots)} plots -> {out}/")
    for rel in contents:
        if not rel.startswith("plots/"):
            print(f"  {out / rel}")
    return 0
