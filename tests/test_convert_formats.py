"""Each format: a checkpoint laid out as its public releases lay it out (built from a randomly
initialised torchvision ResNet), converted, written, loaded into mmdet's ResNet through
`init_cfg=Pretrained`, then tensors and C5 features compared with the source network."""
from __future__ import annotations

import argparse
import copy
import pickle

import pytest
import torch
import torchvision
from torch import nn

from transfer.convert.conversion import build_encoder, convert_file, load_conversion, save_conversion
from transfer.convert.mmdet_cfg import mmdet_backbone_cfg
from transfer.convert.rules import convert_state_dict
from transfer.convert.verify import convert_and_verify

torch.manual_seed(0)


# ------------------------------------------------------------------------------ source nets
def tv_resnet(arch: str = "resnet18", cifar: bool = False, pad: int = 1) -> nn.Module:
    m = getattr(torchvision.models, arch)()
    if cifar:
        m.conv1 = nn.Conv2d(3, 64, 3, 1, pad, bias=False)
        m.maxpool = nn.Identity()
    return randomize_bn(m)


def randomize_bn(m: nn.Module) -> nn.Module:
    """Non-trivial BN statistics, so a BN mix-up cannot pass the feature check."""
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.1, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.1, 0.1)
    return m.eval()


def c5(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Naive reference: torchvision's stages by hand (no fc)."""
    x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
    return m.layer4(m.layer3(m.layer2(m.layer1(x))))


def backbone_sd(m: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in m.state_dict().items() if not k.startswith("fc.")}


def mlp(i: int, o: int) -> nn.Module:
    return nn.Sequential(nn.Linear(i, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, o))


def check(tmp_path, src, net: nn.Module, fmt: str, *, cifar: bool = False, **kw):
    """Convert `src`, write DST, load it via mmdet's Pretrained init, compare with `net`."""
    conv = convert_and_verify(src, **kw)
    assert conv.format == fmt
    want = backbone_sd(net)
    assert set(conv.state_dict) == set(want)
    for k, v in want.items():
        assert torch.equal(conv.state_dict[k], v.to(conv.state_dict[k].dtype)), k
    dst = save_conversion(conv, tmp_path / "dst.pth")

    from transfer.stack import ensure_stack

    ensure_stack()
    from mmdet.registry import MODELS

    cfg = mmdet_backbone_cfg(conv, checkpoint=dst)
    assert cfg["type"] == ("CifarResNet" if cifar else "ResNet")
    mm = MODELS.build(cfg)
    mm.init_weights()  # mmengine's Pretrained path: loads DST with strict=False ...
    res = mm.load_state_dict(torch.load(dst, weights_only=True)["state_dict"], strict=True)
    assert not res.missing_keys and not res.unexpected_keys  # ... and strict finds no gap
    mm.eval()
    for k, v in want.items():  # so nothing stayed at random init
        assert torch.equal(mm.state_dict()[k], v.to(mm.state_dict()[k].dtype)), k
    x = torch.randn(2, 3, 32 if cifar else 64, 32 if cifar else 64)
    with torch.no_grad():
        got, ref = mm(x)[-1], c5(net, x)
    assert got.shape == ref.shape  # a wrong stem padding changes C5's size
    assert torch.allclose(got, ref, rtol=1e-4, atol=1e-4)
    assert conv.meta["verification"]["ok"]
    return conv


@pytest.fixture(scope="module")
def r18():
    return tv_resnet("resnet18")


@pytest.fixture(scope="module")
def r18c():
    return tv_resnet("resnet18", cifar=True)


@pytest.fixture(scope="module")
def r50():
    return tv_resnet("resnet50")


def prefixed(prefix: str, sd: dict) -> dict:
    return {prefix + k: v for k, v in sd.items()}


# ----------------------------------------------------------------------------------- formats
def test_unmix_pretrain(tmp_path, r18c):
    from pretrain.backbones import build_resnet

    bb = build_resnet("resnet18", "cifar")
    bb.load_state_dict(backbone_sd(r18c))
    sd = prefixed("backbone.", bb.state_dict())
    sd |= prefixed("momentum_backbone.", bb.state_dict())
    sd |= prefixed("projector.", mlp(512, 64).state_dict())
    sd |= prefixed("predictor.", mlp(64, 64).state_dict())
    sd |= {"queue": torch.randn(64, 16), "queue_ptr": torch.zeros(1, dtype=torch.long)}
    ck = {"format": "unmix-pretrain", "version": 1, "state_dict": sd, "epoch": 3,
          "meta": {"method": "moco", "arch": "resnet18", "stem": "cifar", "unmix": True,
                   "dataset": "cifar10", "epoch": 3, "epochs": 10}, "optimizer": {}}
    torch.save(ck, tmp_path / "ck.pth")
    conv = check(tmp_path, tmp_path / "ck.pth", r18c, "unmix-pretrain", cifar=True)
    assert conv.stem == "cifar" and conv.meta["stem"] == "cifar"
    assert {"momentum encoder", "projector", "predictor", "queue"} <= set(conv.dropped)
    # what result records put in checkpoint.pretrain, surviving a second conversion too
    summary = {"method": "moco", "unmix": True, "epochs": 10, "dataset": "cifar10", "quick": False}
    assert conv.meta["pretrain"] == summary
    save_conversion(conv, tmp_path / "converted.pth")
    assert convert_file(tmp_path / "converted.pth").meta["pretrain"] == summary


def test_unmix_cifar_demo_sequential(tmp_path, r18c):
    """Official Un-Mix CIFAR demo: encoder_q.net = Sequential(children minus max-pool) + fc."""
    def net_of(m):
        kids = [c for n, c in m.named_children() if n not in ("maxpool", "fc", "avgpool")]
        return nn.Sequential(*kids[:7], nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(512, 128))
    q = nn.Module()
    q.net = net_of(r18c)
    k = nn.Module()
    k.net = net_of(copy.deepcopy(r18c))
    sd = prefixed("encoder_q.", q.state_dict()) | prefixed("encoder_k.", k.state_dict())
    sd |= {"queue": torch.randn(128, 32), "queue_ptr": torch.zeros(1, dtype=torch.long)}
    torch.save({"epoch": 1, "state_dict": sd, "optimizer": {}}, tmp_path / "model_last.pth")
    conv = check(tmp_path, tmp_path / "model_last.pth", r18c, "unmix-cifar", cifar=True)
    assert conv.meta["sequential_children"] == {"0": "conv1", "1": "bn1", "3": "layer1",
                                                "4": "layer2", "5": "layer3", "6": "layer4",
                                                "9": "fc"}
    assert conv.dropped["heads"] == ["encoder_q.net.9.weight", "encoder_q.net.9.bias"]
    assert len(conv.dropped["momentum encoder"]) == len(k.state_dict())


def test_moco_v2_imagenet_legacy_r50(tmp_path, r50):
    """MoCo v2 release: module.encoder_q with MLP fc, encoder_k, queue; torch-1.4 legacy file."""
    q = copy.deepcopy(r50)
    q.fc = nn.Sequential(nn.Linear(2048, 2048), nn.ReLU(), nn.Linear(2048, 128))
    sd = prefixed("module.encoder_q.", q.state_dict()) | prefixed("module.encoder_k.", q.state_dict())
    sd |= {"module.queue": torch.randn(128, 64), "module.queue_ptr": torch.zeros(1, dtype=torch.long)}
    torch.save({"epoch": 200, "arch": "resnet50", "state_dict": sd, "optimizer": {}},
               tmp_path / "moco_v2_200ep_pretrain.pth.tar", _use_new_zipfile_serialization=False)
    conv = check(tmp_path, tmp_path / "moco_v2_200ep_pretrain.pth.tar", r50, "moco")
    assert conv.encoder == "query" and conv.meta["source_file_kind"] == "torch-legacy"
    assert sorted(conv.dropped["heads"])[0] == "module.encoder_q.fc.0.bias"
    # --encoder key takes the momentum encoder instead
    key = convert_file(tmp_path / "moco_v2_200ep_pretrain.pth.tar", encoder="key")
    assert key.meta["encoder_prefix"] == "encoder_k."


def test_moco_v3(tmp_path, r18):
    base = copy.deepcopy(r18)
    base.fc = mlp(512, 64)
    sd = prefixed("module.base_encoder.", base.state_dict())
    sd |= prefixed("module.momentum_encoder.", base.state_dict())
    sd |= prefixed("module.predictor.", mlp(64, 64).state_dict())
    torch.save({"epoch": 100, "arch": "resnet18", "state_dict": sd, "optimizer": {},
                "scaler": {"scale": 65536.0}}, tmp_path / "r-18-100ep.pth.tar")
    conv = check(tmp_path, tmp_path / "r-18-100ep.pth.tar", r18, "moco-v3")
    assert {"heads", "momentum encoder", "predictor"} <= set(conv.dropped)


@pytest.mark.parametrize("protos", ["swav", "deepcluster-v2"])
def test_swav_deepcluster(tmp_path, r18, protos):
    sd = prefixed("module.", backbone_sd(r18))
    sd |= prefixed("module.projection_head.", mlp(512, 64).state_dict())
    if protos == "swav":
        sd["module.prototypes.weight"] = torch.randn(30, 64)
    else:
        sd |= {f"module.prototypes.prototypes{i}.weight": torch.randn(30, 64) for i in range(3)}
    torch.save(sd, tmp_path / "swav_800ep_pretrain.pth.tar")
    conv = check(tmp_path, tmp_path / "swav_800ep_pretrain.pth.tar", r18, "swav")
    assert set(conv.dropped) == {"projector", "heads"}


@pytest.mark.slow
def test_swav_resnet50w2(tmp_path):
    """SwAV w2 widens every stage: mmdet ResNet(depth=50, stem_channels=128, base_channels=128)."""
    from pretrain.backbones import build_resnet

    net = build_resnet("resnet50w2").eval()
    sd = prefixed("module.", net.state_dict()) | {"module.prototypes.weight": torch.randn(30, 128)}
    torch.save(sd, tmp_path / "swav_RN50w2_400ep_pretrain.pth.tar")
    conv = convert_and_verify(tmp_path / "swav_RN50w2_400ep_pretrain.pth.tar")
    assert conv.arch == "resnet50w2" and conv.format == "swav"
    cfg = mmdet_backbone_cfg(conv)
    assert (cfg["depth"], cfg["stem_channels"], cfg["base_channels"]) == (50, 128, 128)
    assert conv.meta["verification"]["ok"]


def test_simclr_ports(tmp_path, r18):
    # Spijkervet/SimCLR: bare state dict of SimCLR(encoder, projector); encoder.fc = Identity
    sd = prefixed("encoder.", backbone_sd(r18)) | prefixed("projector.", mlp(512, 64).state_dict())
    torch.save(sd, tmp_path / "checkpoint_100.tar")
    check(tmp_path, tmp_path / "checkpoint_100.tar", r18, "simclr")
    # sthalles/SimCLR: backbone = resnet with fc -> MLP, saved with epoch/arch/optimizer
    b = copy.deepcopy(r18)
    b.fc = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 128))
    torch.save({"epoch": 100, "arch": "resnet18", "state_dict": prefixed("backbone.", b.state_dict()),
                "optimizer": {}}, tmp_path / "checkpoint_0100.pth.tar")
    conv = check(tmp_path, tmp_path / "checkpoint_0100.pth.tar", r18, "simclr")
    assert len(conv.dropped["heads"]) == 4


