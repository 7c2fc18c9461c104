"""Pure conversion (torch only): a loaded checkpoint object -> torchvision/mmdet-named ResNet backbone tensors.

Steps (each a small function): pick the format (`formats.detect` or given), strip wrappers,
apply the format's rename rules, find the ResNets in the state dict (named or `nn.Sequential`
layout), pick the encoder by the format's rule, map its keys, infer arch and stem from the
tensors, check them against the target arch key by key, and group everything dropped by role.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import torch

from pretrain.backbones import ARCHS
from transfer.convert import formats as F
from transfer.convert import checks, resnet_d
from transfer.convert.checks import ConvertError, short as _short
from transfer.convert import stem as stem_evidence
from pretrain.schema import pretrain_summary

CONVERTER_VERSION = "1.0"
_NAMED_ANCHOR = "layer1.0.conv1.weight"
_RESNET_TOP = re.compile(r"^(conv1|bn1|stem|layer[1-4]|fc|\d+)\.")
# What sits beside layer1 at a ResNet's root: a 7x7/3x3 conv1, or a deep stem (timm's
# Sequential conv1, mmdet's / mmpretrain's `stem`).
_STEM_ANCHORS = ("conv1.weight", "conv1.0.weight", "stem.0.weight", "stem.0.conv.weight")
_SEQ_STAGE = re.compile(r"^((?:.*\.)?)(\d+)\.0\.conv1\.weight$")


@dataclass
class Conversion:
    """A converted backbone. `state_dict` has torchvision/mmdet ResNet names and no `fc`."""
    state_dict: dict[str, torch.Tensor]
    arch: str
    stem: str
    format: str
    encoder: str
    dropped: dict[str, list[str]]
    meta: dict
    # Target key -> the tensor as found in the source (before the float32 cast): what the
    # verification rebuilds the source encoder from. Not saved.
    source_tensors: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)


# ------------------------------------------------------------------------------------ helpers
def _as_tensor(v: Any) -> torch.Tensor:
    if isinstance(v, torch.Tensor):
        return v
    return torch.from_numpy(np.array(v, copy=True))  # keeps 0-d arrays 0-d


def _storage_id(v: Any) -> tuple:
    if isinstance(v, torch.Tensor):
        try:
            return ("t", v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape))
        except RuntimeError:
            return ("id", id(v))
    return ("id", id(v))


def _rename(key: str, rules: tuple[tuple[str, str], ...]) -> str:
    for pattern, repl in rules:
        key = re.sub(pattern, repl, key)
    return key


def find_resnets(keys: set[str]) -> list[str]:
    """Key prefixes under which a ResNet lives, named (`P.layer1.0.conv1.weight`) or as an
    `nn.Sequential` of a ResNet's children (`P.4.0.conv1.weight`, `P.0.weight`)."""
    found: list[str] = []
    for k in sorted(keys):
        if k.endswith(_NAMED_ANCHOR):
            p = k[: -len(_NAMED_ANCHOR)]
            if (p == "" or p.endswith(".")) and any(p + a in keys for a in _STEM_ANCHORS) \
                    and p not in found:
                found.append(p)
    stages: dict[str, set[int]] = {}
    for k in keys:
        m = _SEQ_STAGE.match(k)
        if m:
            stages.setdefault(m.group(1), set()).add(int(m.group(2)))
    for p, idx in sorted(stages.items()):
        if len(idx) == 4 and any(f"{p}{j}.weight" in keys for j in range(min(idx))):
            if p not in found:
                found.append(p)
    return found


