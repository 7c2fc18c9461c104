"""Format the table model of `report_tables` as Markdown, LaTeX (booktabs), CSV and one
self-contained HTML page. Nothing here decides a number: it only prints what the model holds.

Cell notation, identical in every format: mean, then +- sample std when n >= 2, then the signed
difference to the row's baseline in parentheses (superscript in LaTeX); the best mean of a column in
bold; a missing cell is a dash with a footnote marker.
"""
from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

from transfer.report import perclass, references
from transfer.report.perclass import PerClassTable
from transfer.report.tables import Cell, Column, Paired, Table, round_half_up

DASH = "—"


@dataclass(frozen=True)
class Plot:
    key: str
    title: str
    png: bytes
    svg: bytes


@dataclass(frozen=True)
class Report:
    name: str
    sources: list[str]
    tables: list[Table]
    skipped: pd.DataFrame  # failed / unfinished / superseded runs
    n_records: int
    plots: list[Plot]
    decimals: int = 1
    per_class: list[PerClassTable] = field(default_factory=list)


# ----------------------------------------------------------------------------- numbers

def num(x: float, d: int) -> str:
    r = round_half_up(x, d)
    return f"{0.0 if r == 0 else r:.{d}f}"


def signed(x: float, d: int) -> str:
    """'+0.7', '-0.3', and '+0.0' rather than '-0.0' for a difference that rounds to zero."""
    r = round_half_up(x, d)
    return f"+{0:.{d}f}" if r == 0 else f"{r:+.{d}f}"


def _ci_text(p: Paired, d: int) -> str:
    return f"[{signed(p.lo, d)}, {signed(p.hi, d)}]"


def _verdict(p: Paired) -> str:
    return "CI excludes 0" if p.excludes_zero else "CI includes 0: not distinguishable from noise"


def _group_suffix(col: Column) -> str:
    return f" ({col.group})" if col.group else ""


def _seeds(p: Paired) -> str:
    return ", ".join(map(str, p.seeds))


PAIRED_HEADERS = ["pre-train", "baseline", "BN", "metric", "n", "seeds", "mean diff", "95% CI", "verdict"]
SKIPPED_HEADERS = ["file", "kind", "label", "protocol", "BN", "seed", "reason"]


def _skipped_rows(skipped: pd.DataFrame) -> list[list[str]]:
    return [[r.path, r.kind, r.label, r.protocol, r.bn_used or "", "" if r.seed is None else str(r.seed),
             r.reason] for r in skipped.itertuples()]


# ----------------------------------------------------------------------------- Markdown

