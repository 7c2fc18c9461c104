"""`--features backbone|head` of `unmix knn` and of the pretraining kNN monitor.

head = the L2-normalised output of the query encoder's projector, the quantity the official
Un-Mix CIFAR MoCo monitor compares (`test(model.encoder_q, ...)` in szq0214/Un-Mix unmix_c10.py,
whose encoder_q ends in the fc -> 128). Each test checks our features against the same network
run by hand (naive reference), in every layout a pretraining checkpoint comes in.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn
from torch.nn import functional as F

from pretrain import checkpoint as ckpt
from pretrain import train
from pretrain.methods.moco import MoCo
from pretrain.methods.swav import SwAV
from pretrain.schema import summary
from tests import fakedata
from transfer.frozen.common import load_encoder
from unmix.cli import main
from unmix.core import records

REPO = Path(__file__).resolve().parents[1]


def _meta(method: str, version: str | None = None) -> dict:
    meta = {"method": method, "arch": "resnet18", "stem": "cifar", "version": version,
            "unmix": False, "mixing": {"final_form": {"enabled": False}, "first_form": {"enabled": False}},
            "dataset": "cifar10", "epoch": 1, "epochs": 1, "config": "..."}
    meta["pretrain"] = summary(meta)
    return meta


def _ours(tmp_path: Path, model: nn.Module, method: str, version: str | None = None) -> Path:
    """A checkpoint as `unmix pretrain` writes it (pretrain.checkpoint.save)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return ckpt.save(tmp_path / method, model, _meta(method, version), opt, None, 1, keep=False)


def _perturbed(model: nn.Module) -> nn.Module:
    # Non-trivial BN statistics, so eval mode (running stats) is actually exercised.
    torch.manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model


def _same(got_encoder: nn.Module, naive, x: torch.Tensor) -> None:
    got_encoder.eval()
    with torch.no_grad():
        got, want = got_encoder(x), naive(x)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got.norm(dim=1), torch.ones(len(x)))


X = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_head_of_our_moco_checkpoint_is_the_query_projector(tmp_path, version):
    torch.manual_seed(0)
    model = _perturbed(MoCo("resnet18", "cifar", version=version, K=16)).eval()
    path = _ours(tmp_path, model, "moco", version)
    enc, block = load_encoder(path, features="head")
    assert block["format"] == "unmix-pretrain" and enc.source == "projector."
    _same(enc, lambda x: F.normalize(model.projector(model.backbone(x)), dim=1), X)
    momentum, _ = load_encoder(path, encoder="momentum", features="head")
    assert momentum.source == "momentum_projector."
    _same(momentum, lambda x: F.normalize(model.momentum_projector(model.momentum_backbone(x)), dim=1), X)


def test_head_with_batch_norm_our_swav_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = _perturbed(SwAV("resnet18", "cifar", hidden_dim=64, dim=16, n_prototypes=10)).eval()
    enc, _ = load_encoder(_ours(tmp_path, model, "swav"), features="head")
    _same(enc, lambda x: F.normalize(model.projector(model.backbone(x)), dim=1), X)


def _official_cifar_encoder() -> nn.Sequential:
    """encoder_q of the official CIFAR demo: the ResNet-18's children, 3x3 conv1, no max-pool,
    Flatten before the fc -> 128 (unmix_c10.py ModelBase)."""
    net = torchvision.models.resnet18(num_classes=128)
    layers: list[nn.Module] = []
    for name, module in net.named_children():
        if name == "conv1":
            module = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        if isinstance(module, nn.MaxPool2d):
            continue
        if isinstance(module, nn.Linear):
            layers.append(nn.Flatten(1))
        layers.append(module)
    return nn.Sequential(*layers)


