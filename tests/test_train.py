"""`unmix pretrain` end to end on tiny real-format data (ResNet-18 CIFAR stem, batch 4, 2 iterations)."""
from __future__ import annotations

import json
import math
import re
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from pretrain import checkpoint as ckpt
from pretrain import optim
from pretrain.backbones import build_resnet
from tests import fakedata
from unmix.cli import main

REPO = Path(__file__).resolve().parents[1]
CFG = REPO / "configs" / "pretrain"
# Tiny but real: 32-px images on disk, cropped to 16 px and small heads so CPU steps take ~1 s.
FAST = ["train.batch_size=4", "train.max_iters_per_epoch=2", "data.num_workers=0", "data.size=16",
        "schedule.epochs=1", "knn.interval=0", "train.tensorboard=False"]
SMALL_MODEL = {"moco": ["model.K=16", "model.split_bn=2"], "simclr": ["model.hidden_dim=32"],
               "byol": ["model.hidden_dim=32", "model.dim=16"],
               "swav": ["model.hidden_dim=32", "model.n_prototypes=10"]}


@pytest.fixture
def cifar(tmp_path, monkeypatch):
    root = fakedata.write_cifar10(tmp_path / "cifar", n_train=16, n_test=8)
    fakedata.patch_md5(monkeypatch, root, "cifar10")
    return root


def pretrain(config: str, work_dir: Path, root: Path, *options: str, resume: bool = False) -> int:
    argv = ["pretrain", str(CFG / config), "--work-dir", str(work_dir), "--device", "cpu",
            "--cfg-options", f"data.root={root}", *FAST, *options]
    return main(argv + (["--resume"] if resume else []))


def losses(work_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (work_dir / "metrics.jsonl").read_text().splitlines()]


def test_moco_unmix_writes_a_convertible_checkpoint(cifar, tmp_path):
    wd = tmp_path / "wd"
    assert pretrain("moco_v2_cifar10_unmix.py", wd, cifar, *SMALL_MODEL["moco"], "knn.interval=1",
                    "train.tensorboard=True") == 0
    obj = torch.load(wd / "latest.pth", map_location="cpu", weights_only=True)  # every field loads
    assert obj["format"] == "unmix-pretrain" and obj["version"] == 2 and obj["epoch"] == 1
    meta = obj["meta"]
    assert meta["pretrain"] == {"method": "moco", "unmix": True, "epochs": 1, "dataset": "cifar10", "quick": False}
    assert (meta["method"], meta["arch"], meta["stem"], meta["dataset"]) == ("moco", "resnet18", "cifar", "cifar10")
    assert meta["unmix"] is True and meta["mixing"]["final_form"]["enabled"] is True
    assert meta["mixing"]["first_form"] == {"enabled": False}
    assert "moco_v2_cifar10" in meta["config"] or "type='moco'" in meta["config"]
    assert not any(k.startswith("module.") for k in obj["state_dict"])
    enc = build_resnet("resnet18", "cifar")
    enc.load_state_dict({k[len("backbone."):]: v for k, v in obj["state_dict"].items() if k.startswith("backbone.")})
    assert (wd / "epoch_0001.pth").is_file() and (wd / "train.log").read_text().count("kNN top-1") == 1
    assert len(losses(wd)) == 2 and any((wd / "tb").iterdir())
    from transfer.convert import formats

    assert formats.detect(obj) == "unmix-pretrain"


@pytest.mark.slow
@pytest.mark.parametrize("config", ["moco_v1_cifar10", "simclr_cifar10", "byol_cifar10", "swav_cifar10"])
@pytest.mark.parametrize("unmix", [False, True])
def test_every_method_two_iterations(cifar, tmp_path, config, unmix):
    name = config + ("_unmix" if unmix else "") + ".py"
    wd = tmp_path / "wd"
    assert pretrain(name, wd, cifar, *SMALL_MODEL[config.split("_")[0]]) == 0
    ls = losses(wd)
    assert len(ls) == 2 and all(math.isfinite(x) for x in ls)
    assert torch.load(wd / "latest.pth", weights_only=True)["meta"]["unmix"] is unmix


