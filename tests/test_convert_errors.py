"""Bad input to `unmix convert`: one line naming the file and the problem, exit 1, nothing
written, no traceback, and no code from a checkpoint ever runs by default."""
from __future__ import annotations

import os
import pickle

import pytest
import torch
import torchvision
from torch import nn

from unmix.cli import main

R18 = {k: v for k, v in torchvision.models.resnet18().state_dict().items()}


def run_cli(capsys, src, dst, *extra):
    rc = main(["convert", str(src), "-o", str(dst), "--no-verify", *extra])
    err = capsys.readouterr().err.strip()
    return rc, err


def assert_refused(capsys, tmp_path, src, *extra, match: str):
    dst = tmp_path / "out" / "dst.pth"
    rc, err = run_cli(capsys, src, dst, *extra)
    assert rc == 1
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert str(src) in err and match in err, err
    assert not dst.exists() and not (dst.parent.exists() and any(dst.parent.iterdir()))
    return err


class Evil:
    """Unpickling it would create a marker file."""
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


class Custom:
    pass


def test_missing_file(capsys, tmp_path):
    assert_refused(capsys, tmp_path, tmp_path / "nope.pth", match="no such file")


def test_truncated_and_corrupt(capsys, tmp_path):
    full = tmp_path / "full.pth"
    torch.save(R18, full)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    assert_refused(capsys, tmp_path, cut, match="truncated or corrupt")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x80\x04" + os.urandom(200))
    assert_refused(capsys, tmp_path, junk, match="corrupt")
    st = tmp_path / "bad.safetensors"
    st.write_bytes((20).to_bytes(8, "little") + b'{"a": {"dtype": "F32"')
    assert_refused(capsys, tmp_path, st, match="corrupt")
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    assert_refused(capsys, tmp_path, empty, match="empty file")


def test_not_a_resnet(capsys, tmp_path):
    torch.save(nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2)).state_dict(), tmp_path / "mlp.pth")
    assert_refused(capsys, tmp_path, tmp_path / "mlp.pth", match="not a ResNet")
    torch.save(torchvision.models.wide_resnet50_2().state_dict(), tmp_path / "wide.pth")
    assert_refused(capsys, tmp_path, tmp_path / "wide.pth", match="wide_resnet")


def test_ambiguous_encoders(capsys, tmp_path):
    sd = {f"net_a.{k}": v for k, v in R18.items()} | {f"net_b.{k}": v for k, v in R18.items()}
    torch.save({"state_dict": sd}, tmp_path / "two.pth")
    err = assert_refused(capsys, tmp_path, tmp_path / "two.pth", match="ambiguous")
    assert "net_a." in err and "--encoder" in err
    # ... and the explicit prefix resolves it
    rc = main(["convert", str(tmp_path / "two.pth"), "-o", str(tmp_path / "ok.pth"),
               "--no-verify", "--encoder", "net_b"])
    assert rc == 0 and (tmp_path / "ok.pth").exists()


def test_arch_mismatch_depth_and_width(capsys, tmp_path):
    torch.save(R18, tmp_path / "r18.pth")
    err = assert_refused(capsys, tmp_path, tmp_path / "r18.pth", "--arch", "resnet34",
                         match="but --arch is resnet34")
    assert "resnet18" in err
    from pretrain.backbones import build_resnet
    from transfer.convert.rules import convert_state_dict
    from unmix.core.errors import UnmixError

    with torch.device("meta"):
        w2 = build_resnet("resnet50w2").state_dict()
    w2 = {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in w2.items()}
    with pytest.raises(UnmixError, match="resnet50w2 .*128-channel stem.* but --arch is resnet50 "):
        convert_state_dict(w2, arch="resnet50")


def test_missing_tensor_and_shape(capsys, tmp_path):
    sd = dict(R18)
    del sd["layer3.1.conv2.weight"]
    torch.save(sd, tmp_path / "holey.pth")
    assert_refused(capsys, tmp_path, tmp_path / "holey.pth", match="lacks 1 tensors")


def test_pickle_that_would_run_code(capsys, tmp_path):
    """The payload is read as an inert record of the call (transfer.convert.inert): it never
    runs, the weights beside it convert, and the summary says what was not run."""
    marker = tmp_path / "pwned"
    torch.save({"state_dict": R18, "x": Evil(str(marker))}, tmp_path / "evil.pth")
    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump({"model": {k: v.numpy() for k, v in R18.items()}, "x": Evil(str(marker))}, f)
    for name in ("evil.pth", "evil.pkl"):
        rc = main(["convert", str(tmp_path / name), "-o", str(tmp_path / f"{name}.out"), "--no-verify"])
        out = capsys.readouterr().out
        assert rc == 0 and "not run" in out and "open" in out
    assert not marker.exists()


def test_custom_class_needs_no_trust_pickle(capsys, tmp_path):
    ck = {"state_dict": R18, "pytorch-lightning_version": "2.1", "hyper_parameters": {"c": Custom()}}
    torch.save(ck, tmp_path / "x.ckpt")
    for extra in ([], ["--trust-pickle"]):
        dst = tmp_path / f"ok{len(extra)}.pth"
        rc = main(["convert", str(tmp_path / "x.ckpt"), "-o", str(dst), "--no-verify", *extra])
        assert rc == 0 and dst.exists()
    assert "test_convert_errors.Custom" in capsys.readouterr().out
