"""The data check every detection run makes before its first iteration, and the run's class set.

Every annotation of every split a run uses is read by the tolerant readers (annotations.py) and
turned into training/scoring instances by the rules below, which the datasets (datasets.py) apply
too: what the check counts is what the run trains on. Then the class set (`resolve_classes`):

- `auto` (default): VOC names that are all among the 20 VOC classes, or COCO categories that are
  exactly the 80 COCO ones, keep the protocol's classes (`standard`); any other set is a custom
  dataset whose classes come from the data (VOC: the names found, sorted; COCO: `categories` in
  file order, which is how mmdet numbers its labels), and the heads are sized to them.
- `protocol`: the standard set; a different set is refused, naming the missing and extra names.
- `data`: the classes found, even when they are a subset of the standard ones.
- a file: one class name per line (objects of other classes are skipped, and counted).
A config (or `--cfg-options`) that sets `metainfo.classes` on its datasets gives the classes itself.

VOC instance rules (mmdet's XMLDataset, plus what it lacks): coordinates minus one as mmdet
(floats kept, mmdet truncates: identical on the official integer files); boxes with zero or
negative size skipped, boxes wholly outside the image skipped, boxes crossing its border clipped;
`difficult` boxes ignored (trained on with `train_difficult`, never in test mode); mmdet 3.3's
`filter_cfg.bbox_min_size` marks smaller boxes ignored. The image size is the image's own (header
only, EXIF orientation applied as the decoder does); a `<size>` that is missing or differs is
counted and said. COCO: see annotations.py; sizes likewise come from the images.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from transfer.detection import annotations as an
from unmix.core import files
from unmix.core.errors import UnmixError

CLASS_MODES = ("auto", "protocol", "data")
_MAX_LISTED = 5


def listing(names: list[str]) -> str:
    """The first few names, and how many more."""
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else "")


class SkipReport:
    """Counts of skipped/clipped/filled-in items with a few example files."""

    KINDS = {"degenerate": "skipped {n} box(es) with zero or negative width/height",
             "outside": "skipped {n} box(es) wholly outside the image",
             "clipped": "clipped {n} box(es) that cross the image border",
             "kept_crossing": "kept {n} box(es) that cross the image border (clipped by Resize)",
             "other_class": "skipped {n} box(es) of classes outside the run's class set",
             "size_missing": "took the image's own size for {n} file(s) without a usable size",
             "size_wrong": "took the image's own size for {n} file(s) whose size is wrong",
             "no_mask": "dropped {n} annotation(s) without a usable mask (a mask protocol)"}

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}

    def add(self, kind: str, where: str) -> None:
        self.counts[kind] += 1
        ex = self.examples.setdefault(kind, [])
        if len(ex) < 3 and where not in ex:
            ex.append(where)

    def message(self) -> str:
        return "; ".join(self.KINDS.get(k, f"{k}: {{n}}").format(n=n) +
                         f" (e.g. {', '.join(self.examples.get(k, []))})"
                         for k, n in self.counts.items() if n)


# ------------------------------------------------------------------------------ instances

def real_size(image: Path, given: tuple[int | None, int | None], skips: SkipReport, where: str
              ) -> tuple[int, int]:
    """(width, height) of the image as decoded; a missing or different given size is counted."""
    size = an.image_size(image)
    if given[0] is None or given[1] is None:
        skips.add("size_missing", where)
    elif tuple(given) != size:
        skips.add("size_wrong", where)
    return size


def clip_voc_box(bbox: list[float], w: int, h: int, where: str, skips: SkipReport
                 ) -> list[float] | None:
    """The box clipped to the image; None (counted) if degenerate or wholly outside."""
    x1, y1, x2, y2 = bbox
    if x2 <= x1 or y2 <= y1:
        skips.add("degenerate", where)
        return None
    c = [max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)]
    if c[2] <= c[0] or c[3] <= c[1]:
        skips.add("outside", where)
        return None
    if c != [x1, y1, x2, y2]:
        skips.add("clipped", where)
    return c


def voc_instances(vf: an.VocFile, cat2label: dict[str, int], w: int, h: int, *,
                  bbox_min_size: float | None, train_difficult: bool, test_mode: bool,
                  skips: SkipReport) -> list[dict[str, Any]]:
    """mmdet's instance dicts (bbox, bbox_label, ignore_flag) of one VOC file, by the rules above."""
    where = vf.path.name
    out = []
    for obj in vf.objects:
        if obj.name not in cat2label:
            skips.add("other_class", where)
            continue
        box = [v - 1 for v in obj.bbox]  # mmdet's minus_one
        small = bbox_min_size is not None and not test_mode and (
            box[2] - box[0] < bbox_min_size or box[3] - box[1] < bbox_min_size)
        box = clip_voc_box(box, w, h, where, skips)
        if box is None:
            continue
        ignore = (obj.difficult and (test_mode or not train_difficult)) or small
        out.append({"bbox": box, "bbox_label": cat2label[obj.name], "ignore_flag": int(ignore)})
    return out


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


