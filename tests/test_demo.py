"""unmix demo: the whole pipeline at --size tiny, end to end (slow), and its config plumbing (fast).

The AP values of a 2-iteration detector are noise; the end-to-end test checks that every stage's
outputs exist and are what the next stage reads, not the numbers."""

import pytest

from unmix import cli
from unmix.demo import pipeline as demo
from unmix.core import records
from unmix.core.threads import available_cores


def test_config_overrides_is_a_minimal_flat_diff():
    base = {"a": 1, "m": {"x": 1, "y": [dict(t=1, s=(1, 1)), dict(t=2)]}, "l": [1, 2], "keep": 3}
    child = {"a": 1, "m": {"x": 2, "y": [dict(t=1, s=(2, 2)), dict(t=2)]}, "l": [1, 2, 3], "new": {"k": 1}}
    assert demo.config_overrides(base, child) == {
        "m.x": 2, "m.y.0.s": (2, 2), "l": [1, 2, 3], "new": {"k": 1}}


def test_detection_overrides_rebuild_the_demo_config():
    """Applying the overrides to the protocol's config gives the demo config (what finetune runs)."""
    from mmengine.config import Config

    from transfer.detection import protocols
    from transfer.stack import ensure_stack

    ensure_stack()
    cfg = protocols.load_config(demo.PROTOCOL)
    cfg.merge_from_dict(demo.detection_overrides())
    want = Config.fromfile(str(demo.DETECTION_CONFIG))
    assert cfg.model.roi_head.bbox_head.num_classes == len(demo.CLASSES)
    assert cfg.model.neck.out_channels == want.model.neck.out_channels
    assert cfg.train_dataloader.dataset.dataset.datasets[1].pipeline[2].scale == want.scale
    assert cfg.test_dataloader.dataset.metainfo.classes == demo.CLASSES
    assert cfg.param_scheduler == want.param_scheduler
    assert cfg.train_cfg.max_epochs == want.epochs


def test_cli_dispatches_demo(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["demo", "--help"])
    assert e.value.code == 0
    assert "--size" in capsys.readouterr().out


def _forward_sum(seed: int) -> tuple[float, int]:
    """A deterministic ResNet-18 forward: what a worker computes, and how many threads it ran."""
    import torch
    import torchvision

    print(f"worker computing seed {seed}")
    torch.manual_seed(seed)
    net = torchvision.models.resnet18(num_classes=8).eval()
    with torch.no_grad():
        out = net(torch.randn(4, 3, 64, 64, dtype=torch.float32))
    return float(out.double().sum()), torch.get_num_threads()


def test_side_by_side_tasks_compute_what_one_by_one_does(tmp_path):
    """Workers are spawned with their share of threads; the same thread count gives the same
    numbers as this process computing one by one, and each worker's output goes to its log."""
    import torch

    from unmix.demo.parallel import Task, run_tasks

    tasks = [Task(f"t{s}", _forward_sum, (s,), log=tmp_path / f"t{s}.log") for s in (0, 1)]
    done = {t.name: t.result for t in run_tasks(tasks, jobs=2, threads=1)}
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        want = {f"t{s}": _forward_sum(s) for s in (0, 1)}
    finally:
        torch.set_num_threads(before)
    assert done == want and all(threads == 1 for _, threads in done.values())
    assert "worker computing seed 1" in (tmp_path / "t1.log").read_text()


def test_eta_scales_expected_costs_by_what_was_measured():
    eta = demo.Eta("small", cores=2)
    assert eta.wall("finetune", 18, procs=2, threads=1) == 9 * 38
    eta.record("pretrain", wall_s=2 * 210 / 1, threads=1)  # this machine: half the expected speed
    assert eta.wall("finetune", 18, procs=2, threads=1) == 2 * 9 * 38
    assert demo._shares(cores=2, jobs=2, n=18) == (2, 1) and demo._shares(2, 1, 18) == (1, 2)
    assert demo._shares(cores=8, jobs=8, n=2) == (2, 4)


