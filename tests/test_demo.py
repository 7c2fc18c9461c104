"""unmix demo: the whole pipeline at --size tiny, end to end (slow), and its config plumbing (fast).

The AP values of a 2-iteration detector are noise; the end-to-end test checks that every stage's
outputs exist and are what the next stage reads, not the numbers."""

from pathlib import Path

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
    done = {t.name: t.result for t in run_tasks(tasks, jobs=2, cores=2)}
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        want = {f"t{s}": _forward_sum(s) for s in (0, 1)}
    finally:
        torch.set_num_threads(before)
    assert done == want and all(threads == 1 for _, threads in done.values())
    assert "worker computing seed 1" in (tmp_path / "t1.log").read_text()


def _stamp(seconds: float, write: str | None = None, read: str | None = None) -> tuple:
    """(start, end, what `read` held, torch threads): when a worker ran and what it saw."""
    import time
    from pathlib import Path

    import torch

    t = time.time()
    seen = Path(read).read_text() if read else None
    time.sleep(seconds)
    if write:
        Path(write).write_text("written")
    return t, time.time(), seen, torch.get_num_threads()


def test_pool_starts_each_task_once_its_inputs_exist_and_its_cores_are_free(tmp_path):
    """`after` holds a task back until its inputs are written; an independent one uses the free
    core meanwhile; a 2-thread task waits until both cores are free and runs with 2 threads."""
    from unmix.demo.parallel import Task, run_tasks

    a_out = str(tmp_path / "a.txt")
    tasks = [Task("a", _stamp, (3.0, a_out)), Task("b", _stamp, (0.0, None, a_out), after=("a",)),
             Task("c", _stamp, (0.2,)), Task("wide", _stamp, (0.0,), after=("c",), threads=2)]
    order = [t.name for t in run_tasks(tasks, jobs=2, cores=2)]
    r = {t.name: t.result for t in tasks}
    assert r["b"][2] == "written" and r["b"][0] >= r["a"][1]        # b ran after a, saw its output
    assert r["c"][0] < r["a"][1] and order.index("c") < order.index("a")  # c beside a
    assert r["wide"][3] == 2 and r["wide"][0] >= r["a"][1]          # wide waited for both cores
    assert r["a"][3] == r["b"][3] == r["c"][3] == 1


def test_tasks_must_come_after_what_they_read():
    from unmix.demo.parallel import Task, check_order

    with pytest.raises(ValueError, match="'b'"):
        check_order([Task("b", print, after=("a",)), Task("a", print)])


def test_estimate_lays_tasks_out_as_the_pool_runs_them():
    """Closed forms: equal tasks fill the cores in waves, a chain adds up, a running task's
    seconds left come first, a wide task waits for the whole machine."""
    from unmix.demo.parallel import Task, estimate

    def d(t: Task) -> float:
        return t.extra["d"]

    def T(name: str, dur: float, after: tuple = (), threads: int = 1) -> Task:
        return Task(name, print, after=after, threads=threads, extra={"d": dur})

    assert max(estimate([T(f"c{i}", 38) for i in range(18)], [], d, cores=2, jobs=2).values()) == 9 * 38
    chain = estimate([T("a", 10), T("b", 5, ("a",)), T("c", 3)], [], d, cores=2, jobs=2)
    assert chain == {"a": 10, "b": 15, "c": 3}
    assert estimate([T("x", 4)], [(T("r", 0), 6.0)], d, cores=1, jobs=1) == {"r": 6.0, "x": 10.0}
    assert estimate([T("a", 3), T("w", 5, threads=2), T("b", 1)], [], d, cores=2, jobs=2) == \
        {"a": 3, "b": 1, "w": 8}
    assert estimate([T("b", 2, ("done_before",))], [], d, cores=2, jobs=2) == {"b": 2}


def test_eta_scales_expected_costs_by_what_was_measured():
    from unmix.demo.parallel import Task

    eta = demo.Eta("small", cores=2, jobs=2)
    cells = [Task(f"c{i}", print, extra={"kind": "finetune"}) for i in range(18)]
    assert max(eta.ends(cells, [], now=0.0).values()) == 9 * 38
    eta.record("pretrain", wall_s=2 * 210 / 1, threads=1)  # this machine: half the expected speed
    assert max(eta.ends(cells, [], now=0.0).values()) == 2 * 9 * 38
    assert demo._shares(cores=2, jobs=2, n=18) == (2, 1) and demo._shares(2, 1, 18) == (1, 2)
    assert demo._shares(cores=8, jobs=8, n=2) == (2, 4)


def test_pool_order_puts_pretraining_first_and_each_run_after_its_inputs():
    """The demo's task list: every encoder's fine-tuning runs wait for its conversion, which waits
    for its pretraining; random-init runs need nothing; with 2 cores every task gets 1 thread."""
    import argparse

    args = argparse.Namespace(seed=0, force=False, device=None)
    tasks = demo._pool_tasks(args, demo.SIZES["small"], Path("wd"), Path("voc"), Path("crops"), cores=2, jobs=2)
    kinds = [t.extra["kind"] for t in tasks]
    assert kinds[:2] == ["pretrain"] * 2 and kinds.count("finetune") == 18 and kinds[-2:] == ["knn"] * 2
    by_name = {t.name: t for t in tasks}
    for t in tasks:
        if t.extra["kind"] == "finetune" and t.args[1] != demo.RANDOM_INIT:
            (conv,) = t.after
            assert by_name[conv].after == (f"pretrain {t.args[1]}",)
            assert t.args[2] == str(demo.converted_path(Path("wd"), by_name[conv].args[1]))
        elif t.extra["kind"] == "finetune":
            assert t.after == () and t.args[2] == "none"
    assert {t.threads for t in tasks} == {1}
    assert {t.threads for t in demo._pool_tasks(args, demo.SIZES["small"], Path("wd"), Path("v"), Path("c"),
                                                cores=2, jobs=1)} == {2}


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
    # timings.md: the in-process stages count this process only, the total every worker too
    rows = {r.split("|")[1].strip(): float(r.split("|")[3]) for r in (wd / "timings.md").read_text().splitlines()[2:]}
    assert rows["report"] < 0.5 * rows["total"] and rows["total"] >= sum(v for k, v in rows.items() if k != "total") - 3

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
