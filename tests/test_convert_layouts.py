"""Checkpoint layouts of VISSL, ResNet-D (timm / mmpretrain), the sthalles BYOL port and lightly's
CIFAR ResNet, each built here from the library's own key layout (the source named per case;
random weights, no network), converted, tensor-exact against the source model and verified."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.test_convert_formats import check, prefixed, tv_resnet
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
