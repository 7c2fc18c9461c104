"""Detection fine-tuning protocols: a plain registry, BN modes and linear lr scaling.

A protocol is an mmengine config in `configs/transfer/` (a thin override of mmdet's own config)
plus the metadata a result record needs. Everything that depends on the run rather than on the
protocol (the checkpoint, the BN mode, the real total batch, the data root) is applied here to a
loaded `mmengine.Config`, so the config saved in the work dir is exactly what ran.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from transfer.detection import schedule
from transfer.detection.datacheck import walk
from unmix.core.errors import Refused, UnmixError

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "transfer"

_VOC = {"dataset": "voc", "train_split": "VOC2007+VOC2012 trainval", "test_split": "VOC2007 test"}
_COCO = {"dataset": "coco", "train_split": "train2017", "test_split": "val2017"}
_PAPER = "Un-Mix paper (arXiv 2003.05438v1) section 4.3"
_MMDET1 = "mmdetection 1.x (v1.1.0) recipe on mmdet 3.3"
_MOCO = "MoCo detection/configs (detectron2 v0.1.1) on mmdet 3.3"
_FPN_1333 = "1333x800 train and test"
_C4_VOC_SCALE = "shorter side 480-800 train, 800 test (max 1333)"

# name -> metadata. `variant` says whose recipe a protocol is: `paper-mmdet1x` (the Un-Mix paper's
# protocol with mmdetection 1.x's settings, what the paper ran), `mmdet3` (the same protocol on
# mmdet 3.3's settings), `mmselfsup` (mmselfsup 1.x's benchmark configs), `moco-detectron2`
# (MoCo's detectron2 configs). `multi_scale`: training picks a shorter side per image;
# `precise_bn`: the config runs PreciseBNHook; `head_norm`: the neck and RoI heads have norm
# layers (they follow --bn). Every setting and its source: docs/transfer.md.
PROTOCOLS: dict[str, dict[str, Any]] = {
    "voc-faster-rcnn-fpn": {
        **_VOC, "config": "voc-faster-rcnn-fpn.py", "detector": "Faster R-CNN R50-FPN",
        "layout": "fpn", "default_bn": "finetune", "image_scale": "1000x600 train and test",
        "variant": "paper-mmdet1x", "source": f"{_PAPER}, Table 7; {_MMDET1}"},
    "voc-faster-rcnn-fpn-mmdet3": {
        **_VOC, "config": "voc-faster-rcnn-fpn-mmdet3.py", "detector": "Faster R-CNN R50-FPN",
        "layout": "fpn", "default_bn": "finetune", "image_scale": "1000x600 train and test",
        "variant": "mmdet3", "source": f"{_PAPER}, Table 7; mmdet 3.3 recipe"},
    "coco-retinanet-fpn": {
        **_COCO, "config": "coco-retinanet-fpn.py", "detector": "RetinaNet R50-FPN",
        "layout": "fpn", "default_bn": "frozen", "image_scale": _FPN_1333,
        "variant": "paper-mmdet1x", "source": f"{_PAPER}, Table 8a; {_MMDET1}"},
    "coco-retinanet-fpn-mmdet3": {
        **_COCO, "config": "coco-retinanet-fpn-mmdet3.py", "detector": "RetinaNet R50-FPN",
        "layout": "fpn", "default_bn": "frozen", "image_scale": _FPN_1333,
        "variant": "mmdet3", "source": f"{_PAPER}, Table 8a; mmdet 3.3 recipe"},
    "coco-mask-rcnn-fpn": {
        **_COCO, "config": "coco-mask-rcnn-fpn.py", "detector": "Mask R-CNN R50-FPN",
        "layout": "fpn", "default_bn": "frozen", "image_scale": _FPN_1333,
        "variant": "paper-mmdet1x", "source": f"{_PAPER}, Table 8b; {_MMDET1}"},
    "coco-mask-rcnn-fpn-mmdet3": {
        **_COCO, "config": "coco-mask-rcnn-fpn-mmdet3.py", "detector": "Mask R-CNN R50-FPN",
        "layout": "fpn", "default_bn": "frozen", "image_scale": _FPN_1333,
        "variant": "mmdet3", "source": f"{_PAPER}, Table 8b; mmdet 3.3 recipe"},
    "coco-mask-rcnn-fpn-mmselfsup": {
        **_COCO, "config": "coco-mask-rcnn-fpn-mmselfsup.py", "detector": "Mask R-CNN R50-FPN",
        "layout": "fpn", "default_bn": "sync", "multi_scale": True, "head_norm": True,
        "image_scale": "shorter side 640-800 train, 800 test (max 1333)", "variant": "mmselfsup",
        "source": "mmselfsup 1.x benchmarks/mmdetection/coco/mask-rcnn_r50_fpn_ms-1x_coco.py"},
    "voc-faster-rcnn-c4": {
        **_VOC, "config": "voc-faster-rcnn-c4.py", "detector": "Faster R-CNN R50-C4",
        "layout": "c4", "default_bn": "sync", "multi_scale": True, "precise_bn": True,
        "image_scale": _C4_VOC_SCALE, "variant": "moco-detectron2",
        "source": f"{_MOCO}: pascal_voc_R_50_C4_24k_moco.yaml"},
    "voc-faster-rcnn-c4-mmselfsup": {
        **_VOC, "config": "voc-faster-rcnn-c4-mmselfsup.py", "detector": "Faster R-CNN R50-C4",
        "layout": "c4", "default_bn": "sync", "multi_scale": True,
        "image_scale": _C4_VOC_SCALE, "variant": "mmselfsup",
        "source": "mmselfsup 1.x benchmarks/mmdetection/voc0712/faster-rcnn_r50-c4_ms-24k_voc0712.py"},
    "coco-mask-rcnn-c4-2x": {
        **_COCO, "config": "coco-mask-rcnn-c4-2x.py", "detector": "Mask R-CNN R50-C4",
        "layout": "c4", "default_bn": "sync", "multi_scale": True, "precise_bn": True,
        "image_scale": "shorter side 640-800 train, 800 test (max 1333)",
        "variant": "moco-detectron2", "source": f"{_MOCO}: coco_R_50_C4_2x_moco.yaml"},
}

# --bn modes -> (norm type, affine trained, norm_eval). "finetune" is the paper's "No Freeze",
# "frozen" its "Freeze BN" (affine and statistics fixed), "sync" SyncBN across processes.
BN_MODES: dict[str, tuple[str, bool, bool]] = {
    "finetune": ("BN", True, False),
    "frozen": ("BN", False, True),
    "sync": ("SyncBN", True, False),
}

# Our metrics (transfer/detection/metrics.py) and datasets (transfer/detection/datasets.py) replace mmdet's when they
# are registered: same behaviour, plus bad-box accounting and the record's metric set.
UNMIX_METRICS = {"VOCMetric": "UnmixVOCMetric", "CocoMetric": "UnmixCocoMetric"}
UNMIX_DATASETS = {"VOCDataset": "UnmixVOCDataset", "CocoDataset": "UnmixCocoDataset"}


def register_modules() -> None:
    """Prepare the stack and register our mmdet modules (datasets, metrics, the C4 head, the
    Precise-BN hook, the CIFAR-stem backbone), which configs name by type and `use_unmix_*`
    looks up, and the atomic file backend fine-tuning saves checkpoints through."""
    from transfer.stack import ensure_stack

    ensure_stack()
    from transfer.detection import checkpoints, datasets, heads, metrics, precise_bn, progress, show  # noqa: F401
    from transfer.stack import backbones  # noqa: F401  (registration)

    checkpoints.register_backend()  # atomic checkpoint saves


def get(name: str) -> dict[str, Any]:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise UnmixError(f"--protocol: unknown protocol {name!r} "
                         f"(choose from {', '.join(PROTOCOLS)})") from None


def config_path(name: str) -> Path:
    return CONFIG_DIR / get(name)["config"]


def load_config(name: str):
    """The protocol's full-size config, as mmengine resolves it (needs `ensure_stack()`)."""
    from mmengine.config import Config

    return Config.fromfile(str(config_path(name)))


