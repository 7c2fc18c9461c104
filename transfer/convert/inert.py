"""Read the data of a pickle without running any of its code.

Training frameworks store objects next to the weights: mmengine's `message_hub` holds
`HistoryBuffer`s and numpy scalars, Lightning's `hyper_parameters` an `AttributeDict` or an
omegaconf `DictConfig`, `torch.save(model)` the whole `nn.Module`. `torch.load(weights_only=True)`
refuses all of them, although the tensors are plain. This unpickler admits what weights_only
admits (torch's tensor/storage rebuild functions, dtypes, `OrderedDict`, ... : its own allow-list,
`torch._weights_only_unpickler._get_allowed_globals`), numpy arrays/scalars, builtin containers
and `argparse.Namespace`; every other global becomes a placeholder class (`Inert`) that records
what the pickle gave it. So no `__reduce__` callable, `__setstate__`, constructor or import of the
file's own classes runs: a pickled `os.system(...)` becomes an inert record of that call.

`plain()` then turns the placeholders a checkpoint commonly holds back into walkable data: a
pickled `nn.Module` into its state dict (from its `_parameters`/`_buffers`/`_modules`), omegaconf
`DictConfig`/`ListConfig`/value nodes into dicts/lists/values, dict subclasses into dicts.

The module itself is a pickle module for `torch.load(pickle_module=inert)` (`Unpickler`, `load`).
"""
from __future__ import annotations

import _compat_pickle
import argparse
import copyreg
import io
import pickle
from collections import OrderedDict
from typing import Any, Mapping

import numpy as np

__all__ = ["Inert", "Unpickler", "load", "plain", "inert_name"]

_PLAIN = {
    "builtins.dict": dict, "builtins.list": list, "builtins.tuple": tuple, "builtins.set": set,
    "builtins.frozenset": frozenset, "builtins.int": int, "builtins.float": float,
    "builtins.str": str, "builtins.bytes": bytes, "builtins.bytearray": bytearray,
    "builtins.bool": bool, "builtins.complex": complex, "builtins.slice": slice,
    "builtins.object": object, "collections.OrderedDict": OrderedDict,
    "argparse.Namespace": argparse.Namespace,
}


class Inert:
    """A pickled object (or call) of a global that was not imported: `inert_name(x)` names it,
    `_inert_args`/`_inert_kwargs` hold the constructor/call arguments, `_inert_state` what
    BUILD would have passed to `__setstate__`, `_inert_items`/`_inert_list` what a dict or list
    subclass received."""
    _inert_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "Inert":
        obj = object.__new__(cls)
        obj.__dict__.update(_inert_args=args, _inert_kwargs=kwargs)
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.__dict__["_inert_state"] = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.__dict__.setdefault("_inert_items", {})[key] = value

    def append(self, value: Any) -> None:
        self.__dict__.setdefault("_inert_list", []).append(value)

    def extend(self, values: Any) -> None:
        self.__dict__.setdefault("_inert_list", []).extend(values)

    def __repr__(self) -> str:
        return f"<inert {self._inert_name}>"


def inert_name(x: Any) -> str | None:
    """'module.qualname' of a placeholder (instance or class), else None."""
    if isinstance(x, Inert) or (isinstance(x, type) and issubclass(x, Inert)):
        return x._inert_name
    return None


def _torch_allowed() -> dict[str, Any]:
    """What torch.load(weights_only=True) admits: its own allow-list plus user-added globals."""
    import torch
    from torch import _weights_only_unpickler as wo

    allowed: dict[str, Any] = dict(wo._get_allowed_globals())
    allowed.update(wo._get_user_allowed_globals())
    allowed.update({f"{type(torch.float32).__module__}.dtype": torch.dtype})
    return allowed


def _numpy_allowed(module: str, name: str) -> Any:
    if (module in ("numpy.core.multiarray", "numpy._core.multiarray")
            and name in ("_reconstruct", "scalar")):
        return getattr(__import__(module, fromlist=[name]), name)
    if module == "numpy" and name in ("ndarray", "dtype"):
        return getattr(np, name)
    if module == "numpy.dtypes" and name.endswith("DType"):
        return getattr(np.dtypes, name)
    return None


def _reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """copyreg._reconstructor for protocol 0/1 pickles: a placeholder class gets a bare
    placeholder (BUILD then records the state); admitted classes are built as copyreg does."""
    if inert_name(cls) is not None:
        return cls.__new__(cls)
    if inert_name(base) is not None:
        raise pickle.UnpicklingError(f"GLOBAL {inert_name(base)} cannot be a base class here")
    return copyreg._reconstructor(cls, base, state)


