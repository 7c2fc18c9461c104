"""`unmix report` from hand-written result records: every number, difference, bold mark, dash and
footnote checked in Markdown, LaTeX, CSV and HTML; bad records give errors naming the file."""
from __future__ import annotations

import base64
import json
import math
import re
import statistics
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

from transfer.report import cli as report
from transfer.report import tables as report_tables
from transfer.report.plots import epoch_series, flat_curves
from unmix import cli
from unmix.core import records
from unmix.core.errors import UnmixError

ENV = {"unmix_commit": None, "python": "3.11", "torch": "test", "device": "cpu", "world_size": 1}
MOCO = {"method": "moco", "unmix": False, "epochs": 200, "dataset": "imagenet"}
OURS = {"method": "moco", "unmix": True, "epochs": 200, "dataset": "imagenet"}
SHA_MOCO, SHA_OURS, SHA_RAND = "1a" * 32, "2b" * 32, "3c" * 32
COCO_KEYS = ["bbox_AP", "bbox_AP50", "bbox_AP75", "segm_AP", "segm_AP50", "segm_AP75"]


# protocol.effective as transfer/detection/finetune.py's effective() writes it for the unmodified
# protocol configs (printed from them); any other detection protocol gets OTHER_EFFECTIVE.
_FPN_VOC = {"image_scale": "1000x600 train, 1000x600 test", "depth": 50, "max_iters": None, "max_epochs": 4}
_FPN_COCO = {"image_scale": "1333x800 train, 1333x800 test", "depth": 50, "max_iters": None, "max_epochs": 12}
_C4_VOC = {"image_scale": "1333x480..1333x800 train, 1333x800 test", "depth": 50, "max_iters": 24000,
           "max_epochs": None}
EFFECTIVE = {name: {**e, "cfg_options_sha256": None, "quick": None} for name, e in {
    "voc-faster-rcnn-fpn": _FPN_VOC, "coco-retinanet-fpn": _FPN_COCO, "coco-mask-rcnn-fpn": _FPN_COCO,
    "voc-faster-rcnn-c4": _C4_VOC, "voc-faster-rcnn-c4-mmselfsup": _C4_VOC,
    "coco-mask-rcnn-fpn-mmselfsup": {**_FPN_COCO, "image_scale": "1333x640..1333x800 train, 1333x800 test"},
}.items()}
OTHER_EFFECTIVE = {**EFFECTIVE["coco-mask-rcnn-fpn"], "max_epochs": 24}


def put(root: Path, kind: str, label: str, proto: str, seed, metrics: dict, *, bn=None, bn_req=None,
        pretrain=None, sha=SHA_MOCO, failed=False, details=None, dataset=None, sub="",
        effective="as-run", quick=None) -> Path:
    """A record as `unmix finetune`/`knn`/... write it; detection records carry `protocol.effective`
    (the protocol's own settings unless `effective` says otherwise; None: a record from before
    effective settings were recorded)."""
    ck = {"label": label, "path": f"/ck/{label}.pth", "sha256": sha, "format": "torchvision",
          "arch": "resnet50", "stem": "imagenet", "pretrain": pretrain}
    pr = {"name": proto, "seed": seed, "dataset": dataset}
    if bn:
        pr.update(bn_requested=bn_req or bn, bn_used=bn)
    if kind == "detection" and effective is not None:
        pr["effective"] = dict(EFFECTIVE.get(proto, OTHER_EFFECTIVE)) if effective == "as-run" else effective
        pr["quick"] = quick
    rec = records.new_record(kind, ck, pr, env=ENV)
    if details:
        rec["details"] = details
    if failed:
        records.fail(rec, "RuntimeError: CUDA out of memory")
    else:
        records.finish(rec, metrics, wall_time_s=1.0)
    d = root / f"{kind}-{label}-{proto}-{bn}-{seed}{sub}".replace(" ", "_")
    d.mkdir(parents=True)
    return records.write(rec, d)


# VOC FPN (Table 7 shape). AP50: MoCo 75.0/75.3/75.0 (75.1 +- 0.173), Ours 75.9/75.8/75.7 (75.8 +- 0.1);
# paired diffs 0.9/0.5/0.7 -> 0.7, sd 0.2. Recall: MoCo 90.0/90.2/90.4, Ours 90.1/90.5/90.3;
# paired diffs 0.1/0.3/-0.1 -> 0.1, sd 0.2 (a gap that is noise).
VOC_MOCO_FT = [(75.0, 90.0), (75.3, 90.2), (75.0, 90.4)]
VOC_MOCO_FZ = [(72.6, 92.3), (72.7, 92.3), (72.8, 92.3)]
VOC_OURS_FT = [(75.9, 90.1), (75.8, 90.5), (75.7, 90.3)]
MASK_MOCO = [31.2, 51.3, 33.3, 29.1, 48.2, 30.6]   # arXiv 2003.05438v1 Table 8(b)
MASK_OURS = [32.8, 53.3, 35.1, 30.3, 50.1, 32.1]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("records") / "results"
    for s, (ap, rc) in enumerate(VOC_MOCO_FT):
        put(root, "detection", "MoCo", "voc-faster-rcnn-fpn", s, {"AP50": ap, "recall": rc}, bn="finetune",
            pretrain=MOCO)
    for s, (ap, rc) in enumerate(VOC_MOCO_FZ):
        put(root, "detection", "MoCo", "voc-faster-rcnn-fpn", s, {"AP50": ap, "recall": rc}, bn="frozen",
            pretrain=MOCO)
    for s, (ap, rc) in enumerate(VOC_OURS_FT):
        put(root, "detection", "Ours", "voc-faster-rcnn-fpn", s, {"AP50": ap, "recall": rc}, bn="finetune",
            pretrain=OURS, sha=SHA_OURS)
    put(root, "detection", "Ours", "voc-faster-rcnn-fpn", 0, {}, bn="frozen", pretrain=OURS, sha=SHA_OURS,
        failed=True)
    put(root, "detection", "random init", "voc-faster-rcnn-fpn", 0, {"AP50": 58.0}, bn="finetune",
        bn_req="sync", sha=SHA_RAND)
    put(root, "detection", "MoCo", "coco-mask-rcnn-fpn", 0, dict(zip(COCO_KEYS, MASK_MOCO)), bn="frozen",
        pretrain=MOCO)
    put(root, "detection", "Ours", "coco-mask-rcnn-fpn", 0, dict(zip(COCO_KEYS, MASK_OURS)), bn="frozen",
        pretrain=OURS, sha=SHA_OURS)
    # kNN, Figure 4 / Tables 5-6 shape: 61.25 shows as 61.3 (half up), difference +0.75 as +0.8.
    for ep, base in ((100, 60.0), (200, 65.0)):
        for s in (0, 1):
            put(root, "knn", f"moco-{ep}", "knn-k200-t0.1", s, {"top1": base + s}, dataset="cifar10",
                pretrain={**MOCO, "epochs": ep})
            put(root, "knn", f"unmix-{ep}", "knn-k200-t0.1", s, {"top1": base + 1 + 0.5 * s},
                dataset="cifar10", pretrain={**OURS, "epochs": ep}, sha=SHA_OURS)
    put(root, "linear", "foreign", "linear-cifar", 0, {"top1": 70.0}, dataset="cifar10", sha="ff" * 32)
    put(root, "flatness", "MoCo", "flat-cifar10", 0, {"max_prob_mean": 20.0}, pretrain=MOCO,
        details={"sorted_probs": [0.2, 0.1, 0.05]})
    put(root, "flatness", "MoCo", "flat-cifar10", 1, {"max_prob_mean": 22.0}, pretrain=MOCO,
        details={"sorted_probs": [0.4, 0.1, 0.01]})
    put(root, "flatness", "Ours", "flat-cifar10", 0, {"max_prob_mean": 12.0}, pretrain=OURS,
        details={"sorted_probs": [0.12, 0.1, 0.08]}, sha=SHA_OURS)
    return root


