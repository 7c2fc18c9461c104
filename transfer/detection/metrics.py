"""Detection metrics as the papers report them, registered in mmdet's METRICS registry.

`UnmixVOCMetric` (type='UnmixVOCMetric'): from one pass over the detections,
  - `AP50`   mean over classes (with ground truth) of the per-class AP at IoU 0.5: the paper's
             Table 7 and mmselfsup's VOC number;
  - `AP`     mean of the 10 per-threshold mAPs at IoU .50:.05:.95 (MoCo's VOC "AP");
  - `AP75`   mAP at IoU 0.75 (MoCo);
  - `recall` recall at IoU 0.5 after *all* detections of a class (no top-k cut), averaged over
             classes with ground truth: the `recall` column of mmdet's mAP summary table, which
             is what the paper's Table 7 reports;
  - `classwise_AP50/<class>`, `classwise_AP/<class>`: per-class APs.
  All percentages (0-100), unrounded. `eval_mode='11points'` (default: the VOC2007 devkit's
  AP, which every VOC07 protocol we follow reports: mmdetection 1.x and 3.3, mmselfsup, and
  detectron2/MoCo, whose evaluator sets `use_07_metric` for VOC2007) or `'area'` (VOC2010+ devkit).
  The matching and AP rules are mmdet's `eval_map` (VOC devkit: legacy +1 pixel coordinates,
  difficult boxes neither TP nor FP, greedy by score), called once per IoU threshold; a process
  with one core's share runs eval_map's same sequence in-process (`_voc_in_process`: mmdet's
  tpfp_default and average_precision, no process pool), checked against eval_map to the bit.

`UnmixCocoMetric` (type='UnmixCocoMetric'): mmdet's CocoMetric (same `process`, same JSON
  conversion) with `proposal_nums=(1, 10, 100)`, so every number uses maxDets=100 like the
  official COCO evaluation (CocoMetric's default (100, 300, 1000) gives AP50/AP75/APs/APm/APl at
  maxDets=1000), reported unrounded in percent as `bbox_AP, bbox_AP50, bbox_AP75, bbox_APs,
  bbox_APm, bbox_APl` (+ `segm_*`) and `classwise_bbox_AP/<class>`. COCO's -1 ("no ground truth
  in this area range") stays -1.

`to_record_metrics(runner_metrics) -> (metrics, details)` turns the Runner's evaluation output
(ours, or mmdet's own VOCMetric/CocoMetric) into the flat percentages of a result record plus
per-class details.
"""
from __future__ import annotations

import os.path as osp
import tempfile
from collections import OrderedDict
from typing import Any, Sequence

import numpy as np

from transfer.stack import install_stand_in

VOC_IOU_THRS: tuple[float, ...] = tuple(round(0.5 + 0.05 * k, 2) for k in range(10))
COCO_STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
VOC_KEYS = ("AP50", "AP", "AP75", "recall")
COCO_KEYS = tuple(f"{t}_{s}" for t in ("bbox", "segm") for s in COCO_STATS)