@pytest.mark.slow
def test_resume_continues_the_same_trajectory(cifar, tmp_path, monkeypatch):
    # First form on (prob 1) so the data-side mixing is part of the trajectory too.
    opts = [*SMALL_MODEL["moco"], "schedule.epochs=2", "train.max_iters_per_epoch=1",
            "data.first_form.g_prob=1.0", "data.first_form.r_prob=1.0"]
    straight = tmp_path / "straight"
    assert pretrain("moco_v1_cifar10_firstform.py", straight, cifar, *opts) == 0
    log = (straight / "train.log").read_text()  # the whole run's ETA after each epoch but the last
    assert re.search(r"epoch 1/2 .*\| ETA \S+ for 1 more epochs", log) and log.count("more epochs") == 1

    interrupted = tmp_path / "interrupted"
    real_save = ckpt.save

    def save_then_crash(*a, **k):
        real_save(*a, **k)
        raise KeyboardInterrupt  # the machine goes down right after the epoch-1 checkpoint
    monkeypatch.setattr(ckpt, "save", save_then_crash)
    assert pretrain("moco_v1_cifar10_firstform.py", interrupted, cifar, *opts) == 130
    monkeypatch.setattr(ckpt, "save", real_save)
    assert torch.load(interrupted / "latest.pth", weights_only=True)["epoch"] == 1
    assert pretrain("moco_v1_cifar10_firstform.py", interrupted, cifar, *opts, resume=True) == 0
    assert losses(interrupted) == losses(straight) and len(losses(straight)) == 2
    a = torch.load(straight / "latest.pth", weights_only=True)["state_dict"]
    b = torch.load(interrupted / "latest.pth", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


class StandIn(nn.Module):
    """Follows the method interface; its loss turns NaN at `nan_at` (a forward count)."""

    calls: list = []

    def __init__(self, arch="resnet18", stem="cifar", unmix=None, nan_at: int = -1) -> None:
        super().__init__()
        self.backbone = build_resnet(arch, stem)
        self.head = nn.Linear(self.backbone.num_features, 8)
        self.nan_at, self.n = nan_at, 0

    def forward(self, views, generator=None):
        z = [self.head(self.backbone(v)) for v in views]
        loss = (z[0] - z[1]).pow(2).mean()
        self.n += 1
        if self.n == self.nan_at:
            loss = loss * float("nan")
        return {"loss": loss, "z_std": z[0].detach().std()}

    def before_step(self, p):
        StandIn.calls.append(("before_step", p))

    def after_backward(self, p):
        StandIn.calls.append(("after_backward", p))

    def after_step(self, p):
        StandIn.calls.append(("after_step", p))


def test_nan_loss_stops_and_keeps_last_good_checkpoint(cifar, tmp_path, monkeypatch, capsys):
    from pretrain import methods

    monkeypatch.setitem(methods.METHODS, "standin", StandIn)
    StandIn.calls = []
    wd = tmp_path / "wd"
    cfg = tmp_path / "standin.py"
    cfg.write_text(f"_base_ = '{CFG / 'moco_v2_cifar10.py'}'\n"
                   "model = dict(_delete_=True, type='standin', arch='resnet18', stem='cifar', nan_at=3)\n")
    rc = pretrain(str(cfg), wd, cifar, "schedule.epochs=2", "train.amp=bf16")
    assert rc == 1
    err = capsys.readouterr().err
    assert "loss is nan at epoch 2 iteration 1" in err and "Last good checkpoint" in err
    assert torch.load(wd / "latest.pth", weights_only=True)["epoch"] == 1
    assert not (wd / "epoch_0002.pth").exists()
    # hooks: before/after for the 2 good steps of epoch 1, progress = step / total steps
    assert [c for c in StandIn.calls if c[0] == "after_step"] == [("after_step", 0.0), ("after_step", 0.25)]
    assert [c[0] for c in StandIn.calls[:3]] == ["before_step", "after_backward", "after_step"]


def test_user_errors_are_one_line(tmp_path, capsys):
    assert main(["pretrain", str(tmp_path / "nope.py")]) == 1
    assert "config file not found" in capsys.readouterr().err
    rc = main(["pretrain", str(CFG / "moco_v2_cifar10.py"), "--work-dir", str(tmp_path / "wd"),
               "--device", "cpu", "--cfg-options", f"data.root={tmp_path / 'missing'}"])
    assert rc == 1 and "data root not found" in capsys.readouterr().err
    assert main(["pretrain", str(CFG / "moco_v2_cifar10.py"), "--work-dir", str(tmp_path / "wd2"),
                 "--resume", "--device", "cpu"]) == 1
    assert "nothing to resume" in capsys.readouterr().err


def test_lr_schedules_closed_forms():
    # warm-up: linear to base over 2 epochs of 10 steps; then cosine to min_lr
    lr = lambda s, **k: optim.lr_at(s, 10, 10, 1.0, **k)  # noqa: E731
    assert lr(0, warmup_epochs=2) == pytest.approx(0.05) and lr(19, warmup_epochs=2) == pytest.approx(1.0)
    assert lr(20 + 40, warmup_epochs=2) == pytest.approx(0.5)  # half-way through the cosine part
    assert lr(99, min_lr=0.1) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 99 / 100)))
    assert [lr(s, policy="step", milestones=[6, 8]) for s in (59, 60, 80)] == pytest.approx([1.0, 0.1, 0.01])


