"""Every detection protocol and variant, resolved as mmengine resolves it, item by item against its
source: mmdetection 1.x's configs (v1.1.0, 4c21f7ff) for the paper's FPN protocols, mmdet 3.3's
for the -mmdet3 variants, mmselfsup 1.x's benchmark configs (v1.0.0) for the -mmselfsup
variants, and MoCo's detectron2 configs (90e244a2) with detectron2 v0.1.1's defaults for the C4
protocols. The expected values are written here from those files (see docs/transfer.md)."""
import inspect

import pytest
import torch

from transfer.stack import ensure_stack

ensure_stack()

from mmengine.config import Config  # noqa: E402

from transfer.detection import protocols  # noqa: E402
from unmix.demo import toydata  # noqa: E402

protocols.register_modules()
TV_MEAN, TV_STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
CAFFE_MEAN = [103.53, 116.28, 123.675]

PAPER_FPN = ("voc-faster-rcnn-fpn", "coco-retinanet-fpn", "coco-mask-rcnn-fpn")
MMDET3_FPN = tuple(f"{n}-mmdet3" for n in PAPER_FPN)
MOCO_C4 = ("voc-faster-rcnn-c4", "coco-mask-rcnn-c4-2x")
ALL = PAPER_FPN + MMDET3_FPN + MOCO_C4 + ("coco-mask-rcnn-fpn-mmselfsup",
                                         "voc-faster-rcnn-c4-mmselfsup")

_cache: dict = {}


def load(name: str) -> Config:
    if name not in _cache:
        _cache[name] = protocols.load_config(name)
    return Config(_cache[name].to_dict())  # a private copy per test


def train_sets(cfg) -> list:
    ds = cfg.train_dataloader.dataset
    while "dataset" in ds:  # RepeatDataset
        ds = ds.dataset
    return list(ds.datasets) if "datasets" in ds else [ds]


def roi_layers(cfg) -> list:
    head = cfg.model.get("roi_head") or {}
    return [head[k].roi_layer for k in ("bbox_roi_extractor", "mask_roi_extractor")
            if head.get(k)]


def box_losses(cfg) -> list:
    if cfg.model.type == "RetinaNet":
        return [cfg.model.bbox_head.loss_bbox]
    return [cfg.model.rpn_head.loss_bbox, cfg.model.roi_head.bbox_head.loss_bbox]


def schedulers(cfg) -> dict:
    return {s.type: s for s in cfg.param_scheduler}


# ------------------------------------------------------------------------------ all of them

VARIANTS = {"voc-faster-rcnn-fpn": "paper-mmdet1x", "coco-retinanet-fpn": "paper-mmdet1x",
            "coco-mask-rcnn-fpn": "paper-mmdet1x", "voc-faster-rcnn-fpn-mmdet3": "mmdet3",
            "coco-retinanet-fpn-mmdet3": "mmdet3", "coco-mask-rcnn-fpn-mmdet3": "mmdet3",
            "coco-mask-rcnn-fpn-mmselfsup": "mmselfsup", "voc-faster-rcnn-c4-mmselfsup": "mmselfsup",
            "voc-faster-rcnn-c4": "moco-detectron2", "coco-mask-rcnn-c4-2x": "moco-detectron2"}


def test_the_registry_holds_every_protocol_and_variant():
    assert set(protocols.PROTOCOLS) == set(ALL) == set(VARIANTS)
    for name, meta in protocols.PROTOCOLS.items():
        assert meta["variant"] == VARIANTS[name] and protocols.config_path(name).stem == name
        assert meta["layout"] == ("c4" if "-c4" in name else "fpn")
        assert meta["dataset"] == name.split("-")[0]
        assert bool(meta.get("precise_bn")) == (name in MOCO_C4)
        cfg = load(name)
        hooks = [h.type for h in cfg.get("custom_hooks", [])]
        assert ("PreciseBNHook" in hooks) == bool(meta.get("precise_bn"))
    from transfer.report.tables import DETECTION_SPECS

    assert set(DETECTION_SPECS) == set(ALL)
    c4_coco = DETECTION_SPECS["coco-mask-rcnn-c4-2x"]
    assert [m.text for m in c4_coco.metrics] == ["APbb", "AP50bb", "AP75bb", "APmk", "AP50mk", "AP75mk"]
    assert [m.key for m in c4_coco.metrics] == ["bbox_AP", "bbox_AP50", "bbox_AP75",
                                                "segm_AP", "segm_AP50", "segm_AP75"]