def voc_map(det_results: Sequence[Sequence[np.ndarray]], annotations: Sequence[dict],
            iou_thrs: Sequence[float] = VOC_IOU_THRS, eval_mode: str = "11points",
            nproc: int | None = None) -> dict[str, Any]:
    """Per-class VOC AP at each IoU threshold and per-class recall at IoU 0.5 (fractions 0-1).

    `det_results[i][c]` is an (n, 5) array x1 y1 x2 y2 score of image i, class c; `annotations[i]`
    has `bboxes`, `labels` (+ optional `bboxes_ignore`, `labels_ignore`), as mmdet's `eval_map`.
    Returns {'ap': (T, C) array, 'num_gts': (C,), 'recall': (C,) at the first threshold,
    'iou_thrs': tuple}; classes without ground truth get NaN AP and recall.
    `nproc`: processes matching detections to ground truth (default: this process's torch
    threads, i.e. its share of the cores under unmix.core.threads, at most 4); with 1, the
    matching runs in this process (`_voc_in_process`, the same numbers as eval_map).
    """
    from mmdet.evaluation.functional import eval_map

    nproc = nproc or max(1, min(4, _torch_threads()))
    if nproc == 1:
        per_thr = _voc_in_process(det_results, annotations, iou_thrs, eval_mode)
    else:
        per_thr = [eval_map(det_results, annotations, iou_thr=float(thr), eval_mode=eval_mode,
                            use_legacy_coordinate=True, logger="silent", nproc=nproc)[1]
                   for thr in iou_thrs]
    aps, recall, num_gts = [], None, None
    for per_class in per_thr:
        gts = np.array([r["num_gts"] for r in per_class])
        aps.append([float(r["ap"]) if g > 0 else np.nan for r, g in zip(per_class, gts)])
        if recall is None:
            num_gts = gts
            recall = np.array([
                (float(r["recall"][-1]) if np.size(r["recall"]) else 0.0) if g > 0 else np.nan
                for r, g in zip(per_class, gts)])
    return {"ap": np.array(aps, dtype=np.float64), "num_gts": num_gts, "recall": recall,
            "iou_thrs": tuple(float(t) for t in iou_thrs)}


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _voc_in_process(det_results: Sequence[Sequence[np.ndarray]], annotations: Sequence[dict],
                    iou_thrs: Sequence[float], eval_mode: str) -> list[list[dict]]:
    """eval_map's per-class results at each threshold, without its process pool.

    mmdet 3.3's eval_map forks a multiprocessing Pool on every call (it has no in-process mode)
    and we call it once per threshold: in the demo's fine-tuning run (100 test images) the ten
    pools cost 2.2 CPU-s against 0.18 s for the matching itself. This is eval_map's own sequence
    (no scale ranges, VOC's tpfp_default, legacy coordinates) with mmdet's functions for the
    matching (`tpfp_default`) and the AP (`average_precision`), each class's boxes gathered once;
    tests/test_metrics.py checks it against eval_map to the bit.
    """
    from mmdet.evaluation.functional.mean_ap import average_precision, get_cls_results, tpfp_default

    eps = np.finfo(np.float32).eps
    per_thr: list[list[dict]] = [[] for _ in iou_thrs]
    for c in range(len(det_results[0])):
        dets, gts, ignore = get_cls_results(det_results, annotations, c)
        num_gts = np.zeros(1, dtype=int)
        for g in gts:
            num_gts[0] += g.shape[0]
        order = np.argsort(-np.vstack(dets)[:, -1])
        for t, thr in enumerate(iou_thrs):
            tp, fp = tuple(zip(*[tpfp_default(d, g, i, float(thr), None, True)
                                 for d, g, i in zip(dets, gts, ignore)]))
            tp = np.cumsum(np.hstack(tp)[:, order], axis=1)
            fp = np.cumsum(np.hstack(fp)[:, order], axis=1)
            recalls = (tp / np.maximum(num_gts[:, np.newaxis], eps))[0, :]
            precisions = (tp / np.maximum((tp + fp), eps))[0, :]
            per_thr[t].append({"num_gts": num_gts.item(), "num_dets": len(order), "recall": recalls,
                               "precision": precisions,
                               "ap": average_precision(recalls, precisions, eval_mode)})
    return per_thr


def _nanmean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.nanmean(x)) if np.isfinite(x).any() else 0.0


def voc_summary(result: dict[str, Any], classes: Sequence[str]) -> "OrderedDict[str, float]":
    """The UnmixVOCMetric keys (percentages) from `voc_map`'s output."""
    thrs = [round(t, 2) for t in result["iou_thrs"]]
    ap = result["ap"]
    out: OrderedDict[str, float] = OrderedDict()
    if 0.5 in thrs:
        out["AP50"] = 100 * _nanmean(ap[thrs.index(0.5)])
    out["AP"] = 100 * float(np.mean([_nanmean(row) for row in ap]))
    if 0.75 in thrs:
        out["AP75"] = 100 * _nanmean(ap[thrs.index(0.75)])
    out["recall"] = 100 * _nanmean(result["recall"])
    for c, name in enumerate(classes):
        if result["num_gts"][c] > 0:
            if 0.5 in thrs:
                out[f"classwise_AP50/{name}"] = 100 * float(ap[thrs.index(0.5), c])
            out[f"classwise_AP/{name}"] = 100 * float(np.mean(ap[:, c]))
    return out