def warn(msg: str) -> None:
    """Loud: stderr always, and the mmengine log when a logger exists."""
    print(f"unmix finetune: WARNING: {msg}", file=sys.stderr, flush=True)
    try:
        from mmengine.logging import MMLogger

        if MMLogger.check_instance_created("mmengine") or MMLogger._instance_dict:
            MMLogger.get_current_instance().warning(msg)
    except Exception:
        pass


def resolve_bn(requested: str, world_size: int, cuda: bool) -> tuple[str, str | None]:
    """(mode actually used, note). SyncBN needs more than one process, and CUDA."""
    if requested not in BN_MODES:
        raise UnmixError(f"--bn: unknown mode {requested!r} (choose from {', '.join(BN_MODES)})")
    if requested != "sync":
        return requested, None
    if world_size <= 1:
        return "finetune", ("SyncBN requested but this is a single process: plain BN trained "
                            "(norm_eval=False) was used instead; statistics are per-process")
    if not cuda:
        return "finetune", ("SyncBN requested but torch's SyncBatchNorm needs CUDA: plain BN "
                            f"trained per process was used on {world_size} CPU processes")
    return "sync", None


def apply_bn(cfg, layout: str, mode: str, head_norm: bool = False) -> None:
    """Set the backbone's (and, for C4, the res5 head's) norm. New layers keep no norm, unless
    the protocol has norms there (`head_norm`, mmselfsup's FPN): those are always trained, SyncBN
    in `sync` mode and plain BN otherwise (nothing pretrained to freeze)."""
    norm_type, affine, norm_eval = BN_MODES[mode]
    norm_cfg = dict(type=norm_type, requires_grad=affine)
    targets = [cfg.model.backbone]
    if layout == "c4":
        targets.append(cfg.model.roi_head.shared_head)
    for part in targets:
        part.norm_cfg = dict(norm_cfg)
        part.norm_eval = norm_eval
    if head_norm:
        new_layers = [cfg.model.neck] + [cfg.model.roi_head[k] for k in ("bbox_head", "mask_head")
                                         if cfg.model.roi_head.get(k)]
        for part in new_layers:
            part.norm_cfg = dict(type=norm_type, requires_grad=True)