def _sequential_names(local: Mapping[str, Any]) -> dict[int, str]:
    """Index -> torchvision child name for an `nn.Sequential(*resnet.children())`, decided by
    the tensors: the 3-channel conv is conv1, the next norm bn1, the four block containers
    layer1..4, a 2-d weight after them fc. (The Un-Mix CIFAR demo drops the max-pool, lightly
    keeps it, so the indices differ.)"""
    by_idx: dict[int, list[str]] = {}
    for k in local:
        head = k.split(".", 1)[0]
        if head.isdigit():
            by_idx.setdefault(int(head), []).append(k)
    stage_idx = sorted(i for i, ks in by_idx.items() if f"{i}.0.conv1.weight" in ks)
    names: dict[int, str] = {i: f"layer{n + 1}" for n, i in enumerate(stage_idx)}
    before = [i for i in sorted(by_idx) if i < stage_idx[0]]
    for i in before:
        w = local.get(f"{i}.weight")
        if w is not None and len(w.shape) == 4 and "conv1" not in names.values():
            names[i] = "conv1"
        elif f"{i}.running_mean" in local and "conv1" in names.values() and "bn1" not in names.values():
            names[i] = "bn1"
    for i in sorted(by_idx):
        w = local.get(f"{i}.weight")
        if i > stage_idx[-1] and w is not None and len(w.shape) == 2 and "fc" not in names.values():
            names[i] = "fc"
    return names


# ---------------------------------------------------------------------------------- arch
def infer_arch(sd: Mapping[str, torch.Tensor]) -> tuple[str, str]:
    """(arch, stem) from the tensors alone; ConvertError when they are no supported ResNet."""
    if "conv1.weight" not in sd and "stem.0.weight" in sd:
        stem, stem_ch = resnet_d.STEM, resnet_d.deep_stem_channels(sd)
    else:
        w = sd.get("conv1.weight")
        if w is None or w.dim() != 4:
            raise ConvertError("not a ResNet: no 4-d conv1.weight")
        if w.shape[1] != 3:
            raise ConvertError(f"conv1 takes {w.shape[1]} input channels, not 3 (RGB)")
        k = w.shape[-1]
        stem = {7: "imagenet", 3: "cifar"}.get(k)
        if stem is None:
            raise ConvertError(f"conv1 is {k}x{k}; expected 7x7 (ImageNet stem) or 3x3 (CIFAR stem)")
        stem_ch = w.shape[0]
    if stem_ch % 64:
        raise ConvertError(f"conv1 has {stem_ch} channels, not a multiple of 64")
    width = stem_ch // 64
    bottleneck = "layer1.0.conv3.weight" in sd
    layers = []
    for i in range(1, 5):
        blocks = {int(m.group(1)) for key in sd if (m := re.match(rf"layer{i}\.(\d+)\.", key))}
        if not blocks:
            raise ConvertError(f"not a ResNet: no layer{i} blocks")
        layers.append(max(blocks) + 1)
    planes = sd["layer1.0.conv1.weight"].shape[0]
    if planes != 64 * width:
        raise ConvertError(
            f"layer1 blocks are {planes} channels wide with a {stem_ch}-channel stem "
            "(wide_resnet/ResNeXt layout); only uniformly widened ResNets (SwAV w2) are supported")
    block = "Bottleneck" if bottleneck else "BasicBlock"
    for name, spec in ARCHS.items():
        if spec.block.__name__ == block and tuple(layers) == spec.layers and spec.width == width:
            return name, stem
    raise ConvertError(
        f"unsupported ResNet: {block} blocks {'-'.join(map(str, layers))}, width x{width} "
        f"(supported: {', '.join(ARCHS)})")


def describe_arch(arch: str) -> str:
    spec = ARCHS[arch]
    return f"{arch} ({spec.block.__name__}, {'-'.join(map(str, spec.layers))} blocks, " \
           f"{64 * spec.width}-channel stem)"


def target_shapes(arch: str, stem: str) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        ref = resnet_d.build_reference(arch, stem)
    return {k: tuple(v.shape) for k, v in ref.state_dict().items()}


