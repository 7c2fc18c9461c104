"""VOC and COCO metrics against closed forms and against pycocotools' official evaluation."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from transfer.stack import ensure_stack

ensure_stack()

from mmdet.registry import METRICS  # noqa: E402

from transfer.detection import metrics as M  # noqa: E402
from unmix.demo import toydata  # noqa: E402

CLASSES = ("a", "b")


def _voc_sample(gt_boxes, gt_labels, det_boxes, det_scores, det_labels):
    f = lambda x: torch.tensor(x, dtype=torch.float32).reshape(-1, 4)  # noqa: E731
    i = lambda x: torch.tensor(x, dtype=torch.int64)  # noqa: E731
    return {"gt_instances": {"bboxes": f(gt_boxes), "labels": i(gt_labels)},
            "ignored_instances": {"bboxes": f([]), "labels": i([])},
            "pred_instances": {"bboxes": f(det_boxes), "scores": torch.tensor(det_scores),
                               "labels": i(det_labels)}}


def _toy_voc_samples():
    """Legacy (+1) coordinates make these IoUs exact: d1-g1 0.78, d3-g2 0.62, e2-g3 0.90.

    class a: g1, g2; detections by score: d1 (TP up to IoU .78), d2 (FP), d3 (TP up to .62).
    class b: g3, g4 (never found); detections: e1 (FP), e2 (TP up to .90).
    """
    img_a = _voc_sample(gt_boxes=[[0, 0, 99, 99], [200, 0, 299, 99]], gt_labels=[0, 0],
                        det_boxes=[[0, 0, 99, 77], [400, 400, 450, 450], [200, 0, 299, 61]],
                        det_scores=[0.9, 0.8, 0.7], det_labels=[0, 0, 0])
    img_b = _voc_sample(gt_boxes=[[0, 200, 99, 299], [300, 300, 350, 350]], gt_labels=[1, 1],
                        det_boxes=[[500, 0, 550, 50], [0, 200, 99, 289]],
                        det_scores=[0.6, 0.5], det_labels=[1, 1])
    return [img_a, img_b]


def _run_voc(**kw):
    metric = METRICS.build(dict(type="UnmixVOCMetric", nproc=1, **kw))
    metric.dataset_meta = dict(classes=CLASSES)
    metric.process({}, _toy_voc_samples())
    return metric.evaluate(2)


# Closed forms (see _toy_voc_samples). Class a with both TPs: P = 1, 1/2, 2/3 at R = .5, .5, 1:
# area 1/2*1 + 1/2*2/3 = 5/6; 11-point (6*1 + 5*2/3)/11 = 28/33. With d1 only: area 1/2,
# 11-point 6/11. Class b (1 of 2 found, after one FP): area 1/2*1/2 = 1/4, 11-point 6*(1/2)/11.
AREA = {"a": [5 / 6] * 3 + [1 / 2] * 3 + [0] * 4, "b": [1 / 4] * 9 + [0]}
ELEVEN = {"a": [28 / 33] * 3 + [6 / 11] * 3 + [0] * 4, "b": [3 / 11] * 9 + [0]}


@pytest.mark.parametrize("mode, table", [("area", AREA), ("11points", ELEVEN)])
def test_voc_metric_closed_form(mode, table):
    out = _run_voc(eval_mode=mode)
    per_thr = (np.array(table["a"]) + np.array(table["b"])) / 2
    assert out["pascal_voc/AP50"] == pytest.approx(100 * per_thr[0], abs=1e-4)
    assert out["pascal_voc/AP75"] == pytest.approx(100 * per_thr[5], abs=1e-4)
    assert out["pascal_voc/AP"] == pytest.approx(100 * per_thr.mean(), abs=1e-4)  # mean of 10 mAPs
    assert out["pascal_voc/recall"] == pytest.approx(100 * (1 + 0.5) / 2)
    assert out["pascal_voc/classwise_AP50/a"] == pytest.approx(100 * table["a"][0], abs=1e-4)
    assert out["pascal_voc/classwise_AP/b"] == pytest.approx(100 * np.mean(table["b"]), abs=1e-4)
    if mode == "area":  # the numbers written out: 13/24, 5/16, 3/8
        assert out["pascal_voc/AP50"] == pytest.approx(100 * 13 / 24, abs=1e-4)
        assert out["pascal_voc/AP"] == pytest.approx(31.25, abs=1e-4)
        assert out["pascal_voc/AP75"] == pytest.approx(37.5, abs=1e-4)


def test_voc_ap50_matches_mmdet_vocmetric_unrounded():
    ours = _run_voc(eval_mode="11points")
    theirs = METRICS.build(dict(type="VOCMetric", iou_thrs=0.5, eval_mode="11points"))
    theirs.dataset_meta = dict(classes=CLASSES)
    theirs.process({}, _toy_voc_samples())
    res = theirs.evaluate(2)
    assert ours["pascal_voc/AP50"] == pytest.approx(100 * res["pascal_voc/mAP"], abs=1e-5)
    assert res["pascal_voc/AP50"] == round(res["pascal_voc/mAP"], 3)  # mmdet rounds; we don't
    metrics, _ = M.to_record_metrics(res)
    assert metrics == {"AP50": pytest.approx(100 * res["pascal_voc/mAP"])}


def test_to_record_metrics_voc():
    metrics, details = M.to_record_metrics(_run_voc())  # the default: VOC07 11-point AP
    assert set(metrics) == {"AP50", "AP", "AP75", "recall"}
    assert details["per_class_AP"]["AP50"]["a"] == pytest.approx(100 * 28 / 33, abs=1e-4)
    assert set(details["per_class_AP"]["AP"]) == {"a", "b"}


def _random_voc(seed: int, n_images: int = 30, n_classes: int = 4):
    """Detections and ground truth with difficult boxes, a class without ground truth, images
    without detections and tied scores: every branch of eval_map's matching."""
    rng = np.random.default_rng(seed)

    def boxes(n):
        xy = rng.uniform(0, 80, (n, 2))
        return np.hstack([xy, xy + rng.uniform(4, 30, (n, 2))]).astype(np.float32)

    dets, anns = [], []
    for i in range(n_images):
        n_gt, n_ign = int(rng.integers(1, 4)), int(rng.integers(0, 2))
        ann = {"bboxes": boxes(n_gt), "labels": rng.integers(0, n_classes - 1, n_gt),
               "bboxes_ignore": boxes(n_ign), "labels_ignore": rng.integers(0, n_classes, n_ign)}
        per_class = []
        for c in range(n_classes):
            # the class's ground truth and difficult boxes, moved by a few pixels, and strays
            near = np.vstack([ann["bboxes"][ann["labels"] == c], ann["bboxes_ignore"][ann["labels_ignore"] == c]])
            b = np.vstack([near + rng.normal(0, 3, near.shape), boxes(int(rng.integers(0, 3)))])
            b = b[:0] if i % 7 == 0 else b
            scores = rng.choice([0.3, 0.5, 0.9], len(b)) if c == 0 else rng.uniform(0, 1, len(b))
            per_class.append(np.hstack([b, scores[:, None]]).astype(np.float32))
        dets.append(per_class)
        anns.append(ann)
    return dets, anns