@pytest.mark.slow
def test_demo_tiny_end_to_end(tmp_path, capsys):
    wd, out = tmp_path / "demo", tmp_path / "report"
    assert cli.main(["demo", "--size", "tiny", "--work-dir", str(wd), "--out", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out

    # data: VOC layout and the crops image folder
    assert (wd / "data/voc/VOCdevkit/VOC2007/ImageSets/Main/test.txt").is_file()
    assert any((wd / "data/crops/train").glob("*/*.jpg")) and any((wd / "data/crops/test").glob("*/*.jpg"))
    # pretraining checkpoints, kNN records, converted backbones
    for key, (label, _) in demo.ENCODERS.items():
        assert (wd / "pretrain" / key / "latest.pth").is_file()
        knn = records.load(wd / "knn" / key / "result.json")
        assert knn["status"] == "finished" and knn["checkpoint"]["label"] == label
        assert (wd / "converted" / f"{key}.pth").is_file()
    # six detection runs, each with a finished record holding AP50
    runs = sorted((wd / "finetune").glob("*/result.json"))
    assert len(runs) == 3 * len(demo.BN_MODES)
    labels = set()
    for path in runs:
        rec = records.load(path)
        assert rec["status"] == "finished", path
        assert rec["protocol"]["name"] == demo.PROTOCOL and "AP50" in rec["metrics"]
        assert rec["env"]["threads"] == demo._shares(available_cores(), available_cores(), 6)[1]
        labels.add((rec["checkpoint"]["label"], rec["protocol"]["bn_used"]))
    assert labels == {(lab, bn) for lab in [demo.RANDOM_INIT] + [v[0] for v in demo.ENCODERS.values()]
                      for bn in demo.BN_MODES}
    # the report, printed at the end too
    md = (out / "report.md").read_text()
    for label in [demo.RANDOM_INIT] + [v[0] for v in demo.ENCODERS.values()]:
        assert f"| {label} |" in md
    for name in ("report.html", "cells.csv"):
        assert (out / name).is_file()
    assert "| MoCo v2 + Un-Mix |" in printed
    assert (wd / "demo.log").read_text().count("done in") >= 14

    # a re-run reuses every finished stage
    mtimes = {p: p.stat().st_mtime for p in runs}
    assert cli.main(["demo", "--size", "tiny", "--work-dir", str(wd), "--out", str(out), "--device", "cpu"]) == 0
    assert all(p.stat().st_mtime == t for p, t in mtimes.items())
    assert "reusing" in (wd / "demo.log").read_text()


def test_pretraining_pool_is_apart_from_the_labelled_scenes(tmp_path):
    """The encoders pretrain on crops of scenes the detector never sees (train crops: the pool;
    test crops: VOC2007 test), as real pretraining uses data apart from the transfer task's."""
    size = demo.SIZES["tiny"]
    p = demo.Progress(tmp_path / "demo.log")
    try:
        voc, crops = demo.stage_data(tmp_path, size, 0, False, p)
    finally:
        p.close()
    pool = tmp_path / "data" / "pool" / "VOCdevkit"
    labelled = voc / "VOCdevkit"
    n_pool_objects = sum(len(demo._voc_boxes(x)) for x in pool.glob("VOC20*/Annotations/*.xml"))
    assert len(list((crops / "train").glob("*/*.jpg"))) == n_pool_objects
    test_ids = (labelled / "VOC2007/ImageSets/Main/test.txt").read_text().split()
    n_test_objects = sum(len(demo._voc_boxes(labelled / "VOC2007/Annotations" / f"{i}.xml")) for i in test_ids)
    assert len(list((crops / "test").glob("*/*.jpg"))) == n_test_objects
    # same file names, different scenes: no labelled image is in the pool
    for jpg in (labelled / "VOC2007/JPEGImages").glob("*.jpg"):
        twin = pool / "VOC2007/JPEGImages" / jpg.name
        assert not twin.is_file() or twin.read_bytes() != jpg.read_bytes()
    assert len(list(pool.glob("VOC20*/JPEGImages/*.jpg"))) == 2 * size.n_pool
