"""Published reference numbers, shown under our tables of the same protocol, marked as published.

Only numbers read in the cited source. Each entry: our protocol name, the row label, metric -> value
(percent), and the source. Not our runs: no std, no seeds, never a baseline or "best".
"""
from __future__ import annotations

from dataclasses import dataclass

MOCO_DET_README = ("facebookresearch/moco detection/README.md (commit 90e244a), VOC07 test, "
                   "fine-tuned on 07+12 trainval for 24k iterations, Faster R-CNN R50-C4, means of 5 trials")


@dataclass(frozen=True)
class Reference:
    protocol: str
    label: str
    metrics: dict[str, float]
    source: str


REFERENCES: tuple[Reference, ...] = tuple(
    Reference("voc-faster-rcnn-c4", label, dict(zip(("AP50", "AP", "AP75"), values)), MOCO_DET_README)
    for label, values in (
        ("ImageNet-1M, supervised", (81.3, 53.5, 58.8)),
        ("ImageNet-1M, MoCo v1, 200ep", (81.5, 55.9, 62.6)),
        ("ImageNet-1M, MoCo v2, 200ep", (82.4, 57.0, 63.6)),
        ("ImageNet-1M, MoCo v2, 800ep", (82.5, 57.4, 64.0)),
    ))


def references_for(protocol: str, title: str) -> list[Reference]:
    """The published rows measured with `protocol`; none for a custom class set's or a quick
    run's table (neither is the protocol the numbers were measured with)."""
    if "custom class set" in title or "quick run" in title:
        return []
    return [r for r in REFERENCES if r.protocol == protocol]


def reference_rows(protocol: str, title: str, metric_keys: list[str], d: int,
                   dash: str) -> tuple[list[str], list[list[str]], list[str]]:
    """(headers, rows, sources): one row per published entry, the label marked 'published'."""
    refs = references_for(protocol, title)
    keys = [k for k in dict.fromkeys(metric_keys) if any(k in r.metrics for r in refs)]
    sources = list(dict.fromkeys(r.source for r in refs))
    rows = [[f"{r.label} — published [{sources.index(r.source) + 1}]"]
            + [f"{r.metrics[k]:.{d}f}" if k in r.metrics else dash for k in keys] for r in refs]
    return ["published (source)"] + keys, rows, sources
