"""`unmix evaluate`: checkpoint lookup, and a real re-evaluation of a tiny trained Faster R-CNN."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from transfer.detection import evaluate
from unmix.demo import toydata
from unmix.core import records
from unmix.core.config import parse_options
from unmix.core.errors import UnmixError
from unmix.core.files import sha256_file


def _mmengine_ckpt(path: Path, it: int) -> Path:
    """The layout mmengine's CheckpointHook writes (meta, state_dict, message_hub), tiny."""
    import torch

    torch.save({"meta": {"epoch": 0, "iter": it}, "state_dict": {"w": torch.full((2,), float(it))},
                "message_hub": {}}, path)
    return path


def test_find_checkpoint_order(tmp_path):
    with pytest.raises(UnmixError, match="no checkpoint to evaluate"):
        evaluate.find_checkpoint(tmp_path)
    for it, name in ((2, "iter_2.pth"), (10, "iter_10.pth"), (3, "epoch_3.pth")):
        _mmengine_ckpt(tmp_path / name, it)
    assert evaluate.find_checkpoint(tmp_path).name == "iter_10.pth"  # numeric, not lexical
    # last_checkpoint wins, also when it names a path from before the work dir moved
    (tmp_path / "last_checkpoint").write_text("/elsewhere/old/iter_2.pth")
    assert evaluate.find_checkpoint(tmp_path).name == "iter_2.pth"
    assert evaluate.find_checkpoint(tmp_path, "epoch_3.pth").name == "epoch_3.pth"
    with pytest.raises(UnmixError, match="nope.pth: no such checkpoint"):
        evaluate.find_checkpoint(tmp_path, "nope.pth")


def test_a_copied_work_dir_scores_its_own_checkpoint(tmp_path):
    """mmengine writes last_checkpoint as an absolute path: in a copy it names the original."""
    import shutil

    orig = tmp_path / "orig"
    orig.mkdir()
    _mmengine_ckpt(orig / "iter_2.pth", 2)
    (orig / "last_checkpoint").write_text(str(orig / "iter_2.pth"))
    copy = tmp_path / "copy"
    shutil.copytree(orig, copy)
    assert evaluate.find_checkpoint(copy) == (copy / "iter_2.pth").resolve()