def test_lars_matches_naive_reference():
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(5, 3))
    b = nn.Parameter(torch.randn(5))
    w0, b0 = w.detach().clone(), b.detach().clone()
    opt = optim.LARS([{"params": [w], "weight_decay": 0.1}, {"params": [b], "weight_decay": 0.0, "lars": False}],
                     lr=0.5, momentum=0.9, eta=0.01)
    gw, gb = torch.randn(5, 3), torch.randn(5)
    w.grad, b.grad = gw.clone(), gb.clone()
    opt.step()
    g = gw + 0.1 * w0
    trust = 0.01 * w0.norm() / g.norm()
    torch.testing.assert_close(w.detach(), w0 - 0.5 * trust * g)
    torch.testing.assert_close(b.detach(), b0 - 0.5 * gb)
    groups = optim.param_groups(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)), 1e-4, True)
    assert [len(g["params"]) for g in groups] == [1, 3] and groups[1]["weight_decay"] == 0.0


@pytest.mark.slow
def test_torchrun_two_processes_gloo(tmp_path):
    root = fakedata.write_image_folder(tmp_path / "imgs" / "train", classes=2, per_class=8, size=32).parent
    wd = tmp_path / "wd"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "unmix.cli", "pretrain", str(CFG / "moco_v2_cifar10_unmix.py"), "--work-dir", str(wd),
           "--device", "cpu", "--cfg-options", f"data.root={root}", "data.name=folder", *FAST,
           "train.batch_size=8", *SMALL_MODEL["moco"]]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    obj = torch.load(wd / "latest.pth", weights_only=True)
    assert obj["epoch"] == 1 and not any(k.startswith("module.") for k in obj["state_dict"])
    assert "batch 8 (2 x 4)" in (wd / "train.log").read_text()
    assert len(losses(wd)) == 2


@pytest.mark.slow
def test_stl10_device_augment_and_tiny_imagenet_cutout(tmp_path, monkeypatch):
    stl = fakedata.write_stl10(tmp_path / "stl", n_train=4, n_test=4, n_unlabeled=8)
    fakedata.patch_md5(monkeypatch, stl, "stl10")
    wd = tmp_path / "stl_wd"
    assert pretrain("simclr_stl10_unmix.py", wd, stl, *SMALL_MODEL["simclr"], "data.device_augment=True",
                    "knn.interval=1") == 0  # 12 train+unlabeled images; kNN bank = labelled train
    assert len(losses(wd)) == 2 and "kNN top-1" in (wd / "train.log").read_text()
    tiny = fakedata.write_tiny_imagenet(tmp_path / "tiny", classes=2, per_class=4, size=32)
    wd = tmp_path / "tiny_wd"
    assert pretrain("moco_v2_tiny_imagenet.py", wd, tiny, *SMALL_MODEL["moco"], "data.first_form.enabled=True",
                    "data.first_form.im_type=Cutout", "data.first_form.cutout_prob=1.0") == 0
    meta = torch.load(wd / "latest.pth", weights_only=True)["meta"]
    assert meta["mixing"]["first_form"]["im_type"] == "Cutout" and meta["dataset"] == "tiny-imagenet"


def test_resume_refuses_a_different_run(tmp_path, capsys):
    lin = nn.Linear(2, 2)
    ckpt.save(tmp_path / "wd", lin, {"method": "byol", "arch": "resnet18", "dataset": "cifar10"},
              torch.optim.SGD(lin.parameters(), lr=0.1), None, 1, keep=False)
    rc = main(["pretrain", str(CFG / "moco_v2_cifar10.py"), "--work-dir", str(tmp_path / "wd"), "--device", "cpu",
               "--resume", "--cfg-options", f"data.root={tmp_path}", *SMALL_MODEL["moco"]])
    assert rc == 1 and "was trained with method 'byol'" in capsys.readouterr().err


# ------------------------------------------------------------------- reruns and killed runs

def _snapshot(wd: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in wd.iterdir() if p.is_file()}


def test_rerun_without_resume_refuses_and_loses_nothing(cifar, tmp_path, capsys):
    wd = tmp_path / "wd"
    opts = [*SMALL_MODEL["moco"], "train.seed=3"]
    assert pretrain("moco_v2_cifar10.py", wd, cifar, *opts) == 0
    before = _snapshot(wd)
    capsys.readouterr()
    assert pretrain("moco_v2_cifar10.py", wd, cifar, *opts) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds a finished run" in err and "--resume" in err, err
    assert _snapshot(wd) == before  # config.py, latest.pth, metrics.jsonl, train.log: untouched
    # --force starts over (and says so by replacing the run), --resume of a finished run is a no-op
    assert pretrain("moco_v2_cifar10.py", wd, cifar, *opts, resume=True) == 0
    assert (wd / "metrics.jsonl").read_bytes() == before["metrics.jsonl"]
    assert main(["pretrain", str(CFG / "moco_v2_cifar10.py"), "--work-dir", str(wd), "--device", "cpu",
                 "--force", "--cfg-options", f"data.root={cifar}", *FAST, *opts]) == 0
    assert len(losses(wd)) == 2