def test_head_of_the_official_cifar_demo_checkpoint(tmp_path):
    torch.manual_seed(0)
    q, k = _perturbed(_official_cifar_encoder()).eval(), _official_cifar_encoder()
    sd = {**{f"encoder_q.net.{n}": v for n, v in q.state_dict().items()},
          **{f"encoder_k.net.{n}": v for n, v in k.state_dict().items()},
          "queue": torch.randn(128, 32), "queue_ptr": torch.zeros(1, dtype=torch.long)}
    path = tmp_path / "model_last.pth"
    torch.save({"epoch": 1, "state_dict": sd, "optimizer": {}}, path)
    enc, block = load_encoder(path, features="head")
    assert block["format"] == "unmix-cifar" and enc.source == "encoder_q.net.9."
    _same(enc, lambda x: F.normalize(q(x), dim=1), X)  # the official test(): normalize(net(x))


def test_head_of_an_official_moco_v2_checkpoint(tmp_path):
    torch.manual_seed(0)
    net = _perturbed(torchvision.models.resnet18())
    net.fc = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 128))  # MoCo v2's --mlp
    net.eval()
    sd = {f"module.encoder_q.{n}": v for n, v in net.state_dict().items()}
    sd.update({f"module.encoder_k.{n}": v.clone() for n, v in net.state_dict().items()})
    path = tmp_path / "checkpoint_0199.pth.tar"
    torch.save({"epoch": 200, "arch": "resnet18", "state_dict": sd, "optimizer": {}}, path)
    enc, block = load_encoder(path, features="head")
    assert block["format"] == "moco" and enc.source == "encoder_q.fc."
    _same(enc, lambda x: F.normalize(net(x), dim=1), X)


def test_head_of_a_swav_release(tmp_path):
    torch.manual_seed(0)
    net = _perturbed(torchvision.models.resnet18())
    net.fc = nn.Identity()
    head = _perturbed(nn.Sequential(nn.Linear(512, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 16)))
    net.eval(), head.eval()
    sd = {f"module.{n}": v for n, v in net.state_dict().items()}
    sd.update({f"module.projection_head.{n}": v for n, v in head.state_dict().items()})
    sd["module.prototypes.weight"] = torch.randn(10, 16)
    path = tmp_path / "swav_800ep_pretrain.pth.tar"
    torch.save(sd, path)
    enc, block = load_encoder(path, features="head")
    assert block["format"] == "swav" and enc.source == "projection_head."
    _same(enc, lambda x: F.normalize(head(net(x)), dim=1), X)


