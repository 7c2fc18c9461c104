"""Weighted kNN: against a naive per-query Python loop, a hand-computed case, and (once the data
and checkpoint modules exist) the `unmix knn` command end to end."""
from __future__ import annotations

import math

import pytest
import torch

from pretrain.features import extract_features
from transfer.frozen.common import topk_accuracy
from pretrain.knn import knn_predict
from tests import fakedata


def naive_knn(q, bank, bank_labels, num_classes, k, t):
    out = []
    for qi in q.tolist():
        qn = math.sqrt(sum(v * v for v in qi))
        sims = []
        for j, bj in enumerate(bank.tolist()):
            bn = math.sqrt(sum(v * v for v in bj))
            sims.append((sum(a * b for a, b in zip(qi, bj)) / (qn * bn), j))
        sims.sort(key=lambda s: -s[0])
        row = [0.0] * num_classes
        for sim, j in sims[:k]:
            row[int(bank_labels[j])] += math.exp(sim / t)
        out.append(row)
    return torch.tensor(out)


@pytest.mark.parametrize("k,t,chunk", [(5, 0.1, 256), (200, 0.1, 3), (1, 0.5, 2), (7, 0.07, 4)])
def test_knn_matches_naive_loop(k, t, chunk):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(11, 6, generator=g)
    bank = torch.randn(40, 6, generator=g) * 3  # unnormalised on purpose
    labels = torch.randint(0, 4, (40,), generator=g)
    got = knn_predict(q, bank, labels, 4, k=k, t=t, chunk_size=chunk)
    want = naive_knn(q, bank, labels, 4, min(k, 40), t)
    assert got.shape == (11, 4)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_knn_known_answer():
    # Bank: two points of class 0 along +x, one of class 1 along +y. Query along +x.
    bank = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 5.0]])
    labels = torch.tensor([0, 0, 1])
    q = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    s = knn_predict(q, bank, labels, 3, k=2, t=0.5)
    # query 0: neighbours are both class-0 points, sim 1 each -> 2 e^2; class 1 not among top-2.
    torch.testing.assert_close(s[0], torch.tensor([2 * math.exp(2.0), 0.0, 0.0]))
    # query 1: the class-1 point (sim 1) and one class-0 point (sim 0).
    torch.testing.assert_close(s[1], torch.tensor([math.exp(0.0), math.exp(2.0), 0.0]))
    acc = topk_accuracy(s, torch.tensor([0, 1]), ks=(1, 5))
    assert acc == {"top1": 100.0, "top5": 100.0}


def test_topk_accuracy_closed_form():
    scores = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.15, 0.05], [0.2, 0.3, 0.5]])
    acc = topk_accuracy(scores, torch.tensor([1, 1, 0]), ks=(1, 2))
    assert acc["top1"] == pytest.approx(100 / 3)
    assert acc["top2"] == pytest.approx(200 / 3)


def test_knn_clusters_with_resnet_features():
    """Real encoder features through extract_features: images that are exact copies of bank
    images are their own nearest neighbour, so k=1 kNN is 100%."""
    from pretrain.backbones import build_resnet

    torch.manual_seed(0)
    enc = build_resnet("resnet18")
    images = torch.rand(8, 3, 32, 32)
    labels = torch.arange(8) % 3
    loader = [(images[:4], labels[:4]), (images[4:], labels[4:])]
    feats, got_labels = extract_features(enc, loader, "cpu")
    assert feats.shape == (8, 512) and torch.equal(got_labels, labels)
    assert not enc.training
    scores = knn_predict(feats, feats, labels, 3, k=1, t=0.1)
    assert topk_accuracy(scores, labels)["top1"] == 100.0


def test_knn_rejects_bad_shapes():
    with pytest.raises(ValueError):
        knn_predict(torch.zeros(2, 3), torch.zeros(4, 5), torch.zeros(4, dtype=torch.long), 2)


