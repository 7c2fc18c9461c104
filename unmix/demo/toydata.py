"""Tiny detection datasets in the real on-disk formats (PASCAL VOC and COCO), from synthetic scenes.

Each image is a textured background with 1-3 filled shapes; the class decides the shape (ellipse,
box, triangle, diamond) and the colour, so a detector can actually learn it. Objects are drawn as
polygons, and the same polygon gives the COCO segmentation, the mask area and the box, so boxes
and masks agree exactly. Everything is a pure function of `seed` (same files on every run).

    write_voc(root, n_train, n_test)  -> root  (root/VOCdevkit/VOC2007, VOC2012)
    write_coco(root, n_train, n_val)  -> root  (root/annotations/instances_{train,val}2017.json,
                                                root/train2017/, root/val2017/)

`inject` puts known-bad cases into the *training* split, for tests of what the loaders skip:
'degenerate_box' (an extra object with zero width), 'out_of_image_box' (an extra object that
starts inside and ends outside the image), 'outside_box' (an extra object wholly outside the
image), 'missing_image' (one listed image whose JPEG is not written).
"""
from __future__ import annotations

import colorsys
import json
import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor")

COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush")

TOY_CLASSES: tuple[str, ...] = ("disc", "box", "triangle")

INJECTIONS = ("degenerate_box", "out_of_image_box", "outside_box", "missing_image")
_SHAPES = ("ellipse", "rect", "triangle", "diamond")


@dataclass(frozen=True)
class ToyObject:
    label: int
    polygon: tuple[tuple[float, float], ...]  # pixel coordinates (x, y), continuous
    bbox: tuple[float, float, float, float]   # x1, y1, x2, y2, continuous (x2 = x1 + w)


@dataclass(frozen=True)
class ToyImage:
    name: str                 # file stem
    width: int
    height: int
    objects: tuple[ToyObject, ...]
    bad: tuple[tuple[float, float, float, float], ...] = ()  # injected boxes, x1 y1 x2 y2
    missing: bool = False


