"""Checkpoints that hold objects besides the weights, read without running any of their code
(transfer.convert.inert): mmengine Runner checkpoints, Lightning with an omegaconf DictConfig,
`torch.save(model)`, and pickles whose objects would run code."""
from __future__ import annotations

import pickle
import sys
import types

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from transfer.convert.cli import summary
from transfer.convert.conversion import convert_file
from unmix.cli import main

torch.manual_seed(0)


@pytest.fixture(scope="module")
def r18():
    return torchvision.models.resnet18().eval()


def backbone(m: nn.Module) -> dict:
    return {k: v for k, v in m.state_dict().items() if not k.startswith("fc.")}


def assert_exact(conv, net: nn.Module) -> None:
    want = backbone(net)
    assert set(conv.state_dict) == set(want)
    assert all(torch.equal(conv.state_dict[k], v) for k, v in want.items())


class fake_module:
    """Registers `name` in sys.modules with the given classes (their __module__ set to it), so
    pickle writes GLOBAL name.Class as the real library would; removed on exit."""

    def __init__(self, name: str, **classes: type):
        self.name, self.classes = name, classes

    def __enter__(self):
        parts = self.name.split(".")
        self.added = []
        for i in range(1, len(parts) + 1):
            mod = ".".join(parts[:i])
            if mod not in sys.modules:
                sys.modules[mod] = types.ModuleType(mod)
                self.added.append(mod)
        for cname, cls in self.classes.items():
            cls.__module__, cls.__qualname__ = self.name, cname
            setattr(sys.modules[self.name], cname, cls)
        return self

    def __exit__(self, *exc):
        for mod in reversed(self.added):
            del sys.modules[mod]


class Tripwire:
    """Any of the file's code running (constructor, __setstate__, __reduce__'s callable) leaves
    a mark in `ran`."""
    ran: list = []

    def __init__(self, *a, **k):
        Tripwire.ran.append(("init", type(self).__name__))

    def __setstate__(self, state):
        Tripwire.ran.append(("setstate", type(self).__name__))
        self.__dict__.update(state)


class Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_code_in_the_pickle_never_runs_and_the_weights_are_read(tmp_path, r18, capsys):
    """A pickled `open(path, 'w')` (the classic payload) and an importable class with a
    constructor and __setstate__: read as inert data, nothing runs, the tensors convert."""
    marker = tmp_path / "pwned"
    Tripwire.ran.clear()
    with fake_module("somelib.state", Thing=type("Thing", (Tripwire,), {})) as fm:
        thing = fm.classes["Thing"].__new__(fm.classes["Thing"])
        thing.__dict__["x"] = 1
        ck = {"state_dict": r18.state_dict(), "x": Evil(str(marker)), "thing": thing}
        torch.save(ck, tmp_path / "evil.pth")
        with open(tmp_path / "evil.pkl", "wb") as f:
            pickle.dump({"model": {k: v.numpy() for k, v in backbone(r18).items()},
                         "x": Evil(str(marker)), "thing": thing}, f)
        # The class stays importable while loading: it must still not be used.
        for name in ("evil.pth", "evil.pkl"):
            conv = convert_file(tmp_path / name)
            assert_exact(conv, r18)
            assert "somelib.state.Thing" in conv.meta["inert_globals"]
            assert any(g.endswith(".open") for g in conv.meta["inert_globals"])
        assert "not run" in summary(conv)
    assert not marker.exists() and Tripwire.ran == []
    rc = main(["convert", str(tmp_path / "evil.pth"), "-o", str(tmp_path / "ok.pth"), "--no-verify"])
    assert rc == 0 and "not run" in capsys.readouterr().out and not marker.exists()


def test_mmengine_runner_checkpoint(tmp_path, r18):
    """mmengine Runner.save_checkpoint (mmengine/runner/runner.py): {'meta': {..., cfg text,
    mmengine_version, dataset_meta}, 'state_dict', 'message_hub': MessageHub.state_dict()
    (HistoryBuffer log scalars, numpy scalars in runtime_info), 'optimizer', 'param_schedulers'};
    the model an mmpretrain MoCo (mmpretrain/models/selfsup/moco.py): backbone, neck, head,
    `encoder_k = ExponentialMovingAverage(Sequential(backbone, neck))` -> `encoder_k.module.0.*`."""
    from mmengine.logging import MessageHub

    hub = MessageHub.get_instance("test_convert_inert")
    hub.update_scalar("train/loss", 1.5)
    hub.update_scalar("train/lr", np.float64(0.03))
    hub.update_info("iter", np.int64(10))
    bb = backbone(r18)
    sd = {f"backbone.{k}": v for k, v in bb.items()}
    sd |= {f"encoder_k.module.0.{k}": v.clone() for k, v in bb.items()}
    sd |= {"encoder_k.steps": torch.tensor(10), "queue": torch.randn(8, 16),
           "queue_ptr": torch.zeros(1, dtype=torch.long), "neck.mlp.0.weight": torch.randn(8, 512)}
    ck = {"meta": {"epoch": 1, "iter": 10, "cfg": "model = dict(type='MoCo')", "seed": 0,
                   "mmengine_version": "0.10.7", "dataset_meta": {"classes": ("a",)}},
          "state_dict": sd, "message_hub": hub.state_dict(),
          "optimizer": {"state": {}, "param_groups": [{"lr": np.float64(0.03)}]},
          "param_schedulers": [{"last_epoch": 1}]}
    torch.save(ck, tmp_path / "epoch_1.pth")
    with pytest.raises(pickle.UnpicklingError):  # weights_only alone refuses it ...
        torch.load(tmp_path / "epoch_1.pth", weights_only=True)
    conv = convert_file(tmp_path / "epoch_1.pth")  # ... without --trust-pickle
    assert_exact(conv, r18)
    assert conv.format == "mmpretrain"
    assert any("HistoryBuffer" in g for g in conv.meta["inert_globals"])
    assert "momentum encoder" in conv.dropped and "queue" in conv.dropped
    key = convert_file(tmp_path / "epoch_1.pth", encoder="momentum")
    assert key.meta["encoder_prefix"] == "encoder_k.0."
    assert_exact(key, r18)


