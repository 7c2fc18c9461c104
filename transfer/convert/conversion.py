"""Files in and out (torch only): `convert_file`, `save_conversion`, `load_conversion`,
`build_encoder`. Verification against mmdet is `transfer.convert.verify`."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from pretrain.backbones import ARCHS
from transfer.convert.resnet_d import build_reference
from transfer.convert.rules import Conversion, convert_state_dict
from transfer.convert.load import load_checkpoint, read_checkpoint
from unmix.core.files import sha256_file, torch_save
from unmix.core.config import to_plain
from unmix.core.errors import UnmixError


def read_sidecar(src: Path) -> dict[str, Any]:
    """Config files a library writes beside its checkpoints and that decide what the weights
    cannot say (solo-learn's `args.json`: its dataset decides the CIFAR stem's padding).
    Unreadable ones are ignored: they are evidence, not input."""
    out: dict[str, Any] = {}
    path = src.parent / "args.json"
    if path.is_file() and path.stat().st_size < 10_000_000:
        try:
            out["args.json"] = json.loads(path.read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            pass
    return out


def convert_file(src: str | os.PathLike, *, arch: str | None = None, fmt: str | None = None,
                 encoder: str | None = None, trust_pickle: bool = False,
                 stem_padding: int | None = None) -> Conversion:
    """Load `src` safely and convert it (`meta.verification` stays None: see
    `transfer.convert.verify.convert_and_verify`). Raises UnmixError('SRC: problem')."""
    src = Path(src)
    loaded = load_checkpoint(src, trust_pickle=trust_pickle)
    try:
        conv = convert_state_dict(loaded.obj, arch=arch, fmt=fmt, encoder=encoder,
                                  stem_padding=stem_padding, sidecar=read_sidecar(src))
        conv.meta["verification"] = None
    except UnmixError as e:
        hint = ""
        if loaded.inert and ("no tensors" in str(e) or "no state dict" in str(e)):
            hint = (f"; it holds pickled objects that were not run ({', '.join(loaded.inert[:3])}"
                    f"{', ...' if len(loaded.inert) > 3 else ''}): if the weights are inside them, "
                    "re-run with --trust-pickle only if you trust where the file came from")
        raise UnmixError(f"{src}: {e}{hint}") from None
    container_kind = loaded.kind
    conv.meta.update({
        "source": str(src.resolve()),
        "source_sha256": sha256_file(src),
        "source_file_kind": container_kind,
        "trusted_pickle": bool(trust_pickle),
        # Globals the file names that were read as inert placeholders: none of their code ran.
        "inert_globals": list(loaded.inert),
        "torch_version": str(torch.__version__),
    })
    return conv


def save_conversion(conv: Conversion, dst: str | os.PathLike) -> Path:
    """Atomically write `{'state_dict', 'meta'}` (loadable with weights_only=True)."""
    dst = Path(dst)
    torch_save({"state_dict": dict(conv.state_dict), "meta": to_plain(conv.meta, strict=True)}, dst)
    return dst


def load_conversion(path: str | os.PathLike) -> Conversion:
    """Read a DST written by `save_conversion` (weights_only; strict structure check)."""
    path = Path(path)
    obj, _ = read_checkpoint(path)
    if not (isinstance(obj, dict) and isinstance(obj.get("meta"), dict)
            and "converter_version" in obj["meta"] and isinstance(obj.get("state_dict"), dict)):
        raise UnmixError(f"{path}: not written by `unmix convert` (no state_dict/meta.converter_version)")
    meta = obj["meta"]
    try:
        conv = convert_state_dict(obj, fmt="unmix-converted", arch=meta.get("arch"))
    except UnmixError as e:
        raise UnmixError(f"{path}: {e}") from None
    for key in ("format", "encoder"):
        setattr(conv, key, meta.get(key, getattr(conv, key)))
    conv.dropped = {r: list(ks) for r, ks in meta.get("dropped", {}).items()}
    conv.meta = dict(meta)
    return conv


def build_encoder(conv: Conversion) -> torch.nn.Module:
    """`pretrain.backbones.ResNet` (ResNet-D: `resnet_d.ResNetD`) with the converted weights,
    strictly loaded, in eval mode (kNN/linear evaluation; call `.train()` to fine-tune)."""
    if conv.arch not in ARCHS:
        raise UnmixError(f"unknown arch {conv.arch!r}")
    model = build_reference(conv.arch, conv.stem)
    if conv.stem == "cifar":
        p = int(conv.meta.get("stem_padding", 1))
        model.conv1.padding = (p, p)
    model.load_state_dict(conv.state_dict, strict=True)
    return model.eval()