def class_colour(label: int, num_classes: int) -> tuple[int, int, int]:
    """Distinct saturated colour per class (hue spread evenly), as 8-bit RGB."""
    r, g, b = colorsys.hsv_to_rgb((label * 0.618034) % 1.0, 0.85, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def _polygon(shape: str, cx: float, cy: float, w: float, h: float) -> list[tuple[float, float]]:
    if shape == "ellipse":
        n = 16
        return [(cx + w / 2 * math.cos(2 * math.pi * k / n), cy + h / 2 * math.sin(2 * math.pi * k / n))
                for k in range(n)]
    if shape == "rect":
        return [(cx - w / 2, cy - h / 2), (cx + w / 2, cy - h / 2), (cx + w / 2, cy + h / 2),
                (cx - w / 2, cy + h / 2)]
    if shape == "triangle":
        return [(cx, cy - h / 2), (cx + w / 2, cy + h / 2), (cx - w / 2, cy + h / 2)]
    return [(cx, cy - h / 2), (cx + w / 2, cy), (cx, cy + h / 2), (cx - w / 2, cy)]  # diamond


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Low-contrast texture: a smooth colour gradient, stripes and pixel noise (uint8 HxWx3)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(60, 190, size=3).astype(np.float32)
    grad = rng.uniform(-40, 40, size=(2, 3)).astype(np.float32)
    img = base + xx[..., None] / max(width, 1) * grad[0] + yy[..., None] / max(height, 1) * grad[1]
    freq, phase, angle = rng.uniform(0.1, 0.5), rng.uniform(0, 2 * np.pi), rng.uniform(0, np.pi)
    stripes = np.sin(freq * (xx * np.cos(angle) + yy * np.sin(angle)) + phase)
    img += 12 * stripes[..., None] + rng.normal(0, 6, size=img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _scene(rng: np.random.Generator, name: str, size: tuple[int, int], num_classes: int,
           max_objects: int) -> ToyImage:
    width, height = size
    objects = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        label = int(rng.integers(num_classes))
        short = min(width, height)
        w = float(rng.uniform(0.2, 0.5) * short)
        h = float(rng.uniform(0.2, 0.5) * short)
        cx = float(rng.uniform(w / 2 + 1, width - w / 2 - 1))
        cy = float(rng.uniform(h / 2 + 1, height - h / 2 - 1))
        poly = _polygon(_SHAPES[label % len(_SHAPES)], cx, cy, w, h)
        xs, ys = [p[0] for p in poly], [p[1] for p in poly]
        objects.append(ToyObject(label, tuple(poly), (min(xs), min(ys), max(xs), max(ys))))
    return ToyImage(name, width, height, tuple(objects))


def _inject(images: list[ToyImage], inject: Sequence[str]) -> list[ToyImage]:
    unknown = set(inject) - set(INJECTIONS)
    if unknown:
        raise ValueError(f"unknown injections {sorted(unknown)}; choose from {INJECTIONS}")
    if not images or not inject:
        return images
    im = images[0]
    w, h = im.width, im.height
    bad = []
    if "degenerate_box" in inject:
        bad.append((w / 4, h / 4, w / 4, h / 2))           # zero width
    if "out_of_image_box" in inject:
        bad.append((w / 2, h / 2, w + w / 4, h - 2))       # right edge beyond the image
    if "outside_box" in inject:
        bad.append((w + 5, h / 4, w + 20, h / 2))          # nothing inside the image
    images = list(images)
    images[0] = ToyImage(im.name, w, h, im.objects, tuple(bad))
    if "missing_image" in inject:
        j = min(1, len(images) - 1)
        images[j] = ToyImage(images[j].name, images[j].width, images[j].height, images[j].objects,
                             images[j].bad, missing=True)
    return images


def _render(im: ToyImage, rng: np.random.Generator, num_classes: int, path: Path) -> None:
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(_background(rng, im.width, im.height))
    draw = ImageDraw.Draw(canvas)
    for obj in im.objects:
        draw.polygon(list(obj.polygon), fill=class_colour(obj.label, num_classes))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, format="JPEG", quality=92)


def _make_split(seed: int, split_key: int, names: list[str], size: tuple[int, int],
                num_classes: int, max_objects: int) -> tuple[list[ToyImage], np.random.Generator]:
    rng = np.random.default_rng([seed, split_key])
    return [_scene(rng, n, size, num_classes, max_objects) for n in names], rng


def _check_args(size: Sequence[int], classes: Sequence[str]) -> tuple[tuple[int, int], tuple[str, ...]]:
    width, height = (int(s) for s in size)
    if width < 16 or height < 16:
        raise ValueError(f"size must be at least 16x16, got {width}x{height}")
    classes = tuple(classes)
    if not classes or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be non-empty and unique, got {classes}")
    return (width, height), classes


# ---------------------------------------------------------------------------------------- VOC

def _voc_xml(im: ToyImage, classes: tuple[str, ...], folder: str) -> bytes:
    """VOC XML with 1-based inclusive pixel coordinates, as the devkit writes them."""
    ann = ET.Element("annotation")
    ET.SubElement(ann, "folder").text = folder
    ET.SubElement(ann, "filename").text = f"{im.name}.jpg"
    source = ET.SubElement(ann, "source")
    ET.SubElement(source, "database").text = "unmix toy data"
    size = ET.SubElement(ann, "size")
    ET.SubElement(size, "width").text = str(im.width)
    ET.SubElement(size, "height").text = str(im.height)
    ET.SubElement(size, "depth").text = "3"
    ET.SubElement(ann, "segmented").text = "0"
    boxes = [(classes[o.label], o.bbox) for o in im.objects]
    boxes += [(classes[0], b) for b in im.bad]
    for name, (x1, y1, x2, y2) in boxes:
        obj = ET.SubElement(ann, "object")
        ET.SubElement(obj, "name").text = name
        ET.SubElement(obj, "pose").text = "Unspecified"
        truncated = x1 < 0 or y1 < 0 or x2 > im.width or y2 > im.height
        ET.SubElement(obj, "truncated").text = str(int(truncated))
        ET.SubElement(obj, "difficult").text = "0"
        bnd = ET.SubElement(obj, "bndbox")
        # pixel k (0-based) covering [k, k+1) is k+1 in VOC's 1-based inclusive convention
        vals = (math.floor(x1) + 1, math.floor(y1) + 1, max(math.ceil(x2), math.floor(x1) + 1),
                max(math.ceil(y2), math.floor(y1) + 1))
        if x2 <= x1:  # keep injected degenerate boxes degenerate after rounding
            vals = (vals[0], vals[1], vals[0] - 1, vals[3])
        for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), vals):
            ET.SubElement(bnd, tag).text = str(int(v))
    ET.indent(ann)
    return ET.tostring(ann, encoding="utf-8")


def _write_voc_year(year_dir: Path, images_by_split: dict[str, list[ToyImage]],
                    rngs: dict[str, np.random.Generator], classes: tuple[str, ...]) -> None:
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (year_dir / sub).mkdir(parents=True, exist_ok=True)
    for split, images in images_by_split.items():
        for im in images:
            (year_dir / "Annotations" / f"{im.name}.xml").write_bytes(
                _voc_xml(im, classes, year_dir.name))
            if not im.missing:
                _render(im, rngs[split], len(classes), year_dir / "JPEGImages" / f"{im.name}.jpg")
        (year_dir / "ImageSets/Main" / f"{split}.txt").write_text(
            "".join(f"{im.name}\n" for im in images))