def _folder(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    fakedata.write_image_folder(root / "train", classes=3, per_class=2, size=32)
    fakedata.write_image_folder(root / "val", classes=3, per_class=1, size=32, seed=9)
    return root


def _knn(ckpt_path: Path, root: Path, work: Path, *extra: str) -> int:
    return main(["knn", str(ckpt_path), "--dataset", "folder", "--data-root", str(root), "--image-size", "32",
                 "--work-dir", str(work), "--batch-size", "4", "--workers", "0", "--device", "cpu",
                 "--k", "3", *extra])


def test_cli_head_record_says_which_features(tmp_path, capsys):
    torch.manual_seed(0)
    path = _ours(tmp_path, MoCo("resnet18", "cifar", version="v1", K=16), "moco", "v1")
    root = _folder(tmp_path)
    assert _knn(path, root, tmp_path / "head", "--features", "head") == 0
    assert _knn(path, root, tmp_path / "backbone") == 0
    head, back = records.load(tmp_path / "head" / "result.json"), records.load(tmp_path / "backbone" / "result.json")
    assert head["protocol"]["features"] == "head" and head["protocol"]["name"] == "knn-k3-t0.1-head"
    assert head["details"]["feature_dim"] == 128 and head["details"]["head_source"] == "projector."
    assert back["protocol"]["features"] == "backbone" and back["protocol"]["name"] == "knn-k3-t0.1"
    assert back["details"]["feature_dim"] == 512 and "head_source" not in back["details"]


def _one_line_error(capsys, *needles: str) -> None:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert all(n in err for n in needles), err


def test_cli_bad_features_one_line_naming_the_file(tmp_path, capsys):
    root = _folder(tmp_path)
    plain = fakedata.write_random_resnet(tmp_path / "resnet18.pth")  # a backbone, no projector
    assert _knn(plain, root, tmp_path / "w1", "--features", "pooled") == 1
    _one_line_error(capsys, str(plain), "--features 'pooled'", "backbone or head")
    assert _knn(plain, root, tmp_path / "w2", "--features", "head") == 1
    _one_line_error(capsys, str(plain), "--features head", "--features backbone")
    torch.manual_seed(0)
    net = torchvision.models.resnet18()
    sd = {f"encoder_q.{n}": v for n, v in net.state_dict().items() if not n.startswith("fc.")}
    stripped = tmp_path / "moco_no_fc.pth"
    torch.save({"state_dict": sd}, stripped)
    assert _knn(stripped, root, tmp_path / "w3", "--features", "head") == 1
    _one_line_error(capsys, str(stripped), "no projector", "encoder_q.fc.")
    assert not any((tmp_path / w).exists() for w in ("w1", "w2", "w3"))


# ------------------------------------------------------------------------------ the monitor
@pytest.fixture
def cifar(tmp_path, monkeypatch):
    root = fakedata.write_cifar10(tmp_path / "cifar", n_train=12, n_test=6)
    fakedata.patch_md5(monkeypatch, root, "cifar10")
    return root


@pytest.mark.parametrize("features", ["backbone", "head"])
def test_monitor_compares_the_chosen_features(cifar, monkeypatch, features):
    torch.manual_seed(0)
    model = _perturbed(MoCo("resnet18", "cifar", version="v1", K=16, split_bn=2)).train()
    seen = {}
    real = train.knn_predict

    def spy(q, bank, labels, n_cls, k, t):
        seen.update(q=q, bank=bank, k=k, t=t)
        return real(q, bank, labels, n_cls, k=k, t=t)

    monkeypatch.setattr(train, "knn_predict", spy)
    bn = model.backbone.bn1.running_mean.clone()
    acc = train.knn_monitor(model, {"features": features, "k": 200, "t": 0.1},
                            {"name": "cifar10", "root": str(cifar)}, "cpu", None, 4)
    assert 0.0 <= acc <= 100.0 and (seen["k"], seen["t"]) == (200, 0.1)
    assert all(m.training for m in model.modules())  # the training loop's modes are back
    assert torch.equal(model.backbone.bn1.running_mean, bn)  # eval mode: statistics untouched
    from pretrain import data as pdata

    test = pdata.build_dataset("cifar10", str(cifar), "test", transform=pdata.eval_transform("cifar10"))
    x = torch.stack([test[i][0] for i in range(len(test))])
    model.eval()
    with torch.no_grad():
        pooled = model.backbone(x)
        want = pooled if features == "backbone" else F.normalize(model.projector(pooled), dim=1)
    assert seen["q"].shape == (6, 512 if features == "backbone" else 128)
    torch.testing.assert_close(seen["q"], want, atol=1e-5, rtol=1e-4)


def test_moco_cifar_recipes_monitor_the_head_others_the_backbone():
    for name in ("moco_v1_cifar10", "moco_v2_cifar10", "moco_v1_cifar100", "moco_v2_cifar100",
                 "moco_v2_cifar10_unmix", "moco_v1_cifar100_unmix", "moco_v1_cifar10_firstform"):
        cfg = train.load_config(str(REPO / "configs" / "pretrain" / f"{name}.py"))
        assert cfg.knn.features == "head" and (cfg.knn.k, cfg.knn.t) == (200, 0.1), name
    for name in ("swav_cifar10", "simclr_cifar100", "byol_cifar10", "moco_v2_stl10", "moco_v2_imagenet"):
        cfg = train.load_config(str(REPO / "configs" / "pretrain" / f"{name}.py"))
        assert cfg.knn.features == "backbone", name


def test_pretrain_bad_features_one_line_naming_the_config(tmp_path, capsys):
    config = str(REPO / "configs" / "pretrain" / "moco_v1_cifar10.py")
    wd = tmp_path / "wd"
    assert main(["pretrain", config, "--work-dir", str(wd), "--device", "cpu", "--features", "logits"]) == 1
    _one_line_error(capsys, config, "--features 'logits'")
    assert main(["pretrain", config, "--work-dir", str(wd), "--device", "cpu",
                 "--cfg-options", "knn.features=pooled"]) == 1
    _one_line_error(capsys, config, "knn.features 'pooled'")
    assert not wd.exists()