@pytest.mark.slow
def test_resumed_metrics_hold_each_step_once(cifar, tmp_path, monkeypatch):
    from pretrain import train as train_mod

    opts = [*SMALL_MODEL["moco"], "schedule.epochs=2"]
    straight = tmp_path / "straight"
    assert pretrain("moco_v2_cifar10.py", straight, cifar, *opts) == 0
    cut = tmp_path / "cut"
    real_step = train_mod.train_step

    def step_then_die(run, views, epoch, i):
        out = real_step(run, views, epoch, i)
        if (epoch, i) == (1, 0):
            raise KeyboardInterrupt  # killed in the middle of epoch 2, after its first step's line
        return out

    monkeypatch.setattr(train_mod, "train_step", step_then_die)
    assert pretrain("moco_v2_cifar10.py", cut, cifar, *opts) == 130
    assert [json.loads(x)["step"] for x in (cut / "metrics.jsonl").read_text().splitlines()] == [0, 1, 2]
    monkeypatch.setattr(train_mod, "train_step", real_step)
    # a save killed during the run left a temp file; the next start removes it
    (cut / f".latest.pth.unmix-elsewhere-{os.getpid()}-k1ll3d.tmp").write_bytes(b"x" * 1000)
    assert pretrain("moco_v2_cifar10.py", cut, cifar, *opts, resume=True) == 0
    steps = [json.loads(x)["step"] for x in (cut / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 1, 2, 3] and losses(cut) == losses(straight)
    assert sorted(p.name for p in cut.iterdir() if p.name.startswith(".")) == []


def test_resume_from_truncated_or_hostile_checkpoint_is_one_line(cifar, tmp_path, capsys):
    wd = tmp_path / "wd"
    wd.mkdir()
    lin = nn.Linear(2, 2)
    ckpt.save(wd, lin, {"method": "moco", "arch": "resnet18", "dataset": "cifar10"},
              torch.optim.SGD(lin.parameters(), lr=0.1), None, 1, keep=False)
    whole = (wd / "latest.pth").read_bytes()
    for content, match in ((whole[: len(whole) // 2], "truncated or corrupt checkpoint"),
                           (b"", "empty file"), (None, "refused to load")):
        if content is None:
            torch.save({"format": "unmix-pretrain", "x": Evil(tmp_path / "ran")}, wd / "latest.pth")
        else:
            (wd / "latest.pth").write_bytes(content)
        capsys.readouterr()
        assert pretrain("moco_v2_cifar10.py", wd, cifar, *SMALL_MODEL["moco"], resume=True) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and match in err and "latest.pth" in err, err
    assert not (tmp_path / "ran").exists()


class Evil:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_swav_resume_reloads_the_queue_from_its_rank_file(cifar, tmp_path, monkeypatch):
    """Each process's SwAV queue comes back from its own queue<rank>.pth (as the official
    main_swav_unmix.py), not from the state dict in latest.pth, which holds rank 0's: with that
    copy blanked, the resumed run still follows the uninterrupted one."""
    opts = [*SMALL_MODEL["swav"], "model.arch=resnet18", "model.queue_length=8",
            "model.queue_start_epoch=0", "schedule.epochs=2", "schedule.warmup_epochs=0"]
    straight = tmp_path / "straight"
    assert pretrain("swav_cifar10_unmix.py", straight, cifar, *opts) == 0
    saved = torch.load(straight / "queue0.pth", weights_only=True)
    final = torch.load(straight / "latest.pth", weights_only=True)["state_dict"]["queue"]
    assert (saved["world_size"], saved["epoch"]) == (1, 2) and saved["buffers"]["queue"].abs().sum() > 0
    assert torch.equal(saved["buffers"]["queue"], final)

    cut = tmp_path / "cut"
    real_save = ckpt.save

    def save_then_crash(*a, **k):
        real_save(*a, **k)
        raise KeyboardInterrupt
    monkeypatch.setattr(ckpt, "save", save_then_crash)
    assert pretrain("swav_cifar10_unmix.py", cut, cifar, *opts) == 130
    monkeypatch.setattr(ckpt, "save", real_save)
    state = torch.load(cut / "latest.pth", weights_only=True)
    state["state_dict"]["queue"].zero_()  # rank 0's copy must not be what is restored
    torch.save(state, cut / "latest.pth")
    assert pretrain("swav_cifar10_unmix.py", cut, cifar, *opts, resume=True) == 0
    assert losses(cut) == losses(straight) and len(losses(straight)) == 4
    assert "rank 0 restored its own queue" in (cut / "train.log").read_text()
