"""Published reference numbers, shown under our tables of the same protocol and BN mode, marked as
published.

Only numbers read in the cited source, as printed there (their own decimals). Each entry: our
protocol name (the recipe the numbers were measured with), our BN mode for the one the source
used, the row label, metric -> value (percent), and the source. Not our runs: no std, no seeds,
never a baseline or "best". A table shows them only when it holds the protocol's own classes and
effective settings (`transfer/report/settings.py`) and runs of that BN mode.
"""
from __future__ import annotations

from dataclasses import dataclass

from transfer.report.tables import BN_TITLES


@dataclass(frozen=True)
class Reference:
    protocol: str
    bn: str          # our --bn mode for the source's: finetune ("No Freeze"), frozen ("Freeze BN"), sync
    label: str
    metrics: dict[str, float]
    source: str
    decimals: int = 1  # as printed in the source


def _rows(protocol: str, bn: str, source: str, keys: tuple[str, ...],
          rows: tuple[tuple[str, tuple[float, ...]], ...], decimals: int = 1) -> tuple[Reference, ...]:
    return tuple(Reference(protocol, bn, label, dict(zip(keys, values)), source, decimals)
                 for label, values in rows)


# facebookresearch/moco detection/README.md: detectron2, Base-RCNN-C4-BN.yaml (RESNETS.NORM SyncBN,
# FREEZE_AT 0) for every row, the supervised one included (pascal_voc_R_50_C4_24k.yaml).
MOCO_DET_README = ("facebookresearch/moco detection/README.md (commit 90e244a), VOC07 test, "
                   "fine-tuned on 07+12 trainval for 24k iterations, Faster R-CNN R50-C4, SyncBN, "
                   "means of 5 trials")
_MOCO = _rows("voc-faster-rcnn-c4", "sync", MOCO_DET_README, ("AP50", "AP", "AP75"), (
    ("ImageNet-1M, supervised", (81.3, 53.5, 58.8)),
    ("ImageNet-1M, MoCo v1, 200ep", (81.5, 55.9, 62.6)),
    ("ImageNet-1M, MoCo v2, 200ep", (82.4, 57.0, 63.6)),
    ("ImageNet-1M, MoCo v2, 800ep", (82.5, 57.4, 64.0)),
))

# The Un-Mix paper's first version, section 4.3: mmdetection, ResNet-50, 12 epochs; the MoCo row is
# CMC's released MoCo model (K=16384). Table 7(a)'s random-init row (58.0) is left out: it is MoCo's
# number for R50-dilated-C5 and 18 epochs, another recipe than any protocol here.
_PAPER = "Rethinking Image Mixture for Unsupervised Visual Representation Learning (arXiv 2003.05438v1)"
PAPER_T7A = f"{_PAPER}, Table 7(a): Faster R-CNN R50-FPN, VOC07+12 trainval -> VOC2007 test, 12 epochs, No Freeze"
PAPER_T7B = f"{_PAPER}, Table 7(b): Faster R-CNN R50-FPN, VOC07+12 trainval -> VOC2007 test, 12 epochs, Freeze BN"
PAPER_T8A = f"{_PAPER}, Table 8(a): RetinaNet R50-FPN, COCO train2017 -> val2017, 12 epochs, Freeze BN"
PAPER_T8B = f"{_PAPER}, Table 8(b): Mask R-CNN R50-FPN, COCO train2017 -> val2017, 12 epochs, Freeze BN"
_MOCO_K, _OURS_K16, _OURS_K65 = "MoCo (K=16384)", "Un-Mix (K=16384)", "Un-Mix (K=65536)"
_VOC = ("AP50", "recall")
_PAPER_ROWS = (
    _rows("voc-faster-rcnn-fpn", "finetune", PAPER_T7A, _VOC, (
        (_MOCO_K, (75.1, 90.2)), (_OURS_K16, (75.8, 90.7)), (_OURS_K65, (76.4, 90.5))))
    + _rows("voc-faster-rcnn-fpn", "frozen", PAPER_T7B, _VOC, (
        (_MOCO_K, (72.7, 92.3)), (_OURS_K16, (73.3, 92.8)), (_OURS_K65, (73.8, 93.3))))
    + _rows("coco-retinanet-fpn", "frozen", PAPER_T8A,
            ("bbox_AP", "bbox_AP50", "bbox_AP75", "bbox_APs", "bbox_APm", "bbox_APl"), (
                (_MOCO_K, (30.7, 48.2, 32.7, 15.7, 33.5, 40.7)),
                (_OURS_K16, (31.8, 49.8, 34.2, 16.7, 34.7, 42.2)),
                (_OURS_K65, (31.9, 50.2, 34.1, 16.5, 35.0, 41.7))))
    + _rows("coco-mask-rcnn-fpn", "frozen", PAPER_T8B,
            ("bbox_AP", "bbox_AP50", "bbox_AP75", "segm_AP", "segm_AP50", "segm_AP75"), (
                (_MOCO_K, (31.2, 51.3, 33.3, 29.1, 48.2, 30.6)),
                (_OURS_K16, (32.8, 53.3, 35.1, 30.3, 50.1, 32.1)),
                (_OURS_K65, (33.7, 54.4, 36.5, 31.1, 51.3, 32.7))))
)