def test_voc_metrics_default_to_the_voc07_11_point_ap():
    """VOC2007 test is scored with the VOC07 devkit's 11-point AP by every source we follow
    (mmdet 1.x mean_ap.py:357, mmdet 3.3 VOCMetric, mmselfsup, detectron2's use_07_metric)."""
    from mmdet.registry import METRICS

    from transfer.detection import metrics

    assert metrics.UnmixVOCMetric().eval_mode == "11points"
    assert metrics.voc_metric_cfg()["eval_mode"] == "11points"
    assert inspect.signature(metrics.voc_map).parameters["eval_mode"].default == "11points"
    assert METRICS.build(dict(type="VOCMetric")).eval_mode == "11points"  # mmdet's own default
    for name in ALL:
        if name.startswith("voc"):
            cfg = load(name)
            protocols.use_unmix_metrics(cfg)
            assert cfg.test_evaluator == dict(type="UnmixVOCMetric", eval_mode="11points")


@pytest.mark.parametrize("name", ALL)
def test_every_protocol_resolves_with_the_common_settings(name):
    cfg = load(name)
    assert cfg.model.backbone.style == "pytorch" and cfg.model.backbone.init_cfg is None
    assert cfg.auto_scale_lr == dict(enable=False, base_batch_size=16)
    assert cfg.optim_wrapper.optimizer.momentum == 0.9
    assert cfg.optim_wrapper.optimizer.weight_decay == 1e-4
    assert cfg.train_dataloader.batch_size == 2  # x 8 GPUs = the stated total batch 16
    evals = cfg.val_evaluator if isinstance(cfg.val_evaluator, list) else [cfg.val_evaluator]
    if name.startswith("voc"):  # VOC2007 test: the VOC07 devkit's 11-point AP everywhere
        assert all(e.get("eval_mode", "11points") == "11points" for e in evals)
        assert evals[0].eval_mode == "11points"
    else:
        assert evals[0].proposal_nums == (1, 10, 100)
    pre = cfg.model.data_preprocessor
    if name == "voc-faster-rcnn-c4-mmselfsup":
        # What mmselfsup's VOC config runs: its RGB preprocessor is never put into `model`.
        assert pre.mean == CAFFE_MEAN and list(pre.std) == [1.0, 1.0, 1.0] and not pre.bgr_to_rgb
    else:
        assert pre.bgr_to_rgb and list(pre.mean) == TV_MEAN and list(pre.std) == TV_STD


# ----------------------------------------------------- the paper's FPN protocols (mmdet 1.x)

def test_voc_fpn_is_mmdet_1x_recipe():
    cfg = load("voc-faster-rcnn-fpn")
    # 1.x XMLDataset(min_size=None): no small-box filter; difficult boxes ignored; images < 32 px
    # dropped (1.x CustomDataset._filter_imgs(min_size=32)).
    for ds in train_sets(cfg):
        assert ds.type == "VOCDataset" and "bbox_min_size" not in ds.filter_cfg
        assert ds.filter_cfg == dict(filter_empty_gt=True, min_size=32)
        assert ds.pipeline[2] == dict(type="Resize", scale=(1000, 600), keep_ratio=True, _scope_="mmdet")
        assert ds.pipeline[3].prob == 0.5
    assert cfg.train_dataloader.dataset.times == 3 and cfg.train_cfg.max_epochs == 4
    # 1.x l.156-159: SGD lr 0.01, clip 35 (L2), step at epoch 3, no warm-up at all.
    assert cfg.optim_wrapper.optimizer.lr == 0.01
    assert cfg.optim_wrapper.clip_grad == dict(max_norm=35, norm_type=2)
    assert [s.type for s in cfg.param_scheduler] == ["MultiStepLR"]
    assert cfg.param_scheduler[0].milestones == [3] and cfg.param_scheduler[0].end == 4
    assert cfg.test_dataloader.dataset.pipeline[1].scale == (1000, 600)
    _assert_1x_rcnn_model(cfg)


