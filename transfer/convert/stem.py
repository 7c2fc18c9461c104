"""The padding of a CIFAR stem (3x3 stride-1 conv1), decided from evidence, never guessed silently.

Padding is not in the weights: a 3x3 conv1 padded by 1 and one padded by 2 have the same tensors
but different feature maps (at 32 px, C5 is 4x4 vs 5x5). The evidence, strongest first:
1. `--stem-padding N` (the user knows);
2. the file's own metadata (`meta.stem_padding` of an unmix pretraining checkpoint);
3. solo-learn's config: solo/methods/base.py replaces a ResNet's conv1 by
   `Conv2d(3, 64, 3, stride=1, padding=2)` exactly when `cfg.data.dataset` is cifar10/cifar100.
   solo-learn itself keeps its config out of the checkpoint (it never calls
   `save_hyperparameters`; solo/utils/checkpointer.py writes it to `args.json` beside the
   `.ckpt`), so both places are read: the Lightning `hyper_parameters` and a sibling `args.json`;
4. a layout that names its library (lightly's `ResNetGenerator`, kuangliu-style CIFAR ResNets:
   padding 1 in lightly/models/resnet.py);
5. otherwise the common value 1 (torchvision-style 3x3 conv, the Un-Mix CIFAR demo, lightly),
   recorded as an assumption that the summary prints and `meta.assumptions` keeps.
"""
from __future__ import annotations

from typing import Any, Mapping

SOLO_CIFAR_DATASETS = ("cifar10", "cifar100")
SOLO_CIFAR_PADDING = 2    # solo/methods/base.py: nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=2)
COMMON_CIFAR_PADDING = 1
# lightly/models/resnet.py (ResNetGenerator) and kuangliu/pytorch-cifar models/resnet.py, the
# CIFAR ResNets whose blocks say `shortcut`: nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1).
SHORTCUT_PADDING = 1
SHORTCUT_LAYOUT = ("the `shortcut` block naming of lightly's ResNetGenerator / kuangliu's CIFAR "
                   "ResNet (lightly/models/resnet.py, kuangliu/pytorch-cifar models/resnet.py: padding 1)")
ASSUMED = (f"CIFAR stem padding {COMMON_CIFAR_PADDING} assumed: the file does not record it "
           "(pass --stem-padding N if the source padded its 3x3 conv1 otherwise)")


def _get(d: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(d, Mapping) or p not in d:
            return None
        d = d[p]
    return d


def is_solo_learn_cfg(cfg: Any) -> bool:
    """solo-learn's own config (main_pretrain.py's omegaconf cfg, as a plain mapping): `method`,
    `backbone.name`, `data.dataset` are keys every solo-learn config has."""
    return (isinstance(cfg, Mapping) and isinstance(cfg.get("method"), str)
            and isinstance(_get(cfg, "backbone", "name"), str)
            and isinstance(_get(cfg, "data", "dataset"), str))


def find_solo_learn_cfg(obj: Any, sidecar: Mapping[str, Any] | None) -> tuple[Mapping | None, str]:
    """(solo-learn config, where it was found) from the checkpoint's hyper-parameters (bare or
    under `cfg`) or a sibling `args.json`; (None, '') when there is none."""
    hp = obj.get("hyper_parameters") if isinstance(obj, Mapping) else None
    for cfg, where in ((hp, "hyper_parameters"), (_get(hp, "cfg"), "hyper_parameters.cfg"),
                       ((sidecar or {}).get("args.json"), "args.json beside the checkpoint")):
        if is_solo_learn_cfg(cfg):
            return cfg, where
    return None, ""


def cifar_padding(*, explicit: int | None, file_meta: Mapping[str, Any], solo_cfg: Mapping | None,
                  solo_where: str, layout_padding: int | None, layout_name: str
                  ) -> tuple[int, str, bool]:
    """(padding, where it comes from, whether it is an assumption)."""
    if explicit is not None:
        return int(explicit), "--stem-padding", False
    if file_meta.get("stem_padding") is not None:
        return int(file_meta["stem_padding"]), "the checkpoint's meta.stem_padding", False
    if solo_cfg is not None:
        dataset = str(_get(solo_cfg, "data", "dataset"))
        if dataset in SOLO_CIFAR_DATASETS and str(_get(solo_cfg, "backbone", "name")).startswith("resnet"):
            return SOLO_CIFAR_PADDING, f"solo-learn config ({solo_where}: data.dataset={dataset})", False
    if layout_padding is not None:
        return layout_padding, layout_name, False
    return COMMON_CIFAR_PADDING, "assumed", True