def load_coco(path: str | os.PathLike, img_root: str | os.PathLike, require_masks: bool,
              skips: SkipReport) -> an.CocoFile:
    """A COCO file read by the tolerant reader, each missing image size taken from the image, and
    (a mask protocol) annotations without a usable mask dropped, counted in `skips`."""
    coco = an.parse_coco_json(path)
    for im in coco.images:
        if im["width"] is None or im["height"] is None:
            im["width"], im["height"] = real_size(Path(img_root) / im["file_name"], (None, None),
                                                  skips, im["file_name"])
            coco.changed = True
    if require_masks:
        kept = [a for a in coco.annotations if a.get("segmentation")]
        for a in coco.annotations:
            if not a.get("segmentation"):
                skips.add("no_mask", f"annotation id {a['id']}")
        coco.changed |= len(kept) != len(coco.annotations)
        coco.annotations = kept
    return coco


# ---------------------------------------------------------------------------------- splits

def walk(node: Any) -> Iterator[dict]:
    """Every dict in a config tree, depth first (a dict reached twice is yielded twice)."""
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, (list, tuple)):
        for v in node:
            yield from walk(v)


DATASET_KINDS = {"VOCDataset": "voc", "UnmixVOCDataset": "voc", "CocoDataset": "coco",
                 "UnmixCocoDataset": "coco"}


@dataclass
class Split:
    """One annotation source a run reads (several dataset configs may share it: val and test)."""
    role: str                       # 'train' | 'test'
    kind: str                       # 'voc' | 'coco'
    source: Path                    # the VOC split file or the COCO JSON
    configs: list[dict] = field(default_factory=list)
    images: int = 0
    names: Counter[str] = field(default_factory=Counter)      # objects per name, as in the files
    instances: Counter[str] = field(default_factory=Counter)  # kept boxes per class (trained/scored)
    ignored: Counter[str] = field(default_factory=Counter)    # ignored boxes (difficult, small)
    crowd: int = 0
    masks: int = 0
    empty: int = 0                  # images without a box
    skips: SkipReport = field(default_factory=SkipReport)
    voc: list[tuple[an.VocFile, tuple[int, int]]] = field(default_factory=list)
    coco: an.CocoFile | None = None

    @property
    def name(self) -> str:
        if self.kind == "coco":
            return self.source.stem.removeprefix("instances_")
        return f"{self.source.parents[2].name}/{self.source.stem}"


def _voc_dirs(ds: dict) -> tuple[Path, Path]:
    sub = Path(ds.get("data_root") or "") / (ds.get("data_prefix") or {}).get("sub_data_root", "")
    return sub / ds.get("img_subdir", "JPEGImages"), sub / ds.get("ann_subdir", "Annotations")


def _source(ds: dict) -> Path:
    ann = Path(ds["ann_file"])
    return ann if ann.is_absolute() else Path(ds.get("data_root") or "") / ann


def splits_of(cfg) -> list[Split]:
    """The annotation sources of the train and val/test dataloaders, in order, each once."""
    found: dict[tuple[str, Path], Split] = {}
    for key, role in (("train_dataloader", "train"), ("val_dataloader", "test"),
                      ("test_dataloader", "test")):
        for d in walk(cfg.get(key)):
            kind = DATASET_KINDS.get(d.get("type"))
            if kind and d.get("ann_file"):
                split = found.setdefault((role, _source(d)), Split(role, kind, _source(d)))
                split.configs.append(d)
    return list(found.values())


