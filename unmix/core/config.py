"""The shared config helpers: mmengine `Config` files (our one config language, with `_base_`),
KEY=VALUE options in mmengine's value syntax, and config/meta objects as plain Python.

The one module outside `transfer`'s detection code that imports mmengine, and only its
pure-Python config module (about 0.2 s), when a config is actually read or an option parsed.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from unmix.core.errors import UnmixError


def load_config(path: str | os.PathLike, options: Mapping[str, Any] | None = None):
    """`mmengine.config.Config.fromfile(path)` with `options` merged; one-line errors."""
    from mmengine.config import Config

    if not Path(path).is_file():
        raise UnmixError(f"{path}: config file not found")
    try:
        cfg = Config.fromfile(str(path))
    except Exception as e:  # syntax errors, missing _base_ files
        raise UnmixError(f"{path}: cannot read config ({type(e).__name__}: {e})") from None
    if options:
        cfg.merge_from_dict(dict(options))
    return cfg


def parse_options(items: list[str] | None, flag: str = "--cfg-options") -> dict[str, Any]:
    """KEY=VALUE strings -> {key: value}, values in mmengine's syntax (numbers, True/False/None,
    `[a,b]` lists, `(a,b)` tuples, `a,b` lists, else strings). UnmixError naming `flag` for an
    item without '=' or with an empty key."""
    from mmengine.config import DictAction

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise UnmixError(f"{flag}: {item!r} is not KEY=VALUE")
        out[key] = DictAction._parse_iterable(val)
    return out


def to_plain(x: Any, strict: bool = False) -> Any:
    """Mappings (mmengine ConfigDict too) -> dicts, recursively; lists and tuples kept.

    `strict=True` gives what `torch.load(weights_only=True)` and JSON accept: string keys, tuples
    as lists, and anything that is not None/bool/int/float/str (a path, a version object) as its
    `str()`."""
    if isinstance(x, Mapping):
        return {(str(k) if strict else k): to_plain(v, strict) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        items = [to_plain(v, strict) for v in x]
        return items if strict or isinstance(x, list) else tuple(items)
    if strict and not (x is None or type(x) in (bool, int, float, str)):
        return str(x)
    return x