def make(results: Path, tmp_path: Path, *extra: str) -> Path:
    out = tmp_path / "reports" / "paper"
    assert report.run(_args(str(results), "-o", str(out), *extra)) == 0
    return out


@pytest.fixture(scope="module")
def full(results, tmp_path_factory) -> Path:
    """The default report (all formats, plots), built once for the module."""
    return make(results, tmp_path_factory.mktemp("full"))


def _args(*argv: str):
    import argparse

    p = argparse.ArgumentParser()
    report.add_arguments(p)
    return p.parse_args(list(argv))


def _t975(df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.975, df))


# ----------------------------------------------------------------------------- Markdown

VOC_ROWS = [
    "| random init | 1 | 58.0 | —[a] | 0 | —[b] | —[b] |",
    "| MoCo | 3 | 75.1 ± 0.2 | 90.2 ± 0.2 | 3 | 72.7 ± 0.1 | 92.3 ± 0.0 |",
    "| Ours | 3 | **75.8** ± 0.1 (+0.7) | **90.3** ± 0.2 (+0.1) | 0 | —[c] | —[c] |",
]


def test_markdown_voc_table_numbers_bold_dashes_and_notes(results, full):
    md = (full / "report.md").read_text()
    assert "| pre-train | n (No Freeze) | AP50 (No Freeze) | Recall (No Freeze) | n (Freeze BN) | " \
           "AP50 (Freeze BN) | Recall (Freeze BN) |" in md
    block = md[md.index("## Table 1"):md.index("## Table 2")]
    rows = [line for line in block.splitlines() if line.startswith("| ") and "pre-train" not in line
            and "baseline" not in line]
    assert rows[:3] == VOC_ROWS
    assert "- [a] random init, voc-faster-rcnn-fpn, BN finetune: the records have no 'recall' metric." in block
    assert "- [b] random init, voc-faster-rcnn-fpn, BN frozen: no run." in block
    assert ("- [c] Ours, voc-faster-rcnn-fpn, BN frozen: no finished run (1 failed or unfinished, "
            "see Runs not tabulated).") in block
    assert "to the same method and pretraining budget without Un-Mix: Ours vs MoCo." in block
    # provenance: sha256 prefix, protocol, BN as used (and as requested when it differs), seeds
    assert ("Provenance: MoCo: checkpoint sha256 1a1a1a1a1a1a; protocol voc-faster-rcnn-fpn; No Freeze: BN "
            "finetune, seeds 0, 1, 2; Freeze BN: BN frozen, seeds 0, 1, 2.") in block
    assert ("Provenance: random init: checkpoint sha256 3c3c3c3c3c3c; protocol voc-faster-rcnn-fpn; "
            "No Freeze: BN finetune (requested sync), seeds 0.") in block
    assert "Provenance: Ours: checkpoint sha256 2b2b2b2b2b2b;" in block


def test_markdown_paired_comparison_matches_t_interval(results, full):
    md = (full / "report.md").read_text()
    # AP50 diffs 0.9, 0.5, 0.7: mean 0.7, sd 0.2, half-width t(0.975, 2) * 0.2 / sqrt(3)
    half = _t975(2) * 0.2 / math.sqrt(3)
    assert f"{0.7 - half:.1f}" == "0.2" and f"{0.7 + half:.1f}" == "1.2"
    assert "| Ours | MoCo | No Freeze | AP50 | 3 | 0, 1, 2 | +0.7 | [+0.2, +1.2] | CI excludes 0 |" in md
    assert f"{0.1 - half:.1f}" == "-0.4" and f"{0.1 + half:.1f}" == "0.6"
    assert ("| Ours | MoCo | No Freeze | Recall | 3 | 0, 1, 2 | +0.1 | [-0.4, +0.6] | "
            "CI includes 0: not distinguishable from noise |") in md


def test_markdown_coco_knn_flatness_and_failed_list(results, full):
    md = (full / "report.md").read_text()
    assert "| pre-train | n (Freeze BN) | APbb (Freeze BN) | AP50bb (Freeze BN) | AP75bb (Freeze BN) | " \
           "APmk (Freeze BN) | AP50mk (Freeze BN) | AP75mk (Freeze BN) |" in md
    assert "| MoCo | 1 | 31.2 | 51.3 | 33.3 | 29.1 | 48.2 | 30.6 |" in md
    assert ("| Ours | 1 | **32.8** (+1.6) | **53.3** (+2.0) | **35.1** (+1.8) | **30.3** (+1.2) | "
            "**50.1** (+1.9) | **32.1** (+1.5) |") in md
    # kNN: Method / Un-Mix / Arch / Epochs columns, half-up rounding, diffs to the same budget
    assert "| pre-train | Method | Un-Mix | Arch | Epochs | n | Top-1 |" in md
    assert "| moco-100 | moco | no | resnet50 | 100 | 2 | 60.5 ± 0.7 |" in md
    assert "| unmix-100 | moco | yes | resnet50 | 100 | 2 | 61.3 ± 0.4 (+0.8) |" in md
    assert "| moco-200 | moco | no | resnet50 | 200 | 2 | 65.5 ± 0.7 |" in md
    assert "| unmix-200 | moco | yes | resnet50 | 200 | 2 | **66.3** ± 0.4 (+0.8) |" in md
    # a foreign checkpoint (pretrain null) is a label-only row, no baseline
    assert "| foreign |  |  | resnet50 |  | 1 | 70.0 |" in md
    # flatness: no bold (lower is not "better"), difference still shown
    assert "| MoCo | 2 | 21.0 ± 1.4 |" in md and "| Ours | 1 | 12.0 (-9.0) |" in md
    # failed run listed with its error, not tabulated
    tail = md[md.index("## Runs not tabulated"):]
    assert re.search(r"\| \S+detection-Ours-voc-faster-rcnn-fpn-frozen-0/result.json \| detection \| Ours \| "
                     r"voc-faster-rcnn-fpn \| frozen \| 0 \| failed: RuntimeError: CUDA out of memory \|", tail)
    assert "CUDA" not in md[:md.index("## Runs not tabulated")]


def test_explicit_baseline_row_first_and_all_rows_compared(results, tmp_path):
    md = (make(results, tmp_path, "--baseline", "MoCo", "--no-plots", "--formats", "md") / "report.md").read_text()
    block = md[md.index("## Table 1"):md.index("## Table 2")]
    rows = [line for line in block.splitlines() if line.startswith("| ") and "pre-train" not in line]
    assert rows[0].startswith("| MoCo | 3 | 75.1 ± 0.2 |")
    assert rows[1] == "| random init | 1 | 58.0 (-17.1) | —[a] | 0 | —[b] | —[b] |"
    assert "Signed differences are to the baseline row MoCo." in block
    # kNN tables have no MoCo row: they say so instead of inventing a baseline
    assert "Baseline 'MoCo' has no finished run in this table: no differences shown." in md
    none = (make(results, tmp_path, "--baseline", "none", "--no-plots", "--formats", "md") / "report.md").read_text()
    assert "(+0.7)" not in none and "Paired comparison" not in none


