"""unmix.core.files and the rerun rules of unmix.core.records / unmix.core.signals: nothing lost,
nothing half-written, nothing written outside its place, errors in one line."""
from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from unmix.core import files, records
from unmix.core.errors import UnmixError
from unmix.core.signals import Terminated, sigterm_as_interrupt

REPO = Path(__file__).resolve().parent.parent


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_002():
    old = os.umask(0o002)
    yield
    os.umask(old)


# --------------------------------------------------------------------------------- modes

def test_atomic_writes_respect_the_umask_not_mkstemps_0600(tmp_path, umask_002):
    files.write_text(tmp_path / "a.txt", "x")
    files.torch_save({"w": torch.ones(1)}, tmp_path / "b.pth")
    with files.atomic_dir(tmp_path / "rep") as d:
        (d / "r.md").write_text("x")
    assert _mode(tmp_path / "a.txt") == 0o664 == _mode(tmp_path / "b.pth")
    assert _mode(tmp_path / "rep") == 0o775  # a group can read and share the report
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what open() gives: the reference
    assert _mode(plain) == _mode(tmp_path / "a.txt")


# -------------------------------------------------------------------------------- errors

def _enospc(*a, **k):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_is_one_line_naming_the_file_and_the_old_file_stays(tmp_path, monkeypatch):
    dst = tmp_path / "result.json"
    files.write_text(dst, "old")
    monkeypatch.setattr(Path, "write_text", _enospc)
    with pytest.raises(UnmixError, match=rf"^No space left on device: {dst}$"):
        files.write_text(dst, "new")
    monkeypatch.undo()
    assert dst.read_text() == "old" and list(tmp_path.iterdir()) == [dst]  # no temp file left


def test_torch_save_reports_a_full_disk_as_such_not_as_torchs_runtime_error(tmp_path, monkeypatch):
    """torch.save into a failing file says 'unexpected pos 704 vs 598' (RuntimeError); the
    writer wrapper keeps the OSError underneath it."""
    dst = tmp_path / "latest.pth"
    files.torch_save({"epoch": 1}, dst)
    real_open = open

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr("builtins.open", lambda p, m="r", *a, **k: Full(real_open(p, m, *a, **k))
                        if "w" in m else real_open(p, m, *a, **k))
    with pytest.raises(UnmixError, match=rf"^No space left on device: {dst}$"):
        files.torch_save({"epoch": 2, "w": torch.zeros(1000)}, dst)
    monkeypatch.undo()
    assert torch.load(dst, weights_only=True) == {"epoch": 1}


def test_check_output_refuses_directory_under_a_file_and_the_source_itself(tmp_path):
    src = tmp_path / "latest.pth"
    src.write_bytes(b"ckpt")
    with pytest.raises(UnmixError, match="is a directory"):
        files.check_output(tmp_path)
    with pytest.raises(UnmixError, match=f"{src} is a file, not a directory"):
        files.check_output(src / "out.pth")
    with pytest.raises(UnmixError, match="is the input .* itself"):
        files.check_output(src, [src])
    with pytest.raises(UnmixError, match="is the input .* itself"):
        files.check_output(tmp_path / "." / "latest.pth", [src])  # another spelling
    os.link(src, tmp_path / "hard.pth")
    with pytest.raises(UnmixError, match="is the input .* itself"):
        files.check_output(tmp_path / "hard.pth", [src])  # the same inode: writing destroys it
    assert files.check_output(tmp_path / "new" / "out.pth", [src]) == tmp_path / "new" / "out.pth"
    with pytest.raises(UnmixError, match="exists and is not a directory"):
        files.check_output(src, directory=True)