def stage_channels(depth: int, base_channels: int = 64) -> list[int]:
    """Output channels of ResNet stages C2..C5."""
    expansion = 1 if depth in (18, 34) else 4
    return [base_channels * 2**i * expansion for i in range(4)]


def apply_backbone(cfg, layout: str, backbone: dict[str, Any] | None) -> None:
    """Point the detector at the converted backbone and fit the necks/heads to its widths.

    `backbone` is `mmdet_backbone_cfg(...)` (depth, stem/base channels, type, init_cfg), or None
    for the random-init baseline.
    """
    if backbone:
        # The protocol owns the backbone's structure (C4: 3 stages, C4 output only).
        structural = ("num_stages", "out_indices", "strides", "dilations", "style")
        cfg.model.backbone.update({k: v for k, v in backbone.items() if k not in structural})
    depth = int(cfg.model.backbone.get("depth", 50))
    base = int(cfg.model.backbone.get("base_channels", 64))
    chans = stage_channels(depth, base)
    if layout == "fpn":
        cfg.model.neck.in_channels = chans
    else:
        if base != 64:
            raise UnmixError(f"the C4 protocol needs a standard-width ResNet (mmdet's ResLayer "
                             f"has no base_channels); this checkpoint has base width {base}")
        head = cfg.model.roi_head
        head.shared_head.depth = depth
        cfg.model.rpn_head.in_channels = chans[2]
        cfg.model.rpn_head.feat_channels = chans[2]
        head.bbox_roi_extractor.out_channels = chans[2]
        head.bbox_head.in_channels = chans[3]
        if head.get("mask_head"):  # Mask R-CNN C4: the mask head reads res5 features too
            head.mask_head.in_channels = chans[3]
        init = (backbone or {}).get("init_cfg")
        # res5 of the checkpoint initialises the shared head: its `layer4.*` keys match as they are.
        head.shared_head.init_cfg = dict(init) if init else None
    if not backbone or not backbone.get("init_cfg"):
        cfg.model.backbone.init_cfg = None
        # A random backbone has nothing worth freezing.
        cfg.model.backbone.frozen_stages = -1


def base_lr(cfg) -> tuple[float, int]:
    """(lr, total batch it is meant for) as the protocol config states them."""
    return float(cfg.optim_wrapper.optimizer.lr), int(cfg.auto_scale_lr.base_batch_size)


def scale_lr(cfg, total_batch: int) -> dict[str, Any]:
    """Linear scaling rule: lr = base_lr * total_batch / base_batch. Writes it into cfg."""
    lr0, batch0 = base_lr(cfg)
    lr = lr0 * total_batch / batch0
    cfg.optim_wrapper.optimizer.lr = lr
    cfg.auto_scale_lr = dict(enable=False, base_batch_size=batch0)  # never scale twice
    return {"lr": lr, "lr_base": lr0, "lr_base_batch": batch0}


