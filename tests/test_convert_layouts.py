"""Checkpoint layouts of VISSL, ResNet-D (timm / mmpretrain), the sthalles BYOL port and lightly's
CIFAR ResNet, each built here from the library's own key layout (the source named per case;
random weights, no network), converted, tensor-exact against the source model and verified."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.test_convert_formats import backbone_sd, check, prefixed, randomize_bn, tv_resnet
from transfer.convert.conversion import convert_file
from transfer.convert.rules import convert_state_dict
from unmix.core.errors import UnmixError

torch.manual_seed(0)


@pytest.fixture(scope="module")
def r18():
    return tv_resnet("resnet18")


# ------------------------------------------------------------------------------------ VISSL
def vissl_trunk(net: nn.Module) -> nn.Module:
    """VISSL's ResNe(X)t trunk (vissl/models/trunks/resnext.py): torchvision's modules in an
    nn.ModuleDict `_feature_blocks` named conv1, bn1, conv1_relu, maxpool, layer1-4, avgpool,
    flatten; state dict keys `_feature_blocks.conv1.weight`, `_feature_blocks.layer1.0.conv1.weight`."""
    trunk = nn.Module()
    trunk._feature_blocks = nn.ModuleDict(
        [("conv1", net.conv1), ("bn1", net.bn1), ("conv1_relu", net.relu), ("maxpool", net.maxpool),
         ("layer1", net.layer1), ("layer2", net.layer2), ("layer3", net.layer3),
         ("layer4", net.layer4), ("avgpool", net.avgpool), ("flatten", nn.Flatten(1))])
    return trunk


def vissl_heads() -> nn.Module:
    """VISSL's MLP head (vissl/models/heads/mlp.py: `self.clf = nn.Sequential(...)`) in the model's
    nn.ModuleList `heads`: keys `0.clf.0.weight`."""
    head = nn.Module()
    head.clf = nn.Sequential(nn.Linear(512, 128))
    return nn.ModuleList([head])


def vissl_model_state(trunk: nn.Module) -> dict:
    """BaseSSLMultiInputOutputModel.get_classy_state (vissl/models/base_ssl_model.py)."""
    return {"model": {"trunk": trunk.state_dict(), "heads": vissl_heads().state_dict()},
            "meta": {"trunk": {}, "heads": []}}


def vissl_phase_checkpoint(net: nn.Module, ema: nn.Module | None = None) -> dict:
    """A phase checkpoint as vissl/hooks/log_hooks.py writes it: `{'phase_idx', 'iteration',
    'loss', 'iteration_num', 'train_phase_idx', 'classy_state_dict'}`, the latter ClassyTask's
    state (`train`, `base_model`, `optimizer`, `phase_idx`, ..., `ema_model` with EMA on); the
    loss is MoCo's (vissl/losses/moco_loss.py: buffers `queue`, `queue_ptr`, its `moco_encoder`)."""
    trunk = vissl_trunk(net)
    opt = torch.optim.SGD(trunk.parameters(), lr=0.1, momentum=0.9)
    sum(p.sum() for p in trunk.parameters()).backward()
    opt.step()  # momentum buffers: tensors under classy_state_dict.optimizer (`net` moved too)
    loss = {"queue": torch.randn(128, 16), "queue_ptr": torch.zeros(1, dtype=torch.long)}
    loss |= prefixed("moco_encoder.trunk.", vissl_trunk(tv_resnet("resnet18")).state_dict())
    classy = {"train": True, "base_model": vissl_model_state(trunk), "meters": [],
              "optimizer": {"optim": opt.state_dict()}, "phase_idx": 4, "train_phase_idx": 4,
              "num_updates": 100, "losses": [], "hooks": {}, "loss": loss}
    if ema is not None:
        classy["ema_model"] = vissl_model_state(vissl_trunk(ema))
    return {"phase_idx": 4, "iteration": 100, "loss": loss, "iteration_num": 100,
            "train_phase_idx": 4, "classy_state_dict": classy}


