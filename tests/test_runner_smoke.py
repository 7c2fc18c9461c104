"""Issue 3, item 7: one training iteration and one evaluation of Faster R-CNN R50-FPN through
mmengine's Runner, on a tiny COCO-format dataset written by the test, then a resume."""
import pytest

from transfer.stack import ensure_stack, mmdet_config_path
from unmix.demo.toydata import TOY_CLASSES, write_coco

pytestmark = pytest.mark.slow


def tiny_cfg(data_root, work_dir, max_iters):
    from mmengine.config import Config

    cfg = Config.fromfile(mmdet_config_path("faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py"))
    cfg.work_dir = str(work_dir)
    cfg.model.backbone.init_cfg = None  # no download: random init
    cfg.model.roi_head.bbox_head.num_classes = len(TOY_CLASSES)
    scale = dict(type="Resize", scale=(96, 96), keep_ratio=True)
    for key, split in (("train_dataloader", "train2017"), ("val_dataloader", "val2017")):
        dl = cfg[key]
        dl.batch_size, dl.num_workers, dl.persistent_workers = 2, 0, False
        ds = dl.dataset
        ds.data_root = str(data_root) + "/"
        ds.metainfo = dict(classes=TOY_CLASSES)
        ds.ann_file = f"annotations/instances_{split}.json"
        ds.data_prefix = dict(img=f"{split}/")
        ds.pipeline = [p if p["type"] != "Resize" else scale for p in ds.pipeline]
    cfg.test_dataloader = cfg.val_dataloader
    cfg.val_evaluator.ann_file = f"{data_root}/annotations/instances_val2017.json"
    cfg.test_evaluator = cfg.val_evaluator
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=max_iters, val_interval=1)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=1, by_epoch=False)
    cfg.default_hooks.logger.interval = 1
    return cfg


def test_faster_rcnn_trains_evaluates_and_resumes_through_the_runner(tmp_path):
    ensure_stack()
    from mmengine.runner import Runner

    root = write_coco(tmp_path / "coco", n_train=2, n_val=2, size=(96, 96))
    runner = Runner.from_cfg(tiny_cfg(root, tmp_path / "wd", max_iters=1))
    runner.train()
    metrics = runner.val_loop.run()
    assert {"coco/bbox_mAP", "coco/bbox_mAP_50"} <= set(metrics)
    assert (tmp_path / "wd" / "iter_1.pth").exists()

    # Resume (torch >= 2.6 weights_only + mmengine's message hub: transfer/stack/compat.py)
    cfg = tiny_cfg(root, tmp_path / "wd", max_iters=2)
    cfg.resume = True
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    assert resumed.iter == 2
    assert (tmp_path / "wd" / "iter_2.pth").exists()
