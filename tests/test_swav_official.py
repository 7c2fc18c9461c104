"""SwAV + Un-Mix against a naive float64 reference of the official objective (szq0214/Un-Mix,
UnMix_SwAV/for_ImageNet/main_swav_unmix.py): one r and one lam per iteration, a fresh box per crop
pair sized by the previous pair's corrected lam, the mixed set [m0, x1, m2, x3, ...], the
mixture's own codes as targets, `reverse` flipping crop 0's codes only, every swav_loss call
enqueueing (mixed embeddings too), queue rows per process = queue_length // world_size."""
from __future__ import annotations

import copy
import inspect
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
from torch.nn import functional as F

from pretrain.methods import build_method
from pretrain.methods.swav import SwAV, queue_rows
from pretrain.mixing import sample_beta
from pretrain.train import restore_process_state, save_process_state
from unmix.core.config import load_config

T, EPS, ITERS = 0.1, 0.05, 3


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def make(prob: float, queue_length: int = 0, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = {"type": "swav", "arch": "resnet18", "stem": "cifar", "hidden_dim": 32, "dim": 16,
           "n_prototypes": 10, "T": T, "eps": EPS, "sinkhorn_iters": ITERS,
           "unmix": {"enabled": True, "beta": 1.0, "prob": prob}, "queue_length": queue_length,
           "queue_start_epoch": 0, "world_size": 1, **kw}
    return build_method(cfg).double().train()


def crops(n_small: int, seed: int, n: int = 4) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return ([torch.randn(n, 3, 16, 16, generator=g, dtype=torch.float64) for _ in range(2)]
            + [torch.randn(n, 3, 8, 8, generator=g, dtype=torch.float64) for _ in range(n_small)])


def twin(g: torch.Generator) -> torch.Generator:
    return torch.Generator().set_state(g.get_state())


def replay(g: torch.Generator, prob: float, views: list) -> tuple[float, float, list]:
    """The documented draws: lam, r, then a centre (row, column) per pair in region mode."""
    lam = sample_beta(1.0, g)
    r = float(torch.rand((), generator=g, dtype=torch.float64))
    centres = [] if r < prob else [
        (int(torch.randint(v.shape[-2], (), generator=g)),
         int(torch.randint(v.shape[-1], (), generator=g))) for v in views[::2]]
    return lam, r, centres


# ---- the reference, written from the description ----------------------------------------------

def ref_box(h, w, lam, cy, cx):
    cut = math.sqrt(1.0 - lam)
    ch, cw = int(h * cut), int(w * cut)
    clip = lambda v, hi: min(max(v, 0), hi)  # noqa: E731
    return clip(cy - ch // 2, h), clip(cy + ch // 2, h), clip(cx - cw // 2, w), clip(cx + cw // 2, w)


def ref_sinkhorn(out):
    q = torch.exp(out / EPS).t()  # (K, B)
    k, b = q.shape
    q = q / q.sum()
    for _ in range(ITERS):
        q = q / q.sum(dim=1, keepdim=True) / k
        q = q / q.sum(dim=0, keepdim=True) / b
    return (q * b).t()


def ref_swav(model, outs, embs, queue, reverse):
    """One official swav_loss call; `queue` (list per assignment slot, or None) is updated."""
    n, bs, loss = len(outs), outs[0].shape[0], 0.0
    for i, crop in enumerate((0, 1)):
        out, emb = outs[crop].detach(), embs[crop].detach()
        if reverse and crop == 0:
            out, emb = out.flip(0), emb.flip(0)
        if queue is not None:
            if (queue[i][-1] != 0).any():
                out = torch.cat([queue[i] @ model.prototypes.weight.detach().t(), out])
            queue[i] = torch.cat([emb, queue[i][:-bs]])
        q = ref_sinkhorn(out)[-bs:]
        sub = 0.0
        for v in range(n):
            if v != crop:
                sub = sub - (q * F.log_softmax(outs[v] / T, dim=1)).sum(dim=1).mean()
        loss = loss + sub / (n - 1)
    return loss / 2


def ref_loss(model, views, lam, r, centres, prob, queue=None):
    inputs = []
    for k in range(0, len(views), 2):
        x = views[k]
        rev = x.flip(0)
        if r < prob:
            m = lam * x + (1 - lam) * rev
        else:
            h, w = x.shape[-2:]
            y1, y2, x1, x2 = ref_box(h, w, lam, *centres[k // 2])
            m = x.clone()
            m[:, :, y1:y2, x1:x2] = rev[:, :, y1:y2, x1:x2]
            lam = 1 - (y2 - y1) * (x2 - x1) / (h * w)
        inputs += [views[k], views[k + 1], m]
    feats, start = [], 0
    sizes = [x.shape[-1] for x in inputs]
    for end in range(1, len(inputs) + 1):  # backbone per run of equal sizes, head over all
        if end == len(inputs) or sizes[end] != sizes[start]:
            feats.append(model.backbone(torch.cat(inputs[start:end])))
            start = end
    z = F.normalize(model.projector(torch.cat(feats)), dim=1)
    out = model.prototypes(z)
    bs = views[0].shape[0]
    emb_all = [z[bs * j:bs * (j + 1)] for j in range(len(inputs))]
    out_all = [out[bs * j:bs * (j + 1)] for j in range(len(inputs))]
    clean = [j for t in range(0, len(inputs), 3) for j in (t, t + 1)]
    mixed = [j for t in range(0, len(inputs), 3) for j in (t + 2, t + 1)]
    oc, ec = [out_all[j] for j in clean], [emb_all[j] for j in clean]
    om, em = [out_all[j] for j in mixed], [emb_all[j] for j in mixed]
    loss = (ref_swav(model, oc, ec, queue, False) + lam * ref_swav(model, om, em, queue, False)
            + (1 - lam) * ref_swav(model, om, em, queue, True))
    return loss, lam


# ---- tests --------------------------------------------------------------------------------------

def grads(model):
    return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("prob", [0.0, 1.0])
def test_loss_and_grads_equal_reference_multicrop(prob):
    """2 x 16 px + 2 x 8 px crops: two pairs, the second box sized by the first's corrected lam."""
    model = make(prob)
    views = crops(2, seed=1)
    g = torch.Generator().manual_seed(14)
    lam, r, centres = replay(twin(g), prob, views)
    if prob == 0.0:  # this draw is one where the chained lam changes the second pair's box
        y1, y2, x1, x2 = ref_box(16, 16, lam, *centres[0])
        lam1 = 1 - (y2 - y1) * (x2 - x1) / 256
        assert ref_box(8, 8, lam1, *centres[1]) != ref_box(8, 8, lam, *centres[1])
    ref, lam_ref = ref_loss(model, views, lam, r, centres, prob)
    ref.backward()
    g_ref = grads(model)
    model.zero_grad()
    out = model(views, g)
    out["loss"].backward()
    assert abs(out["loss"].item() - ref.item()) < 1e-10
    assert out["lam"].item() == pytest.approx(lam_ref, abs=1e-6)
    if prob == 0.0:
        assert lam_ref != lam  # the loss's lam is the last pair's corrected one
    g_ours = grads(model)
    assert g_ours.keys() == g_ref.keys()
    for k in g_ref:
        torch.testing.assert_close(g_ours[k], g_ref[k], rtol=0, atol=1e-10)


def test_queue_takes_mixed_embeddings_and_matches_reference():
    """Queue of 16 rows, batch 4: three pushes per step, so it fills inside step 2 (between two
    swav_loss calls) and is used from then on; losses and queue contents equal the reference's."""
    model = make(0.5, queue_length=16, batch_size=4)
    assert model.queue.shape == (2, 16, 16)
    queue = [torch.zeros(16, 16, dtype=torch.float64) for _ in range(2)]
    for step in range(3):
        views = crops(0, seed=10 + step)
        g = torch.Generator().manual_seed(20 + step)
        lam, r, centres = replay(twin(g), 0.5, views)
        with torch.no_grad():
            ref, _ = ref_loss(model, views, lam, r, centres, 0.5, queue)
            out = model(views, g)
        assert abs(out["loss"].item() - ref.item()) < 1e-10, step
        torch.testing.assert_close(model.queue, torch.stack(queue), rtol=0, atol=1e-12)
    # after one step slot 0 holds, newest first: flip(mixture), mixture, x0; slot 1: x1 three times
    model = make(0.5, queue_length=16, batch_size=4)
    with torch.no_grad():
        model(crops(0, seed=10), torch.Generator().manual_seed(20))
    q0, q1 = model.queue[0], model.queue[1]
    torch.testing.assert_close(q0[:4], q0[4:8].flip(0), rtol=0, atol=0)
    assert (q0[4:8] - q0[8:12]).abs().max() > 1e-3  # the mixture's embeddings, then x0's
    torch.testing.assert_close(q1[:4], q1[4:8], rtol=0, atol=0)
    torch.testing.assert_close(q1[4:8], q1[8:12], rtol=0, atol=0)
    assert q0[12:].abs().max() == 0 and q0[8:12].abs().min() > 0


def test_reverse_flips_only_the_mixture_codes():
    model = make(0.5)
    g = torch.Generator().manual_seed(4)
    scores = [torch.randn(6, 10, generator=g, dtype=torch.float64).requires_grad_()
              for _ in range(4)]
    embs = [F.normalize(torch.randn(6, 16, generator=g, dtype=torch.float64), dim=1)
            for _ in range(4)]
    ce = lambda s, q: -(q * F.log_softmax(s / T, dim=1)).sum(dim=1).mean()  # noqa: E731
    q0, q1 = ref_sinkhorn(scores[0].detach()), ref_sinkhorn(scores[1].detach())

    def expected(c0, c1):
        return (sum(ce(scores[v], c0) for v in (1, 2, 3)) / 3
                + sum(ce(scores[v], c1) for v in (0, 2, 3)) / 3) / 2

    ours = model.swapped(scores, embs, reverse=True).item()
    assert abs(ours - expected(ref_sinkhorn(scores[0].detach().flip(0)), q1).item()) < 1e-10
    assert abs(model.swapped(scores, embs).item() - expected(q0, q1).item()) < 1e-10
    # the alternatives differ: flipping crop 1's codes too, or flipping the predictions
    assert abs(ours - expected(q0.flip(0), q1.flip(0)).item()) > 1e-3
    assert abs(ours - model.swapped([s.flip(0) for s in scores], embs).item()) > 1e-3


@pytest.mark.parametrize("total, world, batch, rows", [
    (3840, 4, 64, 960),   # unmix_swav_200ep_bs256_pretrain.sh: 4 GPUs x 64
    (2560, 64, 40, 40),   # unmix_swav_RN50w4_400ep_pretrain.sh
    (120, 1, 128, 0),     # the CIFAR scripts: 120 rounds down to no queue at batch 128
    (20, 2, 4, 8),        # 20 -> 16 (a multiple of 2 x 4), 8 per process
    (20, 2, None, 10),    # batch unknown: no rounding
])
def test_queue_rows_per_world_size(total, world, batch, rows):
    assert queue_rows(total, world, batch) == rows
    model = build_method({"type": "swav", "arch": "resnet18", "stem": "cifar", "hidden_dim": 8,
                          "dim": 4, "n_prototypes": 3, "queue_length": total, "world_size": world,
                          "batch_size": batch})
    assert model.queue.shape == (2, rows, 4)


def test_queue_of_another_layout_restarts_empty():
    """Resuming with another process count: the saved queue has another shape and is dropped."""
    small = make(0.5, queue_length=16, batch_size=4, world_size=2)
    big = make(0.5, queue_length=16, batch_size=4)
    big.queue.fill_(1.0)
    small.load_state_dict(big.state_dict())
    assert small.queue.shape == (2, 8, 16) and small.queue.abs().sum() == 0


def _rank_run(work_dir: Path, rank: int, world: int, messages: list[str]) -> SimpleNamespace:
    """What save/restore_process_state read from a Run, for process `rank` of `world`."""
    model = make(0.5, queue_length=16, batch_size=4, world_size=world)
    log = SimpleNamespace(info=messages.append)
    return SimpleNamespace(model=model, work_dir=work_dir, rank=rank, world=world, log=log)


def test_resume_restores_each_process_its_own_queue(tmp_path):
    """Official main_swav_unmix.py saves and reloads queue<rank>.pth per process: each rank of a
    2-process resume gets back its own queue, not rank 0's copy inside latest.pth."""
    msgs: list[str] = []
    saved = []
    for rank in range(2):
        run = _rank_run(tmp_path, rank, 2, msgs)
        run.model.queue.copy_(torch.randn(run.model.queue.shape,
                                          generator=torch.Generator().manual_seed(rank)))
        saved.append(run.model.queue.clone())
        save_process_state(run, epoch=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["queue0.pth", "queue1.pth"]
    for rank in range(2):
        run = _rank_run(tmp_path, rank, 2, msgs)
        run.model.queue.copy_(saved[0])  # what latest.pth's state dict would have put there
        restore_process_state(run, epoch=3)
        torch.testing.assert_close(run.model.queue, saved[rank], rtol=0, atol=0)
    assert (saved[0] - saved[1]).abs().max() > 0.1


@pytest.mark.parametrize("world, epoch, rank, why", [
    (3, 3, 0, "saved by a run with 2 processes, this one has 3"),   # another process count
    (2, 4, 1, "saved at epoch 3"),                                   # a file older than latest.pth
    (4, 3, 3, "not found"),                                          # a rank that had no file
])
def test_resume_without_a_matching_queue_file_starts_it_empty(tmp_path, world, epoch, rank, why):
    for r in range(2):
        run = _rank_run(tmp_path, r, 2, [])
        run.model.queue.fill_(1.0)
        save_process_state(run, epoch=3)
    msgs: list[str] = []
    run = _rank_run(tmp_path, rank, world, msgs)
    run.model.queue.fill_(2.0)  # rank 0's queue from latest.pth must not survive either
    restore_process_state(run, epoch=epoch)
    assert run.model.queue.abs().sum() == 0
    assert len(msgs) == 1 and "\n" not in msgs[0] and why in msgs[0] and "empty" in msgs[0], msgs


def _ddp_worker(rank: int, path: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{path}", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        model = build_method({"type": "swav", "arch": "resnet18", "stem": "cifar",
                              "hidden_dim": 8, "dim": 4, "n_prototypes": 3, "queue_length": 16,
                              "queue_start_epoch": 0, "batch_size": 2,
                              "unmix": {"enabled": True}})
        alone = copy.deepcopy(model)  # the same process without DDP: its queue is the truth
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        g = torch.Generator().manual_seed(rank)
        for _ in range(2):  # from the second forward on DDP would broadcast rank 0's buffers
            views = [torch.randn(2, 3, 8, 8, generator=g) for _ in range(2)]
            ddp(views, torch.Generator().manual_seed(rank))["loss"].backward()
            with torch.no_grad():
                alone(views, torch.Generator().manual_seed(rank))
        torch.save({"ddp": model.queue, "alone": alone.queue}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def _run_workers(tmp: str, timeout: float = 240.0) -> None:
    """Two fresh interpreters (no fork: a fork after OpenMP started deadlocked under load, and a
    hung forked child then blocked the interpreter's exit for the rest of CI), killed at timeout."""
    here = str(Path(__file__).resolve().parent)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from test_swav_official import _ddp_worker;"
            " _ddp_worker(int(sys.argv[2]), sys.argv[3], sys.argv[4])")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(here).parent),
                                                          os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-c", code, here, str(r), os.path.join(tmp, "init"),
                               os.path.join(tmp, "q")], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for r in range(2)]
    try:
        outs = [p.communicate(timeout=timeout)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-3000:]


def test_each_process_keeps_its_own_queue():
    """Two gloo processes with different crops: under DDP each queue (16 // 2 rows) is the one the
    process fills alone, not rank 0's broadcast."""
    with tempfile.TemporaryDirectory() as tmp:
        _run_workers(tmp)
        q = [torch.load(os.path.join(tmp, f"q.{r}")) for r in range(2)]
    for r in range(2):
        assert q[r]["ddp"].shape == (2, 8, 4) and q[r]["ddp"][:, -1].abs().sum() > 0
        torch.testing.assert_close(q[r]["ddp"], q[r]["alone"], rtol=0, atol=1e-6)
    assert (q[0]["ddp"] - q[1]["ddp"]).abs().max() > 1e-3


def test_swav_configs_resolve_to_accepted_options():
    accepted = set(inspect.signature(SwAV.__init__).parameters) - {"self"}
    paths = sorted((Path(__file__).resolve().parents[1] / "configs" / "pretrain").glob("swav_*.py"))
    assert len(paths) >= 10
    for path in paths:
        model = dict(load_config(path).model)
        assert model.pop("type") == "swav" and set(model) <= accepted, path.name