def write_voc(root: str | os.PathLike, n_train: int, n_test: int, size: Sequence[int] = (64, 64),
              classes: Sequence[str] = TOY_CLASSES, seed: int = 0, max_objects: int = 3,
              voc2012: bool = True, inject: Sequence[str] = ()) -> Path:
    """Write root/VOCdevkit/VOC2007 (trainval: n_train, test: n_test) and VOC2012 (trainval: n_train).

    Returns `root` (the directory holding VOCdevkit/, i.e. mmdet's `data_root`). With
    mmdet's VOCDataset use `metainfo=dict(classes=classes)` unless classes are the 20 VOC ones.
    """
    size, classes = _check_args(size, classes)
    root = Path(root)
    devkit = root / "VOCdevkit"
    train07 = [f"{i + 1:06d}" for i in range(n_train)]
    test07 = [f"{n_train + i + 1:06d}" for i in range(n_test)]
    tv, tv_rng = _make_split(seed, 0, train07, size, len(classes), max_objects)
    te, te_rng = _make_split(seed, 1, test07, size, len(classes), max_objects)
    _write_voc_year(devkit / "VOC2007", {"trainval": _inject(tv, inject), "test": te},
                    {"trainval": tv_rng, "test": te_rng}, classes)
    if voc2012:
        names12 = [f"2012_{i + 1:06d}" for i in range(n_train)]
        tv12, rng12 = _make_split(seed, 2, names12, size, len(classes), max_objects)
        _write_voc_year(devkit / "VOC2012", {"trainval": tv12}, {"trainval": rng12}, classes)
    return root


# --------------------------------------------------------------------------------------- COCO

def _polygon_area(poly: Sequence[tuple[float, float]]) -> float:
    xs = np.array([p[0] for p in poly])
    ys = np.array([p[1] for p in poly])
    return float(0.5 * abs(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1))))


def _coco_json(images: list[ToyImage], classes: tuple[str, ...], first_image_id: int,
               masks: bool) -> dict:
    out: dict = {
        "info": {"description": "unmix toy data", "version": "1.0", "year": 2026},
        "licenses": [],
        "images": [],
        "annotations": [],
        "categories": [{"id": i + 1, "name": name, "supercategory": "toy"}
                       for i, name in enumerate(classes)],
    }
    ann_id = 1
    for k, im in enumerate(images):
        image_id = first_image_id + k
        out["images"].append({"id": image_id, "file_name": f"{im.name}.jpg", "width": im.width,
                              "height": im.height})
        entries = [(o.label, o.bbox, o.polygon) for o in im.objects]
        entries += [(0, b, None) for b in im.bad]
        for label, (x1, y1, x2, y2), poly in entries:
            ann = {"id": ann_id, "image_id": image_id, "category_id": label + 1,
                   "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                   "area": round(_polygon_area(poly), 2) if poly else max(0.0, (x2 - x1) * (y2 - y1)),
                   "iscrowd": 0}
            if masks:
                if poly is None:  # injected boxes: the box itself as polygon
                    poly = ((x1, y1), (x2, y1), (x2, y2), (x1, y2))
                ann["segmentation"] = [[round(v, 2) for p in poly for v in p]]
            out["annotations"].append(ann)
            ann_id += 1
    return out


def write_coco(root: str | os.PathLike, n_train: int, n_val: int, size: Sequence[int] = (64, 64),
               classes: Sequence[str] = TOY_CLASSES, seed: int = 0, max_objects: int = 3,
               masks: bool = True, inject: Sequence[str] = ()) -> Path:
    """Write root/annotations/instances_{train,val}2017.json and root/{train,val}2017/*.jpg.

    Category ids are 1..K in the order of `classes` (mmdet's CocoDataset maps them by name).
    Returns `root` (mmdet's `data_root`).
    """
    size, classes = _check_args(size, classes)
    root = Path(root)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    first_id = 1
    for key, (split, n) in enumerate((("train2017", n_train), ("val2017", n_val))):
        names = [f"{first_id + i:012d}" for i in range(n)]
        images, rng = _make_split(seed, 10 + key, names, size, len(classes), max_objects)
        if split == "train2017":
            images = _inject(images, inject)
        for im in images:
            if not im.missing:
                _render(im, rng, len(classes), root / split / f"{im.name}.jpg")
        (root / split).mkdir(parents=True, exist_ok=True)
        data = _coco_json(images, classes, first_id, masks)
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(data))
        first_id += n
    return root