def test_truncated_empty_or_hostile_checkpoints_are_one_line_and_skipped(tmp_path):
    good = _mmengine_ckpt(tmp_path / "iter_2.pth", 2)
    whole = good.read_bytes()
    (tmp_path / "iter_4.pth").write_bytes(whole[: len(whole) // 2])  # a save killed half-way
    (tmp_path / "last_checkpoint").write_text(str(tmp_path / "iter_4.pth"))
    assert evaluate.find_checkpoint(tmp_path).name == "iter_2.pth"  # the newest that loads
    with pytest.raises(UnmixError, match=r"iter_4.pth: truncated or corrupt checkpoint"):
        evaluate.find_checkpoint(tmp_path, "iter_4.pth")
    (tmp_path / "iter_6.pth").write_bytes(b"")
    (tmp_path / "iter_5.pth").write_bytes(b"x")  # not even a zip
    with pytest.raises(UnmixError, match=r"iter_5.pth: truncated or corrupt checkpoint \(Unsupported operand"):
        evaluate.find_checkpoint(tmp_path, "iter_5.pth")
    with pytest.raises(UnmixError, match=r"iter_6.pth: empty file"):
        evaluate.find_checkpoint(tmp_path, "iter_6.pth")

    class Evil:
        def __reduce__(self):
            return (print, ("code from a checkpoint ran",))

    import torch

    torch.save({"meta": {}, "state_dict": {}, "x": Evil()}, tmp_path / "iter_8.pth")
    with pytest.raises(UnmixError, match=r"iter_8.pth: refused to load, not plain checkpoint data "
                                         r"\(Unsupported global: GLOBAL print; loading it could run code"):
        evaluate.find_checkpoint(tmp_path, "iter_8.pth")
    good.unlink()
    with pytest.raises(UnmixError, match=r"iter_4.pth: truncated or corrupt checkpoint \(RuntimeError: "
                                         r"PytorchStreamReader failed reading zip archive: failed finding "
                                         r"central directory\) \(and 3 more unloadable"):
        evaluate.find_checkpoint(tmp_path)


def test_missing_config_is_a_one_line_error(tmp_path):
    _mmengine_ckpt(tmp_path / "iter_1.pth", 1)
    with pytest.raises(UnmixError, match="no config.py"):
        evaluate.evaluate_work_dir(tmp_path)


def test_metric_options_parse():
    assert parse_options(["eval_mode=11points", "iou_thrs=[0.5,0.75]"]) == {
        "eval_mode": "11points", "iou_thrs": [0.5, 0.75]}
    with pytest.raises(UnmixError, match="not KEY=VALUE"):
        parse_options(["eval_mode"])


def _tiny_config(data_root: Path, work_dir: Path):
    """Faster R-CNN, ResNet-18 + FPN (32 channels), 64-px toy VOC, 2 iterations."""
    import mmdet
    from mmengine.config import Config

    base = Path(mmdet.__file__).parent / ".mim/configs/_base_/models/faster-rcnn_r50_fpn.py"
    cfg = Config.fromfile(str(base))
    m = cfg.model
    m.backbone.update(depth=18, init_cfg=None, norm_eval=False, frozen_stages=-1)
    m.neck.update(in_channels=[64, 128, 256, 512], out_channels=32)
    m.rpn_head.update(in_channels=32, feat_channels=32)
    m.roi_head.bbox_roi_extractor.out_channels = 32
    m.roi_head.bbox_head.update(in_channels=32, fc_out_channels=64, num_classes=3)
    m.train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=100)
    m.test_cfg.rpn.update(nms_pre=200, max_per_img=100)
    classes = toydata.TOY_CLASSES
    pipe = [dict(type="LoadImageFromFile"), dict(type="LoadAnnotations", with_bbox=True),
            dict(type="Resize", scale=(64, 64), keep_ratio=True), dict(type="PackDetInputs")]
    test_pipe = [dict(type="LoadImageFromFile"), dict(type="Resize", scale=(64, 64), keep_ratio=True),
                 dict(type="LoadAnnotations", with_bbox=True),
                 dict(type="PackDetInputs", meta_keys=("img_id", "img_path", "ori_shape",
                                                       "img_shape", "scale_factor"))]

    def ds(split, pipeline, test_mode):
        return dict(type="UnmixVOCDataset", data_root=str(data_root / "VOCdevkit"),
                    ann_file=f"VOC2007/ImageSets/Main/{split}.txt",
                    data_prefix=dict(sub_data_root="VOC2007/"), metainfo=dict(classes=classes),
                    pipeline=pipeline, test_mode=test_mode)

    loader = lambda split, pipe, test, shuffle: dict(  # noqa: E731
        batch_size=2, num_workers=0, sampler=dict(type="DefaultSampler", shuffle=shuffle),
        dataset=ds(split, pipe, test))
    cfg.merge_from_dict(dict(
        default_scope="mmdet", work_dir=str(work_dir),
        train_dataloader=dict(**loader("trainval", pipe, False, True),
                              batch_sampler=dict(type="AspectRatioBatchSampler")),
        test_dataloader=loader("test", test_pipe, True, False),
        test_evaluator=dict(type="UnmixVOCMetric", eval_mode="area", nproc=1),
        test_cfg=dict(type="TestLoop"),
        train_cfg=dict(type="IterBasedTrainLoop", max_iters=2, val_interval=100),
        optim_wrapper=dict(type="OptimWrapper", optimizer=dict(type="SGD", lr=0.01, momentum=0.9)),
        default_hooks=dict(timer=dict(type="IterTimerHook"), logger=dict(type="LoggerHook", interval=1),
                           param_scheduler=dict(type="ParamSchedulerHook"),
                           checkpoint=dict(type="CheckpointHook", interval=2, by_epoch=False),
                           sampler_seed=dict(type="DistSamplerSeedHook")),
        env_cfg=dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
                     dist_cfg=dict(backend="gloo")),
        log_processor=dict(type="LogProcessor", window_size=1, by_epoch=False),
        log_level="WARNING", randomness=dict(seed=0), load_from=None, resume=False,
    ))
    return cfg