def _assert_1x_rcnn_model(cfg):
    rpn_loss, rcnn_loss = box_losses(cfg)
    assert rpn_loss == dict(type="SmoothL1Loss", beta=1.0 / 9.0, loss_weight=1.0)
    assert rcnn_loss == dict(type="SmoothL1Loss", beta=1.0, loss_weight=1.0)
    for layer in roi_layers(cfg):
        assert layer.type == "RoIAlign" and layer.sampling_ratio == 2 and layer.aligned is False
    assert [layer.output_size for layer in roi_layers(cfg)] == (
        [7, 14] if cfg.model.type == "MaskRCNN" else [7])
    train = cfg.model.train_cfg
    assert train.rpn.allowed_border == 0
    assert train.rpn_proposal.nms_pre == 2000 and train.rpn_proposal.max_per_img == 2000
    assert train.rpn.assigner.pos_iou_thr == 0.7 and train.rpn.assigner.neg_iou_thr == 0.3
    assert train.rpn.sampler.num == 256 and train.rcnn.sampler.num == 512
    assert train.rcnn.sampler.pos_fraction == 0.25 and train.rcnn.assigner.match_low_quality
    assert cfg.model.rpn_head.anchor_generator.type == "LegacyAnchorGenerator"
    assert cfg.model.rpn_head.anchor_generator.center_offset == 0.5
    assert cfg.model.rpn_head.bbox_coder.type == "LegacyDeltaXYWHBBoxCoder"
    assert cfg.model.roi_head.bbox_head.bbox_coder.type == "LegacyDeltaXYWHBBoxCoder"
    test = cfg.model.test_cfg
    assert test.rpn.nms_pre == 1000 and test.rpn.max_per_img == 1000
    assert (test.rcnn.score_thr, test.rcnn.nms.iou_threshold, test.rcnn.max_per_img) == (0.05, 0.5, 100)
    bb = cfg.model.backbone  # 1.x ResNet defaults (resnet.py:354-373) and frozen_stages=1
    assert bb.norm_eval is True and bb.frozen_stages == 1 and cfg.model.neck.get("norm_cfg") is None


@pytest.mark.parametrize("name", ["coco-mask-rcnn-fpn", "coco-retinanet-fpn"])
def test_coco_fpn_is_mmdet_1x_recipe(name):
    cfg = load(name)
    # 1.x: warm-up linear over 500 iterations from 1/3 of the lr, steps [8, 11] of 12, clip 35.
    sched = schedulers(cfg)
    assert sched["LinearLR"].start_factor == pytest.approx(1 / 3)
    assert (sched["LinearLR"].begin, sched["LinearLR"].end, sched["LinearLR"].by_epoch) == (0, 500, False)
    assert sched["MultiStepLR"].milestones == [8, 11] and cfg.train_cfg.max_epochs == 12
    assert cfg.optim_wrapper.clip_grad == dict(max_norm=35, norm_type=2)
    assert cfg.optim_wrapper.optimizer.lr == 0.02  # the paper's (1.x RetinaNet: 0.01)
    assert train_sets(cfg)[0].pipeline[2].scale == (1333, 800)
    if name == "coco-mask-rcnn-fpn":
        _assert_1x_rcnn_model(cfg)
        assert cfg.model.train_cfg.rcnn.mask_size == 28
    else:
        head = cfg.model.bbox_head
        assert head.loss_bbox == dict(type="SmoothL1Loss", beta=0.11, loss_weight=1.0)
        assert head.anchor_generator.type == "LegacyAnchorGenerator"
        assert head.anchor_generator.center_offset == 0.5
        assert head.bbox_coder.type == "LegacyDeltaXYWHBBoxCoder"
        assert cfg.model.neck.add_extra_convs == "on_input"  # 1.x extra_convs_on_inputs=True
        assert cfg.model.train_cfg.allowed_border == -1