def test_vissl_phase_checkpoint_trunk_and_ema(tmp_path, r18):
    ema = tv_resnet("resnet18")
    net = tv_resnet("resnet18")
    torch.save(vissl_phase_checkpoint(net, ema), tmp_path / "model_phase4.torch")
    conv = check(tmp_path, tmp_path / "model_phase4.torch", net, "vissl")
    assert conv.encoder == "trunk"
    assert conv.meta["container"] == "classy_state_dict.base_model.model.trunk"
    d = conv.dropped
    assert d["heads"] == ["classy_state_dict.base_model.model.heads/0.clf.0.weight",
                          "classy_state_dict.base_model.model.heads/0.clf.0.bias"]
    assert len(d["momentum encoder"]) == len(vissl_trunk(ema).state_dict()) + 2  # EMA trunk + heads
    assert any(k.startswith("classy_state_dict.optimizer/optim.state.") for k in d["optimizer state"])
    assert "loss/queue" in d["loss state (queue, momentum encoder)"]
    conv_ema = check(tmp_path, tmp_path / "model_phase4.torch", ema, "vissl", encoder="ema")
    assert conv_ema.meta["container"] == "classy_state_dict.ema_model.model.trunk"
    assert "non-EMA weights" in conv_ema.dropped


def test_vissl_consolidated_and_feature_extractor_trunk(tmp_path, r18):
    """vissl/utils/checkpoint.py consolidation: `{'type': 'consolidated', 'classy_state_dict':
    {'base_model': {'model': {'trunk', 'heads'}}}}`; a feature-extractor trunk
    (vissl/models/trunks/feature_extractor.py: `self.base_model`) prefixes `base_model.`."""
    fe = nn.Module()
    fe.base_model = vissl_trunk(r18)
    ck = {"type": "consolidated", "classy_state_dict": {"base_model": {"model": {
        "trunk": fe.state_dict(), "heads": {}}}}}
    torch.save(ck, tmp_path / "model_final_checkpoint_phase199.torch")
    conv = check(tmp_path, tmp_path / "model_final_checkpoint_phase199.torch", r18, "vissl")
    assert conv.dropped == {}
    # A bare trunk, and the older `model_state_dict` layout VISSL's converter also reads.
    for obj in (vissl_trunk(r18).state_dict(), {"model_state_dict": vissl_trunk(r18).state_dict()}):
        assert convert_state_dict(obj).format == "vissl"


def test_vissl_resnext_trunk_is_refused_naming_the_layout(tmp_path):
    """VISSL's ResNeXt (GROUPS 32, WIDTH_PER_GROUP 4) trunk: grouped layer1 convs 128 wide."""
    import torchvision

    net = torchvision.models.resnext50_32x4d()
    ck = {"classy_state_dict": {"base_model": {"model": {"trunk": vissl_trunk(net).state_dict(),
                                                         "heads": {}}}}}
    torch.save(ck, tmp_path / "rx.torch")
    with pytest.raises(UnmixError, match="rx.torch: .*ResNeXt"):
        convert_file(tmp_path / "rx.torch")


# --------------------------------------------------------------------------------- ResNet-D
def timm_resnet_d(arch: str) -> nn.Module:
    """timm's resnet18d/50d (timm/models/resnet.py: `stem_type='deep'`, `stem_width=32`,
    `avg_down=True`): `conv1` = Sequential(conv 3->32 s2, BN, ReLU, conv 32->32, BN, ReLU,
    conv 32->64) then `bn1`; a stage's shortcut is `downsample_avg` = Sequential(AvgPool2d(2,
    stride, ceil_mode=True, count_include_pad=False), or Identity at stride 1, 1x1 conv stride 1,
    BN). Built on torchvision's blocks (timm's have the same names and the stride on the 3x3)."""
    m = tv_resnet(arch)
    m.conv1 = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                            nn.Conv2d(32, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                            nn.Conv2d(32, 64, 3, 1, 1, bias=False))
    for layer in (m.layer1, m.layer2, m.layer3, m.layer4):
        ds = layer[0].downsample
        if ds is not None:
            s = ds[0].stride[0]
            pool = nn.AvgPool2d(2, s, ceil_mode=True, count_include_pad=False) if s != 1 else nn.Identity()
            layer[0].downsample = nn.Sequential(pool, nn.Conv2d(ds[0].in_channels, ds[0].out_channels,
                                                                1, bias=False), ds[1])
    return randomize_bn(m)


