"""unmix.core's shared helpers: config options, to-plain, the work-dir logger."""
from __future__ import annotations

import io
import pickle
from pathlib import Path

import pytest
import torch

from unmix.core.config import load_config, parse_options, to_plain
from unmix.core.errors import UnmixError
from unmix.core.logs import open_log, work_dir_log


def test_parse_options_uses_mmengines_value_syntax():
    got = parse_options(["a.b=1", "c=0.5", "d=[1,2]", "e=(3,4)", "f=x,y", "g=None", "h=True", "i=text"])
    assert got == {"a.b": 1, "c": 0.5, "d": [1, 2], "e": (3, 4), "f": ["x", "y"], "g": None,
                   "h": True, "i": "text"}
    for bad in (["novalue"], ["=1"]):
        with pytest.raises(UnmixError, match="--flag: .* is not KEY=VALUE"):
            parse_options(bad, "--flag")


def test_to_plain_keeps_config_shapes_and_strict_is_weights_only_loadable():
    from mmengine.config import ConfigDict

    cfg = ConfigDict(a=ConfigDict(b=(1, 2), c=[ConfigDict(d=3)]), p=Path("/x"))
    plain = to_plain(cfg)
    assert type(plain) is dict and type(plain["a"]) is dict and plain["a"]["b"] == (1, 2)
    assert type(plain["a"]["c"][0]) is dict and plain["p"] == Path("/x")
    strict = to_plain({1: (1, 2), "v": torch.__version__, "p": Path("/x"), "n": None}, strict=True)
    assert strict == {"1": [1, 2], "v": str(torch.__version__), "p": "/x", "n": None}
    assert type(strict["v"]) is str  # TorchVersion is a str subclass: not weights_only-safe
    buf = io.BytesIO()
    torch.save({"meta": strict}, buf)
    buf.seek(0)
    assert torch.load(buf, weights_only=True)["meta"] == strict
    with pytest.raises(pickle.UnpicklingError):  # the unconverted object is not loadable so
        buf = io.BytesIO()
        torch.save({"meta": {"p": Path("/x")}}, buf)
        buf.seek(0)
        torch.load(buf, weights_only=True)


def test_load_config_errors_are_one_line(tmp_path):
    with pytest.raises(UnmixError, match="config file not found"):
        load_config(tmp_path / "none.py")
    (tmp_path / "bad.py").write_text("x = (\n")
    with pytest.raises(UnmixError, match=r"bad.py: cannot read config \(SyntaxError"):
        load_config(tmp_path / "bad.py")
    (tmp_path / "ok.py").write_text("a = dict(b=1)\n")
    assert load_config(tmp_path / "ok.py", {"a.b": 2}).a.b == 2


def test_logs_go_to_the_file_and_a_rerun_does_not_write_into_the_old_file(tmp_path, capsys):
    with work_dir_log(tmp_path / "w", "knn") as log:
        log.info("first")
    assert "first" in (tmp_path / "w" / "knn.log").read_text() and "first" in capsys.readouterr().err
    a = open_log(tmp_path / "a.log", "unmix.test.same")
    a.info("to a")
    b = open_log(tmp_path / "b.log", "unmix.test.same")
    b.info("to b")
    assert "to b" not in (tmp_path / "a.log").read_text()
    quiet = open_log(None, "unmix.test.quiet", stderr=False)
    quiet.info("nowhere")
    assert "nowhere" not in capsys.readouterr().err