def voc_ids(split_file: Path) -> list[str]:
    """Image ids of a VOC split file: the first word of each non-blank line (ImageSets/Main's
    class files carry a second column)."""
    try:
        lines = split_file.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UnmixError(f"{split_file}: cannot read the split file ({e})") from None
    return [line.split()[0] for line in lines if line.strip()]


def read_split(split: Split) -> None:
    """Parse every file of the split (no class set needed yet): names, images, sizes."""
    ds = split.configs[0]
    if split.kind == "voc":
        img_dir, ann_dir = _voc_dirs(ds)
        for i in voc_ids(split.source):
            vf = an.parse_voc_xml(ann_dir / f"{i}.xml")
            size = real_size(img_dir / f"{i}.jpg", (vf.width, vf.height), split.skips, vf.path.name)
            split.voc.append((vf, size))
            split.names.update(o.name for o in vf.objects)
        split.images = len(split.voc)
        return
    img_root = Path(ds.get("data_root") or "") / (ds.get("data_prefix") or {}).get("img", "")
    split.coco = load_coco(split.source, img_root, bool(ds.get("require_masks")), split.skips)
    split.images = len(split.coco.images)
    cats = {c["id"]: c["name"] for c in split.coco.categories}
    split.names.update(cats[a["category_id"]] for a in split.coco.annotations if a["category_id"] in cats)


def count_split(split: Split, classes: tuple[str, ...]) -> None:
    """Instances per class as the run will see them (the datasets apply the same functions)."""
    cat2label = {c: i for i, c in enumerate(classes)}
    ds = split.configs[0]
    if split.kind == "voc":
        min_size = (ds.get("filter_cfg") or {}).get("bbox_min_size")
        for vf, (w, h) in split.voc:
            insts = voc_instances(vf, cat2label, w, h, bbox_min_size=min_size,
                                  train_difficult=bool(ds.get("train_difficult")),
                                  test_mode=bool(ds.get("test_mode")), skips=split.skips)
            split.empty += not insts
            for inst in insts:
                (split.ignored if inst["ignore_flag"] else split.instances)[classes[inst["bbox_label"]]] += 1
        return
    coco = split.coco
    assert coco is not None
    cats = {c["id"]: c["name"] for c in coco.categories}
    images = {im["id"]: im for im in coco.images}
    with_box: set = set()
    for a in coco.annotations:
        name = cats.get(a["category_id"])
        if name not in cat2label:
            split.skips.add("other_class", f"annotation id {a['id']}")
            continue
        if a["iscrowd"]:
            split.crowd += 1  # mmdet: an ignored region, not a target
            continue
        kind = coco_box_kind(a, images[a["image_id"]])
        if kind:
            split.skips.add(kind, f"annotation id {a['id']}")
            if kind != "kept_crossing":
                continue
        split.instances[name] += 1
        split.masks += "segmentation" in a
        with_box.add(a["image_id"])
    split.empty = len(images) - len(with_box)


# --------------------------------------------------------------------------------- classes

@dataclass
class ClassSet:
    names: tuple[str, ...]
    kind: str        # 'standard' | 'custom'
    source: str      # 'protocol' | 'data' | 'config' | 'file <path>'

    def record(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": self.source, "num": len(self.names),
                "names": list(self.names)}

    def describe(self) -> str:
        return f"classes: {self.kind} ({len(self.names)}) from the {self.source}"


def _found_names(splits: list[Split], dataset: str) -> tuple[str, ...]:
    """The classes the data names: VOC the object names, sorted; COCO the train file's categories
    in file order (mmdet's label order), every split's category list required to agree."""
    if dataset == "voc":
        return tuple(sorted(set().union(*(s.names for s in splits))))
    lists = [(s, tuple(c["name"] for c in s.coco.categories)) for s in splits if s.coco]
    first, names = lists[0]
    for s, other in lists[1:]:
        if set(other) != set(names):
            extra, missing = sorted(set(other) - set(names)), sorted(set(names) - set(other))
            raise UnmixError(f"{s.source}: its categories differ from {first.source}'s "
                             f"(extra: {listing(extra) or '-'}; missing: {listing(missing) or '-'}); "
                             "train and test must share one class set")
    return names


