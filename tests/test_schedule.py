"""Warm-ups that warm up: mmengine's own schedulers, stepped as its runner steps them, against the
closed form lr(i) = base * ramp(i) * gamma^(milestones passed), for every protocol shortened by
the smoke options and by `--quick`/`--fraction`; and a 1-step warm-up (which mmengine silently
freezes at its start factor) refused before a run begins."""
from __future__ import annotations

import copy

import pytest
import torch

from transfer.stack import ensure_stack

ensure_stack()

from mmengine.config import Config  # noqa: E402
from mmengine.registry import PARAM_SCHEDULERS  # noqa: E402

from transfer.detection import datacheck, options, protocols, quick, schedule  # noqa: E402
from unmix.core.errors import Refused  # noqa: E402

protocols.register_modules()
BASE = 0.02


def _iteration_lrs(schedulers: list[dict], n: int) -> list[float]:
    """The lr of iterations 0..n-1 under the iteration-based schedulers, as mmengine sets it."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=BASE)
    built = [PARAM_SCHEDULERS.build(dict(copy.deepcopy(s), optimizer=opt)) for s in schedulers
             if not s.get("by_epoch", True)]
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        for s in built:
            s.step()
    return out


def _closed_form(schedulers: list[dict], n: int) -> list[float]:
    lrs = []
    for i in range(n):
        lr = BASE
        for s in schedulers:
            if s.get("by_epoch", True):
                continue
            if s["type"] == "LinearLR":
                a, T = s["start_factor"], s["end"] - s.get("begin", 0) - 1  # full lr at step end-1
                lr *= a + (1 - a) * min(i, T) / T
            if s["type"] == "MultiStepLR":
                lr *= s.get("gamma", 0.1) ** sum(i >= m for m in s["milestones"])
        lrs.append(lr)
    return lrs


def test_mmengine_freezes_a_one_step_linear_warm_up_and_the_check_says_so():
    for end, frozen in ((1, True), (2, False), (5, False)):
        s = [dict(type="LinearLR", start_factor=0.001, by_epoch=False, begin=0, end=end)]
        lrs = _iteration_lrs(s, 6)
        assert (lrs[-1] == pytest.approx(BASE * 0.001)) is frozen  # the library's behaviour
        assert bool(schedule.frozen_ramps(s)) is frozen  # what our check predicts
        if not frozen:
            assert lrs == pytest.approx(_closed_form(s, 6), rel=1e-9)


@pytest.mark.parametrize("name", list(protocols.PROTOCOLS))
def test_smoke_options_warm_up_reaches_the_full_lr(name):
    cfg = protocols.load_config(name)
    options.apply(cfg, protocols.smoke_options(name))
    scheds = [dict(s) for s in cfg.param_scheduler]
    assert not schedule.frozen_ramps(scheds)
    warm = [s for s in scheds if s["type"] == "LinearLR"]
    n = max([s["end"] for s in warm] + [2])
    lrs = _iteration_lrs(scheds, n)
    assert lrs == pytest.approx(_closed_form(scheds, n), rel=1e-9)
    if warm and cfg.train_cfg.get("max_iters") is None:
        assert lrs[-1] == pytest.approx(BASE)  # epoch schedule: full lr once warmed up


@pytest.mark.parametrize("name", ["voc-faster-rcnn-c4", "coco-mask-rcnn-c4-2x", "coco-mask-rcnn-fpn"])
@pytest.mark.parametrize("fraction", [quick.QUICK_FRACTION, 0.001])
def test_shortened_warm_up_keeps_at_least_two_steps_and_its_shape(name, fraction):
    full = protocols.load_config(name)
    cfg = protocols.load_config(name)
    splits = [s for s in datacheck.splits_of(cfg) if s.role == "train"]
    quick.apply(cfg, None, fraction, False, [(s.configs, 1000) for s in splits])
    scheds = [dict(s) for s in cfg.param_scheduler]
    assert not schedule.frozen_ramps(scheds)
    (old,) = [s for s in full.param_scheduler if s["type"] == "LinearLR"]
    (new,) = [s for s in scheds if s["type"] == "LinearLR"]
    assert new["end"] == max(2, -(-old["end"] * fraction // 1))  # ceil, at least 2 steps
    n = cfg.train_cfg.get("max_iters") or new["end"]
    lrs = _iteration_lrs(scheds, n)
    assert lrs == pytest.approx(_closed_form(scheds, n), rel=1e-9)
    assert max(lrs) == pytest.approx(BASE)  # the warm-up ends at the full lr


def test_a_one_step_warm_up_from_the_user_is_refused_in_one_line():
    cfg = protocols.load_config("coco-retinanet-fpn")
    options.apply(cfg, {"param_scheduler.0.end": 1})
    with pytest.raises(Refused) as e:
        schedule.check(cfg, "coco-retinanet-fpn")
    msg = str(e.value)
    assert "\n" not in msg and "param_scheduler.0" in msg and "0.3333" in msg and "end" in msg
    schedule.check(Config(dict(param_scheduler=[dict(type="LinearLR", begin=0, end=2)])), "ok")