def test_mmcv_roialign_is_aligned_unless_told():
    """Why `aligned=False` must be written: mmcv 2's RoIAlign defaults to aligned=True."""
    from mmcv.ops import RoIAlign

    assert inspect.signature(RoIAlign).parameters["aligned"].default is True


def test_legacy_anchors_are_mmdet_1x_anchors():
    """The paper model's RPN anchors equal mmdet 1.x's AnchorGenerator.gen_base_anchors
    (anchor_generator.py:29-55 at v1.1.0), written out here: centre 0.5 * (size - 1), corners
    centre -/+ 0.5 * (w - 1), rounded."""
    from mmdet.registry import TASK_UTILS

    gen = TASK_UTILS.build(load("voc-faster-rcnn-fpn").model.rpn_head.anchor_generator)
    for stride, ours in zip([4, 8, 16, 32, 64], gen.base_anchors):
        ratios, scales = torch.tensor([0.5, 1.0, 2.0]), torch.tensor([8.0])
        h_r = torch.sqrt(ratios)
        ws = (stride * (1 / h_r)[:, None] * scales[None, :]).view(-1)
        hs = (stride * h_r[:, None] * scales[None, :]).view(-1)
        c = 0.5 * (stride - 1)
        v1 = torch.stack([c - 0.5 * (ws - 1), c - 0.5 * (hs - 1),
                          c + 0.5 * (ws - 1), c + 0.5 * (hs - 1)], dim=-1).round()
        torch.testing.assert_close(ours, v1)


def test_paper_model_builds_with_the_1x_modules():
    from mmdet.registry import MODELS

    cfg = load("voc-faster-rcnn-fpn")
    cfg.model.backbone.depth = 18
    cfg.model.neck.in_channels = [64, 128, 256, 512]
    model = MODELS.build(cfg.model)
    layer = model.roi_head.bbox_roi_extractor.roi_layers[0]
    assert layer.aligned is False and layer.sampling_ratio == 2
    assert type(model.rpn_head.loss_bbox).__name__ == "SmoothL1Loss"
    assert model.rpn_head.loss_bbox.beta == pytest.approx(1 / 9)
    assert type(model.rpn_head.prior_generator).__name__ == "LegacyAnchorGenerator"


# ---------------------------------------------------------------- the -mmdet3 variants

@pytest.mark.parametrize("name", MMDET3_FPN)
def test_mmdet3_variants_keep_mmdet_33(name):
    cfg = load(name)
    assert "clip_grad" not in cfg.optim_wrapper
    for loss in box_losses(cfg):
        assert loss.type == "L1Loss"
    for layer in roi_layers(cfg):
        assert layer.sampling_ratio == 0 and "aligned" not in layer  # mmcv default: aligned
    sched = schedulers(cfg)
    if name.startswith("voc"):
        for ds in train_sets(cfg):
            assert ds.filter_cfg.bbox_min_size == 32
        assert list(sched) == ["MultiStepLR"] and cfg.optim_wrapper.optimizer.lr == 0.01
    else:
        assert sched["LinearLR"].start_factor == 0.001 and sched["LinearLR"].end == 500
        assert cfg.optim_wrapper.optimizer.lr == 0.02
    if cfg.model.type != "RetinaNet":
        assert cfg.model.train_cfg.rpn_proposal.max_per_img == 1000
        assert cfg.model.train_cfg.rpn.allowed_border == -1
        assert cfg.model.rpn_head.anchor_generator.type == "AnchorGenerator"


# ---------------------------------------------------------------- mmselfsup variants

def test_mmselfsup_mask_rcnn_fpn_has_syncbn_in_backbone_neck_and_heads():
    cfg = load("coco-mask-rcnn-fpn-mmselfsup")
    sync = dict(type="SyncBN", requires_grad=True)
    bb = cfg.model.backbone
    assert bb.norm_cfg == sync and bb.norm_eval is False and bb.frozen_stages == -1
    assert cfg.model.neck.norm_cfg == sync
    assert cfg.model.roi_head.bbox_head.type == "Shared4Conv1FCBBoxHead"
    assert cfg.model.roi_head.bbox_head.norm_cfg == sync
    assert cfg.model.roi_head.mask_head.norm_cfg == sync
    assert cfg.model.rpn_head.get("norm_cfg") is None  # mmselfsup leaves the RPN head alone
    resize = train_sets(cfg)[0].pipeline[2]
    assert resize.type == "RandomChoiceResize" and resize.keep_ratio
    assert resize.scales == [(1333, s) for s in range(640, 801, 32)]
    sched = schedulers(cfg)  # mmdet 3.3's 1x, inherited
    assert sched["LinearLR"].start_factor == 0.001 and sched["MultiStepLR"].milestones == [8, 11]
    assert cfg.train_cfg.max_epochs == 12 and "clip_grad" not in cfg.optim_wrapper
    assert all(loss.type == "L1Loss" for loss in box_losses(cfg))


