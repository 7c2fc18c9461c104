"""Detection data on disk: layout checks with actionable errors, and VOC/COCO datasets that skip
bad boxes with one summary warning instead of crashing a data-loader worker.

- `check_voc_root(data_root, splits)` / `check_coco_root(data_root, splits)`: verify the layout
  and that every listed image exists, *before* a Runner starts; raise `UnmixError` naming what
  was expected where. `data_root` for VOC may be the directory holding `VOCdevkit/` or
  `VOCdevkit/` itself (the returned `DataRoot` says which and gives mmdet's `data_root`).
- `UnmixVOCDataset` / `UnmixCocoDataset`, registered in mmdet's DATASETS registry (use them as
  `type='UnmixVOCDataset'` in configs): mmdet's loaders plus
    * boxes with zero/negative width or height: skipped and counted (mmdet's CocoDataset already
      skips them silently; its VOCDataset keeps them, which gives negative-area targets);
    * boxes partly outside the image: clipped to it (VOC) or kept as mmdet keeps them (COCO,
      clipped later by `Resize`), counted;
    * boxes wholly outside the image: skipped and counted;
    * listed images whose file is missing: `UnmixError` at dataset construction (main process).
  `UnmixVOCDataset(train_difficult=True)` also trains on boxes marked `difficult`, as detectron2
  does (its pascal_voc.py: "We include "difficult" samples in training"); mmdet ignores them.
  Only in training: a test set (`test_mode=True`) keeps them ignored, as the VOC devkit scores.
  After loading, one `SkippedAnnotationsWarning` (also written to the run's log) names the
  annotation source and the counts with a few example files; `dataset.skip_counts` has the counts.
"""
from __future__ import annotations

import logging
import os
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from transfer.stack import install_stand_in
from unmix.core.errors import UnmixError

DOC = "docs/detection-data-and-metrics.md"
VOC_LAYOUT = "VOCdevkit/VOC2007/{JPEGImages,Annotations,ImageSets/Main}"
COCO_LAYOUT = "annotations/instances_<split>.json and <split>/*.jpg"
_MAX_LISTED = 5


class SkippedAnnotationsWarning(UserWarning):
    """Some boxes of a detection dataset were skipped or clipped while loading."""


@dataclass
class DataRoot:
    path: Path                 # what to give mmdet as `data_root`
    given: Path                # what the user gave
    form: str                  # 'parent-of-VOCdevkit' | 'VOCdevkit' | 'coco'
    num_images: dict[str, int] = field(default_factory=dict)  # split -> listed images

    def describe(self) -> str:
        counts = ", ".join(f"{s}: {n} images" for s, n in self.num_images.items())
        how = {"parent-of-VOCdevkit": f"{self.given} contains VOCdevkit/",
               "VOCdevkit": f"{self.given} is the VOCdevkit/ directory itself",
               "coco": f"{self.given} is a COCO root"}[self.form]
        return f"{how}; data_root={self.path} ({counts})"


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    more = f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else ""
    return shown + more


def _files_in(directory: Path) -> set[str]:
    try:
        return set(os.listdir(directory))
    except FileNotFoundError:
        return set()


# ---------------------------------------------------------------------------------- checks

def _split_spec(split: str) -> tuple[str, str]:
    year, sep, name = split.partition("/")
    if not sep or not year.startswith("VOC") or not name:
        raise UnmixError(f"VOC split {split!r}: expected 'VOC<year>/<split>', e.g. 'VOC2007/test'")
    return year, name