def test_read_only_destination_is_one_line(tmp_path, monkeypatch):
    def erofs(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(files.tempfile, "mkstemp", erofs)
    with pytest.raises(UnmixError, match=f"^Read-only file system: {tmp_path / 'x.txt'}$"):
        files.write_text(tmp_path / "x.txt", "x")


# --------------------------------------------------------------------------- killed saves

KILLED_SAVE = textwrap.dedent("""
    import os, sys, torch
    from unmix.core import files
    real = torch.save
    def save_then_die(obj, f, *a, **k):
        f.write(b"half a checkpoint")
        os._exit(9)                      # killed in the middle of the save
    torch.save = save_then_die
    files.torch_save({"w": torch.ones(3)}, sys.argv[1])
""")


def test_a_killed_save_keeps_the_old_file_and_its_orphan_is_removed_next_start(tmp_path):
    dst = tmp_path / "latest.pth"
    files.torch_save({"epoch": 1}, dst)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", KILLED_SAVE, str(dst)], env=env, capture_output=True)
    assert out.returncode == 9, out.stderr
    orphans = [p for p in tmp_path.iterdir() if p != dst]
    assert len(orphans) == 1 and orphans[0].name.startswith(".latest.pth.unmix-")
    assert torch.load(dst, weights_only=True) == {"epoch": 1}  # the old checkpoint is whole
    (tmp_path / ".notes.tmp").write_text("a user's file")  # not ours: never touched
    assert files.remove_orphans(tmp_path) == orphans
    assert sorted(p.name for p in tmp_path.iterdir()) == [".notes.tmp", "latest.pth"]


def test_orphans_of_a_live_process_are_left_alone(tmp_path):
    with files.atomic_path(tmp_path / "a.pth") as tmp:
        tmp.write_bytes(b"in progress")
        assert files.remove_orphans(tmp_path) == [] and tmp.exists()  # our own save, running
    assert (tmp_path / "a.pth").read_bytes() == b"in progress"


def test_atomic_dir_failure_leaves_the_old_directory_whole(tmp_path):
    out = tmp_path / "report"
    with files.atomic_dir(out) as d:
        (d / "a.md").write_text("old a")
        (d / "b.md").write_text("old b")
    with pytest.raises(UnmixError, match="No space left on device"):
        with files.atomic_dir(out) as d:
            (d / "a.md").write_text("new a")
            with files.writing(d / "b.md"):
                _enospc()
    assert {p.name: p.read_text() for p in out.iterdir()} == {"a.md": "old a", "b.md": "old b"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_a_swap_cut_between_its_renames_is_put_back_on_the_next_start(tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "a.md").write_text("old")
    aside = tmp_path / f".report.unmix-{files._HOST}-999999999-abc123.old"
    os.replace(out, aside)  # what a kill between the two renames leaves
    files.remove_orphans(tmp_path)
    assert (out / "a.md").read_text() == "old" and not aside.exists()


# ---------------------------------------------------------------------------- containment

@pytest.mark.parametrize("bad", ["../escape", "/etc", "a/b", "a\\b", "..", ".", ""])
def test_labels_that_would_leave_their_root_are_refused_or_sanitised(bad, tmp_path):
    with pytest.raises(UnmixError, match="label"):
        files.check_component(bad, "checkpoint label")
    name = files.safe_component(bad)
    assert "/" not in name and "\\" not in name and name not in (".", "..", "")
    assert files.inside(tmp_path, name).parent == tmp_path.resolve()
    with pytest.raises(UnmixError, match="outside"):
        files.inside(tmp_path, "../x")
    with pytest.raises(UnmixError, match="outside"):
        files.inside(tmp_path, "/etc/passwd")


# ------------------------------------------------------------------ records: rerun, labels

def _finished(work_dir: Path) -> Path:
    rec = records.new_record("knn", {"label": "a", "path": "a.pth"}, {"name": "knn"}, env={})
    return records.write(records.finish(rec, {"top1": 90.0}), work_dir)


def test_a_finished_record_is_replaced_only_with_force(tmp_path):
    records.refuse_finished(tmp_path)  # nothing there: fine
    path = _finished(tmp_path)
    with pytest.raises(UnmixError, match=r"result.json: a finished run is recorded here \(top1 90.00\); "
                                         "pass --force"):
        records.refuse_finished(tmp_path)
    records.refuse_finished(tmp_path, force=True)
    assert records.load(path)["status"] == "finished"


def test_default_labels_are_unique_per_run_directory():
    assert records.default_label("work_dirs/pretrain/moco_v2_cifar10/latest.pth") == "moco_v2_cifar10"
    assert records.default_label("work_dirs/pretrain/moco_v2_cifar10_unmix/latest.pth") == \
        "moco_v2_cifar10_unmix"
    assert records.default_label("runs/byol/epoch_0200.pth") == "byol-epoch_0200"
    assert records.default_label("x/checkpoint_0199.pth.tar") == "x-checkpoint_0199"
    assert records.default_label("ckpts/mocov2_800ep.pth.tar") == "mocov2_800ep"
    assert records.run_name("a/../b", "0123456789abcdef", "cifar10") == "a_.._b-01234567_cifar10"
    assert records.run_name("random-init", None, "voc", "s0") == "random-init_voc_s0"


def test_interrupted_is_a_status_of_its_own(tmp_path):
    rec = records.new_record("detection", {"label": "a"}, {"name": "p"}, env={})
    records.stop(rec, Terminated())
    assert rec["status"] == "interrupted" and rec["error"] == "interrupted (SIGTERM)"
    assert records.load(records.write(rec, tmp_path))["status"] == "interrupted"
    assert not records.is_finished(tmp_path)
    assert records.stop(dict(rec), ValueError("x"))["status"] == "failed"


def test_sigterm_arrives_as_a_keyboard_interrupt():
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt) as info:
        with sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)  # handled at the next bytecode
            for _ in range(1000):
                pass
    assert isinstance(info.value, Terminated)
    assert signal.getsignal(signal.SIGTERM) == previous


