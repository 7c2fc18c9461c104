"""unmix sweep: grid expansion, skip finished cells, record failed ones and go on, resume, rerun."""
import pytest

from transfer.detection import sweep as sw
from unmix.core import records
from unmix.core.errors import UnmixError


def spec(tmp_path, **kw):
    s = {"work_root": str(tmp_path / "runs"), "checkpoints": [{"label": "a", "path": "a.pth"}, "none"],
         "protocols": ["voc-faster-rcnn-fpn"], "bn": ["finetune", "frozen"], "seeds": [0, 1]}
    s.update(kw)
    return sw.validate_spec(s)


class FakeFinetune:
    """Writes a finished record like finetune() does, or fails for chosen cells."""

    def __init__(self, fail=()):
        self.calls, self.fail = [], set(fail)

    def __call__(self, checkpoint, protocol, bn, seed, work_dir, data_root, cfg_options, resume, label):
        self.calls.append((label, bn, seed, resume))
        rec = records.new_record("detection", {"label": label, "path": checkpoint},
                                 {"name": protocol, "seed": seed, "bn_requested": bn}, env={})
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
