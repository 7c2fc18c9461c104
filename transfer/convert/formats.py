"""The checkpoint formats `unmix convert` reads: where each comes from, how it is recognised,
which encoder it evaluates, and how its keys map to torchvision/mmdet ResNet names.

Everything per format is data (`Format`): the top-level container, the encoders by name
(container + key prefix), the default encoder, regex rename rules applied to the encoder's keys,
and extra role rules for the dropped keys. Detection is an ordered list of predicates over the
loaded object (`detect`). docs/convert.md shows the same table (`table_rows`; a test keeps them equal).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from transfer.convert.stem import find_solo_learn_cfg

# Wrappers stripped from every key, wherever they occur as a path segment: DataParallel/DDP
# (`module.`) and torch.compile (`_orig_mod.`).
WRAPPER_SEGMENTS = ("module", "_orig_mod")


@dataclass(frozen=True)
class Encoder:
    """Where one encoder lives: `container` is a key of the checkpoint, a dotted path for nested
    dicts (VISSL: `classy_state_dict.base_model.model.trunk`; None: the format's state dict),
    `prefix` the key prefix inside it after wrapper segments are stripped.
    `prefix=None` means: the only ResNet found in the container. `also`: further prefixes
    tried in order when `prefix` holds no ResNet (one library, several model classes)."""
    prefix: str | None
    container: str | None = None
    also: tuple[str, ...] = ()


@dataclass(frozen=True)
class Format:
    name: str
    title: str
    source: str                      # where such files come from
    detected_by: str                 # human-readable detection rule (docs)
    containers: tuple[str, ...]      # keys (dotted paths) tried in order for the state dict; () = bare
    encoders: Mapping[str, Encoder]
    default_encoder: str
    renames: tuple[tuple[str, str], ...] = ()   # (regex, replacement) on every key, in order
    roles: tuple[tuple[str, str], ...] = ()     # (regex on full key, role), before ROLE_RULES
    notes: str = ""
    meta_key: str | None = None      # top-level key holding arch/stem metadata
    extra: Mapping[str, Any] = field(default_factory=dict)


# Roles of dropped keys, first match wins (after a format's own rules). 'duplicate' (a tensor
# shared with the taken encoder) is decided by storage, not by name.
ROLE_RULES: tuple[tuple[str, str], ...] = (
    (r"(^|\.)(queue\w*|bank\w*|memory_bank)(\.|$)", "queue"),
    (r"(^|\.)(encoder_k|momentum\w*|\w*_momentum|target\w*|teacher|ema\w*|state_dict_ema)(\.|$)",
     "momentum encoder"),
    (r"(^|\.)(predictor|prediction_head|online_predictor)(\.|$)", "predictor"),
    (r"(^|\.)(projector|projection_head|neck|mlp)(\.|$)", "projector"),
    (r"(^|\.)(fc|head|heads|classifier|prototypes\w*|linear|cls_head)(\.|$)", "heads"),
    (r"(^|\.)(student)(\.|$)", "student encoder"),
)

# detectron2 names as written by MoCo's convert-pretrain-to-detectron2.py (and detectron2's own
# torchvision converter): stem.conv1, stem.conv1.norm, resN.i.convK(.norm), resN.i.shortcut(.norm).
DETECTRON2_RENAMES: tuple[tuple[str, str], ...] = (
    (r"(^|\.)stem\.conv1\.norm\.", r"\1bn1."),
    (r"(^|\.)stem\.", r"\1"),
    (r"(^|\.)res2\.", r"\1layer1."),
    (r"(^|\.)res3\.", r"\1layer2."),
    (r"(^|\.)res4\.", r"\1layer3."),
    (r"(^|\.)res5\.", r"\1layer4."),
    (r"\.shortcut\.norm\.", ".downsample.1."),
    (r"\.shortcut\.", ".downsample.0."),
    (r"\.conv([123])\.norm\.", r".bn\1."),
)

# VISSL's ResNe(X)t trunk (vissl/models/trunks/resnext.py) holds torchvision's modules in an
# nn.ModuleDict `_feature_blocks` (conv1, bn1, conv1_relu, maxpool, layer1-4, avgpool, flatten);
# a feature-extractor trunk (vissl/models/trunks/feature_extractor.py) nests it under `base_model.`.
# VISSL's own extra_scripts/convert_vissl_to_torchvision.py drops exactly the `_feature_blocks.`
# prefix to get torchvision names.
VISSL_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^(base_model\.)?_feature_blocks\.", ""),
)
VISSL_TRUNK = "classy_state_dict.base_model.model.trunk"

_F = Format
FORMATS: dict[str, Format] = {f.name: f for f in (
    _F("unmix-pretrain", "unmix pretraining checkpoint",
       "`unmix pretrain` (pretrain/train.py)",
       "top-level `format == 'unmix-pretrain'`",
       ("state_dict",),
       {"backbone": Encoder("backbone."), "momentum": Encoder("momentum_backbone.")},
       "backbone", meta_key="meta",
       notes="arch and stem are read from `meta` and checked against the tensors",
       # pretrain/backbones.py builds its CIFAR conv1 with padding 1.
       extra={"cifar_stem_padding": 1}),
    _F("unmix-converted", "unmix convert output",
       "`unmix convert` (this tool); re-reading is a no-op conversion",
       "top-level `meta.converter_version` next to `state_dict`",
       ("state_dict",), {"backbone": Encoder("")}, "backbone", meta_key="meta"),
    _F("dino", "DINO training checkpoint",
       "facebookresearch/dino `checkpoint.pth` (`{'student','teacher','optimizer','epoch','args',"
       "'dino_loss'}`), `MultiCropWrapper` keys `backbone.*` / `head.*` under `module.`",
       "top-level `teacher` and `student` dicts",
       (),
       {"teacher": Encoder("backbone.", "teacher"), "student": Encoder("backbone.", "student")},
       "teacher",
       notes="teacher by default, as DINO's own k-NN/linear evaluation does"),
    _F("timm-train", "timm training checkpoint",
       "timm `train.py` checkpoints (`{'state_dict','state_dict_ema','optimizer','args',...}`)",
       "top-level `state_dict_ema`",
       (), {"model": Encoder(None, "state_dict"), "ema": Encoder(None, "state_dict_ema")},
       "model", roles=((r"^state_dict\.", "non-EMA weights"),),
       notes="`--encoder ema` takes the EMA weights"),
    _F("solo-learn", "solo-learn Lightning checkpoint",
       "vturrisi/solo-learn (Lightning `.ckpt` from solo/utils/checkpointer.py, its config in "
       "`args.json` beside it): `backbone.*` (torchvision names, fc removed), `projector.*`, "
       "`predictor.*`, `momentum_backbone.*`, `classifier.*`",
       "`pytorch-lightning_version`, named `backbone.conv1.weight`, and solo-learn's config "
       "(`method`, `backbone.name`, `data.dataset`) in `hyper_parameters` or a sibling `args.json`",
       ("state_dict",),
       {"online": Encoder("backbone."), "momentum": Encoder("momentum_backbone.")}, "online",
       notes="with `data.dataset` cifar10/100 solo-learn pads its 3x3 conv1 by 2 "
             "(solo/methods/base.py); the pad is kept (`stem_padding`)"),
    _F("lightning", "PyTorch Lightning checkpoint",
       "any LightningModule (`trainer.save_checkpoint`) with a ResNet under any name, e.g. a "
       "torchvision-named `self.backbone`",
       "`pytorch-lightning_version`, neither solo-learn's config nor lightly's layout",
       ("state_dict",),
       {"online": Encoder(None), "momentum": Encoder("momentum_backbone.")}, "online",
       notes="`online` is the only ResNet that is not a momentum copy; a CIFAR stem's padding is "
             "not in the file: 1 is assumed and said so (`--stem-padding`)"),
    _F("lightly", "lightly checkpoint (Lightning or plain PyTorch)",
       "lightly examples/benchmarks (Lightning `.ckpt`, or `torch.save(model.state_dict())` in "
       "examples/pytorch): `backbone = nn.Sequential(*resnet.children()[:-1])`, so `backbone.0.*` "
       "(conv1), `backbone.4.*` (layer1)...; also `model.backbone.*`, `backbone_momentum.*`, "
       "`projection_head.layers.*`, `prediction_head.layers.*` (lightly/models/modules/heads.py)",
       "lightly's own keys: `backbone_momentum.*`, `projection_head(_momentum).layers.*` / "
       "`prediction_head.layers.*`, or in a Lightning file the Sequential `(model.)backbone.N.*`",
       ("state_dict",),
       {"online": Encoder(None), "momentum": Encoder("backbone_momentum.")}, "online",
       notes="`online` is the only non-momentum ResNet in the checkpoint"),
    _F("unmix-cifar", "Un-Mix CIFAR demo (official)",
       "the official Un-Mix MoCo CIFAR demo: `{'epoch','state_dict','optimizer'}`, encoder "
       "`encoder_q.net.N.*` (nn.Sequential of ResNet children, max-pool removed), `encoder_k.net.*`, "
       "`queue`",
       "keys `encoder_q.net.*`",
       ("state_dict", "model"),
       {"query": Encoder("encoder_q.net."), "key": Encoder("encoder_k.net.")}, "query"),
    _F("moco", "MoCo v1/v2 (and Un-Mix ImageNet MoCo)",
       "facebookresearch/moco `main_moco.py` and the Un-Mix ImageNet MoCo release: "
       "`{'epoch','arch','state_dict','optimizer'}`, `module.encoder_q.*` (fc or fc.0/fc.2 MLP), "
       "`module.encoder_k.*`, `module.queue`",
       "keys `encoder_q.conv1.weight`",
       ("state_dict", "model"),
       {"query": Encoder("encoder_q."), "key": Encoder("encoder_k.")}, "query"),
    _F("moco-v3", "MoCo v3",
       "facebookresearch/moco-v3 `main_moco.py`: `module.base_encoder.*` (fc = projector MLP), "
       "`module.momentum_encoder.*`, `module.predictor.*`",
       "keys `base_encoder.*`",
       ("state_dict", "model"),
       {"base": Encoder("base_encoder."), "momentum": Encoder("momentum_encoder.")}, "base"),
    _F("byol", "BYOL (lucidrains/byol-pytorch learner)",
       "lucidrains/byol-pytorch: `learner.state_dict()` has `net.*` (the wrapped ResNet), "
       "`online_encoder.net.*` (same tensors), `online_encoder.projector.*`, "
       "`target_encoder.*`, `online_predictor.*`; saving `resnet.state_dict()` gives `torchvision`",
       "keys `online_encoder.net.*`",
       ("state_dict", "model"),
       {"online": Encoder("online_encoder.net."), "target": Encoder("target_encoder.net.")},
       "online"),
    _F("byol-sthalles", "BYOL (sthalles/PyTorch-BYOL)",
       "sthalles/PyTorch-BYOL trainer.py `save_model`: `{'online_network_state_dict', "
       "'target_network_state_dict', 'optimizer_state_dict'}`; each network "
       "(models/resnet_base_network.py) is `encoder = nn.Sequential(*list(resnet.children())[:-1])`"
       " (`encoder.0.weight` = conv1, `encoder.4.0.conv1.weight` = layer1...) and the projector "
       "`projetion.net.*` (sic); the predictor is not saved",
       "top-level `online_network_state_dict`",
       (),
       {"online": Encoder("encoder.", "online_network_state_dict"),
        "target": Encoder("encoder.", "target_network_state_dict")},
       "online", roles=((r"(^|\.)projetion\.", "projector"),
                        (r"^online_network_state_dict\.", "online network")),
       notes="the online network by default (the encoder BYOL evaluates); `--encoder target` "
             "takes the momentum (target) network"),
    _F("simclr", "SimCLR (common PyTorch ports)",
       "Spijkervet/SimCLR (`encoder.*`, `projector.*`, bare state dict) and sthalles/SimCLR "
       "(`{'epoch','arch','state_dict','optimizer'}`, `backbone.*` with the MLP in `backbone.fc.0/2`);"
       " tonylins/simclr-converter output is a torchvision state dict",
       "keys `encoder.conv1.weight` with `projector.*`, or `backbone.fc.0.weight`",
       ("state_dict", "model"),
       {"encoder": Encoder(None)}, "encoder"),
    _F("swav", "SwAV / DeepCluster-v2 (and Un-Mix SwAV)",
       "facebookresearch/swav releases and training checkpoints (`module.conv1...`, "
       "`module.projection_head.*`, `module.prototypes.weight` or `prototypes.prototypesN`), "
       "DeepCluster-v2 from the same repo, the Un-Mix SwAV release; resnet50w2 supported",
       "root `conv1.weight` with `projection_head.*` or `prototypes*`",
       ("state_dict", "model"),
       {"encoder": Encoder("")}, "encoder"),
    _F("vissl", "VISSL checkpoint (model zoo, phase or consolidated)",
       "facebookresearch/vissl: phase/iteration checkpoints (vissl/hooks/log_hooks.py: "
       "`{'phase_idx','iteration','loss','iteration_num','train_phase_idx','classy_state_dict'}`) "
       "and consolidated ones (vissl/utils/checkpoint.py: `{'type': 'consolidated', "
       "'classy_state_dict'}`), the trunk in `classy_state_dict.base_model.model.trunk` with keys "
       "`_feature_blocks.*` (or `base_model._feature_blocks.*`), heads in `...model.heads`, an EMA "
       "copy in `classy_state_dict.ema_model.model.trunk`; a bare trunk (`_feature_blocks.*`, "
       "also under `model_state_dict`)",
       "top-level `classy_state_dict`, or keys `_feature_blocks.conv1.weight`",
       (VISSL_TRUNK, "model_state_dict", "state_dict", "model"),
       {"trunk": Encoder(None), "ema": Encoder(None, "classy_state_dict.ema_model.model.trunk")},
       "trunk", renames=VISSL_RENAMES,
       roles=((r"^optimizer\.", "optimizer state"), (r"^loss\.", "loss state (queue, momentum encoder)"),
              (r"^base_model\.", "non-EMA weights")),
       notes="`_feature_blocks.` is dropped, as VISSL's own extra_scripts/"
             "convert_vissl_to_torchvision.py does; heads, the EMA copy, the optimizer state and "
             "the loss state (MoCo's queue and momentum encoder) are listed as dropped; ResNeXt "
             "trunks (`GROUPS > 1`) are refused"),
    _F("mmpretrain", "mmselfsup / mmpretrain (OpenMMLab, also an mmdet detector's backbone)",
       "OpenMMLab model zoo and training checkpoints (mmengine `Runner.save_checkpoint`: "
       "`{'meta','state_dict','message_hub','optimizer','param_schedulers'}`): `backbone.*`, "
       "`neck.*`, `head.*`; the momentum copy `encoder_k.module.0.*` (MoCo v2, DenseCL: "
       "mmpretrain/models/selfsup/moco.py, densecl.py), `target_net.module.0.*` (BYOL) or "
       "`momentum_encoder.module.0.*` (MoCo v3 and others)",
       "keys `backbone.*` with mmengine/mmcv's top-level `meta` or `message_hub`, or keys only "
       "OpenMMLab writes (`data_preprocessor.*`, `neck.*`, `encoder_k/target_net/momentum_encoder"
       ".module.*`)",
       ("state_dict", "model"),
       {"backbone": Encoder("backbone."),
        "momentum": Encoder("momentum_encoder.0.", also=("encoder_k.0.", "target_net.0."))},
       "backbone"),
    _F("barlowtwins", "Barlow Twins (official)",
       "facebookresearch/barlowtwins main.py `checkpoint.pth`: `{'epoch','model','optimizer'}`, "
       "model keys `module.backbone.*` (torchvision ResNet-50, fc = Identity), `module.projector.*`,"
       " `module.bn.*` (BatchNorm1d, affine=False); its final `resnet50.pth` is the backbone's "
       "state dict (format `torchvision`)",
       "keys `backbone.*`, `projector.*` and `bn.running_mean`",
       ("model", "state_dict"), {"backbone": Encoder("backbone.")}, "backbone",
       roles=((r"^bn\.", "projector"),)),
    _F("densecl", "DenseCL (official, OpenSelfSup)",
       "WXinlong/DenseCL (OpenSelfSup; mmcv `save_checkpoint`: `{'meta','state_dict','optimizer'}`):"
       " openselfsup/models/densecl.py `encoder_q = nn.Sequential(backbone, neck)`, `encoder_k` "
       "alike, `backbone = encoder_q[0]` (`backbone.*` and `encoder_q.0.*` are the same tensors), "
       "`queue`, `queue2`; tools/extract_backbone_weights.py keeps `backbone.*`",
       "keys `encoder_q.0.conv1.weight` and `queue2`",
       ("state_dict", "model"),
       {"query": Encoder("backbone.", also=("encoder_q.0.",)), "key": Encoder("encoder_k.0.")},
       "query"),
    _F("pixpro", "PixPro (official)",
       "zdaxie/PixPro main_pretrain.py `save_checkpoint`: `{'opt','model','optimizer','scheduler',"
       "'epoch'}`; contrast/models/PixPro.py: `module.encoder.*` (contrast/resnet.py, no fc), "
       "`module.projector.*`, `module.encoder_k.*`, `module.projector_k.*`, "
       "`module.value_transform.*`, with the instance branch `projector_instance(_k).*`, "
       "`predictor.*`; its detectron2 `.pkl` is format `detectron2`",
       "keys `encoder.conv1.weight`, `encoder_k.*` and `projector_k.*`",
       ("model", "state_dict"),
       {"encoder": Encoder("encoder."), "momentum": Encoder("encoder_k.")}, "encoder",
       roles=((r"^(projector_k|projector_instance_k)\.", "momentum encoder"),
              (r"^(projector_instance|value_transform)\.", "projector"))),
    _F("detectron2", "detectron2 `.pkl`",
       "MoCo's `convert-pretrain-to-detectron2.py` (and detectron2's torchvision converter): "
       "`{'model': {numpy arrays}, '__author__', 'matching_heuristics'}`, names `stem.conv1`, "
       "`stem.conv1.norm`, `resN.i.convK(.norm)`, `resN.i.shortcut(.norm)`; also "
       "`backbone.bottom_up.*` from detectron2 training",
       "keys `stem.conv1.weight` / `res2.*` (optionally under `backbone.bottom_up.`)",
       ("model", "state_dict"),
       {"encoder": Encoder(None)}, "encoder", renames=DETECTRON2_RENAMES,
       notes="read through a restricted unpickler (numpy arrays and containers only)"),
    _F("cifar-resnet", "CIFAR ResNet with `shortcut` blocks (lightly ResNetGenerator, kuangliu)",
       "lightly/models/resnet.py `ResNetGenerator('resnet-18'...)` and kuangliu/pytorch-cifar "
       "models/resnet.py (main.py saves `{'net','acc','epoch'}`, `module.` from DataParallel): "
       "conv1 3x3 padding 1, no max-pool, blocks with `shortcut.0/1` (1x1 conv, BN) instead of "
       "torchvision's `downsample`, classifier `linear`",
       "root `conv1.weight` and `layerN.M.shortcut.0.weight`",
       ("state_dict", "model", "net"), {"encoder": Encoder("")}, "encoder",
       notes="`shortcut` -> `downsample` (in every format, e.g. lightly's Lightning `backbone.N.*` "
             "of a ResNetGenerator), `linear` dropped as the head; the blocks are otherwise "
             "torchvision's; the naming is evidence for the stem padding (1)"),
    _F("torchvision", "torchvision / timm ResNet state dict",
       "torchvision and timm ResNet weights (`.pth`, `.safetensors`), DINO's released backbone, "
       "tonylins/simclr-converter, any bare `resnet.state_dict()`; wrapped in `state_dict` or "
       "`model` or not, with `module.`/`_orig_mod.` prefixes or not",
       "root `conv1.weight` and `layer1.0.conv1.weight`",
       ("state_dict", "model"), {"encoder": Encoder("")}, "encoder"),
    _F("sequential", "nn.Sequential of a ResNet's children",
       "`nn.Sequential(*list(resnet.children())[:-1])` saved directly (`0.weight` = conv1, "
       "`4.0.conv1.weight` = layer1...)",
       "root `N.weight` (3-channel conv) and `M.0.conv1.weight`",
       ("state_dict", "model"), {"encoder": Encoder(None)}, "encoder"),
    _F("generic", "generic ResNet state dict",
       "anything else: the only ResNet found under any prefix is taken (e.g. `backbone.*` that "
       "no library's own keys or metadata identify)",
       "fallback",
       ("state_dict", "model"), {"encoder": Encoder(None)}, "encoder"),
)}


# ----------------------------------------------------------------------------------- detection
def strip_wrappers(key: str) -> str:
    parts = [p for p in key.split(".") if p not in WRAPPER_SEGMENTS]
    return ".".join(parts)


def is_tensor_like(v: Any) -> bool:
    import numpy as np
    import torch

    return isinstance(v, (torch.Tensor, np.ndarray))


def is_state_dict(obj: Any) -> bool:
    if not isinstance(obj, Mapping) or not obj:
        return False
    values = list(obj.values())
    n = sum(is_tensor_like(v) for v in values)
    return n > 0 and n >= 0.5 * len(values)


def at_path(obj: Any, path: str) -> Any:
    """`obj['a']['b']` for path 'a.b' (a plain key when `obj` has it as such); None if absent."""
    if isinstance(obj, Mapping) and path in obj:
        return obj[path]
    for part in path.split("."):
        if not isinstance(obj, Mapping) or part not in obj:
            return None
        obj = obj[part]
    return obj


def unwrap(obj: Any, containers: tuple[str, ...]) -> tuple[Mapping[str, Any], str | None]:
    """The state dict of `obj`: `obj` itself if bare, else the first of `containers` present."""
    if is_state_dict(obj):
        return obj, None
    if isinstance(obj, Mapping):
        for c in containers:
            if is_state_dict(at_path(obj, c)):
                return at_path(obj, c), c
            # Some wrappers nest once more, e.g. {'model': {'state_dict': ...}}.
            if c in obj and isinstance(obj[c], Mapping):
                for c2 in containers:
                    if is_state_dict(obj[c].get(c2)):
                        return obj[c][c2], f"{c}.{c2}"
    return {}, None


def _keys(obj: Any, extra: tuple[str, ...] = ()) -> list[str]:
    sd, _ = unwrap(obj, ("state_dict", "model") + extra)
    return [strip_wrappers(str(k)) for k in sd]


def _any(keys: list[str], pattern: str) -> bool:
    rx = re.compile(pattern)
    return any(rx.search(k) for k in keys)


def _has_top(obj: Any, *names: str) -> bool:
    return isinstance(obj, Mapping) and all(n in obj for n in names)


# Keys only lightly's models have (lightly/models/modules/heads.py heads keep `self.layers`; its
# examples build `backbone = nn.Sequential(*resnet.children()[:-1])` and `backbone_momentum`).
LIGHTLY_KEYS = (r"^(model\.)?backbone_momentum\.|"
                r"^(model\.)?(projection_head|prediction_head)(_momentum)?\.layers\.")

# Ordered: the first predicate that holds names the format. Each looks only at the structure.
# Each predicate gets (object, its keys, sidecar files found beside the checkpoint).
DETECTORS: tuple[tuple[str, Callable[[Any, list[str], Any], bool]], ...] = (
    ("unmix-pretrain", lambda o, k, s: isinstance(o, Mapping) and o.get("format") == "unmix-pretrain"),
    ("unmix-converted", lambda o, k, s: isinstance(o, Mapping) and isinstance(o.get("meta"), Mapping)
     and "converter_version" in o["meta"] and "state_dict" in o),
    ("dino", lambda o, k, s: _has_top(o, "teacher", "student")),
    ("timm-train", lambda o, k, s: _has_top(o, "state_dict_ema")),
    ("vissl", lambda o, k, s: _has_top(o, "classy_state_dict")
     or _any(_keys(o, ("model_state_dict",)), r"^(base_model\.)?_feature_blocks\.conv1\.weight$")),
    ("solo-learn", lambda o, k, s: _has_top(o, "pytorch-lightning_version")
     and _any(k, r"^backbone\.conv1\.weight$") and find_solo_learn_cfg(o, s)[0] is not None),
    ("lightly", lambda o, k, s: _any(k, LIGHTLY_KEYS) or (
        _has_top(o, "pytorch-lightning_version") and _any(k, r"^(model\.)?backbone\.\d+\."))),
    ("lightning", lambda o, k, s: _has_top(o, "pytorch-lightning_version")),
    ("densecl", lambda o, k, s: _any(k, r"^encoder_q\.0\.conv1\.weight$") and _any(k, r"^queue2$")),
    ("pixpro", lambda o, k, s: _any(k, r"^encoder\.conv1\.weight$") and _any(k, r"^encoder_k\.")
     and _any(k, r"^projector_k\.")),
    ("barlowtwins", lambda o, k, s: _any(k, r"^backbone\.") and _any(k, r"^projector\.")
     and _any(k, r"^bn\.running_mean$")),
    ("byol-sthalles", lambda o, k, s: _has_top(o, "online_network_state_dict")),
    ("unmix-cifar", lambda o, k, s: _any(k, r"^encoder_q\.net\.")),
    ("moco", lambda o, k, s: _any(k, r"^encoder_q\.conv1\.weight$")),
    ("moco-v3", lambda o, k, s: _any(k, r"^base_encoder\.")),
    ("byol", lambda o, k, s: _any(k, r"^online_encoder\.net\.")),
    ("simclr", lambda o, k, s: (_any(k, r"^encoder\.conv1\.weight$") and _any(k, r"^projector\."))
     or (_any(k, r"^backbone\.fc\.0\.weight$") and all(x.startswith("backbone.") for x in k))),
    ("swav", lambda o, k, s: _any(k, r"^conv1\.weight$")
     and _any(k, r"^(projection_head\.|prototypes)")),
    ("detectron2", lambda o, k, s: _any(k, r"^(backbone\.bottom_up\.)?(stem\.conv1\.|res2\.0\.)")),
    ("mmpretrain", lambda o, k, s: _any(k, r"^backbone\.") and (
        _has_top(o, "meta") or _has_top(o, "message_hub")
        or _any(k, r"^(data_preprocessor|neck)\.|^(encoder_k|target_net|momentum_encoder)\.module\."))),
    ("cifar-resnet", lambda o, k, s: _any(_keys(o, ("net",)), r"^layer[1-4]\.\d+\.shortcut\.0\.weight$")
     and _any(_keys(o, ("net",)), r"^conv1\.weight$")),
    ("torchvision", lambda o, k, s: _any(k, r"^conv1\.(0\.)?weight$") and _any(k, r"^layer1\.0\.")),
    ("sequential", lambda o, k, s: _any(k, r"^\d+\.weight$") and _any(k, r"^\d+\.0\.conv1\.weight$")),
)


def detect(obj: Any, sidecar: Mapping[str, Any] | None = None) -> str | None:
    keys = _keys(obj)
    for name, pred in DETECTORS:
        if pred(obj, keys, sidecar):
            return name
    return "generic" if keys else None


def role_of(key: str, fmt: Format) -> str:
    for pattern, role in fmt.roles + ROLE_RULES:
        if re.search(pattern, key):
            return role
    return "other"


def table_rows() -> list[str]:
    """docs/convert.md's format table, one Markdown row per format (a test keeps them equal)."""
    rows = []
    for f in FORMATS.values():
        encs = ", ".join(f"`{n}`" + (" (default)" if n == f.default_encoder else "") for n in f.encoders)
        rows.append(f"| `{f.name}` | {f.title}: {f.source} | {f.detected_by} | {encs}."
                    f"{' ' + f.notes if f.notes else ''} |")
    return rows
