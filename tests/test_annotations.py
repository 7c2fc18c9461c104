"""The tolerant VOC XML / COCO JSON readers on files in the forms real annotation tools write.

Each example below names the tool it imitates and the quirk it carries. Where a tool's own output
was read (its repository), the file is reproduced in shape (values shortened)."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from transfer.detection import annotations as an

# labelme examples/bbox_detection/labelme2voc.py output (its data_dataset_voc/Annotations/
# 2011_000003.xml): empty <folder/>, <database/>, <annotation/>, <image/>, <segmented/>, <pose/>,
# <truncated/>, <difficult/>; float coordinates.
LABELME_VOC = b"""<annotation>
  <folder/>
  <filename>2011_000003.jpg</filename>
  <database/>
  <annotation/>
  <image/>
  <size><height>338</height><width>500</width><depth>3</depth></size>
  <segmented/>
  <object>
    <name>person</name><pose/><truncated/><difficult/>
    <bndbox><xmin>191.0</xmin><ymin>107.36900369003689</ymin><xmax>313.0</xmax><ymax>329.36900369003695</ymax></bndbox>
  </object>
</annotation>
"""

# LabelImg (libs/pascal_voc_io.py): an encoding declaration, <path>, <source><database>Unknown,
# difficult written as "0"/"1", tabs; here with a UTF-8 BOM in front, as Windows editors save it,
# and a class name with a trailing space.
LABELIMG_VOC = ("\ufeff<?xml version='1.0' encoding='utf-8'?>\n<annotation verified=\"yes\">\n"
                "\t<folder>imgs</folder>\n\t<filename>a.jpg</filename>\n\t<path>C:\\imgs\\a.jpg</path>\n"
                "\t<source>\n\t\t<database>Unknown</database>\n\t</source>\n"
                "\t<size>\n\t\t<width>64</width>\n\t\t<height>48</height>\n\t\t<depth>3</depth>\n\t</size>\n"
                "\t<segmented>0</segmented>\n"
                "\t<object>\n\t\t<name>café </name>\n\t\t<pose>Unspecified</pose>\n\t\t<truncated>0</truncated>\n"
                "\t\t<difficult>1</difficult>\n\t\t<bndbox>\n\t\t\t<xmin>3</xmin>\n\t\t\t<ymin>4</ymin>\n"
                "\t\t\t<xmax>30</xmax>\n\t\t\t<ymax>40</ymax>\n\t\t</bndbox>\n\t</object>\n</annotation>\n"
                ).encode("utf-8")

# CVAT's Pascal VOC export: <occluded> per object, an <attributes> block, float coordinates, and
# no <size> when the task was created without image metadata (here missing on purpose).
CVAT_VOC = b"""<?xml version="1.0" encoding="utf-8"?>
<annotation><folder></folder><filename>frame_000001.png</filename>
  <source><database>Unknown</database><annotation>Unknown</annotation><image>Unknown</image></source>
  <segmented></segmented>
  <object><name>car</name><truncated>0</truncated><occluded>1</occluded><difficult>false</difficult>
    <bndbox><xmin>10.51</xmin><ymin>5.2</ymin><xmax>40.0</xmax><ymax>30.75</ymax></bndbox>
    <attributes><attribute><name>color</name><value>red</value></attribute></attributes>
  </object>
