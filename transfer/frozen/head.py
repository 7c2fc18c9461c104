"""The projector ("head") of a pretraining checkpoint, for `unmix knn --features head`.

The official Un-Mix CIFAR MoCo monitor (szq0214/Un-Mix `unmix_c10.py`, `test(model.encoder_q,
...)`) runs its weighted kNN on the L2-normalised output of `encoder_q`, whose last layer is the
fc -> 128 projector. `--features head` compares that quantity for a checkpoint: the projector of
the evaluated encoder (the query encoder by default), read from the file beside its backbone.
Where it lives, per format (keys after `module.` wrappers are stripped):

- unmix-pretrain, solo-learn, lightning: `projector.*` beside `backbone.*`
  (`momentum_projector.*` beside `momentum_backbone.*`);
- unmix-cifar (the official CIFAR demo): the last child of the `encoder_q.net` Sequential, its fc;
- moco (MoCo v1/v2, the Un-Mix ImageNet MoCo release): `encoder_q.fc.*` (Linear, or fc.0/fc.2);
- swav: `projection_head.*`.

A head is rebuilt from its tensors: one Linear, or a Sequential of Linear and BatchNorm1d layers
whose parameter-free slots are ReLU (the layout of every head above).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from transfer.convert import formats
from transfer.convert.load import load_checkpoint
from unmix.core.errors import UnmixError

_BACKBONE_BESIDE = ("unmix-pretrain", "solo-learn", "lightning")


def head_prefix(fmt: str, encoder_prefix: str, keys: list[str]) -> str | None:
    """Key prefix of the projector that belongs to the encoder at `encoder_prefix` (None: this
    format's projector location is not known)."""
    if fmt in _BACKBONE_BESIDE:
        return encoder_prefix.replace("backbone", "projector", 1)
    if fmt == "moco":
        return encoder_prefix + "fc."
    if fmt == "swav" and encoder_prefix == "":
        return "projection_head."
    if fmt == "unmix-cifar":
        # nn.Sequential of the ResNet's children (max-pool removed), the fc last: 9 for ResNet-18
        rx = re.compile(re.escape(encoder_prefix) + r"(\d+)\.weight$")
        idx = [int(m.group(1)) for k in keys if (m := rx.match(k))]
        return f"{encoder_prefix}{max(idx)}." if idx else None
    return None


def _layer(group: Mapping[str, torch.Tensor]) -> nn.Module | None:
    if "running_mean" in group:
        return nn.BatchNorm1d(group["running_mean"].numel(), affine="weight" in group)
    w = group.get("weight")
    if w is not None and w.dim() == 2:
        return nn.Linear(w.shape[1], w.shape[0], bias="bias" in group)
    return None


def build_head(tensors: Mapping[str, torch.Tensor]) -> nn.Module:
    """A head from its tensors (keys relative to its prefix). Raises ValueError on a layout that
    is neither one Linear nor a Sequential of Linear / BatchNorm1d (+ parameter-free) layers."""
    if set(tensors) <= {"weight", "bias"}:
        layer = _layer(tensors)
        if layer is None:
            raise ValueError("its weight is not a linear layer's")
        head = layer
    else:
        groups: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            first, _, rest = key.partition(".")
            if not first.isdigit() or "." in rest:
                raise ValueError(f"unrecognised layout (key {key!r})")
            groups.setdefault(int(first), {})[rest] = value
        layers: list[nn.Module] = []
        for i in range(max(groups) + 1):
            layer = _layer(groups[i]) if i in groups else nn.ReLU()
            if layer is None:
                raise ValueError(f"layer {i} is neither linear nor batch norm")
            layers.append(layer)
        head = nn.Sequential(*layers)
    try:
        head.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in tensors.items()})
    except RuntimeError as e:
        raise ValueError(" ".join(str(e).split())[:200]) from None
    return head


def load_head(path: str | Path, conv_meta: Mapping, trust_pickle: bool = False) -> tuple[nn.Module, str]:
    """The projector of the converted encoder (`conv_meta`: `Conversion.meta`) -> (head in eval
    mode, its key prefix). One-line UnmixError naming the file when there is none."""
    fmt, enc_prefix = conv_meta["format"], conv_meta.get("encoder_prefix", "")
    spec = formats.FORMATS.get(fmt)
    obj = load_checkpoint(path, trust_pickle=trust_pickle).obj
    sd, _ = formats.unwrap(obj, spec.containers if spec is not None else ("state_dict", "model"))
    sd = {formats.strip_wrappers(str(k)): v for k, v in sd.items()}
    prefix = head_prefix(fmt, enc_prefix, list(sd))
    if prefix is None:
        raise UnmixError(f"{path}: --features head: no projector found in this {fmt} checkpoint (read "
                         "from ours, the official Un-Mix CIFAR demo, MoCo, SwAV, solo-learn/Lightning); "
                         "use --features backbone")
    tensors = {k[len(prefix):]: torch.as_tensor(v) for k, v in sd.items()
               if k.startswith(prefix) and formats.is_tensor_like(v)}
    if not tensors:
        raise UnmixError(f"{path}: --features head: no projector in this checkpoint (no {prefix}* "
                         "tensors); use --features backbone")
    try:
        head = build_head(tensors)
    except ValueError as e:
        raise UnmixError(f"{path}: --features head: the projector {prefix}* cannot be rebuilt: {e}") from None
    return head.eval(), prefix
