"""`--quick` / `--scale` / `--fraction`: every protocol shrunk with its schedule's shape kept, checked
against the full-size config it came from (ratios of lr steps to length, the multi-scale range),
and (slow) one quick run on real-format VOC that records what it ran."""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torchvision

from transfer.stack import ensure_stack

ensure_stack()

from transfer.detection import datacheck, protocols, quick  # noqa: E402
from transfer.detection import finetune as ft  # noqa: E402
from unmix.demo import toydata  # noqa: E402

protocols.register_modules()


def _resizes(cfg, loader):
    return [(d["type"], copy.deepcopy(d.get("scale", d.get("scales"))))
            for d in datacheck.walk(cfg.get(loader)) if d.get("type") in quick._RESIZES]


def _schedulers(cfg):
    return [dict(s) for s in cfg.param_scheduler]


@pytest.mark.parametrize("name", list(protocols.PROTOCOLS))
def test_quick_keeps_every_protocols_schedule_shape(name):
    full = protocols.load_config(name)
    cfg = protocols.load_config(name)
    splits = [s for s in datacheck.splits_of(cfg) if s.role == "train"]
    out = quick.apply(cfg, None, None, True, [(s.configs, 1000) for s in splits])
    f = out["factor"]
    tw, th = quick.scored_scale(full)
    assert f == pytest.approx(quick.QUICK_FACTOR, abs=0.01)
    assert quick.scored_scale(cfg) == (round(tw * f), round(th * f))
    for loader in ("train_dataloader", "test_dataloader"):
        for (kind, old), (_, new) in zip(_resizes(full, loader), _resizes(cfg, loader)):
            pairs_old = old if kind == "RandomChoiceResize" else [old]
            pairs_new = new if kind == "RandomChoiceResize" else [new]
            assert len(pairs_new) == len(pairs_old)  # the multi-scale range keeps its steps
            for (ow, oh), (nw, nh) in zip(pairs_old, pairs_new):
                assert (nw, nh) == (round(ow * f), round(oh * f))
    frac = quick.QUICK_FRACTION
    if full.train_cfg.get("max_iters"):
        n_old, n_new = full.train_cfg.max_iters, cfg.train_cfg.max_iters
        assert n_new == math.ceil(n_old * frac)
        for old, new in zip(_schedulers(full), _schedulers(cfg)):
            for m_old, m_new in zip(old.get("milestones", []), new.get("milestones", [])):
                assert abs(m_new / n_new - m_old / n_old) < 2 / n_new  # steps at the same share
            if old["type"] == "LinearLR":
                assert new["end"] == math.ceil(old["end"] * frac)
    else:
        assert cfg.train_cfg.max_epochs == full.train_cfg.max_epochs  # epochs kept
        for old, new in zip(_schedulers(full), _schedulers(cfg)):
            if old.get("by_epoch", True):
                assert new.get("milestones") == old.get("milestones")
            else:  # the iteration warm-up: an epoch now has `frac` of its iterations
                assert new["end"] == math.ceil(old["end"] * frac)
        assert all(d["indices"] == math.ceil(1000 * frac) for s in splits for d in s.configs)
    assert out == {"quick": True, "scale": [round(tw * f), round(th * f)], "factor": round(f, 4),
                   "fraction": frac}


def test_fraction_outside_zero_one_is_refused():
    cfg = protocols.load_config("voc-faster-rcnn-c4")
    with pytest.raises(Exception, match=r"--fraction 1.5: expected a number in \(0, 1\]"):
        quick.apply(cfg, None, 1.5, False, [])


@pytest.mark.slow
def test_a_quick_run_records_what_it_ran(tmp_path):
    root = toydata.write_voc(tmp_path / "voc", 2, 2, size=(96, 64), classes=toydata.VOC_CLASSES)
    torch.manual_seed(0)
    ckpt = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), ckpt)
    opts = {f"{k}.num_workers": 0 for k in ("train_dataloader", "val_dataloader", "test_dataloader")}
    opts.update({f"{k}.persistent_workers": False for k in ("train_dataloader", "val_dataloader",
                                                            "test_dataloader")})
    rec = ft.finetune(str(ckpt), "voc-faster-rcnn-fpn", work_dir=tmp_path / "wd", data_root=str(root),
                      cfg_options=opts, quick=True, scale=(200, 120))
    pr = rec["protocol"]
    assert pr["quick"]["quick"] is True and pr["quick"]["scale"] == [200, 120]
    assert pr["effective"]["image_scale"] == "200x120 train, 200x120 test"
    assert (pr["effective"]["depth"], pr["effective"]["width"]) == (18, 1)  # the checkpoint's, not R50
    assert pr["epochs"] == 4  # the schedule's epochs ran, each on 1 of 2 images x 3 repeats
    assert pr["iterations"] == 4 * 3 * 2 // 2  # 2 leaves x 1 image x 3 repeats / batch 2, 4 epochs
    assert rec["metrics"]