def _md_escape(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*").replace("_", "\\_")


def md_cell(cell: Cell, col: Column, d: int) -> str:
    if col.is_n:
        return str(int(cell.values[0]))
    if cell.mean is None:
        return f"{DASH}[{cell.note}]"
    text = f"**{num(cell.mean, d)}**" if cell.best else num(cell.mean, d)
    if cell.std is not None:
        text += f" ± {num(cell.std, d)}"
    if cell.n_differs:
        text += f" (n={cell.n})"
    if cell.diff is not None:
        text += f" ({signed(cell.diff, d)})"
    return text


def _md_table(headers: list[str], rows: list[list[str]], align: list[str]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |",
           "|" + "|".join("---:" if a == "r" else ":---:" if a == "c" else "---" for a in align) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _ref_columns(t: Table, tex: bool = False) -> list[tuple[str, str]]:
    """(metric key, header) of the table's metric columns, once each."""
    return list({c.metric.key: (c.metric.tex or tex_escape(c.metric.text)) if tex else c.metric.text
                 for c in t.columns if not c.is_n}.items())


def _references(t: Table, dash: str, tex: bool = False) -> tuple[list[str], list[list[str]], list[str]]:
    return references.reference_rows(t.protocol, t.nominal, t.bn_present, _ref_columns(t, tex), dash)


REF_HEADERS = ["published (source)", "BN"]


def _md_references(t: Table, d: int) -> list[str]:
    """Published numbers of the same protocol and BN mode, in their own small table: never mixed
    into ours."""
    metrics, rows, sources = _references(t, DASH)
    if not rows:
        return []
    headers = REF_HEADERS + [_md_escape(h) for h in metrics]
    out = _md_table(headers, [[_md_escape(x) for x in r] for r in rows], ["l", "l"] + ["r"] * len(metrics))
    return out + [""] + [f"- [{i}] {_md_escape(s)}" for i, s in enumerate(sources, 1)] + [""]


def _tex_references(t: Table, d: int) -> list[str]:
    metrics, rows, sources = _references(t, "---", tex=True)
    if not rows:
        return []
    out = [r"\begin{table}[htbp]", r"\centering", r"\small",
           rf"\caption{{Published (not our runs): {t.tex_title or tex_escape(t.title)}}}",
           r"\begin{tabular}{ll" + "r" * len(metrics) + "}", r"\toprule",
           " & ".join([tex_escape(h) for h in REF_HEADERS] + metrics) + r" \\", r"\midrule"]
    out += [" & ".join(tex_escape(x) for x in r) + r" \\" for r in rows]
    out += [r"\bottomrule", r"\end{tabular}", r"\par\smallskip\footnotesize"]
    out += [f"[{i}] {tex_escape(s)}" + r"\par" for i, s in enumerate(sources, 1)]
    return out + [r"\end{table}", ""]


def _html_references(t: Table, d: int) -> list[str]:
    metrics, rows, sources = _references(t, DASH)
    if not rows:
        return []
    out = _html_table(REF_HEADERS + metrics, [[_h(x) for x in r] for r in rows], 2)
    return out + ['<div class="notes">'] + [f"<p>[{i}] {_h(s)}</p>" for i, s in enumerate(sources, 1)] + ["</div>"]


def render_markdown(rep: Report) -> str:
    d = rep.decimals
    lines = [f"# Report: {_md_escape(rep.name)}", "",
             f"From {rep.n_records} result records under {', '.join(f'`{s}`' for s in rep.sources)}. "
             "Cells: mean ± sample std over seeds (n = number of seeds); **bold**: best in the column; "
             "(+x): signed difference to the row's baseline; " + DASH + ": no result (see the note).", ""]
    for i, t in enumerate(rep.tables, 1):
        lines += [f"## Table {i}: {_md_escape(t.title)}", ""]
        headers = ["pre-train"] + t.lead_headers + [
            ("n" if c.is_n else c.metric.text) + _group_suffix(c) for c in t.columns]
        align = ["l"] * (1 + len(t.lead_headers)) + ["r"] * len(t.columns)
        rows = [[_md_escape(r.label)] + [_md_escape(r.lead[h]) for h in t.lead_headers]
                + [md_cell(c, col, d) for c, col in zip(r.cells, t.columns)] for r in t.rows]
        lines += _md_table(headers, rows, align) + [""]
        notes = [f"[{m}] {_md_escape(text)}" for m, text in t.footnotes]
        if t.diff_note:
            notes.append(_md_escape(t.diff_note))
        notes += [f"Provenance: {_md_escape(p)}" for p in t.provenance]
        lines += [f"- {n}" for n in notes] + [""]
        lines += _md_references(t, d)
        if t.paired:
            lines += ["Paired comparison with the baseline over the same seeds (mean difference, "
                      "t-based 95% CI):", ""]
            lines += _md_table(PAIRED_HEADERS, [[_md_escape(p.row), _md_escape(p.baseline), p.group or "",
                                                 p.header, str(p.n), _seeds(p), signed(p.mean, d),
                                                 _ci_text(p, d), _verdict(p)] for p in t.paired],
                               ["l", "l", "l", "l", "r", "l", "r", "r", "l"]) + [""]
    lines += perclass.markdown_lines(rep.per_class, d, _md_escape, _md_table)
    if rep.plots:
        lines += ["## Plots", ""]
        for p in rep.plots:
            lines += [f"![{_md_escape(p.title)}](plots/{p.key}.png)", "",
                      f"*{_md_escape(p.title)}* ([SVG](plots/{p.key}.svg))", ""]
    if len(rep.skipped):
        lines += ["## Runs not tabulated", ""]
        lines += _md_table(SKIPPED_HEADERS, [[_md_escape(x) for x in r] for r in _skipped_rows(rep.skipped)],
                           ["l"] * 5 + ["r", "l"]) + [""]
    return "\n".join(lines).rstrip() + "\n"


# ----------------------------------------------------------------------------- LaTeX

_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
        DASH: "---", "±": r"$\pm$", "→": r"$\rightarrow$"}


def tex_escape(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(text))


def _tex_signed(x: float, d: int) -> str:
    return signed(x, d).replace("-", "$-$", 1) if signed(x, d).startswith("-") else signed(x, d)


def tex_cell(cell: Cell, col: Column, d: int) -> str:
    if col.is_n:
        return str(int(cell.values[0]))
    if cell.mean is None:
        return rf"---\textsuperscript{{{cell.note}}}"
    text = rf"\textbf{{{num(cell.mean, d)}}}" if cell.best else num(cell.mean, d)
    if cell.std is not None:
        text += rf"{{\scriptsize$\pm${num(cell.std, d)}}}"
    if cell.n_differs:
        text += rf"{{\scriptsize\ ($n$={cell.n})}}"
    if cell.diff is not None:
        text += f"$^{{{signed(cell.diff, d)}}}$"
    return text


def _tex_tabular(headers: list[str], rows: list[list[str]], align: str,
                 groups: list[tuple[str, int]] | None = None, lead: int = 1) -> list[str]:
    out = [rf"\begin{{tabular}}{{{align}}}", r"\toprule"]
    if groups and any(g for g, _ in groups):
        cells, rules, col = [""] * lead, [], lead + 1
        for g, span in groups:
            cells.append(rf"\multicolumn{{{span}}}{{c}}{{{tex_escape(g)}}}")
            rules.append(rf"\cmidrule(lr){{{col}-{col + span - 1}}}")
            col += span
        out += [" & ".join(cells) + r" \\", " ".join(rules)]
    out += [" & ".join(headers) + r" \\", r"\midrule"]
    out += [" & ".join(r) + r" \\" for r in rows]
    out += [r"\bottomrule", r"\end{tabular}"]
    return out


def render_latex(rep: Report) -> str:
    d = rep.decimals
    lines = [f"% unmix report {rep.name}: paper-style tables from {rep.n_records} result records.",
             r"% Use with \usepackage{booktabs} and \input{report.tex}.",
             "% Cells: mean, {\\scriptsize +- sample std over seeds}, $^{signed difference to the baseline}$;",
             "% bold: best in the column; --- : no result (see the note).", ""]
    for t in rep.tables:
        lead = 1 + len(t.lead_headers)
        headers = ["pre-train"] + [tex_escape(h) for h in t.lead_headers] + [
            "$n$" if c.is_n else (c.metric.tex or tex_escape(c.metric.text)) for c in t.columns]
        rows = [[tex_escape(r.label)] + [tex_escape(r.lead[h]) for h in t.lead_headers]
                + [tex_cell(c, col, d) for c, col in zip(r.cells, t.columns)] for r in t.rows]
        align = "l" * lead + "".join(
            (" " if i and t.columns[i - 1].group != c.group else "") + ("r" if c.is_n else "c")
            for i, c in enumerate(t.columns))
        lines += [r"\begin{table}[htbp]", r"\centering", r"\small",
                  rf"\caption{{{t.tex_title or tex_escape(t.title)}}}", rf"\label{{tab:unmix-{t.key}}}"]
        lines += _tex_tabular(headers, rows, align, t.groups, lead)
        notes = [rf"\textsuperscript{{{m}}}{tex_escape(text)}" for m, text in t.footnotes]
        if t.diff_note:
            notes.append(tex_escape(t.diff_note))
        notes += [f"Provenance: {tex_escape(p)}" for p in t.provenance]
        if t.paired:
            notes.append("Paired comparison with the baseline over the same seeds, mean difference "
                         "[t-based 95\\% CI]: " + "; ".join(
                             f"{tex_escape(p.row)} vs {tex_escape(p.baseline)}"
                             f"{', ' + tex_escape(p.group) if p.group else ''}, {tex_escape(p.header)}: "
                             f"{_tex_signed(p.mean, d)} [{_tex_signed(p.lo, d)}, {_tex_signed(p.hi, d)}] "
                             f"($n$={p.n})" for p in t.paired) + ".")
        lines += [r"\par\smallskip", r"\begin{minipage}{\linewidth}\footnotesize\raggedright"]
        lines += [n + r"\par" for n in notes]
        lines += [r"\end{minipage}", r"\end{table}", ""]
        lines += _tex_references(t, d)
    lines += perclass.latex_lines(rep.per_class, d, tex_escape)
    if len(rep.skipped):
        lines.append("% Runs not tabulated (failed, unfinished or superseded):")
        lines += ["% " + " | ".join(r).replace("\n", " ") for r in _skipped_rows(rep.skipped)]
    return "\n".join(lines).rstrip() + "\n"


# ----------------------------------------------------------------------------- CSV

def _nan(x: float | None) -> float:
    return math.nan if x is None else x


def render_csv(rep: Report) -> dict[str, str]:
    """cells.csv (one row per table cell, full precision), paired.csv, references.csv."""
    cells, paired = [], []
    for t in rep.tables:
        for r in t.rows:
            n_of = {}
            for c, col in zip(r.cells, t.columns):
                if col.is_n:
                    n_of[col.group] = int(c.values[0])
                    continue
                cells.append({
                    "table": t.key, "title": t.title, "row": r.label, "baseline": r.baseline or "",
                    **{k.lower().replace("-", ""): v for k, v in r.lead.items()},
                    "group": col.group, "bn": col.bn or "", "metric": col.metric.key,
                    "header": col.metric.text, "n": c.n if c.mean is not None else n_of[col.group],
                    "mean": _nan(c.mean), "std": _nan(c.std), "diff": _nan(c.diff), "best": c.best,
                    "missing": dict(t.footnotes).get(c.note, "") if c.note else "",
                    "seeds": " ".join("?" if s is None else str(s) for s in c.seeds),
                    "values": " ".join(repr(v) for v in c.values)})
        for p in t.paired:
            paired.append({"table": t.key, "row": p.row, "baseline": p.baseline, "group": p.group,
                           "metric": p.metric, "header": p.header, "n": p.n, "seeds": " ".join(map(str, p.seeds)),
                           "mean_diff": p.mean, "sd_diff": p.sd, "t975": p.t, "ci_low": p.lo,
                           "ci_high": p.hi, "ci_excludes_zero": p.excludes_zero})
    return {"cells.csv": pd.DataFrame(cells).to_csv(index=False),
            "references.csv": _references_csv(rep),
            "paired.csv": pd.DataFrame(paired, columns=[
                "table", "row", "baseline", "group", "metric", "header", "n", "seeds", "mean_diff", "sd_diff",
                "t975", "ci_low", "ci_high", "ci_excludes_zero"]).to_csv(index=False)}


REFERENCE_CSV_COLUMNS = ["table", "title", "protocol", "bn", "row", "metric", "header", "value", "source"]


def _references_csv(rep: Report) -> str:
    """The published rows each table shows (transfer/report/references.py), one value per line,
    with the table's metric header; only the metrics the table has, as in md/tex/html."""
    out = []
    for t in rep.tables:
        header = dict(_ref_columns(t))
        for r in references.references_for(t.protocol, t.nominal, t.bn_present):
            out += [{"table": t.key, "title": t.title, "protocol": r.protocol, "bn": r.bn, "row": r.label,
                     "metric": k, "header": header[k], "value": f"{v:.{r.decimals}f}", "source": r.source}
                    for k, v in r.metrics.items() if k in header]
    return pd.DataFrame(out, columns=REFERENCE_CSV_COLUMNS).to_csv(index=False)


def render_runs_csv(runs: pd.DataFrame) -> str:
    cols = ["path", "kind", "status", "label", "protocol", "dataset", "bn_requested", "bn_used", "seed",
            "sha256", "method", "unmix", "epochs", "superseded_by", "error", "detector", "classes"]
    out = runs[cols].copy()
    # the settings that split the tables, as JSON ('' for a record without protocol.effective)
    out["effective"] = runs.settings
    out["metrics"] = [json.dumps(m, sort_keys=True) for m in runs.metrics]
    return out.to_csv(index=False)


# ----------------------------------------------------------------------------- HTML

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { padding: 0.25em 0.7em; text-align: right; white-space: nowrap; }
th { border-bottom: 1px solid #444; }
thead tr:first-child th { border-top: 2px solid #222; }
tbody tr:last-child td { border-bottom: 2px solid #222; }
td.l, th.l { text-align: left; }
.diff { color: #555; } .std { color: #555; font-size: 85%; }
.notes { font-size: 90%; color: #333; } img { max-width: 100%; }
"""


def _h(text: object) -> str:
    return html.escape(str(text), quote=True)


def html_cell(cell: Cell, col: Column, d: int) -> str:
    if col.is_n:
        return str(int(cell.values[0]))
    if cell.mean is None:
        return f"{DASH}<sup>{_h(cell.note)}</sup>"
    text = f"<b>{num(cell.mean, d)}</b>" if cell.best else num(cell.mean, d)
    if cell.std is not None:
        text += f' <span class="std">± {num(cell.std, d)}</span>'
    if cell.n_differs:
        text += f" (n={cell.n})"
    if cell.diff is not None:
        text += f' <span class="diff">({signed(cell.diff, d)})</span>'
    return text


def _html_table(headers: list[str], rows: list[list[str]], left: int,
                groups: list[tuple[str, int]] | None = None) -> list[str]:
    """`rows` hold HTML already; headers are plain text."""
    def cls(i: int) -> str:
        return ' class="l"' if i < left else ""
    out = ["<table>", "<thead>"]
    if groups and any(g for g, _ in groups):
        out.append("<tr>" + "".join(f'<th class="l" rowspan="2">{_h(h)}</th>' for h in headers[:left])
                   + "".join(f'<th colspan="{span}">{_h(g)}</th>' for g, span in groups) + "</tr>")
        out.append("<tr>" + "".join(f"<th>{_h(h)}</th>" for h in headers[left:]) + "</tr>")
    else:
        out.append("<tr>" + "".join(f"<th{cls(i)}>{_h(h)}</th>" for i, h in enumerate(headers)) + "</tr>")
    out += ["</thead>", "<tbody>"]
    out += ["<tr>" + "".join(f"<td{cls(i)}>{c}</td>" for i, c in enumerate(r)) + "</tr>" for r in rows]
    out += ["</tbody>", "</table>"]
    return out


def render_html(rep: Report) -> str:
    d = rep.decimals
    body = [f"<h1>Report: {_h(rep.name)}</h1>",
            f"<p>From {rep.n_records} result records under {_h(', '.join(rep.sources))}. Cells: mean "
            "± sample std over seeds (n = number of seeds); <b>bold</b>: best in the column; (+x): signed "
            f"difference to the row's baseline; {DASH}: no result (see the note).</p>"]
    for i, t in enumerate(rep.tables, 1):
        body.append(f'<h2 id="{_h(t.key)}">Table {i}: {_h(t.title)}</h2>')
        left = 1 + len(t.lead_headers)
        grouped = any(c.group for c in t.columns)
        headers = ["pre-train"] + t.lead_headers + [
            ("n" if c.is_n else c.metric.text) + ("" if grouped else _group_suffix(c)) for c in t.columns]
        rows = [[_h(r.label)] + [_h(r.lead[h]) for h in t.lead_headers]
                + [html_cell(c, col, d) for c, col in zip(r.cells, t.columns)] for r in t.rows]
        body += _html_table(headers, rows, left, t.groups)
        notes = [f"<sup>{_h(m)}</sup> {_h(text)}" for m, text in t.footnotes]
        if t.diff_note:
            notes.append(_h(t.diff_note))
        notes += [f"Provenance: {_h(p)}" for p in t.provenance]
        body += ['<div class="notes">'] + [f"<p>{n}</p>" for n in notes] + ["</div>"]
        body += _html_references(t, d)
        if t.paired:
            body.append("<p>Paired comparison with the baseline over the same seeds (mean difference, "
                        "t-based 95% CI):</p>")
            body += _html_table(PAIRED_HEADERS, [[_h(p.row), _h(p.baseline), _h(p.group), _h(p.header),
                                                  str(p.n), _h(_seeds(p)), signed(p.mean, d),
                                                  _ci_text(p, d), _h(_verdict(p))] for p in t.paired], 4)
    body += perclass.html_lines(rep.per_class, d, _h, _html_table)
    if rep.plots:
        body.append("<h2>Plots</h2>")
        for p in rep.plots:
            data = base64.b64encode(p.png).decode("ascii")
            body.append(f'<figure id="plot-{_h(p.key)}"><img src="data:image/png;base64,{data}" '
                        f'alt="{_h(p.title)}" /><figcaption>{_h(p.title)}</figcaption></figure>')
    if len(rep.skipped):
        body.append("<h2>Runs not tabulated</h2>")
        body += _html_table(SKIPPED_HEADERS, [[_h(x) for x in r] for r in _skipped_rows(rep.skipped)], 7)
    head = (f'<head><meta charset="utf-8" /><meta name="viewport" content="width=device-width" />'
            f"<title>unmix report {_h(rep.name)}</title><style>{_CSS}</style></head>")
    return "<!DOCTYPE html>\n<html lang=\"en\">\n" + head + "\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"


RENDERERS: dict[str, Callable[[Report], str]] = {"md": render_markdown, "tex": render_latex,
                                                  "html": render_html}