def _omegaconf_standins():
    """Stand-ins for omegaconf's classes under their real names (omegaconf/dictconfig.py,
    nodes.py, base.py): what pickling a DictConfig writes is its __getstate__ (basecontainer.py):
    a copy of __dict__ with `_metadata` (ContainerMetadata), `_parent`, `_content` (key -> node),
    a value node's state `_metadata`, `_parent`, `_val`."""
    cls = {n: type(n, (Tripwire,), {}) for n in ("DictConfig", "AnyNode", "ContainerMetadata",
                                                "Metadata")}
    return cls


def _dictconfig(cls, d: dict, parent=None):
    def new(name, **state):
        obj = object.__new__(cls[name])
        obj.__dict__.update(state)
        return obj
    node = new("DictConfig", _metadata=new("ContainerMetadata", ref_type=None, key=None),
               _parent=parent, _content={})
    for k, v in d.items():
        node._content[k] = (_dictconfig(cls, v, node) if isinstance(v, dict) else
                            new("AnyNode", _metadata=new("Metadata", key=k), _parent=node, _val=v))
    return node


def test_lightning_with_an_omegaconf_dictconfig(tmp_path):
    """A Lightning module that called save_hyperparameters(cfg) with solo-learn's omegaconf
    cfg: hyper_parameters is an AttributeDict holding a DictConfig. Read without omegaconf or
    lightning installed, without running their code; the cfg decides the stem padding (2)."""
    from tests.test_convert_formats import SOLO_CFG, lightning_ckpt, solo_sd, tv_resnet

    net = tv_resnet("resnet18", cifar=True, pad=2)
    Tripwire.ran.clear()
    oc = _omegaconf_standins()
    attr = type("AttributeDict", (dict,), {})
    with fake_module("omegaconf.dictconfig", DictConfig=oc["DictConfig"]), \
            fake_module("omegaconf.nodes", AnyNode=oc["AnyNode"]), \
            fake_module("omegaconf.base", ContainerMetadata=oc["ContainerMetadata"],
                        Metadata=oc["Metadata"]), \
            fake_module("lightning.fabric.utilities.data", AttributeDict=attr):
        hp = attr(cfg=_dictconfig(oc, SOLO_CFG))
        torch.save(lightning_ckpt(solo_sd(net), hyper_parameters=hp), tmp_path / "solo.ckpt")
    conv = convert_file(tmp_path / "solo.ckpt")
    assert Tripwire.ran == []
    assert conv.format == "solo-learn" and conv.meta["stem_padding"] == 2
    assert_exact(conv, net)
    assert "omegaconf.dictconfig.DictConfig" in conv.meta["inert_globals"]


def test_pickled_module(tmp_path, r18, capsys):
    """`torch.save(model)`: read from the module's own __dict__ without its class's code; with
    --trust-pickle, its state_dict()."""
    torch.save(r18, tmp_path / "model.pth")
    conv = convert_file(tmp_path / "model.pth")
    assert_exact(conv, r18)
    assert conv.format == "torchvision"
    assert "torchvision.models.resnet.ResNet" in conv.meta["inert_globals"]
    trusted = convert_file(tmp_path / "model.pth", trust_pickle=True)
    assert_exact(trusted, r18)
    wrapped = nn.Module()
    wrapped.encoder = nn.Sequential(*list(r18.children())[:-1])
    torch.save({"model": wrapped, "epoch": 3}, tmp_path / "wrapped.pth")
    assert_exact(convert_file(tmp_path / "wrapped.pth"), r18)


def test_weights_hidden_in_an_object_name_the_way_out(tmp_path, capsys):
    """An object whose weights only its own code can rebuild: one line, naming the classes
    not run and --trust-pickle."""
    with fake_module("vault.store", Box=type("Box", (Tripwire,), {})) as fm:
        box = fm.classes["Box"].__new__(fm.classes["Box"])
        box.__dict__["blob"] = b"\x00" * 16
        torch.save({"box": box}, tmp_path / "box.pth")
    rc = main(["convert", str(tmp_path / "box.pth"), "-o", str(tmp_path / "o.pth"), "--no-verify"])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and len(err.splitlines()) == 1
    assert "vault.store.Box" in err and "--trust-pickle" in err and "no tensors" in err