def test_byol_lucidrains_learner(tmp_path, r18):
    class Wrapper(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net
            self.projector = nn.Module()
            self.projector.net = mlp(512, 64)

    class Learner(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net
            self.online_encoder = Wrapper(net)  # shares `net`: its tensors appear twice
            self.target_encoder = copy.deepcopy(self.online_encoder)
            self.online_predictor = nn.Module()
            self.online_predictor.net = mlp(64, 64)

    learner = Learner(copy.deepcopy(r18))
    torch.save(learner.state_dict(), tmp_path / "byol.pt")
    conv = check(tmp_path, tmp_path / "byol.pt", r18, "byol")
    assert conv.encoder == "online"
    assert len(conv.dropped["duplicate of encoder"]) == len(r18.state_dict()) - 2
    assert {"momentum encoder", "predictor", "projector"} <= set(conv.dropped)


@pytest.mark.parametrize("which", ["teacher", "student"])
def test_dino_training_checkpoint(tmp_path, r18, which):
    teacher = tv_resnet("resnet18")
    nets = {"teacher": teacher, "student": r18}

    def mcw(m):  # MultiCropWrapper: backbone (fc, head = Identity) + DINOHead, under DDP
        bb = copy.deepcopy(m)
        bb.fc = nn.Identity()
        return prefixed("module.backbone.", bb.state_dict()) | prefixed("module.head.mlp.", mlp(512, 64).state_dict())
    ck = {"student": mcw(r18), "teacher": mcw(teacher), "optimizer": {}, "epoch": 10,
          "args": argparse.Namespace(arch="resnet18", out_dim=65536),
          "dino_loss": {"center": torch.zeros(1, 64)}}
    torch.save(ck, tmp_path / "checkpoint.pth")
    kw = {} if which == "teacher" else {"encoder": "student"}
    conv = check(tmp_path, tmp_path / "checkpoint.pth", nets[which], "dino", **kw)
    assert conv.encoder == which
    other_role = "student encoder" if which == "teacher" else "momentum encoder"
    assert other_role in conv.dropped


@pytest.mark.parametrize("ext", ["pth", "safetensors"])
def test_torchvision_and_timm(tmp_path, r18, ext):
    path = tmp_path / f"resnet18.{ext}"
    if ext == "safetensors":
        from safetensors.torch import save_file

        save_file(r18.state_dict(), str(path))
    else:
        torch.save(r18.state_dict(), path)
    conv = check(tmp_path, path, r18, "torchvision")
    assert {r: sorted(ks) for r, ks in conv.dropped.items()} == {"heads": ["fc.bias", "fc.weight"]}


def test_timm_train_ema(tmp_path, r18):
    ema = tv_resnet("resnet18")
    ck = {"epoch": 5, "arch": "resnet18", "state_dict": r18.state_dict(), "optimizer": {},
          "version": 2, "args": argparse.Namespace(model="resnet18"),
          "state_dict_ema": ema.state_dict()}
    torch.save(ck, tmp_path / "last.pth.tar")
    check(tmp_path, tmp_path / "last.pth.tar", r18, "timm-train")
    conv = check(tmp_path, tmp_path / "last.pth.tar", ema, "timm-train", encoder="ema")
    assert "non-EMA weights" in conv.dropped


def test_mmpretrain_mmselfsup(tmp_path, r18):
    bb = backbone_sd(r18)
    sd = prefixed("backbone.", bb) | prefixed("neck.mlp.", mlp(512, 64).state_dict())
    sd |= prefixed("momentum_encoder.module.0.", bb)
    sd |= prefixed("momentum_encoder.module.1.mlp.", mlp(512, 64).state_dict())
    sd |= {"momentum_encoder.steps": torch.tensor(10), "head.queue": torch.randn(64, 8)}
    sd |= {"data_preprocessor.mean": torch.zeros(3, 1, 1)}
    torch.save({"meta": {"mmengine_version": "0.10.7", "epoch": 200}, "state_dict": sd,
                "message_hub": {}}, tmp_path / "mocov2_r18.pth")
    conv = check(tmp_path, tmp_path / "mocov2_r18.pth", r18, "mmpretrain")
    assert {"projector", "momentum encoder", "queue"} <= set(conv.dropped)


def lightning_ckpt(sd: dict, **extra) -> dict:
    """What Lightning 2.x `trainer.save_checkpoint` writes (lightning/pytorch/trainer/connectors/
    checkpoint_connector.py `dump_checkpoint`): hyper_parameters only when the module called
    `save_hyperparameters`."""
    return {"epoch": 9, "global_step": 100, "pytorch-lightning_version": "2.1.0", "state_dict": sd,
            "loops": {}, "callbacks": {}, "optimizer_states": [], "lr_schedulers": [], **extra}


def solo_sd(net: nn.Module) -> dict:
    """solo-learn BaseMethod/BaseMomentumMethod (solo/methods/base.py): backbone (fc = Identity),
    online `classifier`, `projector`, `predictor`, `momentum_backbone`."""
    bb = backbone_sd(net)
    sd = prefixed("backbone.", bb) | prefixed("momentum_backbone.", bb)
    sd |= prefixed("projector.", mlp(512, 64).state_dict()) | prefixed("predictor.", mlp(64, 64).state_dict())
    return sd | {"classifier.weight": torch.randn(10, 512), "classifier.bias": torch.zeros(10)}


# solo-learn's config as its Checkpointer dumps it (solo/utils/checkpointer.py `save_args`:
# OmegaConf.to_container(cfg) + wandb_run_id); the keys are those of scripts/pretrain/cifar/*.yaml.
SOLO_CFG = {"name": "byol-cifar10", "method": "byol",
            "backbone": {"name": "resnet18", "kwargs": {}},
            "data": {"dataset": "cifar10", "train_path": "./datasets", "num_classes": 10},
            "max_epochs": 1000, "wandb_run_id": None}


@pytest.mark.parametrize("where", ["args.json", "hyper_parameters"])
def test_solo_learn_cifar_lightning(tmp_path, where):
    """solo-learn pads its CIFAR conv1 by 2 (solo/methods/base.py), decided by its config."""
    import json

    net = tv_resnet("resnet18", cifar=True, pad=2)
    extra = {"hyper_parameters": {"cfg": SOLO_CFG}} if where == "hyper_parameters" else {}
    torch.save(lightning_ckpt(solo_sd(net), **extra), tmp_path / "byol-cifar10-x-ep=9.ckpt")
    if where == "args.json":
        (tmp_path / "args.json").write_text(json.dumps(SOLO_CFG))
    conv = check(tmp_path, tmp_path / "byol-cifar10-x-ep=9.ckpt", net, "solo-learn", cifar=True)
    assert conv.meta["stem_padding"] == 2 and "data.dataset=cifar10" in conv.meta["stem_padding_from"]
    assert conv.meta["assumptions"] == []
    assert mmdet_backbone_cfg(conv)["stem_padding"] == 2


def test_lightning_cifar_stem_is_not_taken_for_solo_learn(tmp_path, capsys):
    """A LightningModule with a CIFAR ResNet padded by 1 and `backbone.*` keys, no solo-learn
    config: padding 1, said to be an assumption; C5 at 32 px is the source's 4x4."""
    from transfer.convert.cli import summary

    net = tv_resnet("resnet18", cifar=True, pad=1)
    torch.save(lightning_ckpt(solo_sd(net), hyper_parameters={"lr": 0.1}), tmp_path / "last.ckpt")
    conv = check(tmp_path, tmp_path / "last.ckpt", net, "lightning", cifar=True)
    assert conv.meta["stem_padding"] == 1 and conv.meta["assumptions"]
    assert "stem_padding" not in mmdet_backbone_cfg(conv)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert build_encoder(conv).forward_stages(x)[-1].shape == c5(net, x).shape == (1, 512, 4, 4)
    text = summary(conv)
    assert "padding 1: assumed" in text and "--stem-padding" in text
    # the user who knows better says so
    net2 = tv_resnet("resnet18", cifar=True, pad=2)
    torch.save(lightning_ckpt(solo_sd(net2)), tmp_path / "pad2.ckpt")
    conv2 = check(tmp_path, tmp_path / "pad2.ckpt", net2, "lightning", cifar=True, stem_padding=2)
    assert conv2.meta["stem_padding_from"] == "--stem-padding" and conv2.meta["assumptions"] == []


@pytest.mark.parametrize("prefix", ["backbone.", "model.backbone."])
def test_lightly_lightning_sequential(tmp_path, r18, prefix):
    seq = nn.Sequential(*list(copy.deepcopy(r18).children())[:-1])  # keeps the max-pool: 4-7 = layers
    sd = prefixed(prefix, seq.state_dict())
    sd |= prefixed(prefix.replace("backbone.", "backbone_momentum."), seq.state_dict())
    sd |= prefixed(prefix.replace("backbone.", "projection_head.layers."), mlp(512, 64).state_dict())
    sd |= {"criterion.memory_bank.bank": torch.randn(64, 32)}
    ck = {"epoch": 1, "global_step": 5, "pytorch-lightning_version": "2.0.0", "state_dict": sd,
          "hyper_parameters": {"lr": 0.1}}
    torch.save(ck, tmp_path / "epoch=1.ckpt")
    conv = check(tmp_path, tmp_path / "epoch=1.ckpt", r18, "lightly")
    assert conv.meta["sequential_children"]["4"] == "layer1"
    assert {"momentum encoder", "projector", "queue"} <= set(conv.dropped)


def moco_to_detectron2(sd: dict) -> dict:
    """The renaming MoCo's convert-pretrain-to-detectron2.py performs (written from its README
    and output names): stem prefix, layerN -> resN+1, bnK -> convK.norm, downsample -> shortcut."""
    out = {}
    for k, v in sd.items():
        if not k.startswith("module.encoder_q."):
            continue
        k = k[len("module.encoder_q."):]
        if "layer" not in k:
            k = "stem." + k
        for t in range(1, 5):
            k = k.replace(f"layer{t}", f"res{t + 1}")
        for t in range(1, 4):
            k = k.replace(f"bn{t}", f"conv{t}.norm")
        k = k.replace("downsample.0", "shortcut").replace("downsample.1", "shortcut.norm")
        out[k] = v.numpy()
    return out


def test_detectron2_pkl_r50(tmp_path, r50):
    sd = prefixed("module.encoder_q.", r50.state_dict())
    res = {"model": moco_to_detectron2(sd), "__author__": "MOCO", "matching_heuristics": True}
    assert "res2.0.shortcut.norm.running_mean" in res["model"] and "stem.fc.weight" in res["model"]
    with open(tmp_path / "moco_r50.pkl", "wb") as f:
        pickle.dump(res, f)
    conv = check(tmp_path, tmp_path / "moco_r50.pkl", r50, "detectron2")
    assert conv.dropped["heads"] == ["stem.fc.weight", "stem.fc.bias"]
    assert conv.meta["source_file_kind"] == "pickle"


def test_wrappers_and_prefixes(tmp_path, r18):
    # DDP + torch.compile prefixes, 'model' wrapper, no fc, no num_batches_tracked (old torch)
    sd = {f"module._orig_mod.{k}": v for k, v in backbone_sd(r18).items()
          if not k.endswith("num_batches_tracked")}
    torch.save({"model": sd}, tmp_path / "wrapped.pth")
    conv = check(tmp_path, tmp_path / "wrapped.pth", r18, "torchvision")
    assert conv.meta["container"] == "model" and conv.dropped == {}
    assert len(conv.meta["filled_defaults"]) == 20
    # A bare nn.Sequential of the children
    seq = nn.Sequential(*list(r18.children())[:-1])
    torch.save(seq.state_dict(), tmp_path / "seq.pth")
    check(tmp_path, tmp_path / "seq.pth", r18, "sequential")


def test_pure_api_and_roundtrip(tmp_path, r18):
    conv = convert_state_dict({"state_dict": r18.state_dict()})
    assert (conv.arch, conv.stem, conv.format) == ("resnet18", "imagenet", "torchvision")
    dst = save_conversion(conv, tmp_path / "a" / "b.pth")
    back = load_conversion(dst)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(build_encoder(back).forward_stages(x)[-1], c5(r18, x), rtol=1e-4, atol=1e-4)
    assert mmdet_backbone_cfg(dst, checkpoint=dst)["init_cfg"] == {"type": "Pretrained", "checkpoint": str(dst)}
    assert back.arch == "resnet18" and back.dropped == conv.dropped
    assert all(torch.equal(back.state_dict[k], v) for k, v in conv.state_dict.items())
    # re-converting a DST is a no-op conversion
    again = convert_file(dst)
    assert again.format == "unmix-converted" and again.dropped == {}