# The placeholders made since `start_recording()`: torch.load builds its own subclass of
# `Unpickler` and does not hand it back, so the names are collected here.
_SEEN: list[str] = []


def start_recording() -> None:
    _SEEN.clear()


def recorded() -> list[str]:
    return sorted(_SEEN)


class Unpickler(pickle.Unpickler):
    """pickle.Unpickler that resolves only admitted globals; the rest become `Inert` classes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._inert: dict[str, type] = {}
        self._allowed = _torch_allowed()

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 names (what the C unpickler's own find_class maps for protocols < 3; its
        # protocol is not exposed, and these names do not occur in Python 3 pickles).
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        else:
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        full = f"{module}.{name}"
        if full == "copyreg._reconstructor":
            return _reconstructor
        found = _PLAIN.get(full) or self._allowed.get(full) or _numpy_allowed(module, name)
        if found is not None:
            return found
        if full not in self._inert:
            self._inert[full] = type(name.rsplit(".", 1)[-1], (Inert,), {"_inert_name": full})
            if full not in _SEEN:
                _SEEN.append(full)
        return self._inert[full]


def load(file: Any, **kwargs: Any) -> Any:
    return Unpickler(file, **kwargs).load()


def loads(data: bytes, **kwargs: Any) -> Any:
    return load(io.BytesIO(data), **kwargs)


# ------------------------------------------------------------------------- back to plain data
def _state_dict_of_module(state: Mapping[str, Any], prefix: str, out: dict) -> None:
    """`nn.Module.state_dict()` rebuilt from a pickled module's `__dict__` (its parameters and
    persistent buffers, children recursively), without the module's class."""
    skip = state.get("_non_persistent_buffers_set") or set()
    for name, p in (state.get("_parameters") or {}).items():
        if p is not None:
            out[prefix + name] = p
    for name, b in (state.get("_buffers") or {}).items():
        if b is not None and name not in skip:
            out[prefix + name] = b
    for name, child in (state.get("_modules") or {}).items():
        cstate = _state_of(child)
        if isinstance(cstate, Mapping):
            _state_dict_of_module(cstate, f"{prefix}{name}.", out)


def _state_of(x: Any) -> Any:
    if isinstance(x, Inert):
        st = x.__dict__.get("_inert_state")
        return st[0] if isinstance(st, tuple) and len(st) == 2 and isinstance(st[0], Mapping) else st
    return None


def is_module_state(state: Any) -> bool:
    return isinstance(state, Mapping) and "_parameters" in state and "_modules" in state


def plain(x: Any, _depth: int = 0) -> Any:
    """Placeholders a checkpoint commonly holds -> plain data (see the module docstring); other
    placeholders stay as they are. Real `nn.Module`s (from --trust-pickle) -> their state dict."""
    if _depth > 200:
        return x
    if hasattr(x, "state_dict") and hasattr(x, "_modules") and callable(x.state_dict):
        return x.state_dict()  # a real nn.Module, unpickled with --trust-pickle
    if isinstance(x, Inert):
        state = _state_of(x)
        if is_module_state(state):
            out: OrderedDict = OrderedDict()
            _state_dict_of_module(state, "", out)
            return out
        if isinstance(state, Mapping) and "_content" in state:       # omegaconf containers
            content = state["_content"]
            return plain(content, _depth + 1) if isinstance(content, (Mapping, list)) else None
        if isinstance(state, Mapping) and "_val" in state:           # omegaconf value nodes
            return plain(state["_val"], _depth + 1)
        if "_inert_items" in x.__dict__:                              # a dict subclass
            return {k: plain(v, _depth + 1) for k, v in x.__dict__["_inert_items"].items()}
        if "_inert_list" in x.__dict__:
            return [plain(v, _depth + 1) for v in x.__dict__["_inert_list"]]
        return x
    if isinstance(x, Mapping):
        return type(x)((k, plain(v, _depth + 1)) for k, v in x.items()) \
            if isinstance(x, OrderedDict) else {k: plain(v, _depth + 1) for k, v in x.items()}
    if isinstance(x, list):
        return [plain(v, _depth + 1) for v in x]
    if isinstance(x, tuple):
        return tuple(plain(v, _depth + 1) for v in x)
    return x
