"""Evaluation time and numbers: our VOC/COCO metrics vs mmdet's VOCMetric/CocoMetric, same detections.

    .venv/bin/python benchmarks/bench_metrics.py [--images 500] [--classes 20] [--dets 50]

Synthetic ground truth (1-4 boxes per image) and detections (noisy copies of the true boxes plus
background boxes, random scores). Side by side, in one run:
  VOC : UnmixVOCMetric (area and 11-point; AP50, AP .50:.95, AP75, recall) vs mmdet VOCMetric
        (iou_thrs 0.5 and the 10 thresholds). AP50 must agree with mmdet's unrounded 'mAP'.
  COCO: UnmixCocoMetric (maxDets 1/10/100) vs CocoMetric (maxDets 100/300/1000): identical AP
        (maxDets 100 in both); AP50 etc. identical only with <= 100 detections per image and class.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from transfer.stack import ensure_stack

ensure_stack()

from mmdet.registry import METRICS  # noqa: E402

from transfer.detection import metrics as M  # noqa: E402


def synth(n_images: int, n_classes: int, dets_per_image: int, seed: int = 0, size: int = 320):
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n_images):
        k = int(rng.integers(1, 5))
        xy = rng.uniform(0, size * 0.6, (k, 2))
        wh = rng.uniform(16, size * 0.4, (k, 2))
        gt = np.concatenate([xy, xy + wh], 1)
        gl = rng.integers(0, n_classes, k)
        noise = rng.normal(0, 6, (k, 4))
        tp = gt + noise
        nb = max(dets_per_image - k, 0)
        bxy = rng.uniform(0, size * 0.8, (nb, 2))
        bg = np.concatenate([bxy, bxy + rng.uniform(8, size * 0.2, (nb, 2))], 1)
        boxes = np.concatenate([tp, bg]).clip(0, size - 1)
        scores = np.concatenate([rng.uniform(0.3, 1.0, k), rng.uniform(0.0, 0.8, nb)])
        labels = np.concatenate([gl, rng.integers(0, n_classes, nb)])
        images.append((gt, gl, boxes, scores, labels))
    return images, size


def voc_samples(images):
    t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    out = []
    for gt, gl, boxes, scores, labels in images:
        out.append({"gt_instances": {"bboxes": t(gt), "labels": torch.as_tensor(gl)},
                    "ignored_instances": {"bboxes": t(np.zeros((0, 4))), "labels": torch.zeros(0, dtype=torch.int64)},
                    "pred_instances": {"bboxes": t(boxes), "scores": t(scores), "labels": torch.as_tensor(labels)}})
    return out


def coco_files(images, classes, size, tmp: Path):
    data = {"images": [], "annotations": [], "categories": [{"id": c + 1, "name": n} for c, n in enumerate(classes)]}
    aid = 1
    samples = []
    for i, (gt, gl, boxes, scores, labels) in enumerate(images):
        data["images"].append({"id": i + 1, "file_name": f"{i}.jpg", "width": size, "height": size})
        for b, lab in zip(gt, gl):
            w, h = b[2] - b[0], b[3] - b[1]
            data["annotations"].append({"id": aid, "image_id": i + 1, "category_id": int(lab) + 1,
                                        "bbox": [float(b[0]), float(b[1]), float(w), float(h)],
                                        "area": float(w * h), "iscrowd": 0})
            aid += 1
        samples.append({"img_id": i + 1, "ori_shape": (size, size), "pred_instances": {
            "bboxes": torch.as_tensor(boxes, dtype=torch.float32),
            "scores": torch.as_tensor(scores, dtype=torch.float32), "labels": torch.as_tensor(labels)}})
    ann = tmp / "gt.json"
    ann.write_text(json.dumps(data))
    return str(ann), samples


def timed(cfg, classes, samples):
    metric = METRICS.build(cfg)
    metric.dataset_meta = dict(classes=classes, dataset_type=None)
    t0 = time.perf_counter()
    metric.process({}, samples)
    out = metric.evaluate(len(samples))
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--classes", type=int, default=20)
    ap.add_argument("--dets", type=int, default=50, help="detections per image")
    args = ap.parse_args()
    from mmengine.logging import MMLogger

    MMLogger.get_instance("bench", log_level="ERROR")
    classes = tuple(f"c{i}" for i in range(args.classes))
    images, size = synth(args.images, args.classes, args.dets)
    print(f"{args.images} images, {args.classes} classes, {args.dets} detections/image\n")

    samples = voc_samples(images)
    rows = []
    for mode in ("area", "11points"):
        t_ours, ours = timed(M.voc_metric_cfg(mode), classes, samples)
        rec, _ = M.to_record_metrics(ours)
        t_m50, m50 = timed(dict(type="VOCMetric", iou_thrs=0.5, eval_mode=mode), classes, samples)
        t_m10, m10 = timed(dict(type="VOCMetric", iou_thrs=list(M.VOC_IOU_THRS), eval_mode=mode),
                           classes, samples)
        rows.append((mode, t_ours, rec, t_m50, m50["pascal_voc/mAP"], t_m10, m10["pascal_voc/mAP"]))
    print("VOC        ours (AP50+AP+AP75+recall)    mmdet VOCMetric iou .5   mmdet VOCMetric 10 iou"
          "   (x = mmdet time / ours)")
    for mode, t_ours, rec, t_m50, map50, t_m10, map10 in rows:
        print(f"{mode:9s}  {t_ours:6.2f} s                      {t_m50:6.2f} s ({t_m50 / t_ours:.2f}x)"
              f"        {t_m10:6.2f} s ({t_m10 / t_ours:.2f}x)")
        print(f"           AP50 {rec['AP50']:.6f}              mAP*100 {100 * map50:.6f}"
              f"        mAP*100 {100 * map10:.6f}")
        print(f"           AP   {rec['AP']:.6f}  AP75 {rec['AP75']:.4f}  recall {rec['recall']:.4f}")
        # mmdet averages float32 per-class APs in float32; we average them in float64
        print(f"           equal to float32 precision: AP50 {abs(rec['AP50'] - 100 * map50) < 1e-4}, "
              f"AP {abs(rec['AP'] - 100 * map10) < 1e-4}")

    with tempfile.TemporaryDirectory() as tmp:
        # 250 detections/image of one class: beyond COCO's per-(image, class) cut at maxDets=100
        for dets in (args.dets, 250):
            imgs = images if dets == args.dets else synth(args.images, 1, dets, seed=1)[0]
            cls = classes if dets == args.dets else classes[:1]
            ann, samples = coco_files(imgs, cls, size, Path(tmp))
            t_ours, ours = timed(M.coco_metric_cfg(ann), cls, samples)
            t_m, theirs = timed(dict(type="CocoMetric", ann_file=ann), cls, samples)
            r_o, _ = M.to_record_metrics(ours)
            r_m, _ = M.to_record_metrics(theirs)
            print(f"\nCOCO bbox, {dets} detections/image ({len(cls)} classes): ours {t_ours:.2f} s, "
                  f"mmdet CocoMetric {t_m:.2f} s ({t_m / t_ours:.2f}x)")
            print("  key        ours (maxDets 100)   CocoMetric (rounded, maxDets 1000 for AP50..APl)")
            for k in ("bbox_AP", "bbox_AP50", "bbox_AP75", "bbox_APs", "bbox_APm", "bbox_APl"):
                o, m = r_o.get(k, float("nan")), r_m.get(k, float("nan"))
                same = "same" if abs(round(o, 1) - m) < 0.051 else "DIFFERS"
                print(f"  {k:10s} {o:10.4f}          {m:8.1f}   {same}")


if __name__ == "__main__":
    main()