# timm -> mmdet ResNetV1d names (mmdet/models/backbones/resnet.py `_make_stem_layer`: stem =
# Sequential(conv, BN, ReLU) x3, so convs 0/3/6 and norms 1/4/7; shortcuts keep .1 conv, .2 BN).
TIMM_TO_MMDET = {"conv1.0.": "stem.0.", "conv1.1.": "stem.1.", "conv1.3.": "stem.3.",
                 "conv1.4.": "stem.4.", "conv1.6.": "stem.6.", "bn1.": "stem.7."}
# timm -> mmpretrain ResNetV1d (mmpretrain/models/backbones/resnet.py: stem of three ConvModules,
# `stem.N.conv` / `stem.N.bn`; the AvgPool only where stride != 1, so layer1's shortcut is .0/.1).
TIMM_TO_MMPRETRAIN = {"conv1.0.": "stem.0.conv.", "conv1.1.": "stem.0.bn.", "conv1.3.": "stem.1.conv.",
                      "conv1.4.": "stem.1.bn.", "conv1.6.": "stem.2.conv.", "bn1.": "stem.2.bn.",
                      "layer1.0.downsample.1.": "layer1.0.downsample.0.",
                      "layer1.0.downsample.2.": "layer1.0.downsample.1."}


def renamed(sd: dict, table: dict) -> dict:
    out = {}
    for k, v in sd.items():
        for a, b in table.items():
            if k.startswith(a):
                k = b + k[len(a):]
                break
        out[k] = v
    return out


def check_resnet_d(tmp_path, src, net: nn.Module, fmt: str, **kw):
    """Converted tensors = the source's in mmdet names; mmdet's ResNetV1d built from the config
    loads DST strictly; its C5 and `build_encoder`'s pooled features equal the source model's."""
    from transfer.convert.conversion import build_encoder, save_conversion
    from transfer.convert.mmdet_cfg import mmdet_backbone_cfg
    from transfer.convert.verify import convert_and_verify
    from transfer.stack import ensure_stack

    conv = convert_and_verify(src, **kw)
    assert conv.format == fmt and conv.stem == "deep"
    want = renamed(backbone_sd(net), TIMM_TO_MMDET)
    assert set(conv.state_dict) == set(want)
    assert all(torch.equal(conv.state_dict[k], v) for k, v in want.items())
    ensure_stack()
    from mmdet.registry import MODELS

    dst = save_conversion(conv, tmp_path / "dst.pth")
    cfg = mmdet_backbone_cfg(conv, checkpoint=dst)
    assert cfg["type"] == "ResNetV1d"
    mm = MODELS.build(cfg)
    mm.load_state_dict(torch.load(dst, weights_only=True)["state_dict"], strict=True)
    mm.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = net.layer4(net.layer3(net.layer2(net.layer1(net.maxpool(net.relu(net.bn1(net.conv1(x))))))))
        assert torch.allclose(mm(x)[-1], ref, rtol=1e-4, atol=1e-4)
        net.fc = nn.Identity()
        assert torch.allclose(build_encoder(conv)(x), net(x), rtol=1e-4, atol=1e-4)
    assert conv.meta["verification"]["ok"]
    return conv


