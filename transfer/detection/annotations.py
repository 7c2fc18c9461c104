"""Tolerant readers of VOC XML and COCO JSON annotation files, as real annotation tools write them.

No mmdet here: plain parsing into small records, so the data check (transfer/detection/datacheck.py)
and the datasets (transfer/detection/datasets.py) apply one set of rules. Every file that cannot be
read raises `AnnotationError`: one line naming the file, the XML element or JSON annotation id, and
what was expected. The rule for each field (docs/detection-data-and-metrics.md, "Annotation files"):

VOC XML (`parse_voc_xml`)
  - bytes are given to expat as they are: an encoding declaration and a UTF-8/UTF-16 BOM are honoured
    (LabelImg writes `encoding='utf-8'` declarations; Windows editors add BOMs).
  - the root element must be `<annotation>`; elements we do not use (`<path>`, `<source>`,
    `<segmented>`, `<pose>`, `<attributes>`, `<occluded>`, `<part>`...) are ignored.
  - `<size>/<width>`, `<height>`: a positive number ("500" or "500.0"); missing, empty or zero gives
    `None` (the caller takes the image's real size, and says so).
  - `<object>` (direct children of `<annotation>` only: `<part>` boxes are body parts, not objects):
    `<name>` required, surrounding whitespace stripped; `<bndbox>` with `<xmin>`, `<ymin>`, `<xmax>`,
    `<ymax>` required, each a number (integers as the VOC devkit writes them, or floats as labelme and
    CVAT write them; kept as floats).
  - `<difficult>`, `<truncated>`, `<occluded>`: missing or empty (`<difficult/>`, labelme) is 0;
    otherwise 0/1, a number, or true/false/yes/no; anything else is an error.
COCO JSON (`parse_coco_json`)
  - UTF-8 with or without BOM; top level an object with `images` and `categories` lists;
    `annotations` may be missing (a set of images without annotations); other keys ignored.
  - image: `id` (unique), `file_name` (a non-empty relative path; sub-folders as labelme2coco writes
    them are kept), `width`/`height` positive numbers or missing (`None`: the real size is used).
  - category: `id` (unique; 0 allowed, as labelme2coco and Roboflow write it), `name` (non-empty, unique).
    A category no annotation uses and that is a placeholder (labelme2coco's `_background_` and
    `__ignore__`, or Roboflow's dataset-name category that is the `supercategory` of the others) is
    listed in `placeholders`, not in the class set.
  - annotation: `id` unique (missing: numbered after the largest, counted), `image_id` and
    `category_id` naming a listed image and category, `bbox` 4 numbers [x, y, w, h];
    `iscrowd` missing is 0; `area` missing is the mask area of the segmentation (polygon: shoelace;
    RLE: pycocotools) or else w*h; `segmentation` a list of polygons (flat [x1, y1, x2, y2, ...]
    lists; polygons with fewer than 3 points dropped and counted, an annotation left with none has no
    mask) or an RLE dict with `size` [h, w] and `counts` (a string or a list of run lengths).
"""
from __future__ import annotations

import json
import math
import os
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unmix.core.errors import UnmixError

# labelme2coco writes these two first (class ids -1 and 0), whether used or not.
LABELME_PLACEHOLDERS = ("__ignore__", "_background_")
_TRUE = {"1", "true", "yes"}
_FALSE = {"0", "false", "no"}


class AnnotationError(UnmixError):
    """An annotation file that cannot be read: the message names the file and the element/id."""


# ------------------------------------------------------------------------------------ VOC

@dataclass
class VocObject:
    name: str
    bbox: tuple[float, float, float, float]  # xmin, ymin, xmax, ymax as in the file (1-based)
    difficult: bool
    truncated: bool


@dataclass
class VocFile:
    path: Path
    filename: str | None
    width: int | None        # None: <size> missing, empty or zero
    height: int | None
    objects: list[VocObject] = field(default_factory=list)


def _text(elem: ET.Element | None) -> str:
    return (elem.text or "").strip() if elem is not None else ""


def _flag(obj: ET.Element, tag: str, where: str) -> bool:
    text = _text(obj.find(tag)).lower()
    if text == "" or text in _FALSE:
        return False
    if text in _TRUE:
        return True
    try:
        return float(text) != 0
    except ValueError:
        raise AnnotationError(f"{where}/<{tag}>: expected 0, 1, true or false (or empty), "
                              f"got {text!r}") from None


def _number(elem: ET.Element | None, where: str) -> float:
    text = _text(elem)
    try:
        value = float(text)
    except ValueError:
        what = "missing" if elem is None else ("empty" if not text else repr(text))
        raise AnnotationError(f"{where}: expected a number, got {what}") from None
    if not math.isfinite(value):
        raise AnnotationError(f"{where}: expected a finite number, got {text!r}")
    return value


def _size(root: ET.Element, path: Path, tag: str) -> int | None:
    elem = root.find(f"size/{tag}")
    if not _text(elem):
        return None
    value = _number(elem, f"{path}: <size>/<{tag}>")
    return int(round(value)) if value > 0 else None


