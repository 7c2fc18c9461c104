"""A detection run's effective settings, and how they split the report's tables.

`unmix finetune` records `protocol.effective` (depth, image scale, schedule length, a digest of
`--cfg-options`) read from the config that ran, and `protocol.quick` for `--quick`/`--scale`/
`--fraction`. Two runs of one protocol name whose settings differ in any of these are not
comparable, so they never share a table; a table whose settings are the protocol's own (as its
unmodified config resolves) is the only one published reference rows may stand beside. Records
from before `effective` existed get a table of their own per protocol name, footnoted.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterable

# The normalised settings of each protocol's unmodified config: what `normalise` makes of the
# `protocol.effective` that transfer/detection/finetune.py writes for a run without --cfg-options,
# --quick or another depth (tests/test_report_settings.py checks every entry against the configs).
_VOC_FPN = {"depth": 50, "image_scale": "1000x600 train, 1000x600 test", "schedule": "4 epochs"}
_COCO_FPN = {"depth": 50, "image_scale": "1333x800 train, 1333x800 test", "schedule": "12 epochs"}
_COCO_MS = {"depth": 50, "image_scale": "1333x640..1333x800 train, 1333x800 test"}
_VOC_C4 = {"depth": 50, "image_scale": "1333x480..1333x800 train, 1333x800 test",
           "schedule": "24000 iterations"}
_PLAIN = {"cfg_options": None, "fraction": None, "quick": False}
NOMINAL: dict[str, dict[str, Any]] = {name: {**s, **_PLAIN} for name, s in {
    "voc-faster-rcnn-fpn": _VOC_FPN,
    "voc-faster-rcnn-fpn-mmdet3": _VOC_FPN,
    "coco-retinanet-fpn": _COCO_FPN,
    "coco-retinanet-fpn-mmdet3": _COCO_FPN,
    "coco-mask-rcnn-fpn": _COCO_FPN,
    "coco-mask-rcnn-fpn-mmdet3": _COCO_FPN,
    "coco-mask-rcnn-fpn-mmselfsup": {**_COCO_MS, "schedule": "12 epochs"},
    "voc-faster-rcnn-c4": _VOC_C4,
    "voc-faster-rcnn-c4-mmselfsup": _VOC_C4,
    "coco-mask-rcnn-c4-2x": {**_COCO_MS, "schedule": "180000 iterations"},
}.items()}

# field -> how a title names its value
_SHOWN = {"depth": lambda v: f"depth {v if v is not None else 'not recorded'}",
          "image_scale": lambda v: f"images {v if v is not None else 'not recorded'}",
          "schedule": lambda v: v if v is not None else "schedule not recorded",
          "cfg_options": lambda v: f"--cfg-options sha256 {v}" if v else "no --cfg-options",
          "fraction": lambda v: f"{v:g} of the schedule" if v else "the full schedule",
          "quick": lambda v: "--quick" if v else "not --quick"}
UNRECORDED = ""


def normalise(effective: Any, quick: Any) -> dict[str, Any] | None:
    """The comparable settings of `protocol.effective` and `protocol.quick`; None without `effective`."""
    if not isinstance(effective, dict):
        return None
    iters, epochs = effective.get("max_iters"), effective.get("max_epochs")
    schedule = f"{iters} iterations" if iters else (f"{epochs} epochs" if epochs else None)
    quick = quick if isinstance(quick, dict) else {}
    return {"depth": effective.get("depth"), "image_scale": effective.get("image_scale"),
            "schedule": schedule, "cfg_options": effective.get("cfg_options_sha256"),
            # an epoch schedule cut by --fraction keeps its epochs: the fraction tells it apart
            "fraction": quick.get("fraction"), "quick": bool(quick.get("quick"))}


def key(effective: Any, quick: Any) -> str:
    """A hashable, sortable form of `normalise` (UNRECORDED for a record without `effective`)."""
    s = normalise(effective, quick)
    return UNRECORDED if s is None else json.dumps(s, sort_keys=True)


def order(protocol: str, skey: str, siblings: Iterable[str]) -> int:
    """Tables' order: the protocol's own settings first, then records without settings, then the
    other settings."""
    if skey == UNRECORDED:
        return 1
    return 0 if variant(protocol, skey, siblings).nominal else 2


def describe_options(opts: dict[str, Any], most: int = 8) -> str:
    """'KEY=VALUE, ...' of a record's protocol.cfg_options, long values and lists cut short."""
    def short(v: Any) -> str:
        text = json.dumps(v, default=repr)
        return text if len(text) <= 40 else text[:37] + "..."
    items = [f"{k}={short(v)}" for k, v in sorted(opts.items())]
    return ", ".join(items[:most]) + (f" and {len(items) - most} more" if len(items) > most else "")


def custom_slug(classes: str) -> str:
    """'' for the protocol's classes, 'custom-<hash>' for a class set of its own (two sets, two keys)."""
    return f"custom-{hashlib.sha256(classes.encode()).hexdigest()[:6]}" if classes else ""


def _differing(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return [f for f in _SHOWN if a.get(f) != b.get(f)]


@dataclass(frozen=True)
class Variant:
    """How one table's settings stand to its protocol's."""
    nominal: bool                 # the protocol's own settings: published rows may be shown
    quick: bool
    shown: list[str] = field(default_factory=list)  # what the title names ("depth 18", ...)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (marker, footnote)
    slug: str = ""                # '' for the protocol's own table

    def suffix(self) -> str:
        return f" [{'; '.join(self.shown)}]" if self.shown else ""


def variant(protocol: str, skey: str, siblings: Iterable[str]) -> Variant:
    """The variant of `protocol` run with settings `skey`; `siblings`: every settings key of the
    protocol's runs in the report (an unknown protocol has no nominal settings to compare with, so
    its tables name what differs among its own runs)."""
    if skey == UNRECORDED:
        return Variant(False, False, ["settings not recorded"], [("U", (
            f"These records carry no effective settings (protocol.effective, written by unmix "
            f"finetune from the config that ran): grouped by the protocol name {protocol}, they may "
            "have run at another depth, image scale, schedule or --cfg-options than the protocol's "
            "and than the other tables' runs. No published rows are shown beside them."))], "unrecorded")
    mine = json.loads(skey)
    slug = hashlib.sha256(skey.encode()).hexdigest()[:8]
    notes = []
    if mine["quick"] or mine["fraction"]:
        shrunk = ", ".join(_SHOWN[f](mine[f]) for f in ("image_scale", "fraction") if mine[f])
        notes.append(("Q", f"A shrunk run ({shrunk}): not the {protocol} protocol's numbers."))
    nominal = NOMINAL.get(protocol)
    if nominal is not None:
        diff = [f for f in _differing(mine, nominal) if f != "quick"]
        if not diff:
            return Variant(True, False)
        said = "; ".join(_SHOWN[f](mine[f]) for f in diff)
        own = "; ".join(_SHOWN[f](nominal[f]) for f in diff)
        notes.append(("S", f"Run with other settings than the {protocol} protocol's: {said} "
                           f"(the protocol: {own}). Not the protocol's numbers; no published rows "
                           "are shown beside them."))
        return Variant(False, mine["quick"], [_SHOWN[f](mine[f]) for f in diff], notes, slug)
    known = [json.loads(s) for s in set(siblings) if s != UNRECORDED]
    varying = [f for f in _SHOWN if f != "quick" and len({json.dumps(k.get(f)) for k in known}) > 1]
    return Variant(False, mine["quick"], [_SHOWN[f](mine[f]) for f in varying], notes,
                   slug if len(set(siblings)) > 1 else "")
