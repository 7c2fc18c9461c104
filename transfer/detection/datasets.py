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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from transfer.detection import annotations as an
from transfer.detection import datacheck
from transfer.stack import install_stand_in
from unmix.core.errors import UnmixError

DOC = "docs/detection-data-and-metrics.md"
VOC_LAYOUT = "VOCdevkit/VOC2007/{JPEGImages,Annotations,ImageSets/Main}"
COCO_LAYOUT = "annotations/instances_<split>.json and <split>/*.jpg"


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
                                 f"{prefix}{year}/{sub}/: {datacheck.listing(missing)} {hint}")
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
            data = json.loads(ann.read_text(encoding="utf-8-sig"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UnmixError(f"{ann}: not valid COCO JSON ({e})") from None
        if not isinstance(data, dict) or not all(k in data for k in ("images", "categories")):
            raise UnmixError(f"{ann}: not COCO instances JSON (needs images and categories)")
        found.num_images[split] = len(data["images"])
        if check_images:
            present = _files_in(given / split)
            missing = [im["file_name"] for im in data["images"] if im["file_name"] not in present
                       and not (given / split / im["file_name"]).is_file()]
            if missing:
                raise UnmixError(f"COCO data root {given}: {len(missing)} of {len(data['images'])} "
                                 f"images listed in annotations/instances_{split}.json are missing "
                                 f"from {split}/: {datacheck.listing(missing)} {hint}")
    return found


# -------------------------------------------------------------------------------- datasets

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
    dataset._skips = datacheck.SkipReport()
    data_list = load()
    missing = _missing_images(data_list)
    if missing:
        raise UnmixError(f"{dataset.ann_file}: {len(missing)} listed image(s) missing: "
                         f"{datacheck.listing(missing)} (see {DOC})")
    dataset.skip_counts = {k: n for k, n in dataset._skips.counts.items() if n}
    _emit(dataset._skips, f"{what} {dataset.ann_file}")
    return data_list


def _emit(skips: datacheck.SkipReport, source: str) -> None:
    msg = skips.message()
    if not msg:
        return
    msg = f"{source}: {msg}"
    warnings.warn(msg, SkippedAnnotationsWarning, stacklevel=4)
    try:
        from mmengine.logging import print_log

        print_log(msg, logger="current", level=logging.WARNING)
    except Exception:  # logging must never stop loading
        pass


# Only the mmcv._ext stand-in is needed to import mmdet.datasets.
install_stand_in()

from mmdet.datasets import CocoDataset, VOCDataset  # noqa: E402
from mmdet.registry import DATASETS  # noqa: E402


@DATASETS.register_module(force=True)
class UnmixVOCDataset(VOCDataset):
    """mmdet's VOCDataset reading its files with our tolerant parser (annotations.py) under the
    rules of datacheck.py (bad boxes clipped/skipped and counted, sizes from the images, missing
    images an error); `train_difficult=True`: difficult boxes are training targets (not in test
    mode), as detectron2's pascal_voc.py ("We include "difficult" samples in training")."""

    def __init__(self, *args, train_difficult: bool = False, **kwargs) -> None:
        self.train_difficult = bool(train_difficult)  # before super(): it loads the annotations
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> list[dict]:
        return _checked_data_list(self, self._load_voc, "VOC annotations of")

    def _load_voc(self) -> list[dict]:
        self.cat2label = {c: i for i, c in enumerate(self._metainfo["classes"])}
        infos = [{"img_id": i, "file_name": os.path.join(self.img_subdir, f"{i}.jpg"),
                  "xml_path": os.path.join(self.sub_data_root, self.ann_subdir, f"{i}.xml")}
                 for i in datacheck.voc_ids(Path(self.ann_file))]
        missing = _missing_images([{"img_path": os.path.join(self.sub_data_root, i["file_name"])}
                                   for i in infos])
        if missing:
            raise UnmixError(f"{self.ann_file}: {len(missing)} listed image(s) missing: "
                             f"{datacheck.listing(missing)} (see {DOC})")
        return [self.parse_data_info(i) for i in infos]

    def parse_data_info(self, img_info: dict) -> dict:
        vf = an.parse_voc_xml(img_info["xml_path"])
        img_path = os.path.join(self.sub_data_root, img_info["file_name"])
        w, h = datacheck.real_size(Path(img_path), (vf.width, vf.height), self._skips, vf.path.name)
        instances = datacheck.voc_instances(
            vf, self.cat2label, w, h, bbox_min_size=None if self.test_mode else self.bbox_min_size,
            train_difficult=self.train_difficult, test_mode=self.test_mode, skips=self._skips)
        return {"img_path": img_path, "img_id": img_info["img_id"], "xml_path": img_info["xml_path"],
                "height": h, "width": w, "instances": instances}


@DATASETS.register_module(force=True)
class UnmixCocoDataset(CocoDataset):
    """mmdet's CocoDataset on the file as our tolerant reader normalises it (annotations.py:
    missing iscrowd/area/ids filled in, short polygons dropped, placeholder categories removed,
    missing sizes from the images); the boxes mmdet skips are counted and reported, missing images
    are an error. `require_masks`: annotations without a usable mask are dropped (mask protocols)."""

    def __init__(self, *args, require_masks: bool = False, **kwargs) -> None:
        self.require_masks = bool(require_masks)
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> list[dict]:
        return _checked_data_list(self, self._load_coco, "COCO annotations")

    def _load_coco(self) -> list[dict]:
        coco = datacheck.load_coco(self.ann_file, self.data_prefix.get("img", ""), self.require_masks,
                                   self._skips)
        api = type(self).COCOAPI

        def from_memory(_path: str):
            c = api()
            c.dataset = an.normalised_json(coco)
            c.createIndex()
            c.img_ann_map, c.cat_img_map = c.imgToAnns, c.catToImgs  # mmdet's aliases
            return c

        self.COCOAPI = from_memory  # mmdet's loader, on the normalised file
        try:
            return super().load_data_list()
        finally:
            del self.COCOAPI

    def parse_data_info(self, raw_data_info: dict) -> dict:
        img = raw_data_info["raw_img_info"]
        where = f"image id {img['img_id']} ({img.get('file_name', '?')})"
        for ann in raw_data_info["raw_ann_info"]:
            if ann.get("ignore", False) or ann.get("category_id") not in self.cat_ids:
                continue
            kind = datacheck.coco_box_kind(ann, img)
            if kind:
                self._skips.add(kind, where)
        return super().parse_data_info(raw_data_info)  # the skipping itself stays mmdet's


def standard_classes(dataset: str) -> tuple[str, ...]:
    """The protocol's class set: mmdet's own VOC (20) or COCO (80) list."""
    return tuple((VOCDataset if dataset == "voc" else CocoDataset).METAINFO["classes"])
