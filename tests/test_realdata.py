"""Detection data as annotation tools write it, end to end: the data check's counts against a naive
count of what was written, the class set taken from the data, and (slow) one training iteration
plus evaluation on each layout, so that evaluation is never the first place an error shows.

The XML/JSON shapes are those of test_annotations.py (labelme, LabelImg, CVAT, Roboflow,
labelme2coco): here they are whole datasets in the VOC and COCO layouts, with real JPEGs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from transfer.stack import ensure_stack

ensure_stack()

from transfer.detection import datacheck, protocols  # noqa: E402
from transfer.detection import finetune as ft  # noqa: E402
from transfer.detection.datasets import standard_classes  # noqa: E402
from unmix import cli  # noqa: E402
from unmix.core.errors import UnmixError  # noqa: E402
from unmix.demo import toydata  # noqa: E402

SIZE = (96, 64)
SCALE = (96, 64)


def _jpeg(path: Path, seed: int, size=SIZE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def _labelme(name, objs, size=SIZE):  # empty optional tags, float coordinates
    body = "".join(f"<object><name>{n}</name><pose/><truncated/><difficult/><bndbox><xmin>{b[0]}.0</xmin>"
                   f"<ymin>{b[1]}.5</ymin><xmax>{b[2]}.0</xmax><ymax>{b[3]}.25</ymax></bndbox></object>"
                   for n, b in objs)
    return (f"<annotation><folder/><filename>{name}.jpg</filename><database/><size><height>{size[1]}"
            f"</height><width>{size[0]}</width><depth>3</depth></size><segmented/>{body}</annotation>").encode()


def _labelimg(name, objs, difficult=()):  # BOM, encoding declaration, tabs, difficult 0/1
    body = "".join(f"\t<object>\n\t\t<name>{n}</name>\n\t\t<pose>Unspecified</pose>\n\t\t<truncated>0"
                   f"</truncated>\n\t\t<difficult>{int(i in difficult)}</difficult>\n\t\t<bndbox>\n"
                   f"\t\t\t<xmin>{b[0]}</xmin>\n\t\t\t<ymin>{b[1]}</ymin>\n\t\t\t<xmax>{b[2]}</xmax>\n"
                   f"\t\t\t<ymax>{b[3]}</ymax>\n\t\t</bndbox>\n\t</object>\n" for i, (n, b) in enumerate(objs))
    return ("\ufeff<?xml version='1.0' encoding='utf-8'?>\n<annotation verified=\"yes\">\n\t<folder>x"
            f"</folder>\n\t<filename>{name}.jpg</filename>\n\t<path>C:\\x\\{name}.jpg</path>\n\t<size>\n"
            f"\t\t<width>{SIZE[0]}</width>\n\t\t<height>{SIZE[1]}</height>\n\t\t<depth>3</depth>\n\t</size>"
            f"\n{body}</annotation>\n").encode("utf-8")


def _cvat(name, objs):  # no <size>, <occluded>, <attributes>
    body = "".join(f"<object><name>{n}</name><truncated>0</truncated><occluded>1</occluded><difficult>"
                   f"false</difficult><bndbox><xmin>{b[0]}.51</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax>"
                   f"<ymax>{b[3]}</ymax></bndbox><attributes><attribute><name>c</name><value>r</value>"
                   "</attribute></attributes></object>" for n, b in objs)
    return (f'<?xml version="1.0" encoding="utf-8"?><annotation><filename>{name}.png</filename>{body}'
            '</annotation>').encode()


# (writer, image id, objects): one box crossing the border (clipped), one degenerate (skipped),
# one LabelImg box marked difficult (ignored), a labelme file whose <size> is wrong.
VOC_FILES = {
    "VOC2007/trainval": [(_labelme, "a1", [("cat", (5, 5, 40, 40)), ("scooter", (50, 10, 120, 60))]),
                         (_cvat, "a2", [("dog", (10, 10, 30, 50))]),
                         (_labelimg, "a3", [("cat", (3, 4, 30, 40)), ("dog", (20, 20, 20, 30))])],
    "VOC2012/trainval": [(_labelimg, "b1", [("scooter", (5, 5, 60, 60)), ("cat", (30, 30, 90, 60))]),
                         (_cvat, "b2", [("cat", (2, 2, 50, 50))])],
    "VOC2007/test": [(_labelimg, "c1", [("cat", (5, 5, 40, 40)), ("dog", (40, 10, 80, 60))]),
                     (_labelme, "c2", [("scooter", (10, 10, 60, 50))])],
}


def write_tool_voc(root: Path) -> Path:
    for split, items in VOC_FILES.items():
        year, name = split.split("/")
        ydir = root / "VOCdevkit" / year
        (ydir / "Annotations").mkdir(parents=True, exist_ok=True)
        (ydir / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
        for k, (writer, i, objs) in enumerate(items):
            _jpeg(ydir / "JPEGImages" / f"{i}.jpg", k)
            xml = writer(i, objs, difficult=(0,)) if writer is _labelimg and i == "a3" else writer(i, objs)
            if i == "c2":
                xml = xml.replace(f"<width>{SIZE[0]}</width>".encode(), b"<width>640</width>")
            (ydir / "Annotations" / f"{i}.xml").write_bytes(xml)
        (ydir / "ImageSets" / "Main" / f"{name}.txt").write_text("\n".join(i for _, i, _ in items) + "\n\n")
    return root


def _cli(capsys, *args) -> tuple[int, str, str]:
    rc = cli.main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_voc_tool_files_are_checked_and_counted(tmp_path, capsys):
    root = write_tool_voc(tmp_path)
    rc, out, err = _cli(capsys, "data", "check", "--protocol", "voc-faster-rcnn-fpn", "--data-root", str(root))
    assert rc == 0, err
    assert "classes: custom (3) from the data" in out  # 'scooter' is no VOC class
    cfg = protocols.load_config("voc-faster-rcnn-fpn")
    protocols.set_data_root(cfg, str(root / "VOCdevkit"))
    protocols.use_unmix_datasets(cfg)
    dc = datacheck.check(cfg, "voc", standard_classes("voc"))
    assert dc.classes.names == ("cat", "dog", "scooter")
    by = {s.name: s for s in dc.splits}
    # naive counts from VOC_FILES: the degenerate dog box of a3 is skipped, a3's first cat is difficult
    assert dict(by["VOC2007/trainval"].instances) == {"cat": 1, "dog": 1, "scooter": 1}
    assert dict(by["VOC2007/trainval"].ignored) == {"cat": 1}
    assert by["VOC2007/trainval"].skips.counts["degenerate"] == 1
    # a1's scooter (xmax 120 > 96) and b1's cat (xmax 90 -> 89, ymax 60 within 64: fine) -> 1 clipped
    assert by["VOC2007/trainval"].skips.counts["clipped"] == 1
    assert by["VOC2007/trainval"].skips.counts["size_missing"] == 1  # the CVAT file
    assert by["VOC2007/test"].skips.counts["size_wrong"] == 1       # c2 says 640 wide
    assert dict(by["VOC2007/test"].instances) == {"cat": 1, "dog": 1, "scooter": 1}
    assert by["VOC2012/trainval"].images == 2 and by["VOC2007/test"].images == 2


def test_voc_standard_names_keep_the_protocol_classes_and_protocol_mode_refuses(tmp_path, capsys):
    std = toydata.write_voc(tmp_path / "std", 2, 1, size=SIZE, classes=toydata.VOC_CLASSES)
    rc, out, _ = _cli(capsys, "data", "check", "--protocol", "voc-faster-rcnn-fpn", "--data-root", str(std))
    assert rc == 0 and "classes: standard (20) from the protocol" in out
    custom = write_tool_voc(tmp_path / "custom")
    rc, out, err = _cli(capsys, "data", "check", "--protocol", "voc-faster-rcnn-fpn", "--data-root",
                        str(custom), "--classes", "protocol")
    assert rc == 1 and err.count("\n") == 1
    assert "extra: scooter" in err and "missing: aeroplane, bicycle" in err
    names = tmp_path / "classes.txt"
    names.write_text("dog\ncat\n")
    rc, out, _ = _cli(capsys, "data", "check", "--protocol", "voc-faster-rcnn-fpn", "--data-root",
                      str(custom), "--classes", str(names))
    assert rc == 0 and f"classes: custom (2) from the file {names}" in out
    assert "outside the run's class set" in out  # the scooters, counted


@pytest.mark.parametrize("damage, expect", [
    (lambda x: x.replace(b"</annotation>", b""), "not well-formed XML at line"),
    (lambda x: x.replace(b"<difficult/>", b"<difficult>maybe</difficult>", 1), "<object> 1/<difficult>: expected"),
    (lambda x: x.replace(b"<xmax>40.0</xmax>", b"<xmax></xmax>"),
     "(cat) <bndbox>/<xmax>: expected a number, got empty"),
])
def test_a_corrupted_voc_file_is_one_line_naming_it(tmp_path, capsys, damage, expect):
    root = write_tool_voc(tmp_path)
    xml = root / "VOCdevkit/VOC2007/Annotations/a1.xml"
    xml.write_bytes(damage(xml.read_bytes()))
    rc, _, err = _cli(capsys, "data", "check", "--protocol", "voc-faster-rcnn-fpn", "--data-root", str(root))
    assert rc == 1 and err.count("\n") == 1 and str(xml) in err and expect in err, err


def write_tool_coco(root: Path, masks: bool = True) -> Path:
    """Roboflow-style: a dataset-name category id 0 used by none; labelme2coco-style sub-folders;
    iscrowd and area missing on some annotations; a 2-point polygon; an image without boxes."""
    for split, n in (("train2017", 4), ("val2017", 2)):
        images, anns = [], []
        for i in range(n):
            name = f"batch{i % 2}/im{i}.jpg"
            _jpeg(root / split / name, i)
            images.append({"id": i, "file_name": name, "height": SIZE[1], "width": SIZE[0], "license": 1})
            if i == n - 1 and split == "train2017":
                continue  # an image without annotations
            for j, (cat, box) in enumerate(((1, [5, 5, 30, 30]), (2, [40, 10, 40, 40]))):
                a = {"id": 10 * i + j, "image_id": i, "category_id": cat, "bbox": box}
                x, y, w, h = box
                seg = [[x, y, x + w, y, x + w, y + h, x, y + h]] if masks else []
                if masks and j == 1 and i == 0:
                    seg.append([1.0, 1.0, 2.0, 2.0])  # fewer than 3 points: dropped
                a["segmentation"] = seg
                if j == 0:
                    a.update(area=w * h, iscrowd=0)  # the other one has neither (CVAT exports)
                anns.append(a)
        data = {"info": {"year": "2024"}, "licenses": [], "images": images, "annotations": anns,
                "categories": [{"id": 0, "name": "cells-xyz", "supercategory": "none"},
                               {"id": 1, "name": "rbc", "supercategory": "cells-xyz"},
                               {"id": 2, "name": "wbc", "supercategory": "cells-xyz"}]}
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(data))
    return root


def test_coco_tool_file_classes_from_categories(tmp_path, capsys):
    root = write_tool_coco(tmp_path)
    rc, out, err = _cli(capsys, "data", "check", "--protocol", "coco-mask-rcnn-fpn", "--data-root", str(root))
    assert rc == 0, err
    assert "classes: custom (2) from the data" in out  # the placeholder 'cells-xyz' is no class
    assert "images without a box" in out


def test_mask_protocol_on_box_only_coco_is_refused_before_training(tmp_path):
    root = write_tool_coco(tmp_path / "data", masks=False)
    with pytest.raises(UnmixError, match="no annotation has a mask .* use a box protocol"):
        ft.finetune("none", "coco-mask-rcnn-fpn", work_dir=tmp_path / "wd", data_root=str(root),
                    cfg_options=protocols.smoke_options("coco-mask-rcnn-fpn", scale=SCALE))
    assert not list((tmp_path / "wd").glob("*.pth"))  # nothing trained


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["voc", "coco"])
def test_tool_written_data_trains_one_iteration_and_evaluates(tmp_path, layout):
    if layout == "voc":
        root, protocol, n = write_tool_voc(tmp_path / "data"), "voc-faster-rcnn-fpn", 3
    else:
        root, protocol, n = write_tool_coco(tmp_path / "data"), "coco-mask-rcnn-fpn", 2
    wd = tmp_path / "wd"
    rec = ft.finetune("none", protocol, work_dir=wd, data_root=str(root),
                      cfg_options=protocols.smoke_options(protocol, scale=SCALE, batch=1))
    assert rec["status"] == "finished"
    assert rec["protocol"]["classes"]["kind"] == "custom" and rec["protocol"]["classes"]["num"] == n
    assert rec["protocol"]["classes"]["requested"] == "auto"  # what was asked, beside what it resolved to
    assert all(np.isfinite(v) for v in rec["metrics"].values()) and rec["metrics"]
    assert rec["data"]["splits"][0]["images"] > 0 and (wd / "data_check.txt").is_file()
    config = (wd / "config.py").read_text()
    assert f"num_classes={n}" in config and "num_classes=80" not in config and "num_classes=20" not in config
    from transfer.detection.evaluate import evaluate_work_dir

    again = evaluate_work_dir(wd, write_record=False)  # re-checks the scored split first
    assert again.keys() == rec["metrics"].keys() and (wd / "data_check_evaluate.txt").is_file()
    if layout == "coco":  # iscrowd/area filled in: read from the normalised copy
        copy = json.loads((wd / "data" / "instances_train2017.json").read_text())
        assert all("iscrowd" in a and "area" in a for a in copy["annotations"])
        assert [c["name"] for c in copy["categories"]] == ["rbc", "wbc"]
