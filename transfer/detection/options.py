"""`--cfg-options` (and a sweep's `cfg_options`) onto a detection config: values take the
config's own container types, and a key that names nothing is refused with the closest valid one.

Types: YAML and mmengine's `a,b` / `[a,b]` syntax give lists where mmdet wants tuples (mmcv's
Resize raises "Scale must be a number or tuple of int" on `scale=[64, 48]`). A list replacing a
tuple in the config becomes a tuple, element by element (`scales: [[64, 48]]` becomes
`[(64, 48)]` where the config has a list of tuples).

Unknown keys, the rule: walk the key through the config to the first component that does not
exist; that component is new in its container, and it is
- refused in a list (index past the end: mmengine would raise a KeyError);
- at the top level, accepted only if mmengine's Runner reads it (`Runner.__init__`'s parameters);
- in a dict with a `type`, accepted only if the registered class (mmdet's registries, mmengine's
  behind them) takes it: its constructor's parameters, following `**kwargs` up the class's MRO,
  plus the keys mmengine's builders take beside the constructor (`_scope_`, `_delete_`,
  `priority`, `convert_to_iter_based`, `epoch_length`, and `paramwise_cfg`/`constructor` of an
  optim wrapper). A class whose `**kwargs` lead nowhere closed, or a type no registry knows,
  accepts anything;
- in a dataloader dict, accepted only if torch's DataLoader or mmengine's loader builder takes it;
- in any other plain dict (a detector's `train_cfg`, `filter_cfg`): accepted, since such dicts
  are read with `.get` and take any key.
"""
from __future__ import annotations

import copy
import difflib
import inspect
from typing import Any

from unmix.core.errors import Refused

BUILDER_KEYS = {"_scope_", "_delete_", "priority", "convert_to_iter_based", "epoch_length"}
WRAPPER_KEYS = {"paramwise_cfg", "constructor"}  # read by the optim wrapper constructor
LOADER_KEYS = {"dataset", "sampler", "batch_sampler", "collate_fn", "worker_init_fn"}
LOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")


def conform(value: Any, like: Any) -> Any:
    """`value` with the container types of `like` (the config's current value): lists where the
    config has tuples become tuples, recursively."""
    if isinstance(value, (list, tuple)):
        if isinstance(like, tuple):
            items = [conform(v, like[min(i, len(like) - 1)] if like else None) for i, v in enumerate(value)]
            return tuple(items)
        if isinstance(like, list) and like:
            return [conform(v, like[0]) for v in value]
        return value
    if isinstance(value, dict) and isinstance(like, dict):
        return {k: conform(v, like.get(k)) for k, v in value.items()}
    return value


def _root(cfg: Any) -> Any:
    """An mmengine Config's dict (a Config is no Mapping itself)."""
    return getattr(cfg, "_cfg_dict", cfg)


def _lookup(node: Any, part: str) -> tuple[bool, Any]:
    if isinstance(node, dict):
        return (part in node, node.get(part))
    if isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
        return True, node[int(part)]
    return False, None


def current(cfg: Any, key: str) -> Any:
    """The config's value at dotted `key`, or None where the path does not exist."""
    node = _root(cfg)
    for part in key.split("."):
        found, node = _lookup(node, part)
        if not found:
            return None
    return node


def _registered(type_name: Any) -> list[Any]:
    """Every class/function the registries know by `type_name` (mmdet's, mmengine's behind)."""
    if not isinstance(type_name, str):
        return [type_name] if callable(type_name) else []
    from mmdet import registry as mmdet_registry
    from mmengine.registry import Registry

    found = []
    for reg in vars(mmdet_registry).values():
        if isinstance(reg, Registry):
            try:
                obj = reg.get(type_name)
            except Exception:  # a scope or import the registry cannot resolve
                obj = None
            if obj is not None and obj not in found:
                found.append(obj)
    return found


def accepted_names(obj: Any) -> set[str] | None:
    """The keyword names `obj` (a class or function) takes; None when any name goes (**kwargs
    that no closed constructor up the MRO ends)."""
    names: set[str] = set()
    chain = [c for c in inspect.getmro(obj) if "__init__" in vars(c)] if inspect.isclass(obj) else [obj]
    for fn in chain:
        fn = fn.__init__ if inspect.isclass(fn) else fn
        if fn is object.__init__:
            return None
        try:
            params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):
            return None
        names |= {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names - {"self"}
    return None


def _valid_names(container: Any, path: list[str], merged: Any) -> set[str] | None:
    """The names a new key in `container` (at `path`) may have; None: any."""
    existing = {str(k) for k in container}
    if not path:
        from mmengine.runner import Runner

        return existing | (accepted_names(Runner) or set())
    if path[-1] in LOADERS and len(path) == 1:
        from torch.utils.data import DataLoader

        return existing | LOADER_KEYS | (accepted_names(DataLoader) or set())
    type_name = (current(merged, ".".join(path)) or {}).get("type", container.get("type"))
    if type_name is None:
        return None
    names: set[str] = set()
    for obj in _registered(type_name):
        got = accepted_names(obj)
        if got is None:
            return None
        names |= got
    if not names:
        return None  # a type no registry knows: nothing to check against
    extra = WRAPPER_KEYS if path == ["optim_wrapper"] else set()
    return existing | names | BUILDER_KEYS | extra


def check_key(cfg: Any, key: str, merged: Any, flag: str = "--cfg-options") -> None:
    """Refused (nothing is written) for a `key` that names nothing in `cfg` under the module's rule."""
    node, path = _root(cfg), []
    for part in key.split("."):
        found, child = _lookup(node, part)
        if found:
            node, path = child, path + [part]
            continue
        where = ".".join(path) or "the config"
        if isinstance(node, (list, tuple)):
            raise Refused(f"{flag} {key}: {where} is a list of {len(node)} entries, "
                             f"there is no entry {part!r}")
        if not isinstance(node, dict):
            raise Refused(f"{flag} {key}: {where} is a {type(node).__name__} ({str(node)[:60]}), "
                             "not a dict")
        valid = _valid_names(node, path, merged)
        if valid is None or part in valid:
            return
        close = difflib.get_close_matches(part, sorted(valid), n=1, cutoff=0.6)
        what = f"{node['type']} takes" if isinstance(node.get("type"), str) else f"{where} has"
        hint = f"; did you mean {'.'.join(path + close)}?" if close else ""
        raise Refused(f"{flag} {key}: unknown key ({what} no {part!r}){hint}")


def apply(cfg: Any, options: dict[str, Any] | None, flag: str = "--cfg-options") -> dict[str, Any]:
    """Check every key, conform every value to the config's types, merge. Returns the options as
    merged (tuples where the config has them)."""
    if not options:
        return {}
    conformed = {k: conform(v, current(cfg, k)) for k, v in options.items()}
    merged = copy.deepcopy(cfg)
    try:
        merged.merge_from_dict(dict(conformed))
    except (KeyError, TypeError) as e:  # an index past a list's end, a dict onto a scalar
        merged = None
        err = " ".join(str(e).strip("'\"").split())
    if merged is None:
        for key in conformed:
            check_key(cfg, key, cfg, flag)
        raise Refused(f"{flag}: cannot merge ({err[:200]})")
    for key in conformed:
        check_key(cfg, key, merged, flag)
    cfg.merge_from_dict(conformed)
    return conformed