# ----------------------------------------------------------------------------- conversion
def _pick_container(obj: Any, fmt: F.Format, enc: F.Encoder) -> tuple[Mapping[str, Any], str | None]:
    if enc.container is not None:
        inner = F.at_path(obj, enc.container)
        if inner is None:
            raise ConvertError(f"format {fmt.name}: no {enc.container!r} in the checkpoint")
        sd, c = F.unwrap(inner, ("state_dict", "model"))
        if not sd:
            raise ConvertError(f"format {fmt.name}: {enc.container!r} holds no tensors")
        return sd, enc.container + (f".{c}" if c else "")
    sd, c = F.unwrap(obj, fmt.containers)
    if not sd:
        raise ConvertError("no state dict found (no tensors at the top level or under "
                           f"{', '.join(repr(x) for x in fmt.containers) or 'any key'})")
    return sd, c


def _format_and_encoder(obj: Any, fmt: str | None, encoder: str | None, arch: str | None,
                        sidecar: Mapping[str, Any] | None = None) -> tuple[F.Format, str, F.Encoder]:
    """The format (given or detected) and the encoder to take: by the format's name for it, or a
    literal key prefix for checkpoints its rules do not cover."""
    fmt_name = fmt or F.detect(obj, sidecar)
    if fmt_name is None:
        top = list(obj)[:6] if isinstance(obj, Mapping) else type(obj).__name__
        raise ConvertError(f"not a ResNet checkpoint: no tensors found (top level: {top})")
    if fmt_name not in F.FORMATS:
        raise ConvertError(f"unknown format {fmt_name!r} (choose from {', '.join(F.FORMATS)})")
    spec = F.FORMATS[fmt_name]
    if arch is not None and arch not in ARCHS:
        raise ConvertError(f"unknown --arch {arch!r} (choose from {', '.join(ARCHS)})")
    if encoder is None or encoder in spec.encoders:
        enc_name = encoder or spec.default_encoder
        return spec, enc_name, spec.encoders[enc_name]
    literal = "" if encoder in ("", "<root>", ".") else encoder.rstrip(".") + "."
    return spec, encoder, F.Encoder(literal)


def _renamed(raw: Mapping[str, Any], spec: F.Format) -> dict[str, tuple[str, Any]]:
    """Full key after wrapper stripping and the format's renames -> (source key, tensor)."""
    renamed: dict[str, tuple[str, Any]] = {}
    for k, v in raw.items():
        if not F.is_tensor_like(v):
            continue
        nk = _rename(F.strip_wrappers(str(k)), spec.renames)
        if nk in renamed:
            # DataParallel + plain copies of one model, e.g. 'module.x' and 'x': same name twice.
            raise ConvertError(f"keys {renamed[nk][0]!r} and {k!r} both map to {nk!r}")
        renamed[nk] = (str(k), v)
    return renamed


def _encoder_prefix(candidates: list[str], spec: F.Format, enc_name: str, enc: F.Encoder) -> str:
    """The key prefix of the encoder to take among the ResNets found."""
    if enc.prefix is None:
        # Rule: the only ResNet that is not a momentum/target copy.
        online = [p for p in candidates if F.role_of(p + "x", spec) != "momentum encoder"]
        pool = online or candidates
        if len(pool) != 1:
            raise ConvertError(
                f"ambiguous: {len(pool)} ResNets in the checkpoint ({', '.join(p or '<root>' for p in pool)})"
                f" and format {spec.name} has no rule to pick one; pass --encoder PREFIX")
        return pool[0]
    for alt in enc.also:
        if enc.prefix not in candidates and alt in candidates:
            return alt
    if enc.prefix not in candidates:
        raise ConvertError(
            f"format {spec.name}: no ResNet under {enc.prefix or '<root>'!r} for encoder {enc_name!r}"
            f" (ResNets found under: {', '.join(p or '<root>' for p in candidates)}; encoders of "
            f"this format: {', '.join(spec.encoders)})")
    return enc.prefix