</annotation>
"""

# The official VOC2007 files: integers, 1-based, <part> children of person objects (body parts).
VOC_DEVKIT = b"""<annotation><folder>VOC2007</folder><filename>000009.jpg</filename>
<size><width>500</width><height>375</height><depth>3</depth></size><segmented>0</segmented>
<object><name>person</name><pose>Left</pose><truncated>1</truncated><difficult>0</difficult>
<bndbox><xmin>69</xmin><ymin>172</ymin><xmax>270</xmax><ymax>330</ymax></bndbox>
<part><name>head</name><bndbox><xmin>80</xmin><ymin>180</ymin><xmax>120</xmax><ymax>220</ymax></bndbox></part>
</object></annotation>"""


def _write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode())
    return p


def test_labelme_empty_tags_and_float_coordinates(tmp_path):
    f = an.parse_voc_xml(_write(tmp_path, "2011_000003.xml", LABELME_VOC))
    assert (f.width, f.height, f.filename) == (500, 338, "2011_000003.jpg")
    (obj,) = f.objects
    assert obj.name == "person" and obj.difficult is False and obj.truncated is False
    assert obj.bbox == pytest.approx((191.0, 107.369003690, 313.0, 329.369003690))


def test_labelimg_bom_declaration_and_difficult(tmp_path):
    f = an.parse_voc_xml(_write(tmp_path, "a.xml", LABELIMG_VOC))
    (obj,) = f.objects
    assert obj.name == "café" and obj.difficult is True and obj.bbox == (3, 4, 30, 40)


def test_cvat_missing_size_and_extra_fields(tmp_path):
    f = an.parse_voc_xml(_write(tmp_path, "frame_000001.xml", CVAT_VOC))
    assert f.width is None and f.height is None
    assert [o.name for o in f.objects] == ["car"] and f.objects[0].difficult is False


def test_devkit_parts_are_not_objects(tmp_path):
    f = an.parse_voc_xml(_write(tmp_path, "000009.xml", VOC_DEVKIT))
    assert [o.name for o in f.objects] == ["person"] and f.objects[0].truncated is True


@pytest.mark.parametrize("damage, expect", [
    (lambda x: x.replace(b"</annotation>", b""), "not well-formed XML at line"),
    (lambda x: x.replace(b"<xmax>313.0</xmax>", b"<xmax>abc</xmax>"),
     "<object> 1 (person) <bndbox>/<xmax>: expected a number, got 'abc'"),
    (lambda x: x.replace(b"<xmax>313.0</xmax>", b""), "<bndbox>/<xmax>: expected a number, got missing"),
    (lambda x: x.replace(b"<name>person</name>", b"<name> </name>"), "<object> 1: expected a non-empty <name>"),
    (lambda x: x.replace(b"<difficult/>", b"<difficult>maybe</difficult>"),
     "<object> 1/<difficult>: expected 0, 1, true or false"),
    (lambda x: x.replace(b"<height>338</height>", b"<height>tall</height>"), "<size>/<height>: expected a number"),
    (lambda x: b"<annotations/>", "root element <annotations>, expected <annotation>"),
])
def test_voc_errors_are_one_line_naming_file_and_element(tmp_path, damage, expect):
    p = _write(tmp_path, "bad.xml", damage(LABELME_VOC))
    with pytest.raises(an.AnnotationError) as err:
        an.parse_voc_xml(p)
    msg = str(err.value)
    assert msg.startswith(str(p)) and expect in msg and "\n" not in msg


# labelme2coco (examples/instance_segmentation/data_dataset_coco/annotations.json): category id 0
# `_background_` with no annotations, supercategory null, image/annotation id 0, file_name with a
# sub-folder, an extra top-level "type"; polygons as lists.
def labelme_coco():
    return {
        "info": {"description": None}, "licenses": [{"url": None, "id": 0, "name": None}],
        "type": "instances",
        "images": [{"license": 0, "url": None, "file_name": "JPEGImages/2011_000003.jpg",
                    "height": 48, "width": 64, "date_captured": None, "id": 0},
                   {"license": 0, "file_name": "JPEGImages/2011_000006.jpg", "height": 48,
                    "width": 64, "id": 1}],  # an image without annotations
        "categories": [{"supercategory": None, "id": 0, "name": "_background_"},
                       {"supercategory": None, "id": 1, "name": "person"},
                       {"supercategory": None, "id": 2, "name": "dog"}],
        "annotations": [{"id": 0, "image_id": 0, "category_id": 1,
                         "segmentation": [[10.0, 10.0, 30.0, 10.0, 30.0, 30.0, 10.0, 30.0]],
                         "area": 400.0, "bbox": [10.0, 10.0, 20.0, 20.0], "iscrowd": 0}],
    }


def test_labelme_coco_placeholder_category_id0_and_subfolders(tmp_path):
    c = an.parse_coco_json(_write(tmp_path, "annotations.json", json.dumps(labelme_coco())))
    assert [x["name"] for x in c.categories] == ["person", "dog"] and c.placeholders == ["_background_"]
    assert c.images[0]["file_name"] == "JPEGImages/2011_000003.jpg" and len(c.images) == 2
    assert c.annotations[0]["id"] == 0 and c.changed  # the placeholder is dropped


# Roboflow "COCO JSON" export: a category id 0 named after the workspace dataset, used as the
# supercategory of the real classes and by no annotation; a BOM-free but "extra" field soup.
def roboflow_coco():
    return {"info": {"year": "2024", "version": "1"}, "licenses": [],
            "categories": [{"id": 0, "name": "cells-xyz", "supercategory": "none"},
                           {"id": 1, "name": "rbc", "supercategory": "cells-xyz"},
                           {"id": 2, "name": "wbc", "supercategory": "cells-xyz"}],
            "images": [{"id": 0, "license": 1, "file_name": "img_jpg.rf.abc.jpg", "height": 48,
                        "width": 64, "date_captured": "2024-01-01T00:00:00+00:00"}],
            "annotations": [{"id": 0, "image_id": 0, "category_id": 1, "bbox": [1, 2, 10, 12],
                             "area": 120, "segmentation": [], "iscrowd": 0},
                            {"id": 1, "image_id": 0, "category_id": 2, "bbox": [5.5, 6, 0, 4],
                             "area": 0, "segmentation": [], "iscrowd": 0}]}  # zero-area box


def test_roboflow_placeholder_and_zero_area(tmp_path):
    c = an.parse_coco_json(_write(tmp_path, "_annotations.coco.json", json.dumps(roboflow_coco())))
    assert [x["name"] for x in c.categories] == ["rbc", "wbc"] and c.placeholders == ["cells-xyz"]
    assert [a["area"] for a in c.annotations] == [120.0, 0.0]  # kept: mmdet skips it, counted later
    assert "segmentation" not in c.annotations[0]  # [] is no mask


def test_missing_iscrowd_area_id_and_short_polygons(tmp_path):
    # CVAT-/script-made files: no iscrowd, no area, an annotation without id, a polygon of 2
    # points next to a good one, a 2-point polygon alone, and an uncompressed RLE.
    d = labelme_coco()
    a = d["annotations"][0]
    del a["iscrowd"], a["area"]
    a["segmentation"].append([1.0, 1.0, 2.0, 2.0])
    d["annotations"].append({"image_id": 0, "category_id": 2, "bbox": [0, 0, 4, 4],
                             "segmentation": [[0, 0, 4, 4]]})
    d["annotations"].append({"id": 7, "image_id": 0, "category_id": 2, "bbox": [0, 0, 2, 1],
                             "segmentation": {"size": [48, 64], "counts": [0, 2, 46, 1, 3021]}})
    c = an.parse_coco_json(_write(tmp_path, "x.json", json.dumps(d)))
    first, second, rle = c.annotations
    assert first["iscrowd"] == 0 and first["area"] == pytest.approx(400.0)  # shoelace of the square
    assert len(first["segmentation"]) == 1
    assert second["id"] == 8 and "segmentation" not in second and second["area"] == 16.0
    assert rle["area"] == 3.0  # pycocotools' area of the run lengths 2 + 1
    assert c.counts == {"iscrowd_missing": 3, "area_missing": 3, "polygon_lt3": 2, "no_mask": 1,
                        "id_missing": 1}


@pytest.mark.parametrize("damage, expect", [
    (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), "annotation id 0: expected 'bbox' [x, y, width, height]"),
    (lambda d: d["annotations"][0].update(image_id=9), "annotation id 0: image_id 9 is not a listed image"),
    (lambda d: d["annotations"][0].update(category_id=5), "annotation id 0: category_id 5 is not a listed category"),
    (lambda d: d["annotations"][0].update(segmentation={"counts": "x"}), "annotation id 0: RLE segmentation needs"),
    (lambda d: d["annotations"][0].update(iscrowd=2), "annotation id 0: 'iscrowd' must be 0 or 1"),
    (lambda d: d["images"][1].update(id=0), "images id 0 appears more than once"),
    (lambda d: d["images"][0].update(file_name=""), "image id 0: expected a relative 'file_name'"),
    (lambda d: d.pop("images"), "expected COCO instances JSON"),
])
def test_coco_errors_name_file_and_annotation(tmp_path, damage, expect):
    d = labelme_coco()
    damage(d)
    p = _write(tmp_path, "bad.json", json.dumps(d))
    with pytest.raises(an.AnnotationError) as err:
        an.parse_coco_json(p)
    assert str(err.value).startswith(str(p)) and expect in str(err.value) and "\n" not in str(err.value)


def test_coco_bom_and_broken_json(tmp_path):
    p = _write(tmp_path, "bom.json", b"\xef\xbb\xbf" + json.dumps(labelme_coco()).encode())
    assert len(an.parse_coco_json(p).annotations) == 1
    p = _write(tmp_path, "cut.json", json.dumps(labelme_coco())[:50])
    with pytest.raises(an.AnnotationError, match=r"cut.json: not valid JSON at line 1, column"):
        an.parse_coco_json(p)


def test_image_size_follows_exif_orientation(tmp_path):
    # A phone photo stored 40x20 with EXIF orientation 6 (rotate 90): OpenCV, hence mmdet,
    # decodes it as 20x40, and annotation tools (labelme applies EXIF) draw boxes on that.
    import mmcv

    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(np.zeros((20, 40, 3), np.uint8)).save(buf, format="JPEG", exif=exif)
    p = _write(tmp_path, "phone.jpg", buf.getvalue())
    h, w = mmcv.imfrombytes(p.read_bytes(), flag="color", backend="cv2").shape[:2]
    assert an.image_size(p) == (w, h) == (20, 40)
    with pytest.raises(an.AnnotationError, match="not a readable image"):
        an.image_size(_write(tmp_path, "x.jpg", b"not a jpeg"))
