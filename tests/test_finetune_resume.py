"""`unmix finetune` reruns, interruptions and resumes: nothing written before the inputs are
checked, a finished record replaced only with --force, checkpoints saved atomically, SIGTERM
recorded as `interrupted`, and a resume from the newest loadable checkpoint that continues the
same sample (the uninterrupted run's losses, on CPU)."""
from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest
import torch
import torchvision

from transfer.stack import ensure_stack

ensure_stack()

from mmengine.hooks import Hook  # noqa: E402
from mmengine.registry import HOOKS  # noqa: E402

from transfer.detection import checkpoints, datacheck  # noqa: E402
from transfer.detection import finetune as ft  # noqa: E402
from transfer.detection import protocols  # noqa: E402
from unmix.core import files, records  # noqa: E402
from unmix.core.errors import UnmixError  # noqa: E402
from unmix.core.signals import sigterm_as_interrupt  # noqa: E402
from unmix.demo import toydata  # noqa: E402

SCALE = (96, 64)
PROTOCOL = "voc-faster-rcnn-fpn"


@pytest.fixture(scope="module")
def data():
    root = Path(tempfile.mkdtemp(prefix="unmix-ftr-"))
    toydata.write_voc(root / "voc", 2, 2, size=SCALE, classes=toydata.VOC_CLASSES)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), root / "tv_r18.pth")
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def private_tmp():
    path = Path(tempfile.mkdtemp(prefix="unmix-ftr-wd-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _finished_record(work_dir: Path) -> bytes:
    rec = records.new_record("detection", {"label": "r18", "path": "x"}, {"name": PROTOCOL}, env={})
    records.write(records.finish(rec, {"AP50": 81.5}), work_dir)
    return (work_dir / "result.json").read_bytes()


def test_rerun_into_a_finished_work_dir_writes_nothing(data, private_tmp):
    before = _finished_record(private_tmp)
    (private_tmp / "epoch_12.pth").write_bytes(b"the finished run's weights")
    snapshot = {p.name: p.read_bytes() for p in private_tmp.iterdir()}
    ck = str(data / "tv_r18.pth")
    with pytest.raises(UnmixError, match="a finished run is recorded here .*AP50 81.50.*--force"):
        ft.finetune(ck, PROTOCOL, work_dir=private_tmp, data_root=str(data / "voc"))
    with pytest.raises(UnmixError, match="a finished run is recorded here"):
        ft.finetune(ck, PROTOCOL, work_dir=private_tmp, data_root=str(data / "voc"), resume=True)
    # --force with a bad data root: the inputs fail their check, so the finished run stays whole
    with pytest.raises(UnmixError, match="VOC data root"):
        ft.finetune(ck, PROTOCOL, work_dir=private_tmp, data_root=str(private_tmp / "no"), force=True)
    assert {p.name: p.read_bytes() for p in private_tmp.iterdir()} == snapshot
    assert (private_tmp / "result.json").read_bytes() == before


def test_a_forced_fresh_run_sets_the_old_runs_checkpoints_aside(data, private_tmp, monkeypatch):
    """--force without --resume starts over: the replaced run's checkpoints are kept under
    replaced-*/ but are no longer what a --resume of the new run would take (its iter 12 would
    outrank the new run's epoch 1)."""
    _finished_record(private_tmp)
    old = {"meta": {"epoch": 12, "iter": 84}, "state_dict": {"w": torch.ones(1)}}
    torch.save(old, private_tmp / "epoch_12.pth")
    (private_tmp / "last_checkpoint").write_text(str(private_tmp / "epoch_12.pth"))
    assert checkpoints.newest_loadable(private_tmp) == private_tmp / "epoch_12.pth"
    saved = (private_tmp / "epoch_12.pth").read_bytes()

    def stop(*a, **k):
        raise KeyboardInterrupt  # as if Ctrl-C came during the new run's first iteration

    monkeypatch.setattr(ft, "_train_and_evaluate", stop)
    with pytest.raises(KeyboardInterrupt):
        ft.finetune(str(data / "tv_r18.pth"), PROTOCOL, work_dir=private_tmp, data_root=str(data / "voc"),
                    cfg_options=protocols.smoke_options(PROTOCOL, scale=SCALE), force=True)
    assert records.load(private_tmp / "result.json")["status"] == "interrupted"
    assert checkpoints.candidates(private_tmp) == [] and not (private_tmp / "last_checkpoint").exists()
    (aside,) = private_tmp.glob("replaced-*")
    assert (aside / "epoch_12.pth").read_bytes() == saved and (aside / "last_checkpoint").is_file()
    with pytest.raises(UnmixError, match="nothing to resume"):
        ft.finetune(str(data / "tv_r18.pth"), PROTOCOL, work_dir=private_tmp, data_root=str(data / "voc"),
                    cfg_options=protocols.smoke_options(PROTOCOL, scale=SCALE), resume=True)


def test_relative_data_root_is_resolved_once_and_recorded_absolute(data, monkeypatch):
    protocols.register_modules()
    monkeypatch.chdir(data)
    cfg, section = ft.build_config(PROTOCOL, None, 0, data / "wd", "voc", None, None, "none", 1, False)
    assert Path(section["data_root"]).is_absolute() and section["data_root"].startswith(str(data / "voc"))
    assert all(Path(d["data_root"]).is_absolute()
               for d in datacheck.walk(cfg.train_dataloader) if "data_root" in d)


def test_default_work_dirs_are_unique_per_checkpoint(tmp_path):
    a, b = tmp_path / "moco" / "latest.pth", tmp_path / "byol" / "latest.pth"
    for p, n in ((a, 1), (b, 2)):
        p.parent.mkdir()
        torch.save({"w": torch.full((2,), float(n))}, p)
    da = ft.default_work_dir(str(a), PROTOCOL, "finetune", 0, None)
    db = ft.default_work_dir(str(b), PROTOCOL, "finetune", 0, None)
    assert da != db and da.name.startswith("moco-") and db.name.startswith("byol-")
    assert ft.default_work_dir(str(a), PROTOCOL, "finetune", 0, "../../x").parent == ft.DEFAULT_WORK_ROOT


# ---------------------------------------------------------------- interrupted, then resumed

@HOOKS.register_module(force=True)
class RecordLosses(Hook):
    """Appends each iteration's loss to a file (a resumed run appends to the same file)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        with open(self.path, "a") as f:
            f.write(f"{runner.iter} {float(outputs['loss']):.10g}\n")


@HOOKS.register_module(force=True)
class TerminateAtIter(Hook):
    """SIGTERM to ourselves after iteration `iters` (what slurm sends on pre-emption)."""

    def __init__(self, iters: int) -> None:
        self.iters = iters

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 >= self.iters:
            os.kill(os.getpid(), signal.SIGTERM)


def _losses(path: Path) -> dict[int, str]:
    out: dict[int, str] = {}
    for line in path.read_text().splitlines():
        it, loss = line.split()
        assert int(it) not in out, f"iteration {it} logged twice"
        out[int(it)] = loss
    return out


@pytest.mark.slow
def test_sigterm_then_resume_continues_the_same_sample(data, private_tmp):
    """2 epochs of 2 iterations; SIGTERM after the 4th iteration (index 3, before epoch 2's
    checkpoint). The run up to there *is* the uninterrupted run; the resume from epoch_1.pth must
    repeat iterations 2 and 3 with the same losses (RNG states and sampler seed restored)."""
    opts = protocols.smoke_options(PROTOCOL, scale=SCALE)
    opts.update({"train_cfg.max_epochs": 2, "train_cfg.val_interval": 2})
    straight, resumed = private_tmp / "straight.txt", private_tmp / "resumed.txt"
    wd = private_tmp / "wd"
    kw = dict(bn="frozen", work_dir=wd, data_root=str(data / "voc"))
    ck = str(data / "tv_r18.pth")
    with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt():
        ft.finetune(ck, PROTOCOL, **kw, cfg_options=dict(opts, custom_hooks=[
            dict(type="RecordLosses", path=str(straight)), dict(type="TerminateAtIter", iters=4)]))
    stopped = records.load(wd / "result.json")
    assert stopped["status"] == "interrupted" and stopped["error"] == "interrupted (SIGTERM)"
    assert checkpoints.candidates(wd) == [wd / "epoch_1.pth"]
    assert "unmix_resume" in torch.load(wd / "epoch_1.pth", weights_only=False)
    # What kills during saves leave: a truncated newer checkpoint, an empty last_checkpoint and
    # a temp file; the resume takes the newest checkpoint that loads and removes the temp file.
    whole = (wd / "epoch_1.pth").read_bytes()
    (wd / "epoch_2.pth").write_bytes(whole[: len(whole) // 3])
    (wd / "last_checkpoint").write_text("")
    orphan = wd / f".epoch_2.pth.unmix-{files._HOST}-999999999-k1ll3d.tmp"
    orphan.write_bytes(whole[:1000])
    rec = ft.finetune(ck, PROTOCOL, **kw, resume=True,
                      cfg_options=dict(opts, custom_hooks=[dict(type="RecordLosses", path=str(resumed))]))
    assert rec["status"] == "finished" and rec["resumed_from"] == str(wd / "epoch_1.pth")
    assert rec["protocol"]["iterations"] == 4 and not orphan.exists()
    first, again = _losses(straight), _losses(resumed)
    assert sorted(first) == [0, 1, 2, 3] and sorted(again) == [2, 3]
    assert again == {2: first[2], 3: first[3]}  # the same sample, to 10 significant digits
    # the epoch-2 checkpoint of the resumed run was written whole (atomically) and loads
    assert checkpoints.newest_loadable(wd) == wd / "epoch_2.pth"