# ----------------------------------------------------------------------------- LaTeX

def test_latex_booktabs_cells(results, full):
    tex = (full / "report.tex").read_text()
    t1 = tex[:tex.index(r"\end{table}")]
    assert r"\begin{tabular}{lrcc rcc}" in t1 and r"\toprule" in t1 and r"\bottomrule" in t1
    assert r" & \multicolumn{3}{c}{No Freeze} & \multicolumn{3}{c}{Freeze BN} \\" in t1
    assert r"\cmidrule(lr){2-4} \cmidrule(lr){5-7}" in t1
    assert r"pre-train & $n$ & AP$_{50}$ & Recall & $n$ & AP$_{50}$ & Recall \\" in t1
    assert (r"random init & 1 & 58.0 & ---\textsuperscript{a} & 0 & ---\textsuperscript{b} & "
            r"---\textsuperscript{b} \\") in t1
    assert (r"MoCo & 3 & 75.1{\scriptsize$\pm$0.2} & 90.2{\scriptsize$\pm$0.2} & 3 & "
            r"72.7{\scriptsize$\pm$0.1} & 92.3{\scriptsize$\pm$0.0} \\") in t1
    assert (r"Ours & 3 & \textbf{75.8}{\scriptsize$\pm$0.1}$^{+0.7}$ & \textbf{90.3}{\scriptsize$\pm$0.2}"
            r"$^{+0.1}$ & 0 & ---\textsuperscript{c} & ---\textsuperscript{c} \\") in t1
    assert r"\textsuperscript{b}random init, voc-faster-rcnn-fpn, BN frozen: no run.\par" in t1
    assert r"Ours vs MoCo, No Freeze, Recall: +0.1 [$-$0.4, +0.6] ($n$=3)" in t1
    assert r"\caption{Mask R-CNN R50-FPN, COCO train2017 $\rightarrow$ val2017}" in tex
    assert r"AP$^{bb}$ & AP$^{bb}_{50}$ & AP$^{bb}_{75}$ & AP$^{mk}$" in tex
    assert r"Ours & 1 & 12.0$^{-9.0}$ \\" in tex
    assert "% " + "Runs not tabulated" in tex and "%" in tex.splitlines()[-1]
    # balanced environments and braces, so \input works as-is
    # 5 tables of ours, 2 of published rows (paper Tables 7 and 8b under VOC FPN and Mask R-CNN FPN)
    assert tex.count(r"\begin{table}") == tex.count(r"\end{table}") == 7
    assert tex.count(r"\caption{Published (not our runs): ") == 2
    body = re.sub(r"\\[{}]", "", "\n".join(line for line in tex.splitlines() if not line.startswith("%")))
    assert body.count("{") == body.count("}")


def test_latex_escapes_labels(tmp_path):
    root = tmp_path / "r"
    put(root, "knn", "moco_v2 & 50% #1", "knn-k200", 0, {"top1": 50.0}, dataset="cifar10")
    tex = (make(root, tmp_path, "--formats", "tex", "--no-plots") / "report.tex").read_text()
    assert r"moco\_v2 \& 50\% \#1 & " in tex
    assert r"\caption{kNN classification accuracy (\%), knn-k200 on cifar10}" in tex


# ----------------------------------------------------------------------------- CSV

def test_csv_full_precision_cells_paired_and_runs(results, full):
    out = full
    cells = pd.read_csv(out / "cells.csv", keep_default_na=False, na_values=[""])
    ap = cells[(cells.table == "detection-voc-faster-rcnn-fpn") & (cells.metric == "AP50")
               & (cells.group == "No Freeze")].set_index("row")
    assert ap.loc["MoCo", "mean"] == pytest.approx(statistics.fmean([75.0, 75.3, 75.0]))
    assert ap.loc["MoCo", "std"] == pytest.approx(statistics.stdev([75.0, 75.3, 75.0]))
    assert ap.loc["Ours", "diff"] == pytest.approx(75.8 - 75.1, abs=1e-9)
    assert ap.loc["Ours", "best"] and not ap.loc["MoCo", "best"]
    assert ap.loc["Ours", "baseline"] == "MoCo" and ap.loc["Ours", "seeds"] == "0 1 2"
    assert ap.loc["Ours", "method"] == "moco" and ap.loc["Ours", "unmix"] == "yes"
    fz = cells[(cells.table == "detection-voc-faster-rcnn-fpn") & (cells.group == "Freeze BN")
               & (cells.row == "Ours")]
    assert fz["mean"].isna().all() and (fz.n == 0).all()
    assert fz.missing.str.contains("no finished run").all()
    paired = pd.read_csv(out / "paired.csv")
    row = paired[(paired.metric == "recall")].iloc[0]
    assert row.header == "Recall"  # key and header text, named as in cells.csv
    assert row.mean_diff == pytest.approx(0.1) and row.sd_diff == pytest.approx(0.2)
    half = _t975(2) * 0.2 / math.sqrt(3)
    assert (row.ci_low, row.ci_high) == (pytest.approx(0.1 - half), pytest.approx(0.1 + half))
    assert not row.ci_excludes_zero
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == len(list(results.rglob("result.json")))
    assert set(runs.status) == {"finished", "failed"}
    voc = runs[(runs.protocol == "voc-faster-rcnn-fpn") & (runs.status == "finished")]
    assert {json.loads(e)["image_scale"] for e in voc.effective} == {"1000x600 train, 1000x600 test"}
    assert runs[runs.kind == "knn"].effective.isna().all()  # no effective settings: an empty cell


# ----------------------------------------------------------------------------- HTML

