"""Read a checkpoint file without running code from it.

Checkpoints come from strangers and are mostly pickles. By default:
- torch files (zip or legacy) load with `torch.load(weights_only=True)`, with a short allow-list
  of data-only classes that training scripts commonly store next to the weights
  (`argparse.Namespace` in MoCo/DINO/timm checkpoints, numpy arrays and scalars);
- plain pickles (detectron2 `.pkl`) go through `SafeNumpyUnpickler`, which admits numpy arrays,
  numpy scalars/dtypes and the builtin containers, nothing else;
- a pickle that names any other class (mmengine's HistoryBuffer, omegaconf's DictConfig, a
  pickled nn.Module, ...) is read again by `transfer.convert.inert`: the same admitted globals,
  every other one an inert placeholder, so none of the file's code runs and the tensors are found;
  `Loaded.inert` names the placeholders;
- `.safetensors` files are read by safetensors (no pickle at all).
`trust_pickle=True` opts in to full unpickling, for the rare file whose weights only real
objects can rebuild.
"""
from __future__ import annotations

import argparse
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from transfer.convert import inert
from unmix.core.errors import UnmixError

# The pickle of torch's legacy-format magic number: files saved with
# `_use_new_zipfile_serialization=False` (e.g. the MoCo releases from torch 1.4) start with it.
_LEGACY_MAGIC = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)[:14]
_SAFETENSORS_MAX_HEADER = 100_000_000

# Globals a checkpoint may name, as `module.qualname`: data-only classes whose unpickling runs no
# code beyond building the object (`__new__` + `__dict__` update / array reconstruction).
_NUMPY_GLOBALS = {
    "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
    "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar",
    "numpy.ndarray", "numpy.dtype",
}
_PLAIN_GLOBALS = {
    "builtins.dict", "builtins.list", "builtins.tuple", "builtins.set", "builtins.frozenset",
    "builtins.int", "builtins.float", "builtins.str", "builtins.bytes", "builtins.bool",
    "builtins.complex", "builtins.slice", "collections.OrderedDict", "copyreg._reconstructor",
    "builtins.object",
}


def _resolve(module: str, name: str) -> Any:
    import importlib

    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _numpy_dtype_classes() -> list:
    return [type(np.dtype(t)) for t in (np.float64, np.float32, np.float16, np.int64, np.int32,
                                        np.int16, np.int8, np.uint8, np.bool_)]


def _torch_extra_safe_globals() -> list:
    """Data-only classes admitted by default on top of torch's weights_only set."""
    safe: list = [argparse.Namespace, np.ndarray, np.dtype, *_numpy_dtype_classes()]
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        for name in ("_reconstruct", "scalar"):
            try:
                safe.append(_resolve(mod, name))
            except (ImportError, AttributeError):
                pass
    return safe


class SafeNumpyUnpickler(pickle.Unpickler):
    """Unpickler for detectron2-style `.pkl` files: numpy arrays and plain containers only."""

    def find_class(self, module: str, name: str) -> Any:
        full = f"{module}.{name}"
        dtype_class = module == "numpy.dtypes" and name.endswith("DType")
        if full in _NUMPY_GLOBALS or full in _PLAIN_GLOBALS or dtype_class:
            return _resolve(module, name)
        raise pickle.UnpicklingError(f"GLOBAL {full} is not allowed")


def _corrupt(src: Path, err: BaseException) -> UnmixError:
    first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
    return UnmixError(f"{src}: truncated or corrupt checkpoint ({type(err).__name__}: {first})")


def sniff(src: Path) -> str:
    """'torch-zip', 'torch-legacy', 'safetensors', 'pickle' or 'unknown', from the first bytes."""
    with open(src, "rb") as f:
        head = f.read(16)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "torch-zip"
    if head.startswith(_LEGACY_MAGIC):
        return "torch-legacy"
    if head[:1] == b"\x80":
        return "pickle"
    if len(head) >= 9:
        n = int.from_bytes(head[:8], "little")
        if 0 < n < _SAFETENSORS_MAX_HEADER and head[8:9] == b"{":
            return "safetensors"
    return "unknown"