@pytest.mark.parametrize("mode", ["11points", "area"])
def test_voc_in_process_gives_eval_maps_numbers_to_the_bit(mode):
    dets, anns = _random_voc(0)
    pooled = M.voc_map(dets, anns, eval_mode=mode, nproc=2)  # mmdet's eval_map, its Pool of 2
    alone = M.voc_map(dets, anns, eval_mode=mode, nproc=1)   # in this process
    assert np.isnan(pooled["ap"][:, 3]).all()  # the class without ground truth is there
    assert (0 < pooled["ap"][0, :3]).all() and (pooled["ap"][0, :3] < 1).all()  # neither 0 nor 1
    for key in ("ap", "recall", "num_gts"):
        assert np.array_equal(alone[key], pooled[key], equal_nan=True)
        assert alone[key].dtype == pooled[key].dtype


# ------------------------------------------------------------------------------------ COCO

def _coco_gt(tmp_path, n_images=3):
    root = toydata.write_coco(tmp_path, 0, n_images, size=(64, 64), max_objects=3)
    return root / "annotations/instances_val2017.json"


def _coco_samples(ann_file, det_fn):
    data = json.loads(ann_file.read_text())
    samples = []
    for img in data["images"]:
        anns = [a for a in data["annotations"] if a["image_id"] == img["id"]]
        boxes, scores, labels, masks = det_fn(img, anns)
        pred = {"bboxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                "scores": torch.tensor(scores, dtype=torch.float32),
                "labels": torch.tensor(labels, dtype=torch.int64)}
        if masks is not None:
            pred["masks"] = torch.from_numpy(np.stack(masks)).bool()
        samples.append({"img_id": img["id"], "ori_shape": (img["height"], img["width"]),
                        "pred_instances": pred})
    return samples


def _perfect(img, anns):
    from pycocotools import mask as mask_utils

    boxes = [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
             for a in anns]
    masks = [mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(
        a["segmentation"], img["height"], img["width"]))) for a in anns]
    return boxes, [1.0] * len(anns), [a["category_id"] - 1 for a in anns], masks