def check_voc_root(data_root: str | os.PathLike,
                   splits: Sequence[str] = ("VOC2007/trainval", "VOC2012/trainval", "VOC2007/test"),
                   check_images: bool = True) -> DataRoot:
    """Check a VOC root for `splits` ('VOC<year>/<split>' names); return where mmdet should look."""
    given = Path(data_root).expanduser()
    hint = f"(expected the VOCdevkit layout: {VOC_LAYOUT}; see {DOC})"
    if not given.is_dir():
        raise UnmixError(f"VOC data root {given}: no such directory {hint}")
    years = sorted({_split_spec(s)[0] for s in splits})
    if (given / "VOCdevkit").is_dir():
        devkit, form = given / "VOCdevkit", "parent-of-VOCdevkit"
    elif any((given / y).is_dir() for y in years) or given.name == "VOCdevkit":
        devkit, form = given, "VOCdevkit"
    else:
        raise UnmixError(f"VOC data root {given}: neither VOCdevkit/ nor {'/, '.join(years)}/ "
                         f"inside {hint}")
    prefix = "VOCdevkit/" if form == "parent-of-VOCdevkit" else ""
    found = DataRoot(devkit, given, form)
    for split in splits:
        year, name = _split_spec(split)
        ydir = devkit / year
        for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
            if not (ydir / sub).is_dir():
                raise UnmixError(f"VOC data root {given}: missing {prefix}{year}/{sub}/ {hint}")
        split_file = ydir / "ImageSets/Main" / f"{name}.txt"
        if not split_file.is_file():
            raise UnmixError(f"VOC data root {given}: missing {prefix}{year}/ImageSets/Main/"
                             f"{name}.txt {hint}")
        ids = [line.split()[0] for line in split_file.read_text().splitlines() if line.strip()]
        if not ids:
            raise UnmixError(f"{split_file}: empty split file (expected one image id per line)")
        found.num_images[split] = len(ids)
        if not check_images:
            continue
        for sub, ext, what in (("JPEGImages", ".jpg", "images"), ("Annotations", ".xml", "annotations")):
            present = _files_in(ydir / sub)
            missing = [f"{i}{ext}" for i in ids if f"{i}{ext}" not in present]
            if missing:
                raise UnmixError(f"VOC data root {given}: {len(missing)} of {len(ids)} {what} listed "
                                 f"in {prefix}{year}/ImageSets/Main/{name}.txt are missing from "
                                 f"{prefix}{year}/{sub}/: {_listing(missing)} {hint}")
    return found


def check_coco_root(data_root: str | os.PathLike, splits: Sequence[str] = ("train2017", "val2017"),
                    check_images: bool = True) -> DataRoot:
    """Check a COCO root: annotations/instances_<split>.json and every image it lists."""
    import json

    given = Path(data_root).expanduser()
    hint = f"(expected the COCO layout: {COCO_LAYOUT}; see {DOC})"
    if not given.is_dir():
        raise UnmixError(f"COCO data root {given}: no such directory {hint}")
    found = DataRoot(given, given, "coco")
    for split in splits:
        ann = given / "annotations" / f"instances_{split}.json"
        if not ann.is_file():
            raise UnmixError(f"COCO data root {given}: missing annotations/instances_{split}.json {hint}")
        if not (given / split).is_dir():
            raise UnmixError(f"COCO data root {given}: missing image directory {split}/ {hint}")
        try:
            data = json.loads(ann.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UnmixError(f"{ann}: not valid COCO JSON ({e})") from None
        if not isinstance(data, dict) or not all(k in data for k in ("images", "annotations", "categories")):
            raise UnmixError(f"{ann}: not COCO instances JSON (needs images, annotations, categories)")
        found.num_images[split] = len(data["images"])
        if check_images:
            present = _files_in(given / split)
            missing = [im["file_name"] for im in data["images"] if im["file_name"] not in present
                       and not (given / split / im["file_name"]).is_file()]
            if missing:
                raise UnmixError(f"COCO data root {given}: {len(missing)} of {len(data['images'])} "
                                 f"images listed in annotations/instances_{split}.json are missing "
                                 f"from {split}/: {_listing(missing)} {hint}")
    return found


# -------------------------------------------------------------------------------- datasets

class _SkipReport:
    """Counts of skipped/clipped boxes with example files, reported once per load."""

    KINDS = {"degenerate": "skipped {n} box(es) with zero or negative width/height",
             "outside": "skipped {n} box(es) wholly outside the image",
             "clipped": "clipped {n} box(es) that cross the image border",
             "kept_crossing": "kept {n} box(es) that cross the image border (clipped by Resize)"}

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}

    def add(self, kind: str, where: str) -> None:
        self.counts[kind] += 1
        ex = self.examples.setdefault(kind, [])
        if len(ex) < 3 and where not in ex:
            ex.append(where)

    def emit(self, source: str) -> None:
        parts = [self.KINDS[k].format(n=n) + f" (e.g. {', '.join(self.examples[k])})"
                 for k, n in self.counts.items() if n]
        if not parts:
            return
        msg = f"{source}: " + "; ".join(parts)
        warnings.warn(msg, SkippedAnnotationsWarning, stacklevel=3)
        try:
            from mmengine.logging import print_log

            print_log(msg, logger="current", level=logging.WARNING)
        except Exception:  # logging must never stop loading
            pass


def _missing_images(data_list: list[dict]) -> list[str]:
    by_dir: dict[str, set[str]] = {}
    missing = []
    for info in data_list:
        path = info["img_path"]
        d, name = os.path.split(path)
        if d not in by_dir:
            by_dir[d] = _files_in(Path(d))
        if name not in by_dir[d] and not os.path.isfile(path):
            missing.append(path)
    return missing