install_stand_in()  # mmdet.evaluation imports mmcv.ops

from mmdet.evaluation.metrics import CocoMetric, VOCMetric  # noqa: E402
from mmdet.registry import METRICS  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402


@METRICS.register_module(force=True)
class UnmixVOCMetric(VOCMetric):
    """AP50, AP (.50:.95), AP75, recall and per-class AP in percent; see the module doc."""

    default_prefix = "pascal_voc"

    def __init__(self, iou_thrs: Sequence[float] = VOC_IOU_THRS, eval_mode: str = "11points",
                 nproc: int | None = None, collect_device: str = "cpu",
                 prefix: str | None = None) -> None:
        iou_thrs = [float(t) for t in ([iou_thrs] if isinstance(iou_thrs, float) else iou_thrs)]
        super().__init__(iou_thrs=iou_thrs, metric="mAP", eval_mode=eval_mode,
                         collect_device=collect_device, prefix=prefix)
        self.nproc = nproc

    def compute_metrics(self, results: list) -> dict[str, float]:
        gts, preds = zip(*results)
        res = voc_map(preds, gts, self.iou_thrs, self.eval_mode, self.nproc)
        out = voc_summary(res, self.dataset_meta["classes"])
        MMLogger.get_current_instance().info(
            f"VOC ({self.eval_mode}, {len(gts)} images): " +
            " ".join(f"{k}={out[k]:.2f}" for k in VOC_KEYS if k in out))
        return out


def coco_stats(ev, iou_type: str, coco_api, cat_ids: Sequence[int]) -> dict[str, float]:
    """A finished COCOeval's six numbers and per-class AP, in percent (COCO's -1, "no ground
    truth in this area range", stays -1)."""
    out: dict[str, float] = {}
    for i, s in enumerate(COCO_STATS):
        v = float(ev.stats[i])
        out[f"{iou_type}_{s}"] = 100 * v if v >= 0 else -1.0
    # precision: (iou, recall, class, area, maxDets); area 0 = all, maxDets -1
    prec = ev.eval["precision"]
    for k, cat_id in enumerate(cat_ids):
        p = prec[:, :, k, 0, -1]
        p = p[p > -1]
        name = coco_api.loadCats(cat_id)[0]["name"]
        out[f"classwise_{iou_type}_AP/{name}"] = 100 * float(p.mean()) if p.size else -1.0
    return out


@METRICS.register_module(force=True)
class UnmixCocoMetric(CocoMetric):
    """CocoMetric with official maxDets (1, 10, 100) and unrounded percentages."""

    def __init__(self, *args, proposal_nums: Sequence[int] = (1, 10, 100), **kwargs) -> None:
        super().__init__(*args, proposal_nums=proposal_nums, **kwargs)

    def _evaluate(self, iou_type: str, dets: list[dict]) -> dict[str, float]:
        from mmdet.datasets.api_wrappers import COCOeval

        if iou_type == "segm":  # areas from the masks, not the boxes (as mmdet)
            for d in dets:
                d.pop("bbox", None)
        if not dets:
            MMLogger.get_current_instance().error(f"no {iou_type} detections at all: {iou_type} AP is 0")
            return {f"{iou_type}_{s}": 0.0 for s in COCO_STATS}
        ev = COCOeval(self._coco_api, self._coco_api.loadRes(dets), iou_type)
        ev.params.catIds = self.cat_ids
        ev.params.imgIds = self.img_ids
        ev.params.maxDets = list(self.proposal_nums)
        ev.params.iouThrs = self.iou_thrs
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        return coco_stats(ev, iou_type, self._coco_api, self.cat_ids)

    def compute_metrics(self, results: list) -> dict[str, float]:
        from mmdet.datasets.api_wrappers import COCO
        from mmengine.fileio import load

        metrics = [m for m in self.metrics if m in ("bbox", "segm")]
        if self.format_only or metrics != self.metrics:
            return super().compute_metrics(results)  # proposal recall etc.: mmdet's own
        gts, preds = zip(*results)
        out: OrderedDict[str, float] = OrderedDict()
        with tempfile.TemporaryDirectory() as tmp:
            prefix = self.outfile_prefix or osp.join(tmp, "results")
            if self._coco_api is None:
                self._coco_api = COCO(self.gt_to_coco_json(gt_dicts=gts, outfile_prefix=prefix))
            if self.cat_ids is None:
                self.cat_ids = self._coco_api.get_cat_ids(cat_names=self.dataset_meta["classes"])
            if self.img_ids is None:
                self.img_ids = self._coco_api.get_img_ids()
            files = self.results2json(preds, prefix)
            for iou_type in metrics:
                out.update(self._evaluate(iou_type, load(files[iou_type])))
        return out