def _evaluate(cfg, ann_file, det_fn, classes=toydata.TOY_CLASSES):
    metric = METRICS.build(cfg)
    metric.dataset_meta = dict(classes=classes)
    samples = _coco_samples(ann_file, det_fn)
    metric.process({}, samples)
    return metric.evaluate(len(samples))


def test_coco_metric_perfect_detections_give_100(tmp_path):
    ann = _coco_gt(tmp_path)
    out = _evaluate(M.coco_metric_cfg(str(ann), metric=("bbox", "segm")), ann, _perfect)
    metrics, details = M.to_record_metrics(out)
    assert metrics["bbox_AP"] == pytest.approx(100) and metrics["bbox_AP50"] == pytest.approx(100)
    assert metrics["segm_AP"] == pytest.approx(100) and metrics["segm_AP75"] == pytest.approx(100)
    # toy objects are 13-32 px: all 'small' or 'medium', so APl is undefined (-1 in COCO)
    assert "bbox_APl" in details["undefined"] and "bbox_APl" not in metrics
    assert set(details["per_class_AP"]["bbox_AP"]) <= set(toydata.TOY_CLASSES)


def _crowded(img, anns):
    """150 detections per image, 140 of them background boxes of the first object's class scored
    above the true boxes: that class's true box is the 141st detection of its (image, class),
    beyond COCO's per-image-and-class cut at maxDets=100."""
    rng = np.random.default_rng(img["id"])
    boxes, scores, labels = [], [], []
    for k in range(140):
        x, y = rng.uniform(0, 40, 2)
        boxes.append([x, y, x + 3, y + 3])
        scores.append(0.99 - k * 1e-4)
        labels.append(anns[0]["category_id"] - 1)
    for j, a in enumerate(anns):
        x, y, w, h = a["bbox"]
        boxes.append([x, y, x + w, y + h])
        scores.append(0.5 - j * 1e-3)
        labels.append(a["category_id"] - 1)
    for _ in range(150 - len(boxes)):
        boxes.append([60, 60, 63, 63])
        scores.append(0.01)
        labels.append(0)
    return boxes, scores, labels, None


def _official(ann_file, samples):
    """pycocotools with its default parameters (maxDets 1, 10, 100): the official numbers."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO(str(ann_file))
    dets = []
    for s in samples:
        p = s["pred_instances"]
        for b, sc, lab in zip(p["bboxes"].tolist(), p["scores"].tolist(), p["labels"].tolist()):
            dets.append({"image_id": s["img_id"], "category_id": lab + 1,
                         "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "score": sc})
    ev = COCOeval(gt, gt.loadRes(dets), "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return ev.stats


def test_coco_metric_official_maxdets_with_more_than_100_detections(tmp_path):
    ann = _coco_gt(tmp_path)
    stats = _official(ann, _coco_samples(ann, _crowded))
    ours, details = M.to_record_metrics(_evaluate(M.coco_metric_cfg(str(ann)), ann, _crowded))
    for i, s in enumerate(M.COCO_STATS):
        if stats[i] < 0:  # no ground truth in that area range
            assert f"bbox_{s}" in details["undefined"]
            continue
        # mmdet writes detections as JSON floats: allow float32 rounding of coordinates
        assert ours[f"bbox_{s}"] == pytest.approx(100 * stats[i], abs=1e-3), s
    # mmdet's CocoMetric defaults (maxDets 100, 300, 1000) score AP50 at 1000 detections:
    # the true boxes at rank 141 then count (at precision about 1/141), so its AP50 is higher.
    plain, _ = M.to_record_metrics(_evaluate(dict(type="CocoMetric", ann_file=str(ann)), ann, _crowded))
    assert plain["bbox_AP"] == pytest.approx(100 * stats[0], abs=0.051)  # AP uses maxDets[0]=100
    assert plain["bbox_AP50"] > ours["bbox_AP50"] + 0.2


def test_coco_metric_without_ann_file_converts_gt(tmp_path):
    """No ann_file: mmdet's conversion of the dataset's instances, then the same evaluation."""
    ann = _coco_gt(tmp_path, n_images=2)
    data = json.loads(ann.read_text())
    samples = _coco_samples(ann, _perfect)
    for s in samples:
        s["instances"] = [
            {"bbox": [a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]],
             "bbox_label": a["category_id"] - 1, "ignore_flag": 0}
            for a in data["annotations"] if a["image_id"] == s["img_id"]]
        del s["pred_instances"]["masks"]
    metric = METRICS.build(M.coco_metric_cfg(None, outfile_prefix=str(tmp_path / "res")))
    metric.dataset_meta = dict(classes=toydata.TOY_CLASSES)
    metric.process({}, samples)
    metrics, _ = M.to_record_metrics(metric.evaluate(len(samples)))
    assert metrics["bbox_AP"] == pytest.approx(100)