def test_resnet_d_timm_state_dict(tmp_path):
    net = timm_resnet_d("resnet18")
    torch.save(net.state_dict(), tmp_path / "resnet18d.pth")
    conv = check_resnet_d(tmp_path, tmp_path / "resnet18d.pth", net, "torchvision")
    assert conv.arch == "resnet18" and conv.meta["deep_stem_layout"] == "timm"
    assert conv.dropped == {"heads": ["fc.weight", "fc.bias"]}
    from transfer.convert.cli import summary

    assert "stem deep (ResNet-D: three 3x3 convs, avg-pool shortcuts; timm names)" in summary(conv)


def test_resnet_d_mmpretrain_and_mmdet_r50(tmp_path):
    """mmpretrain's ResNetV1d classifier checkpoint (`backbone.*`, `head.fc.*`) and an mmdet
    detector's (`backbone.stem.0.weight`, `neck.*`); ResNet-50: layer1 has a shortcut."""
    net = timm_resnet_d("resnet50")
    sd = prefixed("backbone.", renamed(backbone_sd(net), TIMM_TO_MMPRETRAIN))
    sd |= {"head.fc.weight": torch.randn(10, 2048), "head.fc.bias": torch.zeros(10)}
    torch.save({"meta": {"mmengine_version": "0.10.7"}, "state_dict": sd}, tmp_path / "v1d.pth")
    conv = check_resnet_d(tmp_path, tmp_path / "v1d.pth", net, "mmpretrain")
    assert conv.arch == "resnet50" and conv.meta["deep_stem_layout"] == "mmpretrain"
    net = timm_resnet_d("resnet50")
    sd = prefixed("backbone.", renamed(backbone_sd(net), TIMM_TO_MMDET))
    sd |= {"neck.lateral_convs.0.conv.weight": torch.randn(8, 256, 1, 1)}
    torch.save({"meta": {}, "state_dict": sd}, tmp_path / "det.pth")
    assert check_resnet_d(tmp_path, tmp_path / "det.pth", net, "mmpretrain").meta[
        "deep_stem_layout"] == "mmdet"


def test_resnet_c_and_tiered_stems_are_refused_by_name():
    net = timm_resnet_d("resnet18")
    sd = backbone_sd(net)
    # ResNet-C (timm resnet50c: deep stem, avg_down=False): shortcut conv at .0, BN at .1.
    c = {k.replace("downsample.1.", "downsample.0.").replace("downsample.2.", "downsample.1."): v
         for k, v in sd.items()}
    with pytest.raises(UnmixError, match="ResNet-C .*not supported; ResNet-D .*deep stem"):
        convert_state_dict(c)
    # timm 'deep_tiered' (resnet26t...): stem widths 24-32-64.
    t = dict(sd) | {"conv1.0.weight": torch.randn(24, 3, 3, 3), "conv1.3.weight": torch.randn(32, 24, 3, 3)}
    with pytest.raises(UnmixError, match="deep_tiered"):
        convert_state_dict(t)


# ------------------------------------------------------------------------------ sthalles BYOL
def sthalles_network(net: nn.Module) -> nn.Module:
    """sthalles/PyTorch-BYOL models/resnet_base_network.py `ResNet18`: `encoder =
    nn.Sequential(*list(resnet.children())[:-1])` and `projetion = MLPHead(...)` (sic;
    models/mlp_head.py: `net` = Linear, BatchNorm1d, ReLU, Linear)."""
    m = nn.Module()
    m.encoder = nn.Sequential(*list(net.children())[:-1])
    head = nn.Module()
    head.net = nn.Sequential(nn.Linear(512, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 16))
    m.projetion = head
    return m