def test_cli_writes_record(tmp_path, capsys):
    from unmix.core import records
    from unmix.cli import main

    root = tmp_path / "data"
    fakedata.write_image_folder(root / "train", classes=3, per_class=2, size=32)
    fakedata.write_image_folder(root / "val", classes=3, per_class=1, size=32, seed=9)
    ckpt = tmp_path / "enc.pth"
    fakedata.write_random_resnet(ckpt, seed=0)
    work = tmp_path / "work"
    rc = main(["knn", str(ckpt), "--dataset", "folder", "--data-root", str(root), "--arch", "resnet18",
               "--image-size", "32", "--work-dir", str(work), "--batch-size", "4", "--workers", "0",
               "--device", "cpu", "--k", "3", "--t", "0.07", "--label", "mine"])
    assert rc == 0
    rec = records.load(work / "result.json")
    assert rec["kind"] == "knn" and rec["status"] == "finished"
    assert rec["protocol"]["name"] == "knn-k3-t0.07" and rec["protocol"]["test_split"] == "val"
    assert {"dataset", "train_split", "test_split", "k", "t", "seed"} <= set(rec["protocol"])
    assert set(rec["metrics"]) == {"top1", "top5"}
    assert rec["metrics"]["top5"] == 100.0  # 3 classes: every label is in the top 5
    assert rec["checkpoint"]["label"] == "mine" and rec["details"]["bank_size"] == 6
    assert "top1" in capsys.readouterr().out and (work / "knn.log").exists()


def test_cli_bad_input(tmp_path, capsys):
    from unmix.cli import main

    rc = main(["knn", str(tmp_path / "nope.pth"), "--dataset", "cifar10", "--data-root", str(tmp_path)])
    assert rc == 1 and "no such checkpoint file" in capsys.readouterr().err
    rc = main(["knn", str(tmp_path), "--dataset", "cifar10", "--data-root", str(tmp_path), "--k", "0"])
    assert rc == 1 and "--k 0" in capsys.readouterr().err
    assert not (tmp_path / "work_dirs").exists()


def test_cli_on_cifar10_pickles(tmp_path, monkeypatch):
    """The real CIFAR-10 on-disk format (python pickles), default test split 'test', 10 classes."""
    from unmix.core import records
    from unmix.cli import main

    fakedata.write_cifar10(tmp_path / "data", n_train=10, n_test=4)
    fakedata.patch_md5(monkeypatch, tmp_path / "data", "cifar10")
    ckpt = fakedata.write_random_resnet(tmp_path / "enc.pth")
    rc = main(["knn", str(ckpt), "--dataset", "cifar10", "--data-root", str(tmp_path / "data"),
               "--arch", "resnet18", "--work-dir", str(tmp_path / "w"), "--batch-size", "8",
               "--workers", "0", "--device", "cpu"])
    assert rc == 0
    rec = records.load(tmp_path / "w" / "result.json")
    assert rec["protocol"]["test_split"] == "test" and rec["protocol"]["name"] == "knn-k200-t0.1"
    assert rec["details"] == {"num_classes": 10, "bank_size": 10, "num_test": 4, "feature_dim": 512}


def test_record_pretrain_block_from_unmix_pretrain_checkpoint(tmp_path):
    """An `unmix pretrain` checkpoint (format 'unmix-pretrain', keys backbone.*, meta with the
    Un-Mix config as a dict) gives checkpoint.pretrain = {method, unmix (bool), epochs, dataset}."""
    from pretrain.backbones import build_resnet
    from transfer.frozen.common import load_encoder

    sd = {f"backbone.{k}": v for k, v in build_resnet("resnet18", stem="cifar").state_dict().items()}
    meta = {"method": "moco", "arch": "resnet18", "stem": "cifar", "version": "v2",
            "unmix": {"enabled": True, "prob": 0.5, "beta": 1.0},
            "mixing": {"final_form": {"enabled": True}, "first_form": {"enabled": False}},
            "dataset": "cifar10", "epoch": 3, "epochs": 1000, "config": "..."}
    path = tmp_path / "latest.pth"
    torch.save({"format": "unmix-pretrain", "version": 1, "state_dict": sd, "meta": meta, "epoch": 3}, path)
    enc, block = load_encoder(path)
    assert block["pretrain"] == {"method": "moco", "unmix": True, "epochs": 1000, "dataset": "cifar10",
                                  "quick": False}
    assert block["arch"] == "resnet18" and block["stem"] == "cifar" and block["format"] == "unmix-pretrain"
    meta["unmix"] = {"enabled": False}
    meta["mixing"]["final_form"]["enabled"] = False
    torch.save({"format": "unmix-pretrain", "version": 1, "state_dict": sd, "meta": meta, "epoch": 3}, path)
    assert load_encoder(path)[1]["pretrain"]["unmix"] is False
    x = torch.rand(2, 3, 32, 32)
    enc.eval()
    assert enc(x).shape == (2, 512)


