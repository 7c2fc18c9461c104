"""unmix sweep: grid expansion, skip finished cells, record failed ones and go on, resume, rerun."""
import argparse

import pytest
import yaml

from transfer.detection import arguments
from transfer.detection import sweep as sw
from unmix.core import records
from unmix.core.errors import UnmixError


def spec(tmp_path, **kw):
    s = {"work_root": str(tmp_path / "runs"), "checkpoints": [{"label": "a", "path": "a.pth"}, "none"],
         "protocols": ["voc-faster-rcnn-fpn"], "bn": ["finetune", "frozen"], "seeds": [0, 1]}
    s.update(kw)
    return sw.validate_spec(s)


class FakeFinetune:
    """Writes a finished record like finetune() does (its protocol.quick and protocol.classes
    sections included), or fails for chosen cells."""

    def __init__(self, fail=()):
        self.calls, self.fail, self.kwargs = [], set(fail), []

    def __call__(self, checkpoint, protocol, bn, seed, work_dir, data_root, cfg_options, resume, label,
                 classes="auto", quick=False, scale=None, fraction=None, force=False):
        self.calls.append((label, bn, seed, resume))
        self.kwargs.append({"classes": classes, "quick": quick, "scale": scale, "fraction": fraction,
                            "force": force, "work_dir": work_dir})
        if quick:  # finetune's quick.apply: a quarter of the 1000x600 test scale, 2% of the schedule
            scale, fraction = scale or (250, 150), 0.02 if fraction is None else fraction
        shrunk = None if scale is None and fraction is None else {
            "quick": quick, "scale": list(scale) if scale else None, "factor": 1.0, "fraction": fraction}
        source = {"auto": "protocol", "protocol": "protocol", "data": "data"}.get(classes, f"file {classes}")
        rec = records.new_record("detection", {"label": label, "path": checkpoint},
                                 {"name": protocol, "seed": seed, "bn_requested": bn, "quick": shrunk,
                                  "classes": {"kind": "standard", "source": source, "num": 20}}, env={})
        if (label, bn, seed) in self.fail:
            records.fail(rec, "RuntimeError: boom")
            records.write(rec, work_dir)
            raise RuntimeError("boom")
        records.finish(rec, {"AP50": 50.0 + seed})
        records.write(rec, work_dir)
        return rec


def test_grid_is_the_full_product(tmp_path):
    cells = list(sw.cells(spec(tmp_path)))
    assert len(cells) == 2 * 1 * 2 * 2
    assert len({c["work_dir"] for c in cells}) == 8
    assert {c["label"] for c in cells} == {"a", "random-init"}
    default = list(sw.cells(spec(tmp_path, bn=None, protocols=["coco-mask-rcnn-fpn"])))
    assert {c["bn"] for c in default} == {"frozen"}  # the protocol's default


def test_failed_cells_are_recorded_and_the_sweep_goes_on_then_reruns(tmp_path):
    s = spec(tmp_path)
    fake = FakeFinetune(fail={("a", "frozen", 1)})
    out = sw.sweep(s, finetune_fn=fake, log=lambda m: None)
    assert len(fake.calls) == 8 and len(out["finished"]) == 7 and len(out["failed"]) == 1
    failed = records.load(f"{out['failed'][0]}/result.json")
    assert failed["status"] == "failed" and "boom" in failed["error"]
    # Rerun: only the failed cell runs again; the 7 finished ones are skipped.
    again = FakeFinetune()
    out2 = sw.sweep(s, finetune_fn=again, log=lambda m: None)
    assert again.calls == [("a", "frozen", 1, False)]
    assert len(out2["skipped"]) == 7 and len(out2["finished"]) == 1 and not out2["failed"]


def test_failure_before_finetune_writes_a_record_is_still_recorded(tmp_path):
    def broken(*a, **k):
        raise ValueError("bad config")

    out = sw.sweep(spec(tmp_path, checkpoints=["none"], bn=["frozen"], seeds=[0]), finetune_fn=broken,
                   log=lambda m: None)
    rec = records.load(f"{out['failed'][0]}/result.json")
    assert rec["status"] == "failed" and "ValueError: bad config" in rec["error"]


def test_interrupted_sweep_stops_and_resumes_the_cell(tmp_path):
    s = spec(tmp_path, checkpoints=["none"], bn=["frozen"], seeds=[0, 1])

    def interrupted(checkpoint, protocol, bn, seed, work_dir, **kw):
        if seed == 1:
            import torch

            work_dir.mkdir(parents=True, exist_ok=True)
            torch.save({"meta": {"epoch": 1, "iter": 2}, "state_dict": {}}, work_dir / "epoch_1.pth")
            (work_dir / "last_checkpoint").write_text(str(work_dir / "epoch_1.pth"))
            raise KeyboardInterrupt
        return FakeFinetune()(checkpoint, protocol, bn, seed, work_dir, **kw)

    with pytest.raises(KeyboardInterrupt):
        sw.sweep(s, finetune_fn=interrupted, log=lambda m: None)
    fake = FakeFinetune()
    out = sw.sweep(s, finetune_fn=fake, log=lambda m: None)
    assert fake.calls == [("random-init", "frozen", 1, True)]  # resumed, seed 0 skipped
    assert len(out["skipped"]) == 1