@pytest.mark.slow
def test_evaluate_a_trained_work_dir(tmp_path):
    from transfer.stack import ensure_stack

    ensure_stack()
    from mmengine.runner import Runner

    data = toydata.write_voc(tmp_path / "data", n_train=4, n_test=4, voc2012=False)
    work = tmp_path / "work"
    cfg = _tiny_config(data, work)
    Runner.from_cfg(cfg).train()
    assert (work / "iter_2.pth").is_file() and (work / "last_checkpoint").is_file()
    cfg.dump(str(work / "config.py"))
    # the record finetune would have written, to be updated in place
    rec = records.new_record("detection", {"label": "toy", "path": "x"}, {"name": "toy-voc"})
    rec["details"] = {"keep": 1}
    records.write(records.finish(rec, {"AP50": -1.0}), work)

    metrics = evaluate.evaluate_work_dir(work)
    assert set(metrics) == {"AP50", "AP", "AP75", "recall"}
    assert all(0.0 <= v <= 100.0 for v in metrics.values())
    saved = records.load(work / "result.json")
    assert saved["metrics"] == metrics and saved["protocol"] == {"name": "toy-voc"}
    assert saved["details"]["keep"] == 1 and "per_class_AP" in saved["details"]
    assert saved["evaluation"]["checkpoint"].endswith("iter_2.pth")
    assert saved["evaluation"]["previous_metrics"] == {"AP50": -1.0}
    assert saved["evaluation_history"] == [{"metrics": {"AP50": -1.0}, "evaluation": None}]

    # the CLI path, with a metric option, and no record written
    from unmix.cli import main

    before = (work / "result.json").read_text()
    assert main(["evaluate", str(work), "--metric-options", "eval_mode=11points", "--no-record"]) == 0
    assert (work / "result.json").read_text() == before
    assert json.loads(before)["status"] == "finished"


@pytest.mark.slow
def test_evaluate_a_checkpoint_trained_elsewhere_and_draw_detections(tmp_path):
    """mmdet's `tools/test.py CONFIG CKPT`: a plain mmdet checkpoint (meta + state_dict, as
    mmengine saves it) and its config file; the work dir it makes scores the same on re-evaluation,
    and --show-dir draws the first 2 test images, ground truth beside predictions (twice as wide)."""
    import torch
    from mmcv import imread

    from transfer.stack import ensure_stack
    from unmix import cli

    ensure_stack()
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    data = toydata.write_voc(tmp_path / "data", n_train=4, n_test=4, voc2012=False)
    cfg = _tiny_config(data, tmp_path / "elsewhere")
    cfg.dump(str(tmp_path / "tiny.py"))
    init_default_scope("mmdet")
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    ckpt = tmp_path / "detector.pth"
    torch.save({"meta": {"epoch": 12, "iter": 0}, "state_dict": model.state_dict()}, ckpt)
    work, shows = tmp_path / "work", tmp_path / "shows"
    assert cli.main(["evaluate", str(tmp_path / "tiny.py"), str(ckpt), "--work-dir", str(work),
                     "--show-dir", str(shows), "--show-images", "2", "--score-thr", "0"]) == 0
    rec = records.load(work / "result.json")
    assert rec["status"] == "finished" and rec["checkpoint"]["sha256"] == sha256_file(ckpt)
    assert rec["protocol"]["name"] == "config:tiny" and rec["protocol"]["evaluated_only"] is True
    assert set(rec["metrics"]) == {"AP50", "AP", "AP75", "recall"} and "per_class_AP" in rec["details"]
    drawn = sorted(shows.iterdir())
    assert len(drawn) == 2 and rec["evaluation"]["show_dir"] == str(shows.resolve())
    source = data / "VOCdevkit" / "VOC2007" / "JPEGImages" / drawn[0].name
    assert imread(str(drawn[0])).shape[1] == 2 * imread(str(source)).shape[1]
    again = evaluate.evaluate_work_dir(work, ckpt, write_record=False)
    assert again == rec["metrics"]
    # a finished record stays unless --force
    assert cli.main(["evaluate", str(tmp_path / "tiny.py"), str(ckpt), "--work-dir", str(work)]) == 1
