"""`unmix pretrain --quick` (issue 17.4): a short run whose lr at each fraction of the run is
the full recipe's, recorded as quick, in a work dir of its own."""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch

from pretrain import quick
from pretrain.optim import lr_at
from tests import fakedata
from unmix.cli import main
from unmix.core.config import load_config, to_plain

CFG = Path(__file__).resolve().parents[1] / "configs" / "pretrain"


def sections(config: str) -> dict[str, dict]:
    cfg = load_config(str(CFG / config))
    out = {k: to_plain(cfg[k].to_dict()) for k in ("model", "schedule", "train")}
    out["knn"] = to_plain(cfg.knn.to_dict()) if "knn" in cfg else {"interval": 0}
    return out


def lr(s: dict, step: int, steps_per_epoch: int) -> float:
    """The loop's lr (pretrain/train.py train_step) with base lr 1."""
    return lr_at(step, steps_per_epoch, s["epochs"], 1.0, s.get("policy", "cosine"), s.get("warmup_epochs", 0),
                 s.get("warmup_start", 0.0), s.get("min_lr", 0.0), s.get("milestones", ()), s.get("gamma", 0.1),
                 s.get("warmup_iters"), bool(s.get("per_epoch", False)))


def shortened(config: str, images: int):
    full = sections(config)
    q = copy.deepcopy(full)
    rec = quick.shrink(q["schedule"], q["train"], q["model"], q["knn"])
    quick.fit_iterations(rec, q["schedule"], q["model"], images, int(full["train"]["batch_size"]))
    return full, q, rec


# (config, training images): sizes where the warm-up is a whole number of the short run's
# iterations, so the shapes can agree exactly (others round it: the test below)
@pytest.mark.parametrize("config, images", [
    ("simclr_cifar10.py", 50000),            # LARS, 10 of 1000 warm-up epochs, cosine per iteration
    ("moco_v2_cifar10.py", 50000),           # cosine set once per epoch (MoCo)
    ("moco_v1_imagenet100.py", 126689),      # x0.1 at epochs 120 and 160 of 200, per epoch
    ("byol_cifar10_htdt.py", 25600)])        # 500 warm-up iterations, x0.2 at epochs 950, 975 of 1000
def test_lr_at_the_same_fractions_is_the_full_runs(config, images):
    full, q, rec = shortened(config, images)
    batch = int(full["train"]["batch_size"])
    s_full, s_quick = images // batch, rec["max_iters_per_epoch"]
    total_full, total = full["schedule"]["epochs"] * s_full, rec["epochs"] * s_quick
    assert (rec["iterations"], rec["full_iterations"]) == (total, total_full) == (100, total_full)
    k = total_full // total
    assert k * total == total_full
    warm = q["schedule"].get("warmup_iters") or 0
    assert warm * k == rec["full_warmup_iters"]  # the same share of the run
    per_epoch = bool(full["schedule"].get("per_epoch"))
    checked = 0
    for step in range(total):
        if per_epoch and step % s_quick:
            continue  # MoCo's lr is the epoch start's: compare where both runs start an epoch
        # in the warm-up the loop's lr counts the step as done ((step + 1) / warm-up)
        full_step = (step + 1) * k - 1 if step < warm else step * k
        assert lr(q["schedule"], step, s_quick) == pytest.approx(lr(full["schedule"], full_step, s_full),
                                                                 abs=1e-9), step
        checked += 1
    assert checked == (rec["epochs"] if per_epoch else total)


def test_swav_shares_of_the_run_are_kept_up_to_one_iteration():
    """SwAV CIFAR: 5 of 1000 warm-up epochs and 5005 frozen-prototype iterations are 0.5% and
    1.3% of the run; the short run's 100 iterations hold them to one iteration (at least 1)."""
    full, q, rec = shortened("swav_cifar10.py", 50000)
    total, total_full = rec["iterations"], rec["full_iterations"]
    assert total_full == 1000 * (50000 // 128) and total == 100
    warm, frozen = q["schedule"]["warmup_iters"], q["model"]["freeze_prototypes_iters"]
    assert warm >= 1 and abs(warm / total - 5 * (50000 // 128) / total_full) <= 1 / total
    assert frozen >= 1 and abs(frozen / total - 5005 / total_full) <= 1 / total
    # shares of the run in epochs stay exact: the method divides them by the run's epochs
    assert q["model"]["queue_start_epoch"] / q["schedule"]["epochs"] == pytest.approx(
        full["model"]["queue_start_epoch"] / full["schedule"]["epochs"], abs=1e-12)
    assert q["knn"]["interval"] == 5 and q["knn"]["max_samples"] == quick.QUICK_KNN_SAMPLES


def test_a_quick_run_is_recorded_in_its_own_work_dir_with_the_shortened_schedule(tmp_path, monkeypatch, capsys):
    root = fakedata.write_cifar10(tmp_path / "cifar", n_train=16, n_test=8)
    fakedata.patch_md5(monkeypatch, root, "cifar10")
    monkeypatch.chdir(tmp_path)
    opts = [f"data.root={root}", "train.batch_size=4", "train.max_iters_per_epoch=2", "data.num_workers=0",
            "data.size=16", "train.tensorboard=False", "model.K=16", "model.split_bn=2"]
    config = str(CFG / "moco_v2_cifar10.py")  # 1000 epochs, cosine set per epoch, lr 0.06
    assert main(["pretrain", config, "--quick", "--device", "cpu", "--cfg-options", *opts]) == 0
    wd = tmp_path / "work_dirs" / "pretrain" / "moco_v2_cifar10-quick"
    assert not (tmp_path / "work_dirs" / "pretrain" / "moco_v2_cifar10").exists()
    meta = torch.load(wd / "latest.pth", map_location="cpu", weights_only=True)["meta"]
    assert meta["quick"]["quick"] is True and (meta["quick"]["epochs"], meta["quick"]["full_epochs"]) == (5, 1000)
    assert meta["epochs"] == 5 and meta["pretrain"]["epochs"] == 5
    assert "quick=" in meta["config"] and "full_epochs=1000" in (wd / "config.py").read_text()
    log = (wd / "train.log").read_text()
    assert "quick run (--quick): 5 of 1000 epochs, 10 of 2000 iterations" in log and log.count("kNN top-1") == 1
    # what ran: 5 epochs of 2 steps, MoCo's per-epoch cosine of the full run at epochs 0, 200, ..., 800
    lrs = [json.loads(line)["lr"] for line in (wd / "metrics.jsonl").read_text().splitlines()]
    want = [0.06 * 0.5 * (1 + math.cos(math.pi * (i // 2) / 5)) for i in range(10)]
    assert lrs == pytest.approx(want, abs=1e-12)
    # a full run never continues a quick one's checkpoints; the quick run resumes its own
    assert main(["pretrain", config, "--work-dir", str(wd), "--resume", "--device", "cpu",
                 "--cfg-options", *opts]) == 1
    assert "was a quick run, this is a full one" in capsys.readouterr().err
    assert main(["pretrain", config, "--quick", "--resume", "--device", "cpu", "--cfg-options", *opts]) == 0
    assert "nothing to do: 5 of 5 epochs done" in (wd / "train.log").read_text()