def _square(x: int) -> int:
    return x * x


def test_forked_workers_die_on_sigterm_inside_sigterm_as_interrupt():
    # mmdet's eval_map forks a Pool; Pool.terminate() SIGTERMs its workers. With our handler
    # inherited, a worker raised inside the queue lock and the parent's join hung forever
    # (the CI timeout). Run in a child so a regression fails this test instead of hanging it.
    import multiprocessing as mp

    def body():
        with sigterm_as_interrupt():
            pool = mp.get_context("fork").Pool(2)
            assert pool.map(_square, range(8)) == [x * x for x in range(8)]
            pool.terminate()
            pool.join()
            child = os.fork()
            if child == 0:
                os._exit(0 if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL else 3)
            assert os.waitpid(child, 0)[1] == 0

    proc = mp.get_context("fork").Process(target=body)
    proc.start()
    proc.join(60)
    hung = proc.is_alive()
    if hung:
        proc.kill()
    assert not hung and proc.exitcode == 0


def test_work_dir_under_a_file_and_full_disk_inside_a_library_are_one_line(tmp_path, capsys,
                                                                            monkeypatch):
    from unmix.cli import main

    (tmp_path / "f").write_text("x")
    cfg = REPO / "configs" / "pretrain" / "moco_v2_cifar10.py"
    rc = main(["pretrain", str(cfg), "--work-dir", str(tmp_path / "f" / "wd"), "--device", "cpu",
               "--cfg-options", f"data.root={tmp_path}"])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and err == f"unmix pretrain: error: Not a directory: {tmp_path / 'f' / 'wd'}"

    from transfer.convert import cli as convert_cli

    def full(args):  # an OSError met in code that is not ours (a library's own write)
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "vis_data" / "scalars.json"))

    monkeypatch.setattr(convert_cli, "run", full)
    rc = main(["convert", "x.pth", "-o", str(tmp_path / "o.pth")])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and err.endswith(f"No space left on device: {tmp_path / 'vis_data' / 'scalars.json'}")