# open-mmlab/mmselfsup at db861f30 (main; its configs/ are v1.0.0's): each algorithm's
# configs/selfsup/<algorithm>/README.md, "Detection" section. Both benchmark configs set
# norm_cfg SyncBN (voc0712/faster-rcnn_r50-c4_ms-24k_voc0712.py l.11,
# coco/mask-rcnn_r50_fpn_ms-1x_coco.py l.4). DenseCL's COCO row is empty there.
_MMSELFSUP = ("open-mmlab/mmselfsup configs/selfsup/<algorithm>/README.md (commit db861f30), "
              "ResNet-50 pre-trained on ImageNet-1k, SyncBN; ")
MMSELFSUP_VOC = _MMSELFSUP + ("Faster R-CNN R50-C4, VOC07+12 trainval -> VOC2007 test, "
                              "configs/benchmarks/mmdetection/voc0712/faster-rcnn_r50-c4_ms-24k_voc0712.py")
MMSELFSUP_COCO = _MMSELFSUP + ("Mask R-CNN R50-FPN, COCO train2017 -> val2017, "
                               "configs/benchmarks/mmdetection/coco/mask-rcnn_r50_fpn_ms-1x_coco.py")
_MMSELFSUP_ROWS = (
    _rows("voc-faster-rcnn-c4-mmselfsup", "sync", MMSELFSUP_VOC, ("AP50",), (
        ("MoCo v2, mocov2_resnet50_8xb32-coslr-200e", (81.06,)),
        ("BYOL, byol_resnet50_8xb32-accum16-coslr-200e", (80.35,)),
        ("SwAV, swav_resnet50_8xb32-mcrop-2-6-coslr-200e_in1k-224-96", (77.64,)),
        ("SimCLR, simclr_resnet50_8xb32-coslr-200e", (79.38,)),
        ("SimSiam, simsiam_resnet50_8xb32-coslr-100e", (79.80,)),
        ("SimSiam, simsiam_resnet50_8xb32-coslr-200e", (79.85,)),
        ("DenseCL, densecl_resnet50_8xb32-coslr-200e", (82.14,)),
        ("NPID, npid_resnet50_8xb32-steplr-200e", (79.52,)),
        ("Relative-Loc, relative-loc_resnet50_8xb64-steplr-70e", (79.70,)),
        ("Rotation-Pred, rotation-pred_resnet50_8xb16-steplr-70e", (79.67,)),
    ), decimals=2)
    + _rows("coco-mask-rcnn-fpn-mmselfsup", "sync", MMSELFSUP_COCO,
            ("bbox_AP", "bbox_AP50", "bbox_AP75", "segm_AP", "segm_AP50", "segm_AP75"), (
                ("MoCo v2, mocov2_resnet50_8xb32-coslr-200e", (40.2, 59.7, 44.2, 36.1, 56.7, 38.8)),
                ("BYOL, byol_resnet50_8xb32-accum16-coslr-200e", (40.9, 61.0, 44.6, 36.8, 58.1, 39.5)),
                ("SwAV, swav_resnet50_8xb32-mcrop-2-6-coslr-200e_in1k-224-96",
                 (40.2, 60.5, 43.9, 36.3, 57.5, 38.8)),
                ("SimCLR, simclr_resnet50_8xb32-coslr-200e", (38.7, 58.1, 42.4, 34.9, 55.3, 37.5)),
                ("SimSiam, simsiam_resnet50_8xb32-coslr-100e", (38.6, 57.6, 42.3, 34.6, 54.8, 36.9)),
                ("SimSiam, simsiam_resnet50_8xb32-coslr-200e", (38.8, 58.0, 42.3, 34.9, 55.3, 37.6)),
                ("NPID, npid_resnet50_8xb32-steplr-200e", (38.5, 57.7, 42.0, 34.6, 54.8, 37.1)),
                ("Relative-Loc, relative-loc_resnet50_8xb64-steplr-70e", (37.5, 56.2, 41.3, 33.7, 53.3, 36.1)),
                ("Rotation-Pred, rotation-pred_resnet50_8xb16-steplr-70e",
                 (37.9, 56.5, 41.5, 34.2, 53.9, 36.7)),
            ))
)

REFERENCES: tuple[Reference, ...] = _MOCO + _PAPER_ROWS + _MMSELFSUP_ROWS


def references_for(protocol: str, nominal: bool, bn_present: tuple[str, ...]) -> list[Reference]:
    """The published rows measured with `protocol` in a BN mode the table's runs used; none for a
    table that is not the protocol's own (a custom class set, other effective settings, --quick,
    settings not recorded)."""
    if not nominal:
        return []
    return [r for r in REFERENCES if r.protocol == protocol and r.bn in bn_present]


def reference_rows(protocol: str, nominal: bool, bn_present: tuple[str, ...],
                   columns: list[tuple[str, str]], dash: str
                   ) -> tuple[list[str], list[list[str]], list[str]]:
    """(metric headers, rows, sources) for `columns`, the table's (metric key, header) pairs: one
    row per published entry, the label marked 'published', its BN mode as our tables title it,
    then the numbers as the source printed them. The full header is ["published (source)", "BN"]
    + the metric headers."""
    refs = references_for(protocol, nominal, bn_present)
    cols = [(k, h) for k, h in dict(columns).items() if any(k in r.metrics for r in refs)]
    sources = list(dict.fromkeys(r.source for r in refs))
    rows = [[f"{r.label} — published [{sources.index(r.source) + 1}]", BN_TITLES.get(r.bn, r.bn)]
            + [f"{r.metrics[k]:.{r.decimals}f}" if k in r.metrics else dash for k, _ in cols] for r in refs]
    return [h for _, h in cols], rows, sources
