"""The toy-data writers produce files that mmdet's own VOC and COCO loaders read as written."""
from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unmix.demo import toydata


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_voc_layout_and_xml(tmp_path):
    root = toydata.write_voc(tmp_path, n_train=3, n_test=2, size=(64, 48))
    y07 = root / "VOCdevkit" / "VOC2007"
    assert (y07 / "ImageSets/Main/trainval.txt").read_text().split() == ["000001", "000002", "000003"]
    assert (y07 / "ImageSets/Main/test.txt").read_text().split() == ["000004", "000005"]
    assert (root / "VOCdevkit/VOC2012/ImageSets/Main/trainval.txt").exists()
    for stem in ["000001", "000004"]:
        with Image.open(y07 / "JPEGImages" / f"{stem}.jpg") as im:
            assert im.format == "JPEG" and im.size == (64, 48)
        xml = ET.parse(y07 / "Annotations" / f"{stem}.xml").getroot()
        assert xml.find("size/width").text == "64" and xml.find("size/height").text == "48"
        for obj in xml.findall("object"):
            assert obj.find("name").text in toydata.TOY_CLASSES
            assert obj.find("difficult").text == "0" and obj.find("truncated").text == "0"
            b = [int(obj.find(f"bndbox/{k}").text) for k in ("xmin", "ymin", "xmax", "ymax")]
            assert 1 <= b[0] < b[2] <= 64 and 1 <= b[1] < b[3] <= 48


def test_deterministic_from_seed(tmp_path):
    a = toydata.write_voc(tmp_path / "a", 2, 1, seed=3)
    b = toydata.write_voc(tmp_path / "b", 2, 1, seed=3)
    c = toydata.write_voc(tmp_path / "c", 2, 1, seed=4)
    assert _digest(a) == _digest(b) != _digest(c)
    d = toydata.write_coco(tmp_path / "d", 2, 1, seed=3)
    e = toydata.write_coco(tmp_path / "e", 2, 1, seed=3)
    assert _digest(d) == _digest(e)


def test_objects_are_visible_where_the_boxes_say(tmp_path):
    """The drawn colour of each class sits inside its COCO polygon (pixels differ from background)."""
    from pycocotools import mask as mask_utils

    root = toydata.write_coco(tmp_path, 4, 0, size=(64, 64), max_objects=1)
    data = json.loads((root / "annotations/instances_train2017.json").read_text())
    for img, ann in zip(data["images"], data["annotations"]):
        pix = np.asarray(Image.open(root / "train2017" / img["file_name"]).convert("RGB"), np.float32)
        rle = mask_utils.frPyObjects(ann["segmentation"], img["height"], img["width"])
        m = mask_utils.decode(mask_utils.merge(rle)).astype(bool)
        assert abs(m.sum() - ann["area"]) <= 0.15 * ann["area"] + 10  # polygon area vs raster
        want = np.array(toydata.class_colour(ann["category_id"] - 1, 3), np.float32)
        inner = pix[m]
        assert np.abs(np.median(inner, axis=0) - want).max() < 25  # JPEG tolerance


def test_mmdet_voc_dataset_reads_it(tmp_path):
    from transfer.stack import ensure_stack

    ensure_stack()
    from mmdet.datasets import VOCDataset

    root = toydata.write_voc(tmp_path / "toy", 3, 2)
    ds = VOCDataset(data_root=str(root / "VOCdevkit"), ann_file="VOC2007/ImageSets/Main/test.txt",
                    data_prefix=dict(sub_data_root="VOC2007/"), test_mode=True, pipeline=[],
                    metainfo=dict(classes=toydata.TOY_CLASSES))
    assert len(ds) == 2 and ds.metainfo["dataset_type"] == "VOC2007"
    assert all(len(ds[i]["instances"]) >= 1 for i in range(2))
    # the real 20 classes need no override
    root20 = toydata.write_voc(tmp_path / "voc20", 3, 2, classes=toydata.VOC_CLASSES)
    ds20 = VOCDataset(data_root=str(root20 / "VOCdevkit"),
                      ann_file="VOC2012/ImageSets/Main/trainval.txt",
                      data_prefix=dict(sub_data_root="VOC2012/"), pipeline=[])
    assert len(ds20) == 3 and ds20.metainfo["dataset_type"] == "VOC2012"
    labels = {inst["bbox_label"] for i in range(3) for inst in ds20[i]["instances"]}
    assert labels and max(labels) < 20


def test_mmdet_coco_dataset_reads_it(tmp_path):
    from transfer.stack import ensure_stack

    ensure_stack()
    from mmdet.datasets import CocoDataset

    root = toydata.write_coco(tmp_path, 2, 3, classes=toydata.COCO_CLASSES)
    ds = CocoDataset(data_root=str(root), ann_file="annotations/instances_val2017.json",
                     data_prefix=dict(img="val2017/"), test_mode=True, pipeline=[])
    assert len(ds) == 3
    info = ds[0]
    assert Path(info["img_path"]).is_file() and info["instances"]
    assert all("mask" in inst for inst in info["instances"])
    nomask = toydata.write_coco(tmp_path / "nomask", 1, 1, masks=False)
    anns = json.loads((nomask / "annotations/instances_val2017.json").read_text())["annotations"]
    assert anns and all("segmentation" not in a for a in anns)


def test_injected_bad_cases(tmp_path):
    inject = ("degenerate_box", "out_of_image_box", "outside_box", "missing_image")
    voc = toydata.write_voc(tmp_path / "voc", 3, 1, inject=inject)
    y07 = voc / "VOCdevkit/VOC2007"
    assert not (y07 / "JPEGImages/000002.jpg").exists()
    assert (y07 / "Annotations/000002.xml").exists()
    objs = ET.parse(y07 / "Annotations/000001.xml").getroot().findall("object")
    boxes = [[int(o.find(f"bndbox/{k}").text) for k in ("xmin", "ymin", "xmax", "ymax")] for o in objs]
    assert any(b[2] < b[0] for b in boxes)          # degenerate
    assert any(b[0] < 64 < b[2] for b in boxes)     # crosses the right edge
    assert any(b[0] > 64 for b in boxes)            # wholly outside
    assert (y07 / "JPEGImages/000004.jpg").exists()  # test split untouched
    coco = toydata.write_coco(tmp_path / "coco", 3, 1, inject=inject)
    data = json.loads((coco / "annotations/instances_train2017.json").read_text())
    missing = [im for im in data["images"] if not (coco / "train2017" / im["file_name"]).exists()]
    assert len(missing) == 1
    assert any(a["bbox"][2] <= 0 for a in data["annotations"])
    with pytest.raises(ValueError, match="unknown injections"):
        toydata.write_voc(tmp_path / "x", 1, 1, inject=("nope",))