def test_mmselfsup_c4_voc_is_the_port_as_it_runs():
    cfg = load("voc-faster-rcnn-c4-mmselfsup")
    assert cfg.model.data_preprocessor.pad_size_divisor == 32
    assert not cfg.get("custom_hooks") and "paramwise_cfg" not in cfg.optim_wrapper
    for ds in train_sets(cfg):
        assert ds.type == "VOCDataset" and "train_difficult" not in ds
    assert cfg.train_cfg.max_iters == 24000
    assert cfg.model.roi_head.shared_head.type == "ResLayerExtraNorm"


# ------------------------------------------------------------ MoCo's detectron2 C4 recipe

@pytest.mark.parametrize("name", MOCO_C4)
def test_moco_c4_recipe(name):
    cfg = load(name)
    sync = dict(type="SyncBN", requires_grad=True)
    bb, head = cfg.model.backbone, cfg.model.roi_head
    # Base.yaml: FREEZE_AT 0, NORM SyncBN, Res5ROIHeadsExtraNorm; moco.yaml STRIDE_IN_1X1 False.
    assert bb.frozen_stages == -1 and bb.norm_cfg == sync and bb.norm_eval is False
    assert bb.num_stages == 3 and bb.out_indices == (2,)
    assert head.shared_head.type == "ResLayerExtraNorm" and head.shared_head.norm_cfg == sync
    assert head.shared_head.style == "pytorch" and head.shared_head.norm_eval is False
    assert cfg.model.data_preprocessor.pad_size_divisor == 1  # C4 size_divisibility 0
    # d2 defaults: WEIGHT_DECAY_NORM 0, no clipping, PreciseBN 200 iterations, BASE_LR 0.02.
    assert cfg.optim_wrapper.paramwise_cfg == dict(norm_decay_mult=0.0)
    assert "clip_grad" not in cfg.optim_wrapper and cfg.optim_wrapper.optimizer.lr == 0.02
    assert cfg.custom_hooks == [dict(type="PreciseBNHook", num_iters=200)]
    assert "transfer.detection.precise_bn" in cfg.custom_imports.imports
    # RPN and RoI heads: detectron2's defaults (defaults.py:173-292, Base.yaml 3-5).
    rpn = cfg.model.rpn_head
    assert rpn.anchor_generator.strides == [16] and rpn.anchor_generator.scales == [2, 4, 8, 16, 32]
    assert rpn.anchor_generator.ratios == [0.5, 1.0, 2.0] and rpn.anchor_generator.type == "AnchorGenerator"
    train, test = cfg.model.train_cfg, cfg.model.test_cfg
    assert train.rpn.allowed_border == -1
    assert (train.rpn_proposal.nms_pre, train.rpn_proposal.max_per_img) == (12000, 2000)
    assert (test.rpn.nms_pre, test.rpn.max_per_img) == (6000, 1000)
    assert train.rpn.sampler.num == 256 and train.rpn.sampler.pos_fraction == 0.5
    assert train.rcnn.sampler.num == 512 and train.rcnn.sampler.pos_fraction == 0.25
    assert train.rcnn.sampler.add_gt_as_proposals and not train.rcnn.assigner.match_low_quality
    assert all(loss.type == "L1Loss" for loss in box_losses(cfg))  # SMOOTH_L1_BETA 0.0
    layer = head.bbox_roi_extractor.roi_layer  # ROIAlignV2, 14x14, adaptive sampling
    assert layer.output_size == 14 and layer.sampling_ratio == 0 and layer.get("aligned", True)
    assert head.bbox_head.bbox_coder.target_stds == [0.1, 0.1, 0.2, 0.2]  # weights (10, 10, 5, 5)
    assert (test.rcnn.score_thr, test.rcnn.nms.iou_threshold, test.rcnn.max_per_img) == (0.05, 0.5, 100)
    # Schedules: iterations, linear warm-up from 1/1000, steps x 0.1.
    sched = schedulers(cfg)
    assert sched["LinearLR"].start_factor == 0.001 and sched["LinearLR"].by_epoch is False
    assert cfg.train_cfg.type == "IterBasedTrainLoop"
    assert cfg.train_cfg.val_interval == cfg.train_cfg.max_iters  # TEST.EVAL_PERIOD 0
    resize = train_sets(cfg)[0].pipeline[2]
    assert resize.type == "RandomChoiceResize" and resize.keep_ratio
    assert cfg.test_dataloader.dataset.pipeline[1].scale == (1333, 800)  # MIN_SIZE_TEST 800
    if name.startswith("voc"):
        assert cfg.train_cfg.max_iters == 24000 and sched["LinearLR"].end == 100
        assert sched["MultiStepLR"].milestones == [18000, 22000]
        assert resize.scales == [(1333, s) for s in range(480, 801, 32)]
        for ds in train_sets(cfg):  # detectron2 trains on difficult boxes, no small-box filter
            assert ds.type == "UnmixVOCDataset" and ds.train_difficult is True
            assert "bbox_min_size" not in ds.filter_cfg
        assert cfg.test_dataloader.dataset.get("train_difficult") is None
        assert "transfer.detection.datasets" in cfg.custom_imports.imports
    else:
        assert cfg.model.type == "MaskRCNN"
        assert cfg.train_cfg.max_iters == 180000 and sched["LinearLR"].end == 1000
        assert sched["MultiStepLR"].milestones == [120000, 160000]
        assert resize.scales == [(1333, s) for s in range(640, 801, 32)]
        assert cfg.train_dataloader.sampler.type == "InfiniteSampler"
        mask = head.mask_head
        assert mask.num_convs == 0 and mask.in_channels == 2048 and mask.conv_out_channels == 256
        assert head.get("mask_roi_extractor") is None and train.rcnn.mask_size == 14
        assert cfg.val_evaluator.metric == ["bbox", "segm"]
        assert train_sets(cfg)[0].pipeline[1].with_mask