def coco_metric_cfg(ann_file: str | None, metric: Sequence[str] = ("bbox",), **kwargs) -> dict:
    """The evaluator config for COCO (`val_evaluator`/`test_evaluator`)."""
    return dict(type="UnmixCocoMetric", ann_file=ann_file, metric=list(metric), **kwargs)


def voc_metric_cfg(eval_mode: str = "11points", **kwargs) -> dict:
    """The evaluator config for VOC (`val_evaluator`/`test_evaluator`)."""
    return dict(type="UnmixVOCMetric", eval_mode=eval_mode, **kwargs)


# mmdet's own metric names (fractions 0-1) -> our record keys
_MMDET_COCO = {"mAP": "AP", "mAP_50": "AP50", "mAP_75": "AP75", "mAP_s": "APs", "mAP_m": "APm",
               "mAP_l": "APl"}


def to_record_metrics(runner_metrics: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    """Runner evaluation output -> (flat record metrics in percent, details with per-class AP).

    Accepts our metrics' keys and mmdet's VOCMetric/CocoMetric keys (converted from 0-1 to
    percent); evaluator prefixes ('pascal_voc/', 'coco/') are dropped. COCO's -1 (undefined)
    values go to details['undefined'] instead of the metrics.
    """
    metrics: dict[str, float] = {}
    details: dict[str, Any] = {}
    mmdet_voc_aps: dict[str, float] = {}
    mmdet_voc_map = None
    # mmdet's VOCMetric writes 'mAP' (ours never does): its 'AP50' etc. are then 0-1 fractions
    from_mmdet_voc = any(k.rsplit("/", 1)[-1] == "mAP" for k in runner_metrics)
    for full_key, value in runner_metrics.items():
        key = full_key.split("/", 1)[1] if "/" in full_key and not full_key.startswith("classwise") \
            else full_key
        if key.startswith("classwise_"):
            metric, _, cls = key[len("classwise_"):].partition("/")
            details.setdefault("per_class_AP", {}).setdefault(metric, {})[cls] = float(value)
            continue
        if not isinstance(value, (int, float, np.floating, np.integer)) or isinstance(value, bool):
            continue
        value = float(value)
        if (key in VOC_KEYS and not from_mmdet_voc) or key in COCO_KEYS:
            if value < 0:
                details.setdefault("undefined", []).append(key)
            else:
                metrics[key] = value
        elif key == "mAP":  # mmdet VOCMetric: mean over its iou_thrs, fraction
            mmdet_voc_map = value
        elif key.startswith("AP") and key[2:].isdigit():  # mmdet VOCMetric 'AP50', rounded fraction
            mmdet_voc_aps[key] = value
        else:
            iou_type, _, stat = key.partition("_")
            if iou_type in ("bbox", "segm") and stat in _MMDET_COCO:
                if value < 0:
                    details.setdefault("undefined", []).append(f"{iou_type}_{_MMDET_COCO[stat]}")
                else:
                    metrics[f"{iou_type}_{_MMDET_COCO[stat]}"] = 100 * value
    if mmdet_voc_map is not None:
        # mmdet rounds each APxx to 3 decimals; its 'mAP' is unrounded: prefer it for one threshold
        if list(mmdet_voc_aps) == ["AP50"]:
            metrics["AP50"] = 100 * mmdet_voc_map
        else:
            metrics.update({k: 100 * v for k, v in mmdet_voc_aps.items()})
            if len(mmdet_voc_aps) == 10:
                metrics["AP"] = 100 * mmdet_voc_map
    return metrics, details