def _load_safetensors(src: Path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return dict(load_file(str(src)))
    except (SafetensorError, ValueError, OSError, RuntimeError) as e:
        raise _corrupt(src, e) from None


class Loaded(NamedTuple):
    obj: Any
    kind: str                 # 'torch-zip', 'torch-legacy', 'pickle', 'safetensors'
    inert: list[str]          # globals read as inert placeholders (none of their code ran)


def _inert_failed(src: Path, err: BaseException) -> UnmixError:
    first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
    return UnmixError(f"{src}: could not read it without running code from it ({type(err).__name__}: "
                      f"{first}); re-run with --trust-pickle only if you trust where it came from")


def _load_torch_trusted(src: Path) -> Any:
    try:
        return inert.plain(torch.load(src, map_location="cpu", weights_only=False))
    except (ImportError, AttributeError) as e:
        raise UnmixError(f"{src}: the pickle needs code that is not installed here ({e})") from None
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError,
            OSError) as e:
        raise _corrupt(src, e) from None


def _load_torch_inert(src: Path) -> tuple[Any, list[str]]:
    inert.start_recording()
    try:
        obj = torch.load(src, map_location="cpu", weights_only=False, pickle_module=inert)
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        raise _corrupt(src, e) from None
    except (pickle.UnpicklingError, ValueError, KeyError, AttributeError, TypeError,
            IndexError) as e:
        raise _inert_failed(src, e) from None
    return inert.plain(obj), inert.recorded()


def _load_torch(src: Path, trust_pickle: bool) -> tuple[Any, list[str]]:
    if trust_pickle:
        return _load_torch_trusted(src), []
    try:
        with torch.serialization.safe_globals(_torch_extra_safe_globals()):
            return torch.load(src, map_location="cpu", weights_only=True), []
    except pickle.UnpicklingError as e:
        if "weights_only" in str(e) or "GLOBAL" in str(e) or "Unsupported" in str(e):
            return _load_torch_inert(src)
        raise _corrupt(src, e) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError,
            AttributeError, TypeError, IndexError) as e:
        raise _corrupt(src, e) from None


def _load_pickle(src: Path, trust_pickle: bool) -> tuple[Any, list[str]]:
    data = src.read_bytes()
    try:
        if trust_pickle:
            return inert.plain(pickle.loads(data, encoding="latin1")), []
        return SafeNumpyUnpickler(io.BytesIO(data), encoding="latin1").load(), []
    except pickle.UnpicklingError as e:
        if "is not allowed" not in str(e):
            raise _corrupt(src, e) from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            ImportError, MemoryError, OverflowError) as e:
        raise _corrupt(src, e) from None
    inert.start_recording()
    try:
        return inert.plain(inert.loads(data, encoding="latin1")), inert.recorded()
    except (EOFError, MemoryError, OverflowError) as e:
        raise _corrupt(src, e) from None
    except (pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError,
            KeyError) as e:
        raise _inert_failed(src, e) from None


def load_checkpoint(src: str | Path, *, trust_pickle: bool = False) -> Loaded:
    """Load `src` safely. Raises UnmixError('SRC: problem')."""
    src = Path(src)
    if not src.exists():
        raise UnmixError(f"{src}: no such file")
    if src.is_dir():
        raise UnmixError(f"{src}: is a directory, not a checkpoint file")
    if src.stat().st_size == 0:
        raise UnmixError(f"{src}: empty file")
    kind = sniff(src)
    if kind == "safetensors" or src.suffix == ".safetensors":
        return Loaded(_load_safetensors(src), "safetensors", [])
    if kind in ("torch-zip", "torch-legacy"):
        return _loaded(kind, _load_torch(src, trust_pickle))
    if kind == "pickle":
        return _loaded(kind, _load_pickle(src, trust_pickle))
    raise UnmixError(f"{src}: not a checkpoint (neither a torch file, a pickle nor safetensors)")


def _loaded(kind: str, got: tuple[Any, list[str]]) -> Loaded:
    return Loaded(got[0], kind, got[1])


def read_checkpoint(src: str | Path, *, trust_pickle: bool = False) -> tuple[Any, str]:
    """Load `src` safely; returns (object, container kind). Raises UnmixError('SRC: problem')."""
    loaded = load_checkpoint(src, trust_pickle=trust_pickle)
    return loaded.obj, loaded.kind
