"""Losses against naive loops / closed forms, SplitBatchNorm against per-group BN."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from pretrain import distributed
from pretrain.distributed import SplitBatchNorm
from pretrain.losses import byol_loss, info_nce, nt_xent, sinkhorn, swav_loss


def test_info_nce_matches_loop():
    torch.manual_seed(0)
    q, k, queue = (F.normalize(torch.randn(*s), dim=1) for s in ((4, 8), (4, 8), (6, 8)))
    t = 0.2
    ref = 0.0
    for i in range(4):
        pos = math.exp(float(q[i] @ k[i]) / t)
        neg = sum(math.exp(float(q[i] @ queue[j]) / t) for j in range(6))
        ref += -math.log(pos / (pos + neg))
    assert info_nce(q, k, queue, t).item() == pytest.approx(ref / 4, rel=1e-5)


def test_nt_xent_matches_loop_over_pairs():
    torch.manual_seed(0)
    z1, z2 = torch.randn(4, 8), torch.randn(4, 8)
    t = 0.5
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n2 = z.shape[0]

    def ell(i: int, j: int) -> float:  # SimCLR eq. 1
        num = math.exp(float(z[i] @ z[j]) / t)
        den = sum(math.exp(float(z[i] @ z[m]) / t) for m in range(n2) if m != i)
        return -math.log(num / den)

    ref = sum(ell(k, k + 4) + ell(k + 4, k) for k in range(4)) / n2
    assert nt_xent(z1, z2, t).item() == pytest.approx(ref, rel=1e-5)
    # symmetric in its arguments, and consistent with a joint permutation of the pairs
    assert nt_xent(z2, z1, t).item() == pytest.approx(ref, rel=1e-5)
    assert nt_xent(z1.flip(0), z2, t).item() == pytest.approx(nt_xent(z1, z2.flip(0), t).item(),
                                                              rel=1e-5)


def test_byol_loss_is_two_minus_two_cos():
    p, z = torch.randn(5, 7, requires_grad=True), torch.randn(5, 7, requires_grad=True)
    pd, zd = p.detach(), z.detach()
    cos = [float(pd[i] @ zd[i] / (pd[i].norm() * zd[i].norm())) for i in range(5)]
    assert byol_loss(p, z).item() == pytest.approx(sum(2 - 2 * c for c in cos) / 5, rel=1e-5)
    pn, zn = F.normalize(p, dim=1), F.normalize(z, dim=1)
    assert byol_loss(p, z).item() == pytest.approx(((pn - zn) ** 2).sum(1).mean().item(), rel=1e-5)
    byol_loss(p, z).backward()
    assert p.grad is not None and z.grad is None  # the target gets no gradient


def test_swav_loss_matches_loop():
    torch.manual_seed(0)
    s = torch.randn(3, 5)
    q = torch.softmax(torch.randn(3, 5), dim=1)
    t = 0.1
    ref = 0.0
    for i in range(3):
        den = sum(math.exp(float(s[i, k]) / t) for k in range(5))
        ref -= sum(float(q[i, k]) * (float(s[i, k]) / t - math.log(den)) for k in range(5))
    assert swav_loss(s, q, t).item() == pytest.approx(ref / 3, rel=1e-5)


def test_sinkhorn_marginals():
    torch.manual_seed(0)
    b, k = 12, 4
    scores = F.normalize(torch.randn(b, 8), dim=1) @ F.normalize(torch.randn(k, 8), dim=1).t()
    q = sinkhorn(scores, eps=0.05, n_iters=3)
    assert q.shape == (b, k) and torch.isfinite(q).all() and (q >= 0).all()
    # every sample's code is a distribution
    torch.testing.assert_close(q.sum(1), torch.ones(b))
    # prototypes get (nearly) equal mass B/K, converging with more iterations
    err3 = (q.sum(0) - b / k).abs().max()
    q100 = sinkhorn(scores, eps=0.05, n_iters=200)
    torch.testing.assert_close(q100.sum(0), torch.full((k,), b / k), atol=1e-3, rtol=1e-3)
    assert (q100.sum(0) - b / k).abs().max() <= err3 + 1e-6
    # same ordering of preferences as the scores when eps is small and the transport is balanced
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    torch.testing.assert_close(sinkhorn(s, eps=0.05, n_iters=3), torch.eye(2), atol=1e-6, rtol=0)


def test_distributed_helpers_are_identities_on_one_process():
    x = torch.randn(4, 3, requires_grad=True)
    assert distributed.world_size() == 1 and distributed.rank() == 0
    assert distributed.concat_all_gather(x) is x
    assert distributed.gather_with_grad(x) is x
    y, idx = distributed.batch_shuffle(x)
    assert y is x and idx is None
    assert distributed.batch_unshuffle(y, idx) is y
    g = torch.Generator().manual_seed(0)
    y, idx = distributed.batch_shuffle(x, g, local=True)
    torch.testing.assert_close(distributed.batch_unshuffle(y, idx), x.detach())


def test_split_batchnorm_equals_bn_per_group():
    torch.manual_seed(0)
    sbn = SplitBatchNorm(3, num_splits=2)
    with torch.no_grad():
        sbn.weight.uniform_(0.5, 1.5)
        sbn.bias.uniform_(-1, 1)
    ref = nn.BatchNorm2d(3)
    ref.load_state_dict(sbn.state_dict())
    ref2 = nn.BatchNorm2d(3)
    ref2.load_state_dict(sbn.state_dict())
    x = torch.randn(8, 3, 4, 4)
    out = sbn(x)
    # group g = samples g, g+2, g+4, ...
    torch.testing.assert_close(out[0::2], ref(x[0::2]))
    torch.testing.assert_close(out[1::2], ref2(x[1::2]))
    torch.testing.assert_close(sbn.running_mean, (ref.running_mean + ref2.running_mean) / 2)
    torch.testing.assert_close(sbn.running_var, (ref.running_var + ref2.running_var) / 2)
    assert set(sbn.state_dict()) == set(nn.BatchNorm2d(3).state_dict())
    sbn.eval()
    ref.eval()
    ref.load_state_dict(sbn.state_dict())
    torch.testing.assert_close(sbn(x), ref(x))
    with pytest.raises(ValueError, match="not divisible"):
        sbn.train()(torch.randn(3, 3, 4, 4))


def _two_process_worker(rank: int, init: str, z1: torch.Tensor, z2: torch.Tensor,
                        scores: torch.Tensor, out: dict) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    try:
        n = z1.shape[0] // 2
        a = z1[rank * n:(rank + 1) * n].clone().requires_grad_(True)
        b = z2[rank * n:(rank + 1) * n].clone().requires_grad_(True)
        loss = nt_xent(a, b, 0.5)
        # the mean of the per-process losses is the global loss: backprop the local share
        (loss / 2).backward()
        codes = sinkhorn(scores[rank * n:(rank + 1) * n], eps=0.05, n_iters=3)
        x = torch.arange(float(n)).view(n, 1) + 100 * rank
        y, idx = distributed.batch_shuffle(x, torch.Generator().manual_seed(1))
        back = distributed.batch_unshuffle(y, idx)
        out[rank] = (loss.detach(), a.grad, b.grad, codes, torch.equal(back, x))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    """NT-Xent with gathered negatives, its gradients and Sinkhorn over 2 gloo processes equal the
    single-process computation on the concatenated batch."""
    import torch.multiprocessing as mp

    torch.manual_seed(0)
    z1, z2 = torch.randn(6, 5), torch.randn(6, 5)
    scores = F.normalize(torch.randn(6, 5), dim=1) @ F.normalize(torch.randn(3, 5), dim=1).t()
    manager = mp.Manager()
    out = manager.dict()
    mp.spawn(_two_process_worker, args=(f"file://{tmp_path}/store", z1, z2, scores, out),
             nprocs=2, join=True)
    a, b = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
    ref = nt_xent(a, b, 0.5)
    ref.backward()
    got = (out[0][0] + out[1][0]) / 2
    assert got.item() == pytest.approx(ref.item(), rel=1e-5)
    torch.testing.assert_close(torch.cat([out[0][1], out[1][1]]), a.grad)
    torch.testing.assert_close(torch.cat([out[0][2], out[1][2]]), b.grad)
    torch.testing.assert_close(torch.cat([out[0][3], out[1][3]]), sinkhorn(scores, 0.05, 3))
    assert out[0][4] and out[1][4]


def test_nt_xent_under_mixed_precision_matches_fp32():
    """Regression: under autocast the logits are bf16 and masking the self-similarity failed."""
    from pretrain.losses import nt_xent

    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(8, 16, generator=g), torch.randn(8, 16, generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = nt_xent(z1 @ torch.eye(16), z2 @ torch.eye(16), 0.5)  # matmul -> bf16 inputs
    assert torch.isfinite(low)
    torch.testing.assert_close(low.float(), nt_xent(z1, z2, 0.5), rtol=0.05, atol=0.05)