def test_two_runs_latest_get_their_own_records_and_reruns_need_force(tmp_path, capsys, monkeypatch):
    """README step 2: `unmix knn .../moco_v2_cifar10/latest.pth` and `.../..._unmix/latest.pth`
    used to write the same work_dirs/knn/latest_folder, the second replacing the first."""
    from unmix.core import records
    from unmix.cli import main

    root = tmp_path / "data"
    fakedata.write_image_folder(root / "train", classes=3, per_class=2, size=32)
    fakedata.write_image_folder(root / "val", classes=3, per_class=1, size=32, seed=9)
    runs = tmp_path / "work_dirs" / "pretrain"
    for i, name in enumerate(("moco_v2_cifar10", "moco_v2_cifar10_unmix")):
        (runs / name).mkdir(parents=True)
        fakedata.write_random_resnet(runs / name / "latest.pth", seed=i)
    monkeypatch.chdir(tmp_path)
    argv = ["--dataset", "folder", "--data-root", "data", "--arch", "resnet18", "--image-size", "32",
            "--batch-size", "4", "--workers", "0", "--device", "cpu", "--k", "3"]
    for name in ("moco_v2_cifar10", "moco_v2_cifar10_unmix"):
        assert main(["knn", f"work_dirs/pretrain/{name}/latest.pth", *argv]) == 0
    found = sorted(records.find([tmp_path / "work_dirs" / "knn"]))
    recs = [records.load(p) for p in found]
    assert [r["checkpoint"]["label"] for r in recs] == ["moco_v2_cifar10", "moco_v2_cifar10_unmix"]
    assert all(p.parent.name.startswith(r["checkpoint"]["label"] + "-" + r["checkpoint"]["sha256"][:8])
               for p, r in zip(found, recs))
    assert recs[0]["protocol"]["data_root"] == str(root)  # relative --data-root, recorded absolute
    before = found[0].read_bytes()
    capsys.readouterr()
    assert main(["knn", "work_dirs/pretrain/moco_v2_cifar10/latest.pth", *argv]) == 1
    err = capsys.readouterr().err
    assert "a finished run is recorded here" in err and "--force" in err and len(err.strip().splitlines()) == 1
    assert found[0].read_bytes() == before
    assert main(["knn", "work_dirs/pretrain/moco_v2_cifar10/latest.pth", *argv, "--force"]) == 0
    assert records.load(found[0])["finished"] >= recs[0]["finished"]


def test_interrupted_knn_records_interrupted(tmp_path, monkeypatch):
    from transfer.frozen import knn
    from unmix.cli import main
    from unmix.core import records
    from unmix.core.signals import Terminated

    root = tmp_path / "data"
    fakedata.write_image_folder(root / "train", classes=3, per_class=2, size=32)
    fakedata.write_image_folder(root / "val", classes=3, per_class=1, size=32, seed=9)
    ckpt = fakedata.write_random_resnet(tmp_path / "enc.pth")

    def terminated(*a, **k):
        raise Terminated()  # what SIGTERM raises inside `unmix` (unmix.core.signals)

    monkeypatch.setattr(knn, "knn_predict", terminated)
    rc = main(["knn", str(ckpt), "--dataset", "folder", "--data-root", str(root), "--arch", "resnet18",
               "--image-size", "32", "--work-dir", str(tmp_path / "w"), "--batch-size", "4",
               "--workers", "0", "--device", "cpu", "--k", "3"])
    assert rc == 143
    rec = records.load(tmp_path / "w" / "result.json")
    assert rec["status"] == "interrupted" and rec["error"] == "interrupted (SIGTERM)"