def test_html_is_well_formed_self_contained(results, full):
    page = (full / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    root = ET.fromstring(page.split("\n", 1)[1])  # XHTML-compatible: every tag closed
    assert root.tag == "html"
    assert not re.search(r'(src|href)="(?!data:)', page), "external resources"
    imgs = root.findall(".//img")
    assert imgs and all(base64.b64decode(i.get("src").split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
                        for i in imgs)
    tables = root.findall(".//table")
    first = tables[0]
    groups = [(th.text, th.get("colspan")) for th in first.find("thead").findall("tr")[0] if th.get("colspan")]
    assert groups == [("No Freeze", "3"), ("Freeze BN", "3")]
    ours = [tr for tr in first.find("tbody") if tr[0].text == "Ours"][0]
    assert ET.tostring(ours[2], encoding="unicode") == (
        '<td><b>75.8</b> <span class="std">± 0.1</span> <span class="diff">(+0.7)</span></td>')
    assert ET.tostring(ours[5], encoding="unicode") == "<td>—<sup>c</sup></td>"
    text = "".join(root.itertext())
    assert "c Ours, voc-faster-rcnn-fpn, BN frozen: no finished run" in text
    assert "CI includes 0: not distinguishable from noise" in text
    assert "Runs not tabulated" in text and "CUDA out of memory" in text


def test_html_parses_with_html_parser(results, full):
    from html.parser import HTMLParser

    void = {"meta", "img", "br", "hr", "link", "input"}

    class Checker(HTMLParser):
        def __init__(self):
            super().__init__()
            self.stack: list[str] = []

        def handle_starttag(self, tag, attrs):
            if tag not in void:
                self.stack.append(tag)

        def handle_startendtag(self, tag, attrs):
            assert tag in void, f"<{tag} /> is not a void element"

        def handle_endtag(self, tag):
            assert self.stack and self.stack.pop() == tag, f"unbalanced </{tag}>"

    c = Checker()
    c.feed((full / "report.html").read_text())
    c.close()
    assert c.stack == []


# ----------------------------------------------------------------------------- plots

def test_plot_files_and_data(results, full):
    out = full
    pngs = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert "epochs-knn-knn-k200-t0.1-cifar10.png" in pngs
    assert "flat-flatness-flat-cifar10.png" in pngs
    assert "seeds-detection-voc-faster-rcnn-fpn.png" in pngs
    for p in (out / "plots").glob("*.svg"):
        ET.parse(p)
        assert p.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    md = (out / "report.md").read_text()
    assert "![Top-1 accuracy against pretraining epochs" in md and "(plots/epochs-knn-knn-k200-t0.1-cifar10.png)" in md

    runs = report_tables.load_runs([results])
    series = epoch_series(runs, "knn", "knn-k200-t0.1", "cifar10")
    assert set(series) == {("moco", False), ("moco", True)}
    assert [(p["epochs"], p["mean"], p["values"]) for p in series[("moco", True)]] == [
        (100, 61.25, [61.0, 61.5]), (200, 66.25, [66.0, 66.5])]
    assert series[("moco", False)][0]["std"] == pytest.approx(statistics.stdev([60.0, 61.0]))
    curves = flat_curves(runs, "flat-cifar10")
    assert curves["MoCo"] == pytest.approx([0.3, 0.1, 0.03]) and curves["Ours"] == pytest.approx([0.12, 0.1, 0.08])


# ----------------------------------------------------------------------------- statistics, edge cases

@pytest.mark.parametrize("df,expected", [(1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (29, 2.045)])
def test_t_quantile(df, expected, monkeypatch):
    assert report_tables.t_quantile_975(df) == pytest.approx(expected, abs=1e-3)
    import sys

    monkeypatch.setitem(sys.modules, "scipy.special", None)  # the fallback table
    fallback = report_tables.t_quantile_975(df)
    assert fallback >= expected - 1e-3 and fallback == pytest.approx(expected, abs=0.02)  # conservative


def test_paired_needs_two_shared_seeds():
    assert report_tables.paired_ci({0: 1.0, 1: 2.0}, {1: 1.0, 2: 0.0}) is None
    seeds, mean, sd, t, lo, hi = report_tables.paired_ci({0: 1.0, 1: 2.0, 5: 9.0}, {0: 0.5, 1: 1.0})
    assert seeds == (0, 1) and mean == pytest.approx(0.75) and sd == pytest.approx(math.sqrt(0.125))
    assert hi - mean == pytest.approx(12.7062 * sd / math.sqrt(2), rel=1e-4) and lo < 0 < hi


def test_round_half_up():
    assert report_tables.round_half_up(61.25, 1) == 61.3 and report_tables.round_half_up(75.15, 1) == 75.2
    assert report_tables.round_half_up(-0.05, 1) == -0.1 and report_tables.round_half_up(72.699999999, 1) == 72.7


def test_unknown_protocol_generic_table_and_duplicates(tmp_path):
    root = tmp_path / "r"
    put(root, "detection", "A", "lvis-new-thing", 0, {"mAP": 50.0, "extra": 1.0}, bn="sync")
    put(root, "detection", "A", "lvis-new-thing", 1, {"mAP": 52.0}, bn="sync")
    # the re-run sorts first by path but finished later: the later one counts
    old = put(root, "detection", "B", "lvis-new-thing", 0, {"mAP": 49.0, "extra": 2.0}, bn="sync", sub="-old")
    put(root, "detection", "B", "lvis-new-thing", 0, {"mAP": 51.0, "extra": 3.0}, bn="sync", sub="-a-rerun")
    rec = json.loads(old.read_text())
    rec["finished"] = "2000-01-01T00:00:00+00:00"
    old.write_text(json.dumps(rec))
    out = make(root, tmp_path, "--formats", "md,csv", "--no-plots")
    md = (out / "report.md").read_text()
    assert not (out / "report.html").exists() and not (out / "plots").exists()
    assert "## Table 1: Detection protocol lvis-new-thing" in md
    assert "| pre-train | n (SyncBN) | mAP (SyncBN) | extra (SyncBN) |" in md
    assert "| A | 2 | **51.0** ± 1.4 | 1.0 (n=1) |" in md  # n=1: one record lacks 'extra'
    assert "| B | 1 | **51.0** | **3.0** |" in md  # ties are both bold
    tail = md[md.index("## Runs not tabulated"):]
    assert re.search(r"sync-0-old/result.json \| detection \| B \| lvis-new-thing \| sync \| 0 \| "
                     r"superseded by \S+sync-0-a-rerun/result.json \|", tail)


# ----------------------------------------------------------------------------- errors

def _cli(argv: list[str], capsys) -> tuple[int, str]:
    rc = cli.main(["report", *argv])
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("content,message", [
    ("{not json", "malformed JSON at line 1"),
    (json.dumps({"schema": "other/1", "kind": "x"}), "not an unmix result record"),
    (json.dumps([1, 2]), "not a result record"),
])
def test_bad_file_names_file(tmp_path, results, capsys, content, message):
    import shutil

    results = Path(shutil.copytree(results, tmp_path / "results"))  # the module's records stay intact
    bad = results / "zz-bad" / "result.json"
    bad.parent.mkdir()
    bad.write_text(content)
    out = tmp_path / "out"
    rc, err = _cli([str(results), "-o", str(out)], capsys)
    assert rc == 1 and str(bad) in err and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()  # nothing half-written


@pytest.mark.parametrize("mutate,message", [
    (lambda r: r["checkpoint"].pop("label"), "checkpoint.label must be a non-empty string"),
    (lambda r: r["protocol"].update(seed="0"), "protocol.seed must be an integer"),
    (lambda r: r["protocol"].pop("name"), "protocol.name must be a non-empty string"),
    (lambda r: r["checkpoint"].update(pretrain={"unmix": "yes"}), "checkpoint.pretrain.unmix"),
    (lambda r: r["metrics"].update(AP50="81"), "metric 'AP50' is '81'"),
    (lambda r: r.update(kind="flatness"), "details.sorted_probs"),
])
def test_malformed_record_names_file(tmp_path, capsys, mutate, message):
    root = tmp_path / "r"
    path = put(root, "detection", "A", "voc-faster-rcnn-fpn", 0, {"AP50": 1.0}, bn="frozen")
    rec = json.loads(path.read_text())
    mutate(rec)
    path.write_text(json.dumps(rec))
    rc, err = _cli([str(root), "-o", str(tmp_path / "out")], capsys)
    assert rc == 1 and f"{path}: " in err and message in err


def test_no_records_and_bad_options(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    rc, err = _cli([str(tmp_path / "empty"), "-o", str(tmp_path / "o")], capsys)
    assert rc == 1 and "no result records" in err and str(tmp_path / "empty") in err
    rc, err = _cli([str(tmp_path / "missing"), "-o", str(tmp_path / "o")], capsys)
    assert rc == 1 and "no such file or directory" in err
    with pytest.raises(UnmixError, match="--formats: unknown format"):
        report.parse_formats("md,pdf")


def test_pretrain_unmix_config_block_counts_as_flag(tmp_path):
    # `unmix pretrain` checkpoint metadata carries the Un-Mix config, e.g. {"enabled": true, "prob": 0.5}
    root = tmp_path / "r"
    put(root, "knn", "moco", "knn-k200", 0, {"top1": 50.0}, dataset="cifar10",
        pretrain={**MOCO, "unmix": {"enabled": False}})
    put(root, "knn", "ours", "knn-k200", 0, {"top1": 52.0}, dataset="cifar10",
        pretrain={**MOCO, "unmix": {"enabled": True, "prob": 0.5}})
    md = (make(root, tmp_path, "--formats", "md", "--no-plots") / "report.md").read_text()
    assert "| ours | moco | yes | resnet50 | 200 | 1 | **52.0** (+2.0) |" in md


def test_retinanet_and_c4_shapes(tmp_path):
    root = tmp_path / "r"
    keys = ["bbox_AP", "bbox_AP50", "bbox_AP75", "bbox_APs", "bbox_APm", "bbox_APl"]
    put(root, "detection", "MoCo", "coco-retinanet-fpn", 0, dict(zip(keys, [30.7, 48.2, 32.7, 15.7, 33.5, 40.7])),
        bn="frozen", pretrain=MOCO)
    put(root, "detection", "MoCo", "voc-faster-rcnn-c4", 0, {"AP50": 81.5, "AP": 55.9, "AP75": 62.6},
        bn="sync", pretrain=MOCO)
    md = (make(root, tmp_path, "--formats", "md", "--no-plots") / "report.md").read_text()
    assert ("| pre-train | n (Freeze BN) | AP (Freeze BN) | AP50 (Freeze BN) | AP75 (Freeze BN) | APs (Freeze BN) | "
            "APm (Freeze BN) | APl (Freeze BN) |") in md
    assert "| MoCo | 1 | 30.7 | 48.2 | 32.7 | 15.7 | 33.5 | 40.7 |" in md
    assert md.index("RetinaNet") < md.index("R50-C4")  # the paper's order, not alphabetical
    assert "| pre-train | n (SyncBN) | AP50 (SyncBN) | AP (SyncBN) | AP75 (SyncBN) |" in md
    assert "| MoCo | 1 | 81.5 | 55.9 | 62.6 |" in md


def test_detection_title_names_the_detector_the_records_used(tmp_path):
    """The demo fine-tunes an R18-FPN under the R50-FPN protocol: the title must not claim R50."""
    from transfer.report.tables import _detector_titles, DETECTION_SPECS
    import pandas as pd

    spec = DETECTION_SPECS["voc-faster-rcnn-fpn"]
    same = pd.DataFrame({"detector": ["Faster R-CNN R18-FPN", "Faster R-CNN R18-FPN"]})
    title, tex = _detector_titles(spec, same)
    assert title.startswith("Faster R-CNN R18-FPN,") and "R50" not in title and "R18-FPN" in tex
    mixed = pd.DataFrame({"detector": ["Faster R-CNN R18-FPN", "Faster R-CNN R50-FPN"]})
    assert _detector_titles(spec, mixed) == (spec.title, spec.tex_title)
    assert _detector_titles(spec, pd.DataFrame({"detector": [None]})) == (spec.title, spec.tex_title)


def test_detector_name_follows_the_backbone_built():
    from transfer.detection.protocols import detector_name

    assert detector_name("Faster R-CNN R50-FPN", {"depth": 18}) == "Faster R-CNN R18-FPN"
    assert detector_name("Mask R-CNN R50-FPN", {"depth": 50, "base_channels": 128}) == "Mask R-CNN R50w2-FPN"
    assert detector_name("Faster R-CNN R50-C4", {"type": "CifarResNet", "depth": 50}) == \
        "Faster R-CNN R50-C4 (CIFAR stem)"


# ------------------------------------------------------------------ writing as one unit

def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_full_disk_leaves_the_previous_report_whole(tmp_path, capsys, monkeypatch):
    import errno

    results = tmp_path / "r"
    for s in (0, 1):
        put(results, "detection", "MoCo", "voc-faster-rcnn-fpn", s, {"AP50": 70.0 + s, "recall": 90.0},
            bn="finetune", pretrain=MOCO)
    out = tmp_path / "reports" / "paper"
    assert _cli([str(results), "-o", str(out)], capsys)[0] == 0
    (out / "notes.txt").write_text("my notes on this report")  # a user's file beside it
    before = _tree(out)
    assert "manifest.json" in before and "plots/seeds-detection-voc-faster-rcnn-fpn.png" in before
    real, calls = Path.write_bytes, []

    def fills_up(self, data):
        calls.append(self)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", fills_up)
    rc, err = _cli([str(results), "-o", str(out), "--decimals", "2"], capsys)
    monkeypatch.undo()
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"No space left on device: {out}/" in err
    assert _tree(out) == before  # not half old, half new
    assert sorted(p.name for p in out.parent.iterdir()) == ["paper"]  # no temp dir left behind
    # The next report replaces the old one as a whole: the user's file stays, stale plots go.
    rc, _ = _cli([str(results), "-o", str(out), "--no-plots", "--formats", "md"], capsys)
    after = _tree(out)
    assert rc == 0 and after["notes.txt"] == b"my notes on this report"
    assert set(after) == {"report.md", "manifest.json", "notes.txt"}
    assert json.loads(after["manifest.json"])["files"].keys() == {"report.md"}


@pytest.mark.parametrize("where,message", [("file", "exists and is not a directory"),
                                           ("under-file", "is a file, not a directory"),
                                           ("read-only", "Read-only file system: ")])
def test_output_that_cannot_be_a_report_directory_is_one_line(results, tmp_path, capsys, monkeypatch,
                                                              where, message):
    import errno

    from unmix.core import files

    target = tmp_path / "out"
    if where == "file":
        target.write_text("x")
    elif where == "under-file":
        (tmp_path / "f").write_text("x")
        target = tmp_path / "f" / "out"
    else:
        def erofs(*a, **k):
            raise OSError(errno.EROFS, "Read-only file system")

        monkeypatch.setattr(files.tempfile, "mkdtemp", erofs)
    rc, err = _cli([str(results), "-o", str(target), "--no-plots"], capsys)
    assert rc == 1 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_nan_and_inf_metrics_are_dashes_with_a_note(tmp_path, capsys):
    root = tmp_path / "r"
    for s in (0, 1):
        put(root, "detection", "MoCo", "voc-faster-rcnn-fpn", s,
            {"AP50": float("nan") if s == 0 else 70.0, "recall": 90.0}, bn="finetune", pretrain=MOCO)
        put(root, "detection", "Ours", "voc-faster-rcnn-fpn", s, {"AP50": float("inf"), "recall": 91.0 + s},
            bn="finetune", pretrain=OURS, sha=SHA_OURS)
        put(root, "knn", f"k{s}", "knn-k200-t0.1", 0, {"top1": float("-inf") if s else 50.0},
            dataset="cifar10", pretrain={**MOCO, "epochs": 100 * (s + 1)})
    rc, err = _cli([str(root), "-o", str(tmp_path / "out")], capsys)
    assert rc == 0, err
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| MoCo | 2 | —[a] | 90.0 ± 0.0 |" in md
    assert "AP50 is nan in 1 of 2 runs (seeds 0); not averaged" in md
    assert "AP50 is inf in 2 of 2 runs (seeds 0, 1)" in md and "top1 is -inf in 1 of 1 runs" in md
    assert "| Ours | 2 | —[c] | **91.5** ± 0.7 (+1.5) |" in md  # the finite column still compares


def test_a_custom_class_set_never_shares_the_standard_table(tmp_path):
    """Runs on a dataset with its own classes (record protocol.classes, as `unmix finetune` writes
    it) go to their own table, titled and footnoted, never into the standard-protocol rows."""
    for seed, ap in enumerate((75.0, 75.2)):
        put(tmp_path, "detection", "mocov2", "voc-faster-rcnn-fpn", seed, {"AP50": ap}, bn="finetune")
    p = put(tmp_path, "detection", "mocov2", "voc-faster-rcnn-fpn", 0, {"AP50": 91.0}, bn="finetune",
            sub="-cells")
    rec = records.load(p)
    rec["protocol"]["classes"] = {"kind": "custom", "source": "data", "num": 2, "names": ["rbc", "wbc"]}
    records.write(rec, p.parent)
    runs = report_tables.load_runs([tmp_path])
    det = [t for t in report_tables.build_tables(runs) if t.kind == "detection"]
    assert len(det) == 2
    std, custom = det
    def ap50(table):
        return [cell.values for col, cell in zip(table.columns, table.rows[0].cells)
                if col.metric is not None and col.metric.key == "AP50" and cell.values][0]

    assert "custom" not in std.title and ap50(std) == [75.0, 75.2]
    assert custom.title.endswith(", custom class set") and custom.key != std.key
    assert ap50(custom) == [91.0]
    assert any("custom (2): rbc, wbc" in text for _, text in custom.footnotes)


def test_plot_colours_distinct_per_method_and_shared_across_plots():
    from transfer.report.plots import color_map, plot_epochs, plot_flat

    names = [f"method{i:02d}" for i in range(40)]
    cmap = color_map(names)
    assert len(set(cmap.values())) == 40  # past the 8-colour palette: no wrap-round
    # One map for the report: a method's colour does not depend on which figure draws it.
    series = {(n, False): [{"epochs": 100, "mean": 50.0 + i, "std": 0.0, "values": [50.0 + i]}]
              for i, n in enumerate(names[:12])}
    curves = {n: [0.5, 0.3, 0.2] for n in names[5:15]}
    for plot in (plot_epochs("e", "e", series, "acc", cmap), plot_flat("f", "f", curves, cmap)):
        svg = plot.svg.decode()
        drawn = {n for n in names if f"stroke: {cmap[n]}" in svg}
        assert drawn == set(n for n, _ in series) if plot.key == "e" else drawn == set(curves)


def test_per_class_ap_table_in_md_tex_html(tmp_path):
    root = tmp_path / "res"
    # two seeds of MoCo (aeroplane 80/82 -> 81.0; bicycle 70/-1: COCO's "no ground truth" left out)
    # and one of Ours; a run without per-class AP adds no column.
    for seed, (a, b) in enumerate([(80.0, 70.0), (82.0, -1.0)]):
        put(root, "detection", "MoCo", "voc-faster-rcnn-fpn", seed, {"AP50": 75.0}, bn="finetune",
            details={"per_class_AP": {"AP50": {"aeroplane": a, "bicycle": b}}})
    put(root, "detection", "Ours", "voc-faster-rcnn-fpn", 0, {"AP50": 76.0}, bn="finetune",
        details={"per_class_AP": {"AP50": {"aeroplane": 85.5, "bicycle": 71.25}}})
    put(root, "detection", "Plain", "voc-faster-rcnn-fpn", 0, {"AP50": 70.0}, bn="finetune")
    from transfer.report.perclass import per_class_tables

    (t,) = per_class_tables(report_tables.load_runs([root]))
    assert t.columns == ["MoCo (finetune)", "Ours (finetune)"] and t.classes == ["aeroplane", "bicycle"]
    assert t.values == {("aeroplane", "MoCo (finetune)"): 81.0, ("bicycle", "MoCo (finetune)"): 70.0,
                        ("aeroplane", "Ours (finetune)"): 85.5, ("bicycle", "Ours (finetune)"): 71.25}
    assert t.seeds == {"MoCo (finetune)": 2, "Ours (finetune)": 1}
    out = make(root, tmp_path, "--formats", "md,tex,html", "--no-plots")
    md = (out / "report.md").read_text()
    assert "## Per-class AP50 (%), voc-faster-rcnn-fpn" in md
    assert "| aeroplane | 81.0 | 85.5 |" in md and "| bicycle | 70.0 | 71.3 |" in md
    assert r"aeroplane & 81.0 & 85.5 \\" in (out / "report.tex").read_text()
    assert "<td>81.0</td><td>85.5</td>" in (out / "report.html").read_text()


def test_published_reference_rows_only_under_their_protocol(tmp_path):
    root = tmp_path / "res"
    put(root, "detection", "MoCo", "voc-faster-rcnn-c4", 0, {"AP50": 82.0, "AP": 56.0, "AP75": 63.0},
        bn="sync")
    put(root, "detection", "MoCo", "voc-faster-rcnn-fpn", 0, {"AP50": 75.0, "recall": 90.0}, bn="finetune")
    out = make(root, tmp_path, "--formats", "md,tex,html", "--no-plots")
    md = (out / "report.md").read_text()
    c4, fpn = md.index("Faster R-CNN R50-C4"), md.index("Faster R-CNN R50-FPN")
    # facebookresearch/moco detection/README.md's table, as read there (SyncBN, as its configs)
    row = "| ImageNet-1M, MoCo v2, 800ep — published [1] | SyncBN | 82.5 | 57.4 | 64.0 |"
    assert md.count(row) == 1 and md.count("| published (source) | BN | AP50 | AP | AP75 |") == 1
    at = md.index(row)
    assert (c4 < at < fpn) if c4 < fpn else (at > c4)  # under the C4 table only
    assert "facebookresearch/moco detection/README.md" in md
    assert r"ImageNet-1M, supervised --- published [1] & SyncBN & 81.3 & 53.5 & 58.8 \\" in \
        (out / "report.tex").read_text().replace("—", "---")
    assert "<td>82.4</td><td>57.0</td><td>63.6</td>" in (out / "report.html").read_text()


def _md_of(root: Path, tmp_path: Path) -> str:
    return (make(root, tmp_path, "--formats", "md", "--no-plots") / "report.md").read_text()


def _published(md: str) -> list[str]:
    return [line for line in md.splitlines() if "— published [" in line]


def test_published_rows_need_the_bn_mode_of_the_runs(tmp_path):
    """MoCo's numbers are SyncBN runs: a single-process C4 run (recorded bn_used finetune) gets none;
    the paper's Table 7 rows stand beside the runs of their own BN mode only."""
    put(tmp_path / "a", "detection", "MoCo", "voc-faster-rcnn-c4", 0, {"AP50": 80.0}, bn="finetune",
        bn_req="sync")
    assert _published(_md_of(tmp_path / "a", tmp_path / "ra")) == []
    put(tmp_path / "b", "detection", "MoCo", "voc-faster-rcnn-fpn", 0, {"AP50": 75.0, "recall": 90.0},
        bn="finetune")
    md = _md_of(tmp_path / "b", tmp_path / "rb")
    # arXiv 2003.05438v1 Table 7(a), "No Freeze" = --bn finetune; (b) "Freeze BN" rows not shown
    assert _published(md) == [
        "| MoCo (K=16384) — published [1] | No Freeze | 75.1 | 90.2 |",
        "| Un-Mix (K=16384) — published [1] | No Freeze | 75.8 | 90.7 |",
        "| Un-Mix (K=65536) — published [1] | No Freeze | 76.4 | 90.5 |"]
    assert "| published (source) | BN | AP50 | Recall |" in md
    assert ("- [1] Rethinking Image Mixture for Unsupervised Visual Representation Learning (arXiv "
            "2003.05438v1), Table 7(a)") in md
    put(tmp_path / "b", "detection", "MoCo", "voc-faster-rcnn-fpn", 0, {"AP50": 72.0, "recall": 92.0},
        bn="frozen")
    rows = _published(_md_of(tmp_path / "b", tmp_path / "rc"))
    assert len(rows) == 6 and "| Un-Mix (K=65536) — published [2] | Freeze BN | 73.8 | 93.3 |" in rows


def test_published_rows_in_references_csv_as_in_the_tables(tmp_path):
    """references.csv holds the rows the md table shows (same gating by BN mode), one value per line,
    as printed in the source (arXiv 2003.05438v1 Table 7(a)); a table of ours without published rows adds none."""
    import pandas as pd

    put(tmp_path / "b", "detection", "MoCo", "voc-faster-rcnn-fpn", 0, {"AP50": 75.0, "recall": 90.0},
        bn="finetune")
    put(tmp_path / "b", "detection", "MoCo", "coco-mask-rcnn-fpn-mmdet3", 0, dict(zip(COCO_KEYS, MASK_MOCO)),
        bn="frozen")
    out = make(tmp_path / "b", tmp_path, "--formats", "md,csv", "--no-plots")
    refs = pd.read_csv(out / "references.csv", dtype={"value": str})
    md_rows = _published((out / "report.md").read_text())
    assert len(md_rows) == 3 and len(refs) == 3 * 2 and set(refs.protocol) == {"voc-faster-rcnn-fpn"}
    assert set(refs.bn) == {"finetune"} and set(refs.header) == {"AP50", "Recall"}
    un = refs[refs.row == "Un-Mix (K=65536)"].set_index("metric").value.to_dict()
    assert un == {"AP50": "76.4", "recall": "90.5"}  # the md row: | Un-Mix (K=65536) ... | 76.4 | 90.5 |
    assert all("2003.05438v1" in s for s in refs.source)
    assert set(refs.table) <= set(pd.read_csv(out / "cells.csv").table)


def test_paper_coco_rows_under_the_mmdet1x_protocols_with_bn_frozen(tmp_path):
    keys = ["bbox_AP", "bbox_AP50", "bbox_AP75", "bbox_APs", "bbox_APm", "bbox_APl"]
    put(tmp_path, "detection", "MoCo", "coco-retinanet-fpn", 0, dict(zip(keys, [30.0] * 6)), bn="frozen")
    put(tmp_path, "detection", "MoCo", "coco-mask-rcnn-fpn", 0, dict(zip(COCO_KEYS, MASK_MOCO)), bn="frozen")
    # the same protocol on mmdet 3.3's recipe is not the paper's: no rows there
    put(tmp_path, "detection", "MoCo", "coco-mask-rcnn-fpn-mmdet3", 0, dict(zip(COCO_KEYS, MASK_MOCO)),
        bn="frozen")
    md = _md_of(tmp_path, tmp_path / "r")
    # arXiv 2003.05438v1 Table 8(a) and 8(b), as printed there
    assert _published(md) == [
        "| MoCo (K=16384) — published [1] | Freeze BN | 30.7 | 48.2 | 32.7 | 15.7 | 33.5 | 40.7 |",
        "| Un-Mix (K=16384) — published [1] | Freeze BN | 31.8 | 49.8 | 34.2 | 16.7 | 34.7 | 42.2 |",
        "| Un-Mix (K=65536) — published [1] | Freeze BN | 31.9 | 50.2 | 34.1 | 16.5 | 35.0 | 41.7 |",
        "| MoCo (K=16384) — published [1] | Freeze BN | 31.2 | 51.3 | 33.3 | 29.1 | 48.2 | 30.6 |",
        "| Un-Mix (K=16384) — published [1] | Freeze BN | 32.8 | 53.3 | 35.1 | 30.3 | 50.1 | 32.1 |",
        "| Un-Mix (K=65536) — published [1] | Freeze BN | 33.7 | 54.4 | 36.5 | 31.1 | 51.3 | 32.7 |"]
    assert "| published (source) | BN | AP | AP50 | AP75 | APs | APm | APl |" in md
    assert "Table 8(b): Mask R-CNN R50-FPN" in md and "Table 7" not in md


def test_mmselfsup_rows_as_printed_under_the_mmselfsup_protocols(tmp_path):
    put(tmp_path, "detection", "MoCo", "voc-faster-rcnn-c4-mmselfsup", 0, {"AP50": 80.0}, bn="sync")
    put(tmp_path, "detection", "MoCo", "coco-mask-rcnn-fpn-mmselfsup", 0, dict(zip(COCO_KEYS, [40.0] * 6)),
        bn="sync")
    rows = _published(_md_of(tmp_path, tmp_path / "r"))
    # open-mmlab/mmselfsup configs/selfsup/*/README.md at db861f30: two decimals for VOC, as there
    assert "| MoCo v2, mocov2\\_resnet50\\_8xb32-coslr-200e — published [1] | SyncBN | 81.06 |" in rows
    assert "| SimSiam, simsiam\\_resnet50\\_8xb32-coslr-200e — published [1] | SyncBN | 79.85 |" in rows
    assert ("| BYOL, byol\\_resnet50\\_8xb32-accum16-coslr-200e — published [1] | SyncBN | 40.9 | 61.0 | 44.6 "
            "| 36.8 | 58.1 | 39.5 |") in rows
    assert sum("DenseCL" in r for r in rows) == 1  # its COCO row is empty in mmselfsup's README
    assert len(rows) == 10 + 9


def _effective(**changes) -> dict:
    return {**EFFECTIVE["voc-faster-rcnn-fpn"], **changes}


def test_runs_with_other_effective_settings_never_share_a_table(tmp_path):
    """Issue 17.2: R50 at 1000x600, R18, 128x96 images, 200 iterations, a --cfg-options digest and
    a record without settings under one protocol name: six tables, each naming what differs."""
    proto = "voc-faster-rcnn-fpn"
    for seed, ap in enumerate((75.0, 75.4)):
        put(tmp_path, "detection", "MoCo", proto, seed, {"AP50": ap, "recall": 90.0}, bn="finetune")
    variants = {"r18": (_effective(depth=18), 60.0), "small": (_effective(
        image_scale="128x96 train, 128x96 test"), 20.0), "short": (_effective(max_epochs=None, max_iters=200), 10.0),
        "opts": (_effective(cfg_options_sha256="0123456789ab"), 74.0), "old": (None, 70.0)}
    for sub, (eff, ap) in variants.items():
        p = put(tmp_path, "detection", "MoCo", proto, 0, {"AP50": ap, "recall": 80.0}, bn="finetune",
                effective=eff, sub=f"-{sub}")
        if sub == "opts":  # the options whose digest the record carries
            rec = records.load(p)
            rec["protocol"]["cfg_options"] = {"model.rpn_head.anchor_generator.scales": [4],
                                              "optim_wrapper.optimizer.lr": 0.01}
            records.write(rec, p.parent)
    runs = report_tables.load_runs([tmp_path])
    assert runs.superseded_by.isna().all()  # same label and seed, other settings: not a re-run
    det = [t for t in report_tables.build_tables(runs) if t.kind == "detection"]
    ap50 = {t.title: sorted(v for r in t.rows for c, col in zip(r.cells, t.columns)
                            if col.metric is not None and col.metric.key == "AP50" for v in c.values)
            for t in det}
    base = "Faster R-CNN R50-FPN, VOC07+12 trainval -> VOC2007 test"
    assert ap50 == {base: [75.0, 75.4], f"{base} [settings not recorded]": [70.0],
                    f"{base} [depth 18]": [60.0], f"{base} [images 128x96 train, 128x96 test]": [20.0],
                    f"{base} [200 iterations]": [10.0], f"{base} [--cfg-options sha256 0123456789ab]": [74.0]}
    assert list(ap50)[:2] == [base, f"{base} [settings not recorded]"]  # the protocol's own first
    assert len({t.key for t in det}) == 6 and det[0].key == "detection-voc-faster-rcnn-fpn"
    notes = {t.title: dict(t.footnotes) for t in det}
    assert notes[f"{base} [depth 18]"]["S"].startswith(
        "Run with other settings than the voc-faster-rcnn-fpn protocol's: depth 18 (the protocol: depth 50).")
    assert "4 epochs" in notes[f"{base} [200 iterations]"]["S"]
    assert notes[f"{base} [--cfg-options sha256 0123456789ab]"]["O"] == (
        "--cfg-options of these runs: model.rpn_head.anchor_generator.scales=[4], "
        "optim_wrapper.optimizer.lr=0.01.")
    assert "grouped by the protocol name voc-faster-rcnn-fpn" in notes[f"{base} [settings not recorded]"]["U"]
    assert [t.nominal for t in det] == [True] + [False] * 5
    md = _md_of(tmp_path, tmp_path / "r")
    assert md.count("| published (source) |") == 1  # under the protocol's own table only
    first = md.index("| published (source) |")
    assert md.index(f"## Table 1: {base}") < first < md.index("## Table 2:")


def test_a_quick_run_gets_its_own_table(tmp_path):
    """`--quick` records (protocol.quick, protocol.effective) are never rows of the full table."""
    put(tmp_path, "detection", "mocov2", "voc-faster-rcnn-fpn", 0, {"AP50": 75.0}, bn="finetune")
    # an epoch schedule cut by --fraction keeps its epochs: the quick section tells it apart
    put(tmp_path, "detection", "mocov2", "voc-faster-rcnn-fpn", 0, {"AP50": 20.0}, bn="finetune",
        sub="-quick", effective=_effective(image_scale="250x150 train, 250x150 test"),
        quick={"quick": True, "scale": [250, 150], "factor": 0.25, "fraction": 0.02})
    det = [t for t in report_tables.build_tables(report_tables.load_runs([tmp_path]))
           if t.kind == "detection"]
    assert [", quick run [" in t.title for t in det] == [False, True]
    assert det[1].title.endswith(", quick run [images 250x150 train, 250x150 test; 0.02 of the schedule]")
    assert any("images 250x150 train, 250x150 test, 0.02 of the schedule" in text
               for _, text in det[1].footnotes)
    assert not det[1].nominal and det[0].nominal


def test_per_class_tables_split_by_effective_settings(tmp_path):
    from transfer.report.perclass import per_class_tables

    per = {"per_class_AP": {"AP50": {"aeroplane": 80.0}}}
    put(tmp_path, "detection", "MoCo", "voc-faster-rcnn-fpn", 0, {"AP50": 75.0}, bn="finetune", details=per)
    put(tmp_path, "detection", "MoCo", "voc-faster-rcnn-fpn", 0, {"AP50": 60.0}, bn="finetune", sub="-r18",
        details={"per_class_AP": {"AP50": {"aeroplane": 50.0}}}, effective=_effective(depth=18))
    tables = per_class_tables(report_tables.load_runs([tmp_path]))
    assert [(t.title, t.values[("aeroplane", "MoCo (finetune)")]) for t in tables] == [
        ("Per-class AP50 (%), voc-faster-rcnn-fpn", 80.0),
        ("Per-class AP50 (%), voc-faster-rcnn-fpn [depth 18]", 50.0)]
    assert len({t.key for t in tables}) == 2


def test_another_backbone_width_is_another_table(tmp_path):
    """SwAV's R50w2 under a protocol's own settings (depth 50 as recorded) is not the protocol's
    R50: records name the detector as built (protocol.detector), and it splits the tables."""
    put(tmp_path, "detection", "MoCo", "voc-faster-rcnn-fpn", 0, {"AP50": 75.0, "recall": 90.0}, bn="finetune")
    p = put(tmp_path, "detection", "SwAV", "voc-faster-rcnn-fpn", 0, {"AP50": 78.0, "recall": 91.0},
            bn="finetune", sub="-w2")
    rec = records.load(p)
    rec["protocol"]["detector"] = "Faster R-CNN R50w2-FPN"
    records.write(rec, p.parent)
    runs = report_tables.load_runs([tmp_path])
    det = [t for t in report_tables.build_tables(runs) if t.kind == "detection"]
    assert [(t.title.split(",")[0], [r.label for r in t.rows], t.nominal) for t in det] == [
        ("Faster R-CNN R50-FPN", ["MoCo"], True), ("Faster R-CNN R50w2-FPN", ["SwAV"], False)]
    assert "not the voc-faster-rcnn-fpn protocol's Faster R-CNN R50-FPN" in dict(det[1].footnotes)["D"]
    md = _md_of(tmp_path, tmp_path / "r")
    assert md.count("| published (source) |") == 1


def test_a_quick_pretrained_encoder_is_marked_and_never_paired_with_a_full_one(tmp_path):
    root = tmp_path / "runs"
    put(root, "knn", "moco-full", "knn-cifar10", 0, {"top1": 60.0}, dataset="cifar10", pretrain=MOCO)
    put(root, "knn", "unmix-quick", "knn-cifar10", 0, {"top1": 30.0}, dataset="cifar10",
        pretrain={**OURS, "quick": True}, sha=SHA_OURS)
    md = (make(root, tmp_path, "--no-plots", "--formats", "md") / "report.md").read_text()
    assert "| unmix-quick | moco | yes | resnet50 | 200 (quick) | 1 | 30.0 |" in md  # no (-30.0)
    assert "| moco-full | moco | no | resnet50 | 200 | 1 | **60.0** |" in md