def _checked_data_list(dataset, load, what: str) -> list[dict]:
    """Run mmdet's `load_data_list` counting skipped boxes; missing images are an error here, in
    the main process, not inside a data-loader worker."""
    dataset._skips = _SkipReport()
    data_list = load()
    missing = _missing_images(data_list)
    if missing:
        raise UnmixError(f"{dataset.ann_file}: {len(missing)} listed image(s) missing: "
                         f"{_listing(missing)} (see {DOC})")
    dataset.skip_counts = dict(dataset._skips.counts)
    dataset._skips.emit(f"{what} {dataset.ann_file}")
    return data_list


def clip_voc_boxes(instances: list[dict], w: int, h: int, where: str, skips: _SkipReport) -> list[dict]:
    """VOC instances with degenerate boxes and boxes wholly outside the image skipped, and boxes
    crossing the border clipped to it, each counted in `skips`."""
    kept = []
    for inst in instances:
        x1, y1, x2, y2 = inst["bbox"]
        if x2 <= x1 or y2 <= y1:
            skips.add("degenerate", where)
            continue
        cx1, cy1, cx2, cy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
        if cx2 <= cx1 or cy2 <= cy1:
            skips.add("outside", where)
            continue
        if (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2):
            skips.add("clipped", where)
            inst = dict(inst, bbox=[cx1, cy1, cx2, cy2])
        kept.append(inst)
    return kept


def coco_box_kind(ann: dict, img: dict) -> str | None:
    """'degenerate', 'outside' or 'kept_crossing' for a COCO box, by the same predicates mmdet's
    CocoDataset.parse_data_info uses to skip (so the counts match what it drops); None if fine."""
    x1, y1, w, h = ann["bbox"]
    inter_w = max(0, min(x1 + w, img["width"]) - max(x1, 0))
    inter_h = max(0, min(y1 + h, img["height"]) - max(y1, 0))
    if ann.get("area", 0) <= 0 or w < 1 or h < 1:
        return "degenerate"
    if inter_w * inter_h == 0:
        return "outside"
    if x1 < 0 or y1 < 0 or x1 + w > img["width"] or y1 + h > img["height"]:
        return "kept_crossing"
    return None


# Only the mmcv._ext stand-in is needed to import mmdet.datasets.
install_stand_in()

from mmdet.datasets import CocoDataset, VOCDataset  # noqa: E402
from mmdet.registry import DATASETS  # noqa: E402


@DATASETS.register_module(force=True)
class UnmixVOCDataset(VOCDataset):
    """mmdet's VOCDataset; bad boxes clipped/skipped and counted, missing images an error;
    `train_difficult=True`: difficult boxes are training targets (not in test mode)."""

    def __init__(self, *args, train_difficult: bool = False, **kwargs) -> None:
        self.train_difficult = bool(train_difficult)  # before super(): it loads the annotations
        super().__init__(*args, **kwargs)

    def _parse_instance_info(self, raw_ann_info, minus_one: bool = True) -> list[dict]:
        instances = super()._parse_instance_info(raw_ann_info, minus_one=minus_one)
        if not self.train_difficult or self.test_mode:
            return instances
        # mmdet flags difficult *or* too small (bbox_min_size); keep only the size rule.
        small = self.bbox_min_size
        for inst in instances:
            x1, y1, x2, y2 = inst["bbox"]
            inst["ignore_flag"] = int(small is not None and (x2 - x1 < small or y2 - y1 < small))
        return instances

    def load_data_list(self) -> list[dict]:
        return _checked_data_list(self, super().load_data_list, "VOC annotations of")

    def parse_data_info(self, img_info: dict) -> dict:
        info = super().parse_data_info(img_info)
        info["instances"] = clip_voc_boxes(info["instances"], info["width"], info["height"],
                                           os.path.basename(info["xml_path"]), self._skips)
        return info


@DATASETS.register_module(force=True)
class UnmixCocoDataset(CocoDataset):
    """mmdet's CocoDataset (which skips bad boxes silently); here they are counted and reported,
    and missing images are an error."""

    def load_data_list(self) -> list[dict]:
        return _checked_data_list(self, super().load_data_list, "COCO annotations")

    def parse_data_info(self, raw_data_info: dict) -> dict:
        img = raw_data_info["raw_img_info"]
        where = f"image id {img['img_id']} ({img.get('file_name', '?')})"
        for ann in raw_data_info["raw_ann_info"]:
            if ann.get("ignore", False) or ann.get("category_id") not in self.cat_ids:
                continue
            kind = coco_box_kind(ann, img)
            if kind:
                self._skips.add(kind, where)
        return super().parse_data_info(raw_data_info)  # the skipping itself stays mmdet's