@pytest.mark.parametrize("which", ["online", "target"])
def test_byol_sthalles(tmp_path, which):
    """trainer.py `save_model`: {'online_network_state_dict', 'target_network_state_dict',
    'optimizer_state_dict'} (the predictor is not saved)."""
    online, target = tv_resnet("resnet18"), tv_resnet("resnet18")
    on, tg = sthalles_network(online), sthalles_network(target)
    opt = torch.optim.SGD(on.parameters(), lr=0.03, momentum=0.9)
    torch.save({"online_network_state_dict": on.state_dict(),
                "target_network_state_dict": tg.state_dict(),
                "optimizer_state_dict": opt.state_dict()}, tmp_path / "model.pth")
    kw = {} if which == "online" else {"encoder": "target"}
    conv = check(tmp_path, tmp_path / "model.pth", online if which == "online" else target,
                 "byol-sthalles", **kw)
    assert conv.encoder == which and conv.meta["sequential_children"]["4"] == "layer1"
    assert len(conv.dropped["projector"]) == len(on.projetion.state_dict())
    other = "momentum encoder" if which == "online" else "online network"
    assert len(conv.dropped[other]) == len(tg.state_dict())


# ------------------------------------------------------------------ lightly ResNetGenerator
class LightlyBlock(nn.Module):
    """lightly/models/resnet.py `BasicBlock`: conv1 3x3 (stride), bn1, relu, conv2 3x3, bn2,
    `+= self.shortcut(x)` (Sequential(1x1 conv with the stride, BN) when the shape changes,
    else an empty Sequential), relu."""

    def __init__(self, cin: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(out + self.shortcut(x))


class LightlyResNet(nn.Module):
    """`ResNetGenerator('resnet-18')`: conv1 3x3 stride 1 padding 1, bn1, layer1-4 (2 blocks
    each, strides 1/2/2/2), `linear` (children in that order; no max-pool)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for i, (planes, stride) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2))):
            setattr(self, f"layer{i + 1}", nn.Sequential(LightlyBlock(cin, planes, stride),
                                                         LightlyBlock(planes, planes, 1)))
            cin = planes
        self.linear = nn.Linear(512, 10)

    def c5(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def test_lightly_resnet_generator_shortcut_blocks(tmp_path):
    """lightly's CIFAR examples: `backbone = nn.Sequential(*list(ResNetGenerator('resnet-18')
    .children())[:-1])` in a Lightning module (`backbone.0.weight`, `backbone.2.1.shortcut...`),
    and a bare ResNetGenerator state dict (`layer2.0.shortcut.0.weight`, `linear.weight`)."""
    from tests.test_convert_formats import lightning_ckpt
    from transfer.convert.verify import convert_and_verify

    net = randomize_bn(LightlyResNet())
    seq = nn.Sequential(*list(net.children())[:-1])
    sd = prefixed("backbone.", seq.state_dict()) | prefixed("projection_head.layers.0.", nn.Linear(512, 8).state_dict())
    torch.save(lightning_ckpt(sd), tmp_path / "lightly.ckpt")
    torch.save(net.state_dict(), tmp_path / "resnet18_cifar.pth")
    # kuangliu/pytorch-cifar main.py: {'net': DataParallel(net).state_dict(), 'acc', 'epoch'}.
    torch.save({"net": prefixed("module.", net.state_dict()), "acc": 95.1, "epoch": 199}, tmp_path / "ckpt.pth")
    x = torch.randn(2, 3, 32, 32)
    for name, fmt in (("lightly.ckpt", "lightly"), ("resnet18_cifar.pth", "cifar-resnet"),
                      ("ckpt.pth", "cifar-resnet")):
        conv = convert_and_verify(tmp_path / name)
        assert conv.format == fmt and conv.stem == "cifar" and conv.meta["block_naming"] == "shortcut"
        assert conv.meta["stem_padding"] == 1 and not conv.meta["assumptions"]
        assert "ResNetGenerator" in conv.meta["stem_padding_from"]
        for k, v in net.state_dict().items():
            if not k.startswith("linear."):
                assert torch.equal(conv.state_dict[k.replace(".shortcut.", ".downsample.")], v), k
        from transfer.convert.verify import build_mmdet_backbone

        with torch.no_grad():
            got = build_mmdet_backbone(conv, out_indices=(3,))(x)[-1]
            assert got.shape == (2, 512, 4, 4)
            assert torch.allclose(got, net.c5(x), rtol=1e-4, atol=1e-4)
    assert conv.dropped == {"heads": ["module.linear.weight", "module.linear.bias"]}


# --------------------------------------------------------------------------- broken sources
def test_a_source_with_nan_weights_or_nan_output_is_named(tmp_path, r18, capsys):
    """A diverged run's NaN weight is named (not 'max |diff| nan'), with and without
    verification; finite tensors whose output is NaN (negative running_var) say so."""
    from unmix.cli import main

    sd = backbone_sd(r18)
    sd["layer3.0.conv1.weight"] = sd["layer3.0.conv1.weight"].clone()
    sd["layer3.0.conv1.weight"][0, 0, 0, 0] = float("nan")
    torch.save({"state_dict": prefixed("module.", sd)}, tmp_path / "nan.pth")
    for extra in ([], ["--no-verify"]):
        rc = main(["convert", str(tmp_path / "nan.pth"), "-o", str(tmp_path / "o.pth"), *extra])
        err = capsys.readouterr().err.strip()
        assert rc == 1 and len(err.splitlines()) == 1 and not (tmp_path / "o.pth").exists()
        assert "nan.pth: the source has non-finite tensors: module.layer3.0.conv1.weight" in err
    sd = backbone_sd(r18)
    sd["layer2.1.bn1.running_var"] = -sd["layer2.1.bn1.running_var"]
    torch.save(sd, tmp_path / "negvar.pth")
    rc = main(["convert", str(tmp_path / "negvar.pth"), "-o", str(tmp_path / "o.pth"), "--no-verify"])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and "negative BN running_var (its output is NaN): layer2.1.bn1.running_var" in err
    # Finite, non-negative tensors whose output still overflows: the verification says so.
    sd = backbone_sd(r18)
    sd["bn1.bias"] = torch.full_like(sd["bn1.bias"], 3e38)  # finite, but layer1's sums overflow
    torch.save(sd, tmp_path / "huge.pth")
    rc = main(["convert", str(tmp_path / "huge.pth"), "-o", str(tmp_path / "o.pth")])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and "own output is not finite" in err and "max |diff|" not in err


# ---------------------------------------------------------------------- honest format labels
def _module(**children: nn.Module) -> nn.Module:
    m = nn.Module()
    for name, child in children.items():
        setattr(m, name, child)
    return m


def barlowtwins_ckpt(net: nn.Module) -> dict:
    """facebookresearch/barlowtwins main.py: `BarlowTwins` = backbone (torchvision resnet50, fc =
    Identity; resnet18 here, same names), projector = Sequential(Linear(bias=False), BN1d, ReLU,
    ..., Linear(bias=False)), `bn` = BatchNorm1d(affine=False); saved under DDP as
    `dict(epoch, model=model.state_dict(), optimizer)`."""
    net.fc = nn.Identity()
    proj = nn.Sequential(nn.Linear(512, 32, bias=False), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 16, bias=False))
    m = _module(backbone=net, projector=proj, bn=nn.BatchNorm1d(16, affine=False))
    return {"epoch": 10, "model": prefixed("module.", m.state_dict()), "optimizer": {}}


def densecl_ckpt(net: nn.Module) -> dict:
    """WXinlong/DenseCL openselfsup/models/densecl.py: encoder_q = Sequential(backbone, neck),
    encoder_k alike, `self.backbone = self.encoder_q[0]`, buffers queue, queue_ptr, queue2,
    queue2_ptr; neck DenseCLNeck (openselfsup/models/necks.py: `mlp`, `mlp2`); mmcv
    `save_checkpoint`: {'meta': {'mmcv_version', 'time'}, 'state_dict', 'optimizer'}."""
    import copy

    def neck():
        return _module(mlp=nn.Sequential(nn.Linear(512, 32), nn.ReLU(), nn.Linear(32, 16)),
                       mlp2=nn.Sequential(nn.Conv2d(512, 32, 1), nn.ReLU(), nn.Conv2d(32, 16, 1)))
    net.fc = nn.Identity()
    m = _module(encoder_q=nn.Sequential(net, neck()), encoder_k=nn.Sequential(copy.deepcopy(net), neck()))
    m.backbone = m.encoder_q[0]
    for name in ("queue", "queue2"):
        m.register_buffer(name, torch.randn(16, 64))
        m.register_buffer(name + "_ptr", torch.zeros(1, dtype=torch.long))
    return {"meta": {"mmcv_version": "1.0.3", "time": "Thu Jan  7 2021"}, "state_dict": m.state_dict(),
            "optimizer": {}}


def pixpro_ckpt(net: nn.Module) -> dict:
    """zdaxie/PixPro contrast/models/PixPro.py: encoder (contrast/resnet.py with
    head_type='early_return': no fc), projector / projector_k (MLP2d: linear1 1x1 conv, bn1,
    linear2), encoder_k, value_transform (1x1 conv for pixpro_transform_layer 1); under DDP;
    main_pretrain.py `save_checkpoint`: {'opt', 'model', 'optimizer', 'scheduler', 'epoch'}."""
    import argparse
    import copy

    def mlp2d():
        return _module(linear1=nn.Conv2d(512, 32, 1), bn1=nn.BatchNorm2d(32), linear2=nn.Conv2d(32, 16, 1))
    del net.fc
    m = _module(encoder=net, projector=mlp2d(), encoder_k=copy.deepcopy(net), projector_k=mlp2d(),
                value_transform=nn.Conv2d(16, 16, 1))
    return {"opt": argparse.Namespace(arch="resnet18"), "model": prefixed("module.", m.state_dict()),
            "optimizer": {}, "scheduler": {}, "epoch": 100}


def lightly_torch_sd(net: nn.Module) -> dict:
    """lightly examples/pytorch/byol.py: backbone = Sequential(*resnet.children()[:-1]),
    projection_head / prediction_head (lightly/models/modules/heads.py `self.layers`),
    backbone_momentum = deepcopy(backbone); saved as model.state_dict()."""
    import copy

    bb = nn.Sequential(*list(net.children())[:-1])
    head = _module(layers=nn.Sequential(nn.Linear(512, 32), nn.BatchNorm1d(32), nn.Linear(32, 16)))
    m = _module(backbone=bb, projection_head=head, prediction_head=copy.deepcopy(head),
                backbone_momentum=copy.deepcopy(bb))
    return m.state_dict()


def plain_backbone_sd(net: nn.Module) -> dict:
    """A model of one's own (`self.backbone`, `self.projector`): nothing names a library."""
    net.fc = nn.Identity()
    return _module(backbone=net, projector=nn.Linear(512, 16)).state_dict()


@pytest.mark.parametrize("build,fmt,roles", [
    (barlowtwins_ckpt, "barlowtwins", {"projector"}),
    (densecl_ckpt, "densecl", {"duplicate of encoder", "projector", "momentum encoder", "queue"}),
    (pixpro_ckpt, "pixpro", {"projector", "momentum encoder"}),
    (lightly_torch_sd, "lightly", {"projector", "predictor", "momentum encoder"}),
    (plain_backbone_sd, "generic", {"projector"}),
])
def test_format_labels_name_the_library_recognised(tmp_path, build, fmt, roles):
    """Barlow Twins, DenseCL and lightly are not mmpretrain, PixPro is not SimCLR; a file
    nothing identifies is a generic ResNet state dict; the label is what records keep."""
    net = tv_resnet("resnet18")
    want = backbone_sd(net)
    torch.save(build(net), tmp_path / "ck.pth")
    ref = tv_resnet("resnet18")
    ref.load_state_dict(want | {"fc.weight": ref.fc.weight, "fc.bias": ref.fc.bias})
    conv = check(tmp_path, tmp_path / "ck.pth", ref, fmt)
    assert roles <= set(conv.dropped), conv.dropped
    if fmt == "generic":
        assert conv.meta["format_title"] == "generic ResNet state dict"
    from transfer.frozen.common import load_encoder

    assert load_encoder(tmp_path / "ck.pth")[1]["format"] == fmt  # what kNN/linear records keep


def test_docs_format_table_is_the_formats_table():
    import re
    from pathlib import Path

    from transfer.convert.formats import FORMATS, table_rows

    text = (Path(__file__).parents[1] / "docs" / "convert.md").read_text()
    rows = [r for r in text.splitlines() if re.match(r"^\| `[\w-]+` \|", r)]
    assert [re.match(r"^\| `([\w-]+)`", r).group(1) for r in rows] == list(FORMATS)
    assert rows == table_rows()  # the table says what the rules do


class SplitBN(nn.BatchNorm2d):
    """lightly/models/batchnorm.py `SplitBatchNorm` as a source model: running statistics of
    shape (C*S,), one row per simulated GPU; in eval mode the mean over the S rows is used
    (its `train(False)` collates them with torch.mean(view(S, C), dim=0))."""

    def __init__(self, c: int, s: int):
        super().__init__(c)
        self.s = s
        self.register_buffer("running_mean", torch.randn(c * s) * 0.1)
        self.register_buffer("running_var", torch.rand(c * s) + 0.5)

    def forward(self, x):
        c = self.num_features
        return nn.functional.batch_norm(x, self.running_mean.view(self.s, c).mean(0),
                                        self.running_var.view(self.s, c).mean(0), self.weight, self.bias,
                                        False, 0.0, self.eps)


def test_lightly_split_batchnorm_statistics_are_collated(tmp_path):
    """lightly's MoCo CIFAR example: ResNetGenerator('resnet-18', num_splits=8) in a Lightning
    module, saved mid-training (per-split statistics not yet collated)."""
    from tests.test_convert_formats import lightning_ckpt
    from transfer.convert.cli import summary
    from transfer.convert.verify import build_mmdet_backbone, convert_and_verify

    net = LightlyResNet()
    for mod in list(net.modules()):
        for child_name, child in list(mod.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                setattr(mod, child_name, SplitBN(child.num_features, 8))
    net = randomize_bn(net)
    seq = nn.Sequential(*list(net.children())[:-1])
    torch.save(lightning_ckpt(prefixed("backbone.", seq.state_dict())), tmp_path / "moco.ckpt")
    conv = convert_and_verify(tmp_path / "moco.ckpt")
    assert conv.meta["split_bn_collated"] == 8 and "SplitBatchNorm" in summary(conv)
    assert torch.equal(conv.state_dict["layer3.1.bn2.running_var"],
                       net.layer3[1].bn2.running_var.view(8, 256).mean(0))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        got = build_mmdet_backbone(conv, out_indices=(3,))(x)[-1]
        assert torch.allclose(got, net.c5(x), rtol=1e-4, atol=1e-4)


def test_a_lightning_module_of_ones_own_is_lightning(tmp_path, r18):
    """Lightning 2.x `trainer.save_checkpoint` of a module with `self.model = resnet18()`: not
    lightly, not solo-learn; the only ResNet is taken."""
    from tests.test_convert_formats import lightning_ckpt

    torch.save(lightning_ckpt(prefixed("model.", r18.state_dict())), tmp_path / "last.ckpt")
    conv = check(tmp_path, tmp_path / "last.ckpt", r18, "lightning")
    assert conv.meta["encoder_prefix"] == "model."