def test_moco_c4_exempts_every_norm_parameter_from_weight_decay():
    """Build the optimizer as mmengine does: every BN (backbone, res5, the extra norm) weight
    and bias gets weight decay 0, every conv/fc weight and bias 1e-4 (detectron2 solver/build.py)."""
    from mmdet.registry import MODELS
    from mmengine.optim import build_optim_wrapper

    import transfer.detection.heads  # noqa: F401  (ResLayerExtraNorm)

    cfg = load("voc-faster-rcnn-c4")
    norm = dict(type="BN", requires_grad=True)  # SyncBN only matters across processes
    cfg.model.backbone.norm_cfg = cfg.model.roi_head.shared_head.norm_cfg = norm
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    decay = {id(p): g["weight_decay"] for g in wrapper.optimizer.param_groups for p in g["params"]}
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert model.roi_head.shared_head.norm in norms
    norm_params = {id(p) for m in norms for p in m.parameters()}
    assert norm_params and all(decay[i] == 0.0 for i in norm_params)
    others = [p for p in model.parameters() if p.requires_grad and id(p) not in norm_params]
    assert others and all(decay[id(p)] == pytest.approx(1e-4) for p in others)


# ---------------------------------------------- difficult boxes: trained on (C4), never scored

def _difficult_voc(root):
    """One VOC2007 image in the devkit's own XML layout: an easy box, a difficult one, and a
    small easy one (10 px wide), as labelImg/VOC write them (1-based pixel coordinates)."""
    toydata.write_voc(root, 1, 1, size=(96, 64), classes=toydata.VOC_CLASSES)
    ann_dir = root / "VOCdevkit" / "VOC2007" / "Annotations"
    image_id = (root / "VOCdevkit/VOC2007/ImageSets/Main/trainval.txt").read_text().split()[0]
    objs = "".join(
        f"<object><name>{n}</name><pose>Unspecified</pose><truncated>0</truncated>"
        f"<difficult>{d}</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for n, d, b in (("dog", 0, (5, 5, 60, 50)), ("cat", 1, (40, 10, 90, 60)),
                        ("bird", 0, (70, 20, 80, 40))))
    (ann_dir / f"{image_id}.xml").write_text(
        f"<annotation><folder>VOC2007</folder><filename>{image_id}.jpg</filename><size>"
        f"<width>96</width><height>64</height><depth>3</depth></size><segmented>0</segmented>"
        f"{objs}</annotation>")
    return root / "VOCdevkit"