def _local_keys(renamed: dict[str, tuple[str, Any]], prefix: str
                ) -> tuple[dict[str, tuple[str, Any]], dict[int, str], dict[str, Any]]:
    """The encoder's keys without `prefix`, in torchvision names (an `nn.Sequential` of the
    ResNet's children renamed; a ResNet-D deep stem in mmdet ResNetV1d names; `shortcut`
    blocks as `downsample`), the Sequential index -> child name map used, and the naming found
    ({'deep_stem_layout': timm/mmpretrain/mmdet or None, 'block_naming': 'shortcut' or None})."""
    local, seq_map = _sequential_local(renamed, prefix)
    local, deep = resnet_d.deep_stem_names(local)
    local, shortcut = checks.shortcut_names(local)
    return local, seq_map, {"deep_stem_layout": deep, "block_naming": shortcut}


def _sequential_local(renamed: dict[str, tuple[str, Any]], prefix: str
                      ) -> tuple[dict[str, tuple[str, Any]], dict[int, str]]:
    local = {k[len(prefix):]: sv for k, sv in renamed.items() if k.startswith(prefix)}
    if prefix == "":
        # At the root, the encoder is the ResNet-named part; the rest (SwAV's projection_head,
        # prototypes...) sits beside it and is dropped by role later.
        local = {k: sv for k, sv in local.items() if _RESNET_TOP.match(k)}
    if not any(k.split(".", 1)[0].isdigit() for k in local):
        return local, {}
    seq_map = _sequential_names({k: v for k, (_, v) in local.items()})

    def named(k: str) -> str:
        head, _, rest = k.partition(".")
        return f"{seq_map[int(head)]}.{rest}" if head.isdigit() and int(head) in seq_map else k

    return {named(k): sv for k, sv in local.items()}, seq_map


def _checked_arch(obj: Any, spec: F.Format, tensors: dict[str, torch.Tensor],
                  arch: str | None) -> tuple[str, str, dict]:
    """(arch, stem) from the tensors, checked against --arch and the file's own meta; and that
    meta (the format's `meta_key` block) or {}."""
    inferred, stem = infer_arch(tensors)
    if arch is not None and arch != inferred:
        raise ConvertError(f"weights are {describe_arch(inferred)} but --arch is {describe_arch(arch)}")
    meta_src: dict = {}
    if spec.meta_key and isinstance(obj, Mapping) and isinstance(obj.get(spec.meta_key), Mapping):
        meta_src = dict(obj[spec.meta_key])
        for key, got in (("arch", inferred), ("stem", stem)):
            want = meta_src.get(key)
            if want is not None and want != got:
                raise ConvertError(f"meta says {key} {want!r} but the tensors are {got!r}")
    return inferred, stem, meta_src


def _complete(tensors: dict[str, torch.Tensor], arch: str, stem: str, prefix: str) -> list[str]:
    """Check `tensors` against the target arch key by key (filling a missing num_batches_tracked
    with 0); returns the keys filled."""
    shapes = target_shapes(arch, stem)
    unexpected = sorted(set(tensors) - set(shapes))
    if unexpected:
        raise ConvertError(f"encoder {prefix or '<root>'!r} has tensors that are not part of "
                           f"{arch}: {_short(unexpected)}")
    filled: list[str] = []
    for k in shapes:
        if k not in tensors and k.endswith("num_batches_tracked"):
            # Older torch (< 0.4.1) and some converters omit it; it only matters for BN with
            # momentum=None. Filled with 0 so strict loading succeeds, and recorded in meta.
            tensors[k] = torch.tensor(0, dtype=torch.long)
            filled.append(k)
    missing = [k for k in shapes if k not in tensors]
    if missing:
        raise ConvertError(f"encoder {prefix or '<root>'!r} lacks {len(missing)} tensors of "
                           f"{arch}: {_short(missing)}")
    bad = [f"{k} {tuple(tensors[k].shape)} vs {shapes[k]}" for k in shapes
           if tuple(tensors[k].shape) != shapes[k]]
    if bad:
        raise ConvertError(f"shape mismatch with {arch}: {_short(bad, 3)}")
    return filled


