"""Data-root checks (one-line errors naming what is missing where) and the bad-box-tolerant datasets."""
from __future__ import annotations

import shutil

import pytest

from unmix.demo import toydata
from transfer.stack import ensure_stack
from unmix.core.errors import UnmixError

ensure_stack()

from mmdet.registry import DATASETS  # noqa: E402

from transfer.detection import datasets  # noqa: E402

BAD = ("degenerate_box", "out_of_image_box", "outside_box")
PIPELINE = [dict(type="LoadImageFromFile"), dict(type="LoadAnnotations", with_bbox=True),
            dict(type="Resize", scale=(48, 48), keep_ratio=True),
            dict(type="RandomFlip", prob=0.5), dict(type="PackDetInputs")]


def test_check_voc_root_accepts_both_forms(tmp_path):
    root = toydata.write_voc(tmp_path, 3, 2)
    parent = datasets.check_voc_root(root, ["VOC2007/trainval", "VOC2012/trainval", "VOC2007/test"])
    assert parent.form == "parent-of-VOCdevkit" and parent.path == root / "VOCdevkit"
    assert parent.num_images == {"VOC2007/trainval": 3, "VOC2012/trainval": 3, "VOC2007/test": 2}
    devkit = datasets.check_voc_root(root / "VOCdevkit", ["VOC2007/test"])
    assert devkit.form == "VOCdevkit" and devkit.path == root / "VOCdevkit"
    assert "is the VOCdevkit/ directory itself" in devkit.describe()


@pytest.mark.parametrize("damage, expect", [
    (lambda r: shutil.rmtree(r), "no such directory"),
    (lambda r: (r / "VOCdevkit/VOC2007/ImageSets/Main/test.txt").unlink(),
     "missing VOCdevkit/VOC2007/ImageSets/Main/test.txt (expected the VOCdevkit layout"),
    (lambda r: shutil.rmtree(r / "VOCdevkit/VOC2012"), "missing VOCdevkit/VOC2012/JPEGImages/"),
    (lambda r: (r / "VOCdevkit/VOC2007/JPEGImages/000004.jpg").unlink(),
     "1 of 2 images listed in VOCdevkit/VOC2007/ImageSets/Main/test.txt are missing from "
     "VOCdevkit/VOC2007/JPEGImages/: 000004.jpg"),
    (lambda r: shutil.move(r / "VOCdevkit", r / "elsewhere"), "neither VOCdevkit/ nor"),
])
def test_check_voc_root_errors(tmp_path, damage, expect):
    root = toydata.write_voc(tmp_path / "voc", 3, 2)
    damage(root)
    with pytest.raises(UnmixError, match="VOC data root") as err:
        datasets.check_voc_root(root, ["VOC2007/trainval", "VOC2012/trainval", "VOC2007/test"])
    assert expect in str(err.value) and "\n" not in str(err.value)
    assert "docs/detection-data-and-metrics.md" in str(err.value)


def test_check_coco_root_errors(tmp_path):
    root = toydata.write_coco(tmp_path / "coco", 3, 2)
    assert datasets.check_coco_root(root).num_images == {"train2017": 3, "val2017": 2}
    (root / "annotations/instances_val2017.json").unlink()
    with pytest.raises(UnmixError, match=r"missing annotations/instances_val2017.json"):
        datasets.check_coco_root(root)
    miss = toydata.write_coco(tmp_path / "miss", 3, 2, inject=("missing_image",))
    with pytest.raises(UnmixError, match=r"1 of 3 images .* missing from train2017/: 000000000002.jpg"):
        datasets.check_coco_root(miss, ["train2017"])
    (miss / "annotations/instances_val2017.json").write_text("{not json")
    with pytest.raises(UnmixError, match="not valid COCO JSON"):
        datasets.check_coco_root(miss, ["val2017"])


def _voc_cfg(root, split="trainval", **kw):
    return dict(type="UnmixVOCDataset", data_root=str(root / "VOCdevkit"),
                ann_file=f"VOC2007/ImageSets/Main/{split}.txt", data_prefix=dict(sub_data_root="VOC2007/"),
                metainfo=dict(classes=toydata.TOY_CLASSES), **kw)


def test_voc_dataset_skips_and_clips_with_one_warning(tmp_path):
    root = toydata.write_voc(tmp_path, 4, 2, size=(64, 64), inject=BAD)
    with pytest.warns(datasets.SkippedAnnotationsWarning) as rec:
        ds = DATASETS.build(_voc_cfg(root, pipeline=[]))
    assert len(rec) == 1
    msg = str(rec[0].message)
    assert "trainval.txt" in msg and "000001.xml" in msg
    assert ds.skip_counts == {"degenerate": 1, "clipped": 1, "outside": 1}
    # mmdet's own loader keeps all 3 injected boxes; ours keeps the clipped one only
    from mmdet.datasets import VOCDataset

    plain = VOCDataset(**{k: v for k, v in _voc_cfg(root, pipeline=[]).items() if k != "type"})
    assert len(plain[0]["instances"]) == len(ds[0]["instances"]) + 2
    for i in range(len(ds)):
        for inst in ds[i]["instances"]:
            x1, y1, x2, y2 = inst["bbox"]
            assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 64


def test_voc_dataset_through_a_training_pipeline(tmp_path):
    root = toydata.write_voc(tmp_path, 4, 2, inject=BAD)
    with pytest.warns(datasets.SkippedAnnotationsWarning):
        ds = DATASETS.build(_voc_cfg(root, pipeline=PIPELINE, filter_cfg=dict(filter_empty_gt=True)))
    for i in range(len(ds)):
        boxes = ds[i]["data_samples"].gt_instances.bboxes.tensor
        assert len(boxes) and bool(((boxes[:, 2:] - boxes[:, :2]) > 0).all())


def test_clean_data_gives_no_warning(tmp_path, recwarn):
    root = toydata.write_voc(tmp_path, 3, 2)
    ds = DATASETS.build(_voc_cfg(root, split="test", pipeline=[], test_mode=True))
    assert ds.skip_counts == {} and len(ds) == 2
    assert not [w for w in recwarn if issubclass(w.category, datasets.SkippedAnnotationsWarning)]


def test_coco_dataset_counts_what_mmdet_skips(tmp_path):
    root = toydata.write_coco(tmp_path, 3, 2, inject=BAD)
    cfg = dict(data_root=str(root), ann_file="annotations/instances_train2017.json",
               data_prefix=dict(img="train2017/"), metainfo=dict(classes=toydata.TOY_CLASSES),
               pipeline=[])
    with pytest.warns(datasets.SkippedAnnotationsWarning, match="instances_train2017.json"):
        ds = DATASETS.build(dict(type="UnmixCocoDataset", **cfg))
    assert ds.skip_counts == {"degenerate": 1, "outside": 1, "kept_crossing": 1}
    from mmdet.datasets import CocoDataset

    assert ds[0]["instances"] == CocoDataset(**cfg)[0]["instances"]  # the skipping stays mmdet's


def test_missing_image_is_an_error_at_construction(tmp_path):
    root = toydata.write_voc(tmp_path, 3, 1, inject=("missing_image",))
    with pytest.raises(UnmixError, match=r"1 listed image\(s\) missing: .*000002.jpg"):
        DATASETS.build(_voc_cfg(root, pipeline=[]))