def data_root_of(cfg) -> str | None:
    for d in walk(cfg.test_dataloader):
        if "data_root" in d:
            return d["data_root"]
    return None


def set_data_root(cfg, root: str) -> None:
    """Move every dataset (and the COCO metric's annotation file) under `root`."""
    root = str(root).rstrip("/") + "/"
    old = data_root_of(cfg)
    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        for d in walk(cfg.get(key)):
            if "data_root" in d:
                d["data_root"] = root
    for key in ("val_evaluator", "test_evaluator"):
        for d in walk(cfg.get(key)):
            ann = d.get("ann_file")
            if isinstance(ann, str) and old and ann.startswith(old):
                d["ann_file"] = root + ann[len(old):].lstrip("/")


def use_unmix_metrics(cfg) -> list[str]:
    """Swap mmdet's VOC/COCO metrics for ours where ours are registered. Returns the types used."""
    from mmdet.registry import METRICS

    used = []
    for key in ("val_evaluator", "test_evaluator"):
        ev = cfg.get(key)
        if ev is None:  # an mmdet config with a test loop only (unmix evaluate CONFIG CKPT)
            continue
        metrics = list(ev) if isinstance(ev, (list, tuple)) else [ev]
        new = []
        for d in metrics:
            d = dict(d)
            ours = UNMIX_METRICS.get(d.get("type"))
            if ours and METRICS.get(ours) is not None:
                if ours == "UnmixVOCMetric":
                    if any(m["type"] == ours for m in new):
                        continue  # ours reports AP50/AP/AP75/recall in one metric
                    d = dict(type=ours, eval_mode=d.get("eval_mode", "11points"))
                else:
                    d["type"] = ours
            new.append(d)
            used.append(d["type"])
        cfg[key] = new[0] if len(new) == 1 else new
    return sorted(set(used))


def use_unmix_datasets(cfg) -> None:
    from mmdet.registry import DATASETS

    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        for d in walk(cfg.get(key)):
            ours = UNMIX_DATASETS.get(d.get("type"))
            if ours and DATASETS.get(ours) is not None:
                d["type"] = ours


def check_data(cfg, dataset: str) -> None:
    """Clear errors for a missing data root/split, before any worker starts; normalises a VOC
    root given as the parent of VOCdevkit/ (transfer.detection.datasets)."""
    from transfer.detection import datasets

    root = data_root_of(cfg)
    if not root:
        return
    if dataset == "voc":
        found = datasets.check_voc_root(root)
    else:
        found = datasets.check_coco_root(root)
    if Path(found.path) != Path(root):
        set_data_root(cfg, str(found.path))


def _voc_fpn_smoke(scale: tuple[int, int], bbox_min_size: bool) -> dict[str, Any]:
    # 4 epochs over a 3x repeated VOC07+12 -> 1 epoch over the data once.
    opts: dict[str, Any] = {"train_dataloader.dataset.times": 1}
    for i in (0, 1):
        ds = f"train_dataloader.dataset.dataset.datasets.{i}"
        opts[f"{ds}.pipeline.2.scale"] = scale
        opts[f"{ds}.filter_cfg.min_size"] = 8
        if bbox_min_size:  # mmdet 3.3's 32-px filter, scaled to the small images
            opts[f"{ds}.filter_cfg.bbox_min_size"] = 4
    # mmdet's VOC schedule is one MultiStepLR by epoch (no warm-up, as 1.x's VOC config).
    opts.update({"train_cfg.max_epochs": 1, "param_scheduler.0.end": 1,
                 "param_scheduler.0.milestones": [1]})
    return opts


def _iter_smoke(iters: int) -> dict[str, Any]:
    """An iteration-based schedule (the C4 protocols) cut to `iters` iterations."""
    return {"train_cfg.max_iters": iters, "train_cfg.val_interval": iters,
            "param_scheduler.0.end": schedule.MIN_WARMUP, "param_scheduler.1.end": iters,
            "param_scheduler.1.milestones": [iters], "default_hooks.checkpoint.interval": iters}


def _voc_c4_smoke(scale: tuple[int, int], iters: int) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for i in (0, 1):
        opts[f"train_dataloader.dataset.datasets.{i}.pipeline.2.scales"] = [scale]
        opts[f"train_dataloader.dataset.datasets.{i}.filter_cfg.min_size"] = 8
    opts.update(_iter_smoke(iters))
    return opts


