"""The pretraining checkpoint's schema, and the one reader of its `pretrain` summary.

`unmix pretrain` writes (pretrain/checkpoint.py):

    {'format': 'unmix-pretrain', 'version': 2,
     'state_dict': ...,                     # `backbone.*` is the encoder
     'meta': {'pretrain': {'method', 'unmix', 'epochs', 'dataset', 'quick'},   # the summary (v2)
              'method', 'arch', 'stem', 'version', 'unmix', 'mixing', 'dataset',
              'epoch', 'epochs', 'config'},
     'optimizer', 'scaler', 'epoch', 'rng'}

Version 1 had no `meta.pretrain`: the summary is derived from the top-level meta fields, where
`unmix` was a bool or (older files) the config block `{'enabled': ...}` and the first form's
mixtures lived under `mixing.first_form`. The summary is what result records carry as
`checkpoint.pretrain`, so reports can pair runs with and without Un-Mix. `unmix convert` copies
it into its output's meta, so converted files carry it too. Pure Python (no torch).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FORMAT = "unmix-pretrain"
VERSION = 2
READABLE_VERSIONS = (1, 2)
SUMMARY_KEYS = ("method", "unmix", "epochs", "dataset", "quick")  # quick: `pretrain --quick`


def unmix_flag(value: Any, first_form: Any = None) -> bool | None:
    """Un-Mix on/off from a bool or a config block `{'enabled': bool}`; a first-form block that is
    enabled counts as Un-Mix too. None when neither says."""
    if isinstance(value, Mapping):
        value = value.get("enabled")
    first = first_form.get("enabled") if isinstance(first_form, Mapping) else None
    if isinstance(first, bool) and first:
        return True
    return value if isinstance(value, bool) else None


def _number(x: Any) -> int | float | None:
    return x if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def summary(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The v2 `meta.pretrain` block of a run described by its top-level meta fields."""
    mixing = meta.get("mixing") if isinstance(meta.get("mixing"), Mapping) else {}
    unmix = meta.get("unmix", meta.get("unmix_enabled"))
    return {"method": meta.get("method"), "unmix": unmix_flag(unmix, mixing.get("first_form")),
            "epochs": _number(meta.get("epochs")), "dataset": meta.get("dataset"),
            "quick": bool(meta.get("quick"))}


def pretrain_summary(meta: Any) -> dict[str, Any] | None:
    """{method, unmix, epochs, dataset, quick} from the meta of a pretraining checkpoint (v1 or v2) or
    of a file converted from one (its `pretrain` block, or the source's meta nested under
    `source_meta`); None for anything else (foreign checkpoints)."""
    for _ in range(4):
        if not isinstance(meta, Mapping):
            return None
        block = meta.get("pretrain")
        if isinstance(block, Mapping):
            out = {k: block.get(k) for k in SUMMARY_KEYS}
            out["unmix"] = unmix_flag(out["unmix"])
            out["epochs"] = _number(out["epochs"])
            out["quick"] = bool(out["quick"])  # files written before --quick existed: full runs
            return out
        if meta.get("method"):
            return summary(meta)
        meta = meta.get("source_meta")
    return None