def parse_voc_xml(path: str | os.PathLike) -> VocFile:
    """One VOC annotation file, by the rules in the module doc."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise AnnotationError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        line, col = e.position
        raise AnnotationError(f"{path}: not well-formed XML at line {line}, column {col + 1} "
                              f"(expected a VOC <annotation> file)") from None
    if root.tag != "annotation":
        raise AnnotationError(f"{path}: root element <{root.tag}>, expected <annotation>")
    out = VocFile(path, _text(root.find("filename")) or None, _size(root, path, "width"),
                  _size(root, path, "height"))
    for i, obj in enumerate(root.findall("object"), 1):
        where = f"{path}: <object> {i}"
        name = _text(obj.find("name"))
        if not name:
            raise AnnotationError(f"{where}: expected a non-empty <name>")
        box = obj.find("bndbox")
        if box is None:
            raise AnnotationError(f"{where} ({name}): expected a <bndbox>")
        coords = tuple(_number(box.find(t), f"{where} ({name}) <bndbox>/<{t}>")
                       for t in ("xmin", "ymin", "xmax", "ymax"))
        out.objects.append(VocObject(name, coords, _flag(obj, "difficult", where),  # type: ignore[arg-type]
                                     _flag(obj, "truncated", where)))
        _flag(obj, "occluded", where)  # checked (CVAT writes it), not used
    return out


# ----------------------------------------------------------------------------------- COCO

@dataclass
class CocoFile:
    path: Path
    images: list[dict[str, Any]]        # id, file_name, width, height (None: not given)
    annotations: list[dict[str, Any]]   # id, image_id, category_id, bbox, area, iscrowd[, segmentation]
    categories: list[dict[str, Any]]    # id, name (the class set, placeholders removed)
    placeholders: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)  # what was filled in or dropped
    changed: bool = False               # the normalised form differs from the file


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _load_json(path: Path) -> Any:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as e:
        raise AnnotationError(f"{path}: cannot read ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise AnnotationError(f"{path}: not UTF-8 text at byte {e.start} (expected COCO JSON)") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise AnnotationError(f"{path}: not valid JSON at line {e.lineno}, column {e.colno}: "
                              f"{e.msg} (expected COCO instances JSON)") from None


def _polygon_area(poly: list[float]) -> float:
    xs, ys = poly[0::2], poly[1::2]
    n = len(xs)
    return abs(sum(xs[i] * ys[(i + 1) % n] - xs[(i + 1) % n] * ys[i] for i in range(n))) / 2


def _segmentation(seg: Any, ann: dict, out: CocoFile, where: str) -> Any:
    """The segmentation kept (None: no mask), counting dropped polygons."""
    if seg is None or seg == [] or seg == {}:
        return None
    if isinstance(seg, dict):
        size, counts = seg.get("size"), seg.get("counts")
        if (not isinstance(size, list) or len(size) != 2 or not all(_is_num(v) for v in size)
                or not isinstance(counts, (str, list))):
            raise AnnotationError(f"{where}: RLE segmentation needs 'size' [height, width] and "
                                  "'counts' (a string or a list of run lengths)")
        return seg
    if not isinstance(seg, list) or not all(isinstance(p, list) for p in seg):
        raise AnnotationError(f"{where}: segmentation must be a list of polygons or an RLE dict")
    kept = []
    for poly in seg:
        if not all(_is_num(v) for v in poly) or len(poly) % 2:
            raise AnnotationError(f"{where}: a polygon must be a flat list of x, y numbers")
        if len(poly) < 6:
            out.counts["polygon_lt3"] += 1  # pycocotools cannot rasterise it
            continue
        kept.append(poly)
    if len(kept) != len(seg):
        out.changed = True
    if not kept:
        out.counts["no_mask"] += 1
        return None
    return kept


def _area(seg: Any, w: float, h: float) -> float:
    if isinstance(seg, dict):
        from pycocotools import mask as mask_utils

        rle = seg if isinstance(seg["counts"], str) else mask_utils.frPyObjects(seg, *seg["size"])
        return float(mask_utils.area(rle))
    if seg:
        return float(sum(_polygon_area(p) for p in seg))
    return float(max(w, 0) * max(h, 0))


def _unique_ids(items: list[Any], what: str, path: Path) -> None:
    seen: set = set()
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise AnnotationError(f"{path}: {what}[{i}]: expected an object")
        if "id" not in item or isinstance(item["id"], (list, dict, float)) or item["id"] is None:
            if what == "annotations":
                continue
            raise AnnotationError(f"{path}: {what}[{i}]: expected an integer or string 'id'")
        if item["id"] in seen:
            raise AnnotationError(f"{path}: {what} id {item['id']!r} appears more than once")
        seen.add(item["id"])


def _images(raw: list, path: Path) -> list[dict[str, Any]]:
    _unique_ids(raw, "images", path)
    images = []
    for im in raw:
        where = f"{path}: image id {im['id']!r}"
        name = im.get("file_name")
        if not isinstance(name, str) or not name.strip() or os.path.isabs(name):
            raise AnnotationError(f"{where}: expected a relative 'file_name', got {name!r}")
        size = {}
        for key in ("width", "height"):
            v = im.get(key)
            if v is not None and not _is_num(v):
                raise AnnotationError(f"{where}: '{key}' must be a number, got {v!r}")
            size[key] = int(round(v)) if v is not None and v > 0 else None
        images.append({"id": im["id"], "file_name": name, **size})
    return images


def _categories(raw: list, used: set, path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    _unique_ids(raw, "categories", path)
    names: set[str] = set()
    for c in raw:
        if not isinstance(c.get("name"), str) or not c["name"].strip():
            raise AnnotationError(f"{path}: category id {c['id']!r}: expected a non-empty 'name'")
        if c["name"] in names:
            raise AnnotationError(f"{path}: category name {c['name']!r} appears more than once")
        names.add(c["name"])
    supers = {c.get("supercategory") for c in raw if c.get("supercategory")}
    placeholders = [c["name"] for c in raw if c["id"] not in used
                    and (c["name"] in LABELME_PLACEHOLDERS or c["name"] in supers)]
    cats = [{"id": c["id"], "name": c["name"], "supercategory": c.get("supercategory")}
            for c in raw if c["name"] not in placeholders]
    return cats, placeholders


def _annotation(a: dict, images: dict, cat_ids: set, out: CocoFile) -> dict[str, Any]:
    where = f"{out.path}: annotation id {a['id']!r}"
    if a.get("image_id") not in images:
        raise AnnotationError(f"{where}: image_id {a.get('image_id')!r} is not a listed image")
    if a.get("category_id") not in cat_ids:
        raise AnnotationError(f"{where}: category_id {a.get('category_id')!r} is not a listed category")
    box = a.get("bbox")
    if not isinstance(box, list) or len(box) != 4 or not all(_is_num(v) for v in box):
        raise AnnotationError(f"{where}: expected 'bbox' [x, y, width, height] (4 numbers), got {box!r}")
    seg = _segmentation(a.get("segmentation"), a, out, where)
    crowd = a.get("iscrowd")
    if crowd is None:
        out.counts["iscrowd_missing"] += 1
        out.changed = True
        crowd = 0
    elif crowd not in (0, 1, True, False):
        raise AnnotationError(f"{where}: 'iscrowd' must be 0 or 1, got {crowd!r}")
    area = a.get("area")
    if area is None:
        out.counts["area_missing"] += 1
        out.changed = True
        area = _area(seg, box[2], box[3])
    elif not _is_num(area):
        raise AnnotationError(f"{where}: 'area' must be a number, got {area!r}")
    ann = {"id": a["id"], "image_id": a["image_id"], "category_id": a["category_id"],
           "bbox": [float(v) for v in box], "area": float(area), "iscrowd": int(crowd)}
    if seg is not None:
        ann["segmentation"] = seg
    return ann


def parse_coco_json(path: str | os.PathLike) -> CocoFile:
    """One COCO instances file, by the rules in the module doc."""
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("categories"), list):
        raise AnnotationError(f"{path}: expected COCO instances JSON (an object with 'images' and "
                              "'categories' lists, and 'annotations')")
    raw_anns = data.get("annotations", [])
    if not isinstance(raw_anns, list):
        raise AnnotationError(f"{path}: 'annotations' must be a list")
    images = _images(data["images"], path)
    _unique_ids(raw_anns, "annotations", path)
    used = {a.get("category_id") for a in raw_anns}
    cats, placeholders = _categories(data["categories"], used, path)
    out = CocoFile(path, images, [], cats, placeholders, changed=bool(placeholders))
    by_id = {im["id"]: im for im in images}
    cat_ids = {c["id"] for c in data["categories"]}
    next_id = 1 + max([a["id"] for a in raw_anns if isinstance(a.get("id"), int)], default=0)
    for a in raw_anns:
        if "id" not in a or a["id"] is None:
            a = dict(a, id=next_id)
            next_id += 1
            out.counts["id_missing"] += 1
            out.changed = True
        out.annotations.append(_annotation(a, by_id, cat_ids, out))
    return out


def normalised_json(coco: CocoFile) -> dict[str, Any]:
    """The file as pycocotools and mmdet need it (sizes as given or as filled in by the caller)."""
    return {"images": coco.images, "annotations": coco.annotations, "categories": coco.categories}


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of an image as the training pipeline decodes it: OpenCV's decoder (mmcv's
    default backend) applies the EXIF orientation, so phone photos tagged 5-8 (rotated by 90
    degrees) are decoded with width and height swapped. Only the header is read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1)
    except (OSError, UnidentifiedImageError, SyntaxError) as e:
        raise AnnotationError(f"{path}: not a readable image ({e})") from None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)