def _coco_smoke(scale: tuple[int, int], multi_scale: bool, iters: int | None) -> dict[str, Any]:
    opts: dict[str, Any] = {"train_dataloader.dataset.filter_cfg.min_size": 8}
    if multi_scale:
        opts["train_dataloader.dataset.pipeline.2.scales"] = [scale]
    else:
        opts["train_dataloader.dataset.pipeline.2.scale"] = scale
    if iters is not None:
        opts.update(_iter_smoke(iters))
    else:
        opts.update({"train_cfg.max_epochs": 1, "param_scheduler.0.end": schedule.MIN_WARMUP,
                     "param_scheduler.1.end": 1, "param_scheduler.1.milestones": [1]})
    return opts


def smoke_options(name: str, scale: tuple[int, int] = (128, 96), batch: int = 2,
                  iters: int = 2) -> dict[str, Any]:
    """cfg-options that shrink a protocol to a CPU smoke run: small images, `batch` per process,
    no dataloader workers, `iters` training iterations then one evaluation. The full-size settings
    stay in the config files; this is for tests, the demo and benchmarks."""
    meta = get(name)
    layout, ds = meta["layout"], meta["dataset"]
    opts: dict[str, Any] = {"train_dataloader.batch_size": batch,
                            "default_hooks.logger.interval": 1, "log_processor.window_size": 1}
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        opts[f"{loader}.num_workers"] = 0
        opts[f"{loader}.persistent_workers"] = False
    # Fewer proposals/RoIs: the CPU cost of a smoke run is mostly RoI heads and NMS.
    if "retinanet" in name:
        opts["model.test_cfg.nms_pre"] = 100
    else:
        opts.update({"model.train_cfg.rpn_proposal.nms_pre": 200,
                     "model.train_cfg.rpn_proposal.max_per_img": 100,
                     "model.train_cfg.rcnn.sampler.num": 32,
                     "model.test_cfg.rpn.nms_pre": 200,
                     "model.test_cfg.rpn.max_per_img": 50})
    if ds == "voc" and layout == "fpn":
        opts.update(_voc_fpn_smoke(scale, bbox_min_size=meta["variant"] == "mmdet3"))
    elif ds == "voc":
        opts.update(_voc_c4_smoke(scale, iters))
    else:
        opts.update(_coco_smoke(scale, meta.get("multi_scale", False),
                                iters if layout == "c4" else None))
    if meta.get("precise_bn"):
        opts["custom_hooks.0.num_iters"] = iters  # 200 batches in the protocol
    opts["val_dataloader.dataset.pipeline.1.scale"] = scale
    opts["test_dataloader.dataset.pipeline.1.scale"] = scale
    return opts


def refuse_cifar_stem(stem: str | None, source: str) -> None:
    """A CIFAR/STL stem (3x3 stride-1 conv1, no max-pool) has C2..C5 at strides 1/2/4/8 where
    every protocol's anchors (FPN: strides 4-64; C4: 16) and RoI extractors (featmap_strides) assume
    4/8/16/32: its boxes would come out 4x off and its maps cost 16x the memory. Refused, not
    adapted: such encoders are evaluated with `unmix knn` / `unmix linear` on their own images."""
    if stem == "cifar":
        raise Refused(f"{source}: a CIFAR-stem encoder (3x3 stride-1 conv1, no max-pool): its feature "
                      "strides are 1/2/4/8, while the detection protocols' anchors and RoI layers "
                      "assume 4/8/16/32; evaluate it with `unmix knn` or `unmix linear`, or pretrain "
                      "with model.stem='imagenet' for detection")


def detector_name(template: str, backbone: dict) -> str:
    """The protocol's detector name with the backbone actually built: 'Faster R-CNN R50-FPN'
    becomes 'Faster R-CNN R18-FPN' for depth 18, 'R50w2' for SwAV's double width, and says so for
    a CIFAR stem. Records and report titles must not claim a ResNet-50 that was not used."""
    depth = int(backbone.get("depth", 50))
    width = int(backbone.get("base_channels", 64)) // 64
    name = template.replace("R50", f"R{depth}" + (f"w{width}" if width > 1 else ""), 1)
    if "cifar" in str(backbone.get("type", "")).lower():
        name += " (CIFAR stem)"
    return name