def _dropped(obj: Any, spec: F.Format, renamed: dict[str, tuple[str, Any]],
             local: dict[str, tuple[str, Any]], taken: set[str], container: str | None
             ) -> dict[str, list[str]]:
    """Every source key not taken, grouped by role (heads, momentum encoder, queue, ...)."""
    taken_src = {local[k][0] for k in taken}
    head_src = {local[k][0] for k in local if k.startswith("fc.")}
    taken_ids = {_storage_id(local[k][1]) for k in taken}
    dropped: dict[str, list[str]] = {}
    for nk, (src_key, v) in renamed.items():
        if src_key in taken_src:
            continue
        role = "heads" if src_key in head_src else F.role_of(nk, spec)
        if role == "other" and _storage_id(v) in taken_ids:
            role = "duplicate of encoder"
        dropped.setdefault(role, []).append(src_key)
    # Other whole models next to the taken one (DINO student/teacher, timm EMA).
    if container is not None and isinstance(obj, Mapping):
        for top, val in obj.items():
            if str(top) == container.split(".")[0]:
                continue
            sd_other, _ = F.unwrap(val, ("state_dict", "model"))
            if sd_other:
                dropped.setdefault(F.role_of(f"{top}.x", spec), []).extend(
                    f"{top}/{k}" for k in sd_other)
        for path, role, key in _beside_nested(obj, container, spec):
            dropped.setdefault(role, []).append(f"{path}/{key}")
    return dropped


def _tensors_in(obj: Any, prefix: str = "", depth: int = 6):
    """(dotted key, tensor) for every tensor in nested dicts/lists (optimizer state, heads)."""
    if F.is_tensor_like(obj):
        yield prefix, obj
    elif depth and isinstance(obj, (Mapping, list, tuple)):
        items = obj.items() if isinstance(obj, Mapping) else enumerate(obj)
        for k, v in items:
            yield from _tensors_in(v, f"{prefix}.{k}" if prefix else str(k), depth - 1)


def _beside_nested(obj: Mapping, container: str, spec: F.Format):
    """For a container nested deeper than the top level (VISSL's `classy_state_dict.base_model.
    model.trunk`): the tensors beside each level of that path (heads, EMA copy, optimizer state),
    with the role of the sibling's name. The top level is `_dropped`'s own loop."""
    parts = container.split(".")
    if str(parts[0]) in obj and F.at_path(obj, container) is not None and container not in obj:
        node = obj
        for depth, part in enumerate(parts[:-1]):
            node = node[part]
            for name, val in node.items():
                if str(name) == parts[depth + 1]:
                    continue
                role = F.role_of(f"{name}.x", spec)
                for key, _ in _tensors_in(val):
                    yield ".".join(parts[:depth + 1] + [str(name)]), role, key


def _stem_padding(obj: Any, spec: F.Format, stem: str, meta_src: Mapping[str, Any],
                  explicit: int | None, sidecar: Mapping[str, Any] | None,
                  block_naming: str | None = None) -> tuple[int, str, bool]:
    """(conv1 padding, its evidence, assumed?): fixed by the stem for 7x7 stems; for a 3x3
    CIFAR stem decided by `stem.cifar_padding`."""
    if stem != "cifar":
        if explicit is not None:
            raise ConvertError(f"--stem-padding applies to a 3x3 (CIFAR) conv1; this one is the "
                               f"{stem} stem, whose padding is fixed")
        if stem == resnet_d.STEM:
            return 1, "the deep stem (3x3 convs, padding 1)", False
        return 3, "the 7x7 stem", False
    if explicit is not None and not 0 <= int(explicit) <= 3:
        raise ConvertError(f"--stem-padding {explicit}: a 3x3 conv1 is padded by 0 to 3 pixels")
    solo_cfg, where = stem_evidence.find_solo_learn_cfg(obj, sidecar)
    layout_padding, layout_name = spec.extra.get("cifar_stem_padding"), f"{spec.title} layout"
    if block_naming == "shortcut" and layout_padding is None:
        layout_padding, layout_name = stem_evidence.SHORTCUT_PADDING, stem_evidence.SHORTCUT_LAYOUT
    return stem_evidence.cifar_padding(
        explicit=explicit, file_meta=meta_src, solo_cfg=solo_cfg, solo_where=where,
        layout_padding=layout_padding, layout_name=layout_name)