def _read_class_file(path: str) -> tuple[str, ...]:
    try:
        names = [n.strip() for n in Path(path).read_text(encoding="utf-8-sig").splitlines()]
    except (OSError, UnicodeDecodeError) as e:
        raise UnmixError(f"--classes {path}: cannot read the class file ({e})") from None
    names = [n for n in names if n]
    dup = sorted({n for n in names if names.count(n) > 1})
    if not names or dup:
        raise UnmixError(f"--classes {path}: expected one unique class name per line"
                         + (f" (repeated: {listing(dup)})" if dup else " (the file is empty)"))
    return tuple(names)


def resolve_classes(splits: list[Split], dataset: str, standard: tuple[str, ...], mode: str,
                    given: tuple[str, ...] | None = None) -> ClassSet:
    """The run's classes by the rules in the module doc (`mode`: auto, protocol, data or a file)."""
    if given is not None:
        return ClassSet(given, "standard" if given == standard else "custom", "config")
    if mode not in CLASS_MODES:
        names = _read_class_file(mode)
        return ClassSet(names, "standard" if names == standard else "custom", f"file {mode}")
    found = _found_names(splits, dataset)
    if mode == "protocol":
        extra, missing = sorted(set(found) - set(standard)), sorted(set(standard) - set(found))
        if extra or missing:
            raise UnmixError(f"--classes protocol: the data's classes are not the {len(standard)} "
                             f"{dataset.upper()} ones (extra: {listing(extra) or '-'}; missing: "
                             f"{listing(missing) or '-'}); omit --classes to train on the data's own")
        return ClassSet(found if dataset == "coco" else standard, "standard", "protocol")
    is_standard = set(found) <= set(standard) if dataset == "voc" else set(found) == set(standard)
    if mode == "auto" and is_standard and found:
        # COCO keeps the file's order: mmdet numbers labels by it, whatever `classes` says
        return ClassSet(found if dataset == "coco" else standard, "standard", "protocol")
    if not found:
        raise UnmixError(f"{splits[0].source}: no object in any annotation file; nothing to train on")
    return ClassSet(found, "standard" if set(found) == set(standard) else "custom", "data")


# ------------------------------------------------------------------------------- the check

@dataclass
class DataCheck:
    splits: list[Split]
    classes: ClassSet
    masks: bool                     # the protocol trains a mask head

    def record(self) -> dict[str, Any]:
        return {"classes": self.classes.record(), "splits": [
            {"name": s.name, "role": s.role, "source": str(s.source), "images": s.images,
             "instances": dict(s.instances), "ignored": dict(s.ignored), "crowd": s.crowd,
             "masks": s.masks, "empty_images": s.empty, "skipped": dict(s.skips.counts)}
            for s in self.splits]}


def _trains_masks(cfg) -> bool:
    return any(d.get("type") == "LoadAnnotations" and d.get("with_mask")
               for d in walk(cfg.get("train_dataloader")))


def _given_classes(splits: list[Split]) -> tuple[str, ...] | None:
    given = {tuple((d.get("metainfo") or {}).get("classes") or ()) for s in splits for d in s.configs}
    given.discard(())
    if len(given) > 1:
        raise UnmixError("the config's datasets set different metainfo.classes; give one class set")
    return given.pop() if given else None


def check(cfg, dataset: str, standard: tuple[str, ...], mode: str = "auto") -> DataCheck:
    """Read every split of the resolved config, settle the class set, count what the run uses."""
    splits = splits_of(cfg)
    if not splits:
        raise UnmixError("the config names no VOC or COCO annotation file to check")
    masks = dataset == "coco" and _trains_masks(cfg)
    for s in splits:
        for d in s.configs:
            if masks and s.kind == "coco":
                d["require_masks"] = True
        read_split(s)
        if masks and s.role == "train" and s.coco is not None and not s.coco.annotations \
                and s.skips.counts["no_mask"]:
            raise UnmixError(f"{s.source}: no annotation has a mask (boxes only), and this protocol "
                             "trains a mask head; use a box protocol (Faster R-CNN or RetinaNet)")
    classes = resolve_classes(splits, dataset, standard, mode, _given_classes(splits))
    for s in splits:
        count_split(s, classes.names)
    return DataCheck(splits, classes, masks)