@pytest.mark.parametrize("train_difficult,test_mode,bbox_min_size,flags", [
    (False, False, None, [0, 1, 0]),   # mmdet: difficult ignored
    (True, False, None, [0, 0, 0]),    # detectron2 / MoCo: difficult trained on
    (True, True, None, [0, 1, 0]),     # a test set still ignores it (VOC devkit scoring)
    (True, False, 32, [0, 0, 1]),      # the size filter still applies when asked for
    (False, False, 32, [0, 1, 1]),     # mmdet 3.3's VOC base
])
def test_train_difficult_flips_only_the_difficult_flag(tmp_path, train_difficult, test_mode,
                                                       bbox_min_size, flags):
    from mmdet.registry import DATASETS

    root = _difficult_voc(tmp_path)
    filt = dict(filter_empty_gt=True, min_size=8)
    if bbox_min_size:
        filt["bbox_min_size"] = bbox_min_size
    ds = DATASETS.build(dict(
        type="UnmixVOCDataset", train_difficult=train_difficult, data_root=str(root),
        ann_file="VOC2007/ImageSets/Main/trainval.txt", data_prefix=dict(sub_data_root="VOC2007/"),
        test_mode=test_mode, filter_cfg=None if test_mode else filt, pipeline=[]))
    inst = ds.get_data_info(0)["instances"]
    assert [i["ignore_flag"] for i in inst] == flags
    assert [i["bbox"] for i in inst][1] == [39, 9, 89, 59]  # mmdet's -1 on every coordinate


# ----------------------------------------------------- what `unmix finetune` applies to them

@pytest.mark.parametrize("mode,norm", [("sync", "SyncBN"), ("finetune", "BN"), ("frozen", "BN")])
def test_mmselfsup_new_layer_norms_follow_the_bn_mode_and_stay_trained(mode, norm):
    cfg = load("coco-mask-rcnn-fpn-mmselfsup")
    meta = protocols.get("coco-mask-rcnn-fpn-mmselfsup")
    protocols.apply_bn(cfg, meta["layout"], mode, head_norm=meta["head_norm"])
    for part in (cfg.model.neck, cfg.model.roi_head.bbox_head, cfg.model.roi_head.mask_head):
        assert part.norm_cfg == dict(type=norm, requires_grad=True)
    assert cfg.model.backbone.norm_cfg.requires_grad is (mode != "frozen")
    assert cfg.model.rpn_head.get("norm_cfg") is None
    paper = load("coco-mask-rcnn-fpn")  # the paper's: still no norm in the new layers
    protocols.apply_bn(paper, "fpn", mode, head_norm=protocols.get("coco-mask-rcnn-fpn").get("head_norm", False))
    assert paper.model.neck.get("norm_cfg") is None


def test_c4_mask_rcnn_heads_fit_the_checkpoint_widths():
    cfg = load("coco-mask-rcnn-c4-2x")
    protocols.apply_backbone(cfg, "c4", {"depth": 18, "init_cfg": dict(type="Pretrained", checkpoint="b.pth")})
    head = cfg.model.roi_head
    assert head.bbox_head.in_channels == 512 and head.mask_head.in_channels == 512
    assert cfg.model.rpn_head.in_channels == 256 and head.bbox_roi_extractor.out_channels == 256
    assert head.shared_head.init_cfg.checkpoint == "b.pth" and head.shared_head.depth == 18
