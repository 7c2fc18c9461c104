import argparse

import pytest

from unmix import doctor


@pytest.mark.slow
def test_doctor_passes_on_this_machine(capsys):
    assert doctor.run(argparse.Namespace(device="cpu", skip_train=False)) == 0
    out = capsys.readouterr().out
    for name in ("python", "torch", "torchvision", "mmcv", "mmengine", "mmdet", "pycocotools", "cuda"):
        assert f"  {name}" in out
    assert "[ok]   detector: Faster R-CNN R50-FPN train step" in out
    assert "all checks passed" in out


def test_doctor_names_the_broken_piece_and_the_fix(monkeypatch, capsys):
    def broken(device):
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(doctor, "check_roi_align", broken)
    assert doctor.run(argparse.Namespace(device="cpu", skip_train=True)) == 1
    out = capsys.readouterr().out
    assert "[FAIL] mmcv.ops.RoIAlign: RuntimeError: kernel exploded" in out
    assert "fix: run `tools/setup.sh`" in out
    assert "1 check(s) failed: mmcv.ops.RoIAlign" in out