def copy_name(split: Split) -> str:
    return f"data/instances_{split.name}.json"


def apply(cfg, dc: DataCheck, work_dir: Path) -> list[Split]:
    """The run's config on the checked data: the class set on every dataset and head, and COCO
    files that needed filling in (sizes, iscrowd, area...) read from their normalised copies in
    WORK_DIR/data/ (written by `write`). Returns the splits whose copy must be written."""
    names = tuple(dc.classes.names)
    copied = []
    for s in dc.splits:
        for d in s.configs:
            d["metainfo"] = {**(d.get("metainfo") or {}), "classes": names}
        if s.coco is not None and s.coco.changed:
            copied.append(s)
            dst = str((work_dir / copy_name(s)).absolute())
            for d in s.configs:
                d["ann_file"] = dst
            for key in ("val_evaluator", "test_evaluator"):
                ev = cfg.get(key)
                for e in ev if isinstance(ev, (list, tuple)) else [ev] if ev else []:
                    if e.get("ann_file") and Path(e["ann_file"]).absolute() == s.source.absolute():
                        e["ann_file"] = dst
    for d in walk(cfg.model):
        if "num_classes" in d and d.get("type") != "RPNHead":
            d["num_classes"] = len(names)
    return copied


def table(dc: DataCheck) -> str:
    """One table: a column per split, a row per class (boxes trained on / scored) and per count."""
    cols = [f"{s.name} ({s.role})" for s in dc.splits]
    rows: list[tuple[str, list[Any]]] = [("images", [s.images for s in dc.splits])]
    rows += [(c, [s.instances.get(c, 0) for s in dc.splits]) for c in dc.classes.names]
    rows += [("ignored (difficult/small)", [sum(s.ignored.values()) for s in dc.splits]),
             ("crowd regions", [s.crowd for s in dc.splits]),
             ("images without a box", [s.empty for s in dc.splits])]
    kinds = sorted({k for s in dc.splits for k, n in s.skips.counts.items() if n})
    rows += [(k.replace("_", " "), [s.skips.counts.get(k, 0) for s in dc.splits]) for k in kinds]
    width = max(len(r[0]) for r in rows)
    widths = [max(len(c), 7) for c in cols]
    lines = [f"data check: {dc.classes.describe()}",
             " ".join([" " * width] + [c.rjust(w) for c, w in zip(cols, widths)])]
    lines += [" ".join([name.ljust(width)] + [str(v).rjust(w) for v, w in zip(vals, widths)])
              for name, vals in rows]
    notes = [f"{s.source}: {s.skips.message()}" for s in dc.splits if s.skips.message()]
    return "\n".join(lines + notes) + "\n"


def write(dc: DataCheck, copied: list[Split], work_dir: Path, name: str = "data_check.txt") -> None:
    """WORK_DIR/NAME (the table) and the normalised COCO copies, atomically."""
    import json

    files.make_dir(work_dir / "data")
    for s in copied:
        assert s.coco is not None
        files.write_text(work_dir / copy_name(s), json.dumps(an.normalised_json(s.coco)))
    files.write_text(work_dir / name, table(dc))


def check_for_evaluation(cfg, work_dir: Path, standard_of) -> DataCheck | None:
    """`unmix evaluate`'s data check of the splits it scores (the train keys already removed):
    the class set must be the one the model's heads were built for (never resized here)."""
    splits = splits_of(cfg)
    if not splits:
        return None
    dataset = splits[0].kind
    dc = check(cfg, dataset, standard_of(dataset))
    heads = {d["num_classes"] for d in walk(cfg.model) if "num_classes" in d and d.get("type") != "RPNHead"}
    if heads and heads != {len(dc.classes.names)}:
        raise UnmixError(f"{splits[0].source}: the data has {len(dc.classes.names)} classes "
                         f"({dc.classes.describe()}) but the model's heads predict {sorted(heads)}; "
                         "give the config's classes as metainfo.classes")
    copied = apply(cfg, dc, work_dir)
    write(dc, copied, work_dir, name="data_check_evaluate.txt")
    return dc
