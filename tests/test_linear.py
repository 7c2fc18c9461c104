"""Linear probe: separable features are learned exactly, schedules match the papers' numbers, and
`unmix linear` writes a valid record."""
from __future__ import annotations

import json
import math

import pytest
import torch

from transfer.frozen.common import topk_accuracy
from transfer.frozen.linear import (PROTOCOLS, LinearProbe, cached_batches, lr_at, predict,
                                   probe_eval_transform, train_linear, train_transform)
from tests import fakedata
from unmix.core.files import sha256_file


def separable(n_per_class: int, num_classes: int, dim: int, seed: int, scale: float = 1.0):
    """Clusters around orthogonal class centres, far apart relative to the noise."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.eye(num_classes, dim) * 4
    labels = torch.arange(num_classes).repeat_interleave(n_per_class)
    feats = centres[labels] + 0.3 * torch.randn(labels.numel(), dim, generator=g)
    return feats * scale, labels


@pytest.mark.parametrize("base,scale", [("cifar", 1.0), ("cifar", 1e-3), ("imagenet", 0.1), ("imagenet100", 0.1)])
def test_probe_learns_separable_features(base, scale):
    p = PROTOCOLS[base]
    x, y = separable(20, 4, 16, seed=0, scale=scale)
    xt, yt = separable(10, 4, 16, seed=1, scale=scale)
    torch.manual_seed(0)
    probe = LinearProbe(16, 4)
    if p.feature_norm == "standardize":
        probe.set_standardization(x)
    losses = train_linear(probe, cached_batches(x, y, 16, seed=0), epochs=10, lr=p.lr,
                          schedule=p.schedule, milestones=tuple(m * 10 // p.epochs for m in p.milestones),
                          momentum=p.momentum, weight_decay=p.weight_decay)
    assert len(losses) == 10 and losses[-1] < losses[0]
    assert topk_accuracy(predict(probe, xt), yt)["top1"] == 100.0


def test_protocol_schedules():
    imnet, first, in100 = PROTOCOLS["imagenet"], PROTOCOLS["imagenet-first"], PROTOCOLS["imagenet100"]
    lr = lambda p, e: lr_at(e, p.lr, p.epochs, p.schedule, p.milestones)  # noqa: E731
    # MoCo main_lincls: 30 for epochs 0-59, 3 for 60-79, 0.3 for 80-99
    assert [lr(imnet, e) for e in (0, 59, 60, 79, 80, 99)] == pytest.approx([30, 30, 3, 3, .3, .3])
    # arXiv 2003.05438v1 section 4.2: x0.1 at 60, 80 and 90 (ImageNet-1K);
    # lr 10 and x0.1 at 30, 40, 50 (ImageNet-100)
    assert lr(first, 95) == pytest.approx(0.03)
    assert (in100.epochs, in100.lr) == (60, 10.0)
    assert [lr(in100, e) for e in (29, 30, 40, 50)] == pytest.approx([10, 1, .1, .01])
    cif = PROTOCOLS["cifar"]
    assert lr(cif, 0) == pytest.approx(0.1) and lr(cif, 50) == pytest.approx(0.05)
    # MoCo/first-form probes: no weight decay; SwAV's CIFAR eval_linear.py: 1e-6
    assert all(p.weight_decay == 0 for n, p in PROTOCOLS.items() if n != "swav-cifar")


def test_swav_cifar_protocol_is_the_official_eval_linear():
    """szq0214/Un-Mix UnMix_SwAV/for_CIFAR/eval_linear.py:63-80,112-124,178-194."""
    p = PROTOCOLS["swav-cifar"]
    assert (p.epochs, p.batch_size, p.lr, p.weight_decay, p.momentum) == (100, 32, 0.3, 1e-6, 0.9)
    assert (p.schedule, p.aug, p.feature_norm, p.train_crop) == ("cosine", True, "none", "resized")
    assert p.mean_std == ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
    # torch's CosineAnnealingLR(T_max=100, eta_min=0) stepped once per epoch, closed form
    assert [lr_at(e, p.lr, p.epochs, p.schedule, p.milestones) for e in (0, 50, 99)] == pytest.approx(
        [0.3, 0.15, 0.3 * 0.5 * (1 + math.cos(math.pi * 99 / 100))])
    tf = train_transform("cifar10", None, p.train_crop, p.mean_std)
    names = [type(t).__name__ for t in tf.transforms]
    assert "RandomResizedCrop" in names and "RandomCrop" not in names
    assert tuple(tf.transforms[-1].std) == (0.2470, 0.2435, 0.2616)
    ev = probe_eval_transform("cifar10", None, p.mean_std)
    assert tuple(ev.transforms[-1].std) == (0.2470, 0.2435, 0.2616)
    assert probe_eval_transform("cifar10", None, None) is None  # the dataset's default


def test_standardization_is_a_foldable_affine_map():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 8, generator=g) * 5 + 2
    probe = LinearProbe(8, 3)
    probe.set_standardization(x)
    z = (x - probe.mean) / probe.std
    torch.testing.assert_close(z.mean(0), torch.zeros(8), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std(0, unbiased=False), torch.ones(8), atol=1e-4, rtol=0)
    # fold into one nn.Linear: W' = W / std, b' = b - W' @ mean
    w = probe.fc.weight / probe.std
    b = probe.fc.bias - w @ probe.mean
    torch.testing.assert_close(probe(x), x @ w.T + b, atol=1e-4, rtol=1e-4)


def test_cached_batches_cover_every_sample_once_per_epoch():
    x = torch.arange(10).float().view(10, 1)
    y = torch.arange(10)
    batches = cached_batches(x, y, 4, seed=3)
    seen = torch.cat([b[1] for b in batches(0)])
    assert sorted(seen.tolist()) == list(range(10))
    assert [len(b[1]) for b in batches(1)] == [4, 4, 2]
    assert not torch.equal(seen, torch.cat([b[1] for b in batches(1)]))  # reshuffled per epoch


# ---------------------------------------------------------------------------------------------
# The command, end to end (needs pretrain.data, tests/fakedata.py and transfer.convert).

def _tiny_run(tmp_path, extra):
    from unmix.cli import main

    root = tmp_path / "data"
    fakedata.write_image_folder(root / "train", classes=2, per_class=4, size=32)
    fakedata.write_image_folder(root / "val", classes=2, per_class=2, size=32, seed=5)
    ckpt = tmp_path / "r18.pth"
    fakedata.write_random_resnet(ckpt, seed=0)
    work = tmp_path / "work"
    rc = main(["linear", str(ckpt), "--dataset", "folder", "--data-root", str(root), "--arch", "resnet18",
               "--image-size", "32", "--work-dir", str(work), "--batch-size", "4", "--workers", "0",
               "--device", "cpu", "--epochs", "2", "--train-batch-size", "4", *extra])
    return rc, work, ckpt


@pytest.mark.slow
@pytest.mark.parametrize("extra", [["--no-aug"], ["--aug"]])
def test_cli_two_epochs_writes_record(tmp_path, extra):
    from unmix.core import records

    rc, work, ckpt = _tiny_run(tmp_path, extra)
    assert rc == 0
    rec = records.load(work / "result.json")
    assert rec["kind"] == "linear" and rec["status"] == "finished"
    assert set(rec["metrics"]) == {"top1", "top5"} and 0 <= rec["metrics"]["top1"] <= 100
    assert rec["protocol"]["epochs"] == 2 and rec["protocol"]["aug"] == (extra == ["--aug"])
    assert rec["protocol"]["name"].startswith("linear-cifar")
    assert rec["checkpoint"]["sha256"] == sha256_file(ckpt)
    assert rec["checkpoint"]["label"] == "r18" and rec["checkpoint"]["pretrain"] is None
    assert len(rec["details"]["train_loss"]) == 2
    assert (work / "linear.log").read_text().count("epoch ") >= 2
    assert (work / "probe.pth").exists() and not (work / "last.pth").exists()
    json.dumps(rec)


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    from unmix.cli import main

    rc = main(["linear", str(tmp_path / "missing.pth"), "--dataset", "folder", "--data-root", str(tmp_path)])
    assert rc == 1 and "no such checkpoint" in capsys.readouterr().err
    ckpt = tmp_path / "c.pth"
    ckpt.write_bytes(b"x")
    rc = main(["linear", str(ckpt), "--dataset", "mnist", "--data-root", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 1 and "unknown dataset" in err and len(err.strip().splitlines()) == 1
    rc = main(["linear", str(ckpt), "--dataset", "cifar10", "--data-root", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert rc == 1 and "data root" in err and len(err.strip().splitlines()) == 1


def test_dead_feature_dimension_is_not_blown_up():
    x = torch.randn(40, 4)
    x[:, 2] = 0.0  # a ReLU unit dead on every training image
    probe = LinearProbe(4, 2)
    probe.set_standardization(x)
    assert probe.std[2] == pytest.approx(0.01 * x.std(0, unbiased=False).mean().item(), rel=1e-4)
    assert torch.isfinite(probe(torch.ones(1, 4))).all()