@pytest.mark.parametrize("bad,match", [
    ({"protocols": ["voc-ssd"]}, "unknown protocol"), ({"bn": ["group"]}, "unknown BN mode"),
    ({"checkpoints": []}, "non-empty"), ({"colour": 1}, "unknown keys"),
    ({"checkpoints": ["x/a.pth", "y/a.pth"]}, "unique")])
def test_bad_specs_are_one_line_errors(tmp_path, bad, match):
    with pytest.raises(UnmixError, match=match):
        spec(tmp_path, **bad)


def test_spec_file_errors_name_the_file(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("checkpoints: [a.pth\n")
    with pytest.raises(UnmixError, match="s.yaml: not valid YAML"):
        sw.load_spec(p)
    with pytest.raises(UnmixError, match="no such sweep spec"):
        sw.load_spec(tmp_path / "missing.yaml")


def test_a_cell_whose_checkpoints_do_not_load_starts_over(tmp_path):
    """A save killed half-way used to make --resume, and so the cell, fail on every rerun."""
    s = spec(tmp_path, checkpoints=["none"], bn=["frozen"], seeds=[0])
    wd = next(sw.cells(s))["work_dir"]
    wd.mkdir(parents=True)
    (wd / "epoch_1.pth").write_bytes(b"PK\x03\x04 cut short")
    (wd / "last_checkpoint").write_text("")
    fake = FakeFinetune()
    logged = []
    sw.sweep(s, finetune_fn=fake, log=logged.append)
    assert fake.calls == [("random-init", "frozen", 0, False)]
    assert any("not resuming from" in m and "epoch_1.pth" in m for m in logged)


@pytest.mark.parametrize("label", ["../../escape", "/etc", "a/b", "..", "a\\b"])
def test_labels_cannot_place_cells_outside_the_work_root(tmp_path, label):
    with pytest.raises(UnmixError, match="checkpoint label .* plain name"):
        spec(tmp_path, checkpoints=[{"label": label, "path": "a.pth"}])


def test_default_labels_of_two_runs_latest_differ(tmp_path):
    s = spec(tmp_path, checkpoints=["runs/moco/latest.pth", "runs/byol/latest.pth"])
    assert [c["label"] for c in s["checkpoints"]] == ["moco", "byol"]
    assert all(tmp_path / "runs" in c["work_dir"].parents for c in sw.cells(s))


# ------------------------------------------------------------- quick, scale, fraction, classes

@pytest.mark.parametrize("bad,match", [
    ({"quick": "yes"}, "quick: expected true or false"),
    ({"scale": [64]}, r"scale: expected \[W, H\]"), ({"scale": [64, 0]}, r"scale: expected \[W, H\]"),
    ({"scale": [64.5, 48]}, r"scale: expected \[W, H\]"), ({"scale": "64x48"}, r"scale: expected \[W, H\]"),
    ({"fraction": 0}, r"fraction: expected a number in \(0, 1\]"),
    ({"fraction": 1.5}, r"fraction: expected a number in \(0, 1\]"),
    ({"fraction": True}, r"fraction: expected a number in \(0, 1\]"),
    ({"classes": "nope.txt"}, "classes: nope.txt: no such class file"),
    ({"classes": 3}, "classes: expected auto, protocol, data or a file")])
def test_bad_shrink_keys_are_one_line_errors_naming_the_spec(tmp_path, bad, match):
    p = tmp_path / "grid.yaml"
    p.write_text(yaml.safe_dump({"checkpoints": ["none"], "protocols": ["voc-faster-rcnn-fpn"], **bad}))
    with pytest.raises(UnmixError, match=rf"^{p}: {match}") as err:
        sw.load_spec(p)
    assert "\n" not in str(err.value)


def test_every_cell_gets_the_spec_shrink_and_a_variant_dir(tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\n")
    s = spec(tmp_path, quick=True, scale=[64, 48], fraction=0.5, classes=str(names))
    fake = FakeFinetune()
    sw.sweep(s, finetune_fn=fake, log=lambda m: None)
    assert len(fake.kwargs) == 8
    for kw in fake.kwargs:
        assert (kw["quick"], kw["scale"], kw["fraction"], kw["classes"]) == (True, (64, 48), 0.5, str(names))
        assert kw["work_dir"].parent.parent.parent.parent == tmp_path / "runs" / "quick-scale64x48-fraction0.5"
    # a full sweep in the same work_root does not take the quick cells for its own
    full = FakeFinetune()
    out = sw.sweep(spec(tmp_path), finetune_fn=full, log=lambda m: None)
    assert len(full.calls) == 8 and not out["skipped"]
    assert all(kw["quick"] is False and kw["scale"] is None and kw["fraction"] is None
               and kw["classes"] == "auto" for kw in full.kwargs)
    # and the quick sweep again skips its own 8
    assert len(sw.sweep(s, finetune_fn=FakeFinetune(), log=lambda m: None)["skipped"]) == 8


def test_flags_override_the_spec_keys(tmp_path):
    from unmix import cli

    p = tmp_path / "grid.yaml"
    p.write_text(yaml.safe_dump({"work_root": str(tmp_path / "runs"), "checkpoints": ["none"],
                                 "protocols": ["voc-faster-rcnn-fpn"], "quick": True, "fraction": 0.5,
                                 "scale": [64, 48], "classes": "data"}))
    parser = argparse.ArgumentParser()
    sw.add_arguments(parser)
    args = parser.parse_args([str(p), "--no-quick", "--scale", "80", "60", "--classes", "protocol"])
    s = sw.load_spec(p, arguments.sweep_overrides(args))
    assert (s["quick"], s["scale"], s["fraction"], s["classes"]) == (False, (80, 60), 0.5, "protocol")
    s = sw.load_spec(p, arguments.sweep_overrides(parser.parse_args([str(p)])))
    assert (s["quick"], s["scale"], s["fraction"], s["classes"]) == (True, (64, 48), 0.5, "data")
    assert cli.main(["sweep", str(p), "--fraction", "2", "--dry-run"]) == 1  # checked before the spec


def test_a_cell_that_ran_otherwise_is_neither_skipped_nor_resumed_without_force(tmp_path):
    """A full sweep's record in a cell the spec now asks to run with other classes (or a quick
    record where a full one is asked, e.g. written with an explicit work dir) is not 'done'."""
    s = spec(tmp_path, checkpoints=["none"], bn=["frozen"], seeds=[0, 1])
    sw.sweep(s, finetune_fn=FakeFinetune(), log=lambda m: None)
    again = spec(tmp_path, checkpoints=["none"], bn=["frozen"], seeds=[0, 1], classes="data")
    fake = FakeFinetune()
    with pytest.raises(UnmixError, match=r"seed0/result.json: a finished run with classes from the "
                                         r"protocol \(the spec: data\); 2 of 2 cells .*--force"):
        sw.sweep(again, finetune_fn=fake, log=lambda m: None)
    assert fake.calls == []  # nothing ran
    logged = []
    out = sw.sweep(again, finetune_fn=fake, log=logged.append, force=True)
    assert [kw["force"] for kw in fake.kwargs] == [True, True] and len(out["finished"]) == 2
    assert [c[3] for c in fake.calls] == [False, False]  # from scratch, not resumed
    assert any("re-running from scratch" in m for m in logged)
    # the re-run records now agree: a rerun skips them
    assert len(sw.sweep(again, finetune_fn=FakeFinetune(), log=lambda m: None)["skipped"]) == 2


@pytest.mark.parametrize("record_quick, asked, differs", [
    (None, {}, []),
    ({"quick": True, "scale": [250, 150], "factor": 0.25, "fraction": 0.02}, {}, ["quick", "scale", "fraction"]),
    ({"quick": True, "scale": [250, 150], "factor": 0.25, "fraction": 0.02}, {"quick": True}, []),
    ({"quick": True, "scale": [250, 150], "factor": 0.25, "fraction": 0.02},
     {"quick": True, "scale": [64, 48]}, ["scale"]),
    ({"quick": False, "scale": None, "factor": 1.0, "fraction": 0.1}, {"fraction": 0.1}, []),
    ({"quick": False, "scale": None, "factor": 1.0, "fraction": 0.1}, {"fraction": 0.2}, ["fraction"]),
    (None, {"scale": [64, 48]}, ["scale"])])
def test_differences_name_what_the_record_ran_otherwise(tmp_path, record_quick, asked, differs):
    rec = {"status": "finished", "protocol": {"quick": record_quick}}
    got = sw.differences(rec, spec(tmp_path, **asked))
    assert [d.split()[0] for d in got] == differs


def test_classes_modes_against_what_the_record_says(tmp_path):
    def diff(source, mode):
        rec = {"status": "finished", "protocol": {"quick": None, "classes": {"source": source}}}
        return sw.differences(rec, spec(tmp_path, classes=mode))

    f = tmp_path / "c.txt"
    f.write_text("a\n")
    assert not diff("protocol", "auto") and not diff("data", "auto") and not diff("config", "data")
    assert diff("data", "protocol") and diff("protocol", "data") and diff(f"file {f}", "auto")
    assert not diff(f"file {f}", str(f)) and diff("protocol", str(f))
    # a record written before finetune resolved anything (a failure that early) tells nothing
    assert sw.differences({"status": "failed", "protocol": {"name": "x"}}, spec(tmp_path, quick=True)) == []
