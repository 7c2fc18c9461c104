"""Flatness statistics against closed forms, and `unmix flatness` end to end once the data and
checkpoint modules exist."""
from __future__ import annotations

import math

import pytest
import torch

from transfer.frozen.flatness import comparison_table, flatness_metrics, flatness_stats, sorted_softmax
from tests import fakedata


def test_identical_logits_give_uniform():
    stats = flatness_stats(torch.full((5, 8), 3.7))
    torch.testing.assert_close(stats["sorted_probs"], torch.full((8,), 1 / 8))
    m = flatness_metrics(stats)
    assert m["max_prob_mean"] == pytest.approx(100 / 8)
    assert m["max_prob_median"] == pytest.approx(100 / 8)
    assert m["max_prob_std"] == pytest.approx(0.0, abs=1e-9)
    assert m["entropy_mean"] == pytest.approx(100.0)  # uniform: H = log C


def test_one_hot_like_logit_closed_form():
    # one logit a, the other C-1 zero: max prob e^a / (e^a + C - 1)
    C, a = 10, 4.0
    logits = torch.zeros(3, C)
    logits[0, 2] = a
    logits[1, 7] = a
    logits[2, 0] = a
    stats = flatness_stats(logits)
    pmax = math.exp(a) / (math.exp(a) + C - 1)
    prest = 1 / (math.exp(a) + C - 1)
    want = torch.tensor([pmax] + [prest] * (C - 1))
    torch.testing.assert_close(stats["sorted_probs"], want, rtol=1e-5, atol=1e-7)
    h = -(pmax * math.log(pmax) + (C - 1) * prest * math.log(prest))
    m = flatness_metrics(stats)
    assert m["max_prob_mean"] == pytest.approx(100 * pmax, rel=1e-5)
    assert m["entropy_mean"] == pytest.approx(100 * h / math.log(C), rel=1e-5)


def test_temperature_and_sorting():
    logits = torch.tensor([[0.0, 2.0, 1.0]])
    p = sorted_softmax(logits, temperature=2.0)[0]
    e = torch.tensor([math.exp(1.0), math.exp(0.5), 1.0])
    torch.testing.assert_close(p, e / e.sum())
    assert torch.all(p[:-1] >= p[1:])
    with pytest.raises(ValueError):
        sorted_softmax(logits, temperature=0.0)


def test_statistics_over_mixed_images():
    # image 0 uniform over 4 (max .25), image 1 nearly one-hot (max ~1): mean .625, std .375
    logits = torch.tensor([[0.0, 0, 0, 0], [100.0, 0, 0, 0]])
    m = flatness_metrics(flatness_stats(logits))
    assert m["max_prob_mean"] == pytest.approx(62.5, abs=1e-3)
    assert m["max_prob_std"] == pytest.approx(37.5, abs=1e-3)
    assert m["entropy_mean"] == pytest.approx(50.0, abs=1e-3)
    assert "checkpoint" in comparison_table([("a", m, [1.0, 0.0])])


def test_cli_two_checkpoints(tmp_path, capsys):
    from unmix.core import records
    from unmix.cli import main

    root = tmp_path / "data"
    fakedata.write_image_folder(root / "val", classes=2, per_class=3, size=32)
    paths = [fakedata.write_random_resnet(tmp_path / f"enc{seed}.pth", seed=seed) for seed in (0, 1)]
    work = tmp_path / "work"
    rc = main(["flatness", *map(str, paths), "--dataset", "folder", "--data-root", str(root),
               "--arch", "resnet18", "--image-size", "32", "--work-dir", str(work),
               "--batch-size", "4", "--workers", "0", "--device", "cpu", "--label", "moco",
               "--label", "unmix"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "moco" in out and "unmix" in out
    for label in ("moco", "unmix"):
        rec = records.load(work / label / "result.json")
        assert rec["kind"] == "flatness" and rec["status"] == "finished"
        probs = rec["details"]["sorted_probs"]
        assert len(probs) == 512 and abs(sum(probs) - 1) < 1e-3
        assert probs == sorted(probs, reverse=True)
        assert rec["metrics"]["max_prob_mean"] == pytest.approx(100 * probs[0], rel=0.2)
        assert rec["protocol"]["name"] == "flatness-folder-val"
    assert (work / "flatness.log").exists() and (work / "flatness.png").exists()


def test_cli_bad_input(tmp_path, capsys):
    from unmix.cli import main

    a = tmp_path / "a.pth"
    a.write_bytes(b"x")
    rc = main(["flatness", str(a), str(tmp_path / "b.pth"), "--dataset", "folder", "--data-root", str(tmp_path)])
    assert rc == 1 and "b.pth: no such checkpoint file" in capsys.readouterr().err
    rc = main(["flatness", str(a), str(a), "--dataset", "folder", "--data-root", str(tmp_path)])
    assert rc == 1 and "distinct" in capsys.readouterr().err
    rc = main(["flatness", str(a), "--dataset", "folder", "--data-root", str(tmp_path / "none")])
    assert rc == 1 and "data root" in capsys.readouterr().err
