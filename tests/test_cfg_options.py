"""--cfg-options onto detection configs (issue 17.4): a typo'd key refused with the closest valid
key, legitimate new keys accepted, lists taking the tuples mmdet wants."""
import numpy as np
import pytest
import yaml

from transfer.stack import ensure_stack

ensure_stack()

from transfer.detection import options, protocols  # noqa: E402
from unmix.core.errors import Refused  # noqa: E402

protocols.register_modules()


@pytest.mark.parametrize("key, value, suggestion", [
    ("model.backbone.deph", 18, "model.backbone.depth"),                       # ResNet's signature
    ("train_cfg.max_epoch", 1, "train_cfg.max_epochs"),                        # the loop's
    ("train_dataloader.batch_szie", 2, "train_dataloader.batch_size"),         # DataLoader's
    ("optim_wrapper.optimizer.lrr", 0.1, "optim_wrapper.optimizer.lr"),        # torch SGD's
    ("model.roi_head.bbox_head.num_clases", 3, "model.roi_head.bbox_head.num_classes"),
    ("train_cfgg.max_epochs", 1, "train_cfg"),                                 # Runner's
])
def test_a_typo_is_refused_with_the_closest_valid_key(key, value, suggestion):
    cfg = protocols.load_config("voc-faster-rcnn-fpn")
    before = cfg.pretty_text
    with pytest.raises(Refused, match=rf"{key}: unknown key .*did you mean {suggestion}\?$"):
        options.apply(cfg, {key: value})
    assert cfg.pretty_text == before  # nothing merged


def test_a_list_index_past_the_end_is_refused():
    cfg = protocols.load_config("voc-faster-rcnn-fpn")
    with pytest.raises(Refused, match="param_scheduler is a list of 1 entries, there is no entry '3'"):
        options.apply(cfg, {"param_scheduler.3.end": 1})


def test_legitimate_new_keys_are_merged():
    """Keys the config does not hold yet, but the built class takes (or a plain dict)."""
    cfg = protocols.load_config("voc-faster-rcnn-fpn-mmdet3")
    assert "clip_grad" not in cfg.optim_wrapper and "indices" not in cfg.test_dataloader.dataset
    new = {"optim_wrapper.clip_grad": {"max_norm": 35, "norm_type": 2},     # OptimWrapper(clip_grad=)
           "test_dataloader.dataset.indices": 10,                           # BaseDataset(indices=)
           "train_dataloader.dataset.dataset.datasets.0.metainfo": {"classes": ("a", "b")},
           "param_scheduler.0.convert_to_iter_based": True,                 # mmengine's builder
           "model.train_cfg.rpn.foo": 1,                                    # a plain dict: any key
           "default_hooks.my_hook": {"type": "EmptyCacheHook"}}             # a new hook
    options.apply(cfg, new)
    assert cfg.optim_wrapper.clip_grad.max_norm == 35 and cfg.test_dataloader.dataset.indices == 10
    assert cfg.model.train_cfg.rpn.foo == 1 and cfg.default_hooks.my_hook.type == "EmptyCacheHook"


def test_the_demos_overrides_pass_the_check():
    from unmix.demo.pipeline import PROTOCOL, detection_overrides

    opts = detection_overrides()
    cfg = protocols.load_config(PROTOCOL)
    options.apply(cfg, opts)
    assert cfg.model.backbone.depth == 18


def test_lists_from_yaml_become_the_tuples_mmdet_wants():
    from mmdet.registry import TRANSFORMS

    sweep_yaml = yaml.safe_load("cfg_options:\n"
                                "  train_dataloader.dataset.dataset.datasets.0.pipeline.2.scale: [64, 48]\n")
    opts = sweep_yaml["cfg_options"]
    resize = dict(type="Resize", scale=opts["train_dataloader.dataset.dataset.datasets.0.pipeline.2.scale"],
                  keep_ratio=True)
    img = np.zeros((60, 100, 3), np.uint8)
    with pytest.raises(TypeError, match="Scale must be a number or tuple"):
        TRANSFORMS.build(resize)({"img": img})  # what mmcv does with the list as it is
    cfg = protocols.load_config("voc-faster-rcnn-fpn")
    merged = options.apply(cfg, opts)
    step = cfg.train_dataloader.dataset.dataset.datasets[0].pipeline[2]
    assert step.scale == (64, 48) and isinstance(step.scale, tuple)
    assert TRANSFORMS.build(dict(step))({"img": img})["img"].shape == (38, 64, 3)
    assert merged == {"train_dataloader.dataset.dataset.datasets.0.pipeline.2.scale": (64, 48)}
    # a list of tuples (multi-scale) takes a list of lists
    cfg = protocols.load_config("voc-faster-rcnn-c4")
    options.apply(cfg, {"train_dataloader.dataset.datasets.0.pipeline.2.scales": [[64, 48], [80, 60]]})
    assert cfg.train_dataloader.dataset.datasets[0].pipeline[2].scales == [(64, 48), (80, 60)]


def test_a_typo_in_finetune_exits_1_before_anything_is_written(tmp_path, capsys):
    from unmix import cli

    wd = tmp_path / "run"
    assert cli.main(["finetune", "--checkpoint", "none", "--protocol", "voc-faster-rcnn-fpn",
                     "--work-dir", str(wd), "--cfg-options", "train_cfg.max_epoch=1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith("did you mean train_cfg.max_epochs?")
    assert not wd.exists()