def convert_state_dict(obj: Any, *, arch: str | None = None, fmt: str | None = None,
                       encoder: str | None = None, stem_padding: int | None = None,
                       sidecar: Mapping[str, Any] | None = None) -> Conversion:
    """Convert an already-loaded checkpoint object. Raises `UnmixError` (without file name).
    `sidecar`: files found beside the checkpoint that name its config ({'args.json': dict})."""
    spec, enc_name, enc = _format_and_encoder(obj, fmt, encoder, arch, sidecar)
    raw, container = _pick_container(obj, spec, enc)
    renamed = _renamed(raw, spec)
    candidates = find_resnets(set(renamed))
    if not candidates:
        raise ConvertError(f"not a ResNet: no conv1/layer1-4 structure found "
                           f"(keys: {_short(sorted(renamed)[:4])})")
    prefix = _encoder_prefix(candidates, spec, enc_name, enc)
    local, seq_map, naming = _local_keys(renamed, prefix)
    tensors = {k: _as_tensor(v) for k, (_, v) in local.items() if not k.startswith("fc.")}
    arch, stem, meta_src = _checked_arch(obj, spec, tensors, arch)
    padding, padding_from, assumed = _stem_padding(obj, spec, stem, meta_src, stem_padding, sidecar,
                                                   naming["block_naming"])
    shapes = target_shapes(arch, stem)
    split_bn = checks.collate_split_bn(tensors, shapes)
    filled = _complete(tensors, arch, stem, prefix)
    checks.check_finite(tensors, local)
    source_tensors = {k: tensors[k] for k in shapes}
    state_dict: dict[str, torch.Tensor] = {}
    src_dtypes: set[str] = set()
    for k in shapes:
        t = tensors[k]
        if t.is_floating_point():
            src_dtypes.add(str(t.dtype).replace("torch.", ""))
            t = t.detach().to(torch.float32)
        state_dict[k] = t.detach().contiguous().clone()
    dropped = _dropped(obj, spec, renamed, local, set(local) & set(shapes), container)
    meta = {
        "format": spec.name, "format_title": spec.title, "encoder": enc_name,
        "encoder_prefix": prefix, "container": container, "arch": arch,
        "depth": ARCHS[arch].depth, "width": ARCHS[arch].width, "stem": stem,
        "stem_padding": padding, "stem_padding_from": padding_from,
        "assumptions": [stem_evidence.ASSUMED] if assumed else [],
        "num_tensors": len(state_dict),
        "dropped": {r: list(ks) for r, ks in dropped.items()},
        "top_level_keys": [str(k) for k in obj] if isinstance(obj, Mapping) and container else [],
        "dropped_counts": {r: len(ks) for r, ks in dropped.items()},
        "filled_defaults": filled,
        "split_bn_collated": split_bn,
        "source_dtypes": sorted(src_dtypes),
        "sequential_children": {str(i): n for i, n in sorted(seq_map.items())},
        # ResNet-D: whose names the deep stem had; its avg-pool shortcuts are evidenced by the
        # conv at `downsample.1` (index 0 holds the weightless pool in all three libraries).
        "deep_stem_layout": naming["deep_stem_layout"],
        "block_naming": naming["block_naming"] or "downsample",
        "converter_version": CONVERTER_VERSION,
    }
    if meta_src:
        meta["source_meta"] = {k: v for k, v in meta_src.items()
                               if isinstance(v, (str, int, float, bool, type(None)))}
    meta["pretrain"] = pretrain_summary(meta_src)
    return Conversion(state_dict=state_dict, arch=arch, stem=stem, format=spec.name,
                      encoder=enc_name, dropped=dropped, meta=meta, source_tensors=source_tensors)
