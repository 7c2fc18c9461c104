"""MoCo + Un-Mix against a naive float64 reference of the official CIFAR objective (szq0214/Un-Mix,
unmix_c10.py, `ModelMoCo`): the momentum update `k = k * m + q * (1 - m)`, per symmetric term one
query encoding of the clean view AND one of the mixture (4 query passes, 2 key passes), the
reversed mixture's embeddings as the flipped mixture embeddings, logits by einsum against a
(dim, K) queue, `loss_12 + loss_21 + lam * (loss_m11 + loss_m21) + (1 - lam) * (loss_m12 +
loss_m22)`, the clean keys [k1, k2] enqueued, and its SplitBatchNorm (the batch viewed as
(N/S, S*C, H, W), weights and running statistics repeated S times, the mean over groups written
back). Ours encodes the mixture once per step; loss, every gradient, the queue and the key
encoder must still be the official ones, to float64 rounding."""
from __future__ import annotations

import copy
import types

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from pretrain.distributed import SplitBatchNorm
from pretrain.methods.moco import MoCo
from pretrain.mixing import mix, sample_mix

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py

N, K, LAYERS = 8, 32, ("backbone", "projector")


def official_split_bn(self: SplitBatchNorm, x: torch.Tensor) -> torch.Tensor:
    """The official SplitBatchNorm.forward in training, as read there (a view back, fixed
    momentum, no batch counter)."""
    n, c, h, w = x.shape
    s = self.num_splits
    mean_s, var_s = self.running_mean.repeat(s), self.running_var.repeat(s)
    out = F.batch_norm(x.view(-1, c * s, h, w), mean_s, var_s, self.weight.repeat(s),
                       self.bias.repeat(s), True, self.momentum, self.eps).view(n, c, h, w)
    self.running_mean.data.copy_(mean_s.view(s, c).mean(dim=0))
    self.running_var.data.copy_(var_s.view(s, c).mean(dim=0))
    return out


def make(symmetric: bool, split_bn: int, prob: float, bn_stats: str = "once") -> MoCo:
    torch.manual_seed(0)
    return MoCo(arch="resnet18", stem="cifar", version="v1", dim=16, K=K, m=0.9, T=0.1,
                symmetric=symmetric, split_bn=split_bn, bn_stats=bn_stats,
                unmix={"enabled": True, "beta": 1.0, "prob": prob}).double().train()


def running_stats(model: MoCo) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.backbone.state_dict().items() if "running_" in k}


def official_loss(ref: MoCo, x1: torch.Tensor, x2: torch.Tensor, g: torch.Generator
                  ) -> torch.Tensor:
    """One official step on `ref` (a copy of our model): the same draws as ours, in our order
    (key permutation of view 2, of view 1, then the mixture)."""
    for mod in ref.modules():
        if isinstance(mod, SplitBatchNorm):
            mod.forward = types.MethodType(official_split_bn, mod)
    with torch.no_grad():
        for q_enc, k_enc in ((ref.backbone, ref.momentum_backbone),
                             (ref.projector, ref.momentum_projector)):
            for pq, pk in zip(q_enc.parameters(), k_enc.parameters()):
                pk.data = pk.data * ref.m + pq.data * (1.0 - ref.m)
    queue = ref.queue.t().clone()  # (dim, K), the official layout
    # ours shuffles keys only for SplitBatchNorm (plain BN on one process is order-invariant)
    perms = [torch.randperm(N, generator=g) if ref.split_bn else torch.arange(N)
             for _ in range(2 if ref.symmetric else 1)]
    p = sample_mix(x1.shape, 1.0, ref.unmix.prob, g)
    x_mix = mix(x1, p)
    enc_q = lambda x: F.normalize(ref.projector(ref.backbone(x)), dim=1)  # noqa: E731

    def enc_k(x: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            k = F.normalize(ref.momentum_projector(ref.momentum_backbone(x[perm])), dim=1)
            return k[torch.argsort(perm)]

    def ce(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        logits = torch.cat([torch.einsum("nc,nc->n", q, k).unsqueeze(-1),
                            torch.einsum("nc,ck->nk", q, queue)], dim=1) / ref.T
        return nn.CrossEntropyLoss()(logits, torch.zeros(N, dtype=torch.long))

    def contrastive(im_q: torch.Tensor, im_k: torch.Tensor, perm: torch.Tensor):
        q, q_m = enc_q(im_q), enc_q(x_mix)  # the mixture encoded again in every call
        k = enc_k(im_k, perm)
        return ce(q, k), k, ce(q_m, k), ce(q_m.flip(0), k)

    loss_12, k2, m11, m12 = contrastive(x1, x2, perms[0])
    loss = loss_12 + p.lam * m11 + (1 - p.lam) * m12
    keys = k2
    if ref.symmetric:
        loss_21, k1, m21, m22 = contrastive(x2, x1, perms[1])
        loss = loss + loss_21 + p.lam * m21 + (1 - p.lam) * m22
        keys = torch.cat([k1, k2], dim=0)
    ref.queue[:keys.shape[0]] = keys  # pointer 0: the first rows, as queue[:, 0:n] = keys.t()
    return loss


def close(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    """Equal to float64 rounding: the largest difference within 1e-13 of the tensor's scale (a
    different quantity, e.g. a missing term or another BN grouping, is off by ~1e-3)."""
    err, scale = (a - b).abs().max().item(), b.abs().max().item()
    assert err <= 1e-13 * scale, f"{what}: max difference {err:.3g} at scale {scale:.3g}"


@pytest.mark.parametrize("symmetric,split_bn,prob", [
    (True, 4, 0.0), (True, 4, 1.0), (False, 4, 1.0), (True, 0, 0.0)],
    ids=["sym-split-region", "sym-split-global", "asym-split-global", "sym-bn-region"])
def test_moco_unmix_step_equals_official(symmetric, split_bn, prob):
    model = make(symmetric, split_bn, prob)
    ref = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(3)
    x1, x2 = (torch.randn(N, 3, 8, 8, generator=gen, dtype=torch.float64) for _ in range(2))
    out = model([x1, x2], torch.Generator().manual_seed(7))
    loss_ref = official_loss(ref, x1, x2, torch.Generator().manual_seed(7))
    out["loss"].backward()
    loss_ref.backward()
    assert out["loss"].item() == pytest.approx(loss_ref.item(), rel=1e-14)
    for layer in LAYERS:
        for (name, a), b in zip(getattr(model, layer).named_parameters(),
                                getattr(ref, layer).parameters()):
            close(a.grad, b.grad, f"grad {layer}.{name}")
    for a, b in zip(model.momentum_backbone.state_dict().items(),
                    ref.momentum_backbone.state_dict().values()):
        if a[0].endswith("num_batches_tracked"):
            continue  # the official SplitBatchNorm never counts
        close(a[1], b, f"momentum_backbone.{a[0]}")
    close(model.queue, ref.queue, "queue")


@pytest.mark.parametrize("symmetric,split_bn", [(True, 4), (True, 0), (False, 4)],
                         ids=["sym-split", "sym-bn", "asym-split"])
def test_official_bn_stats_option_gives_the_official_running_statistics(symmetric, split_bn):
    """bn_stats='official': the query encoder's BN running statistics after a step are the
    official ones (x1, mix, x2, mix), loss and gradients unchanged; the default 'once' differs
    exactly where the module says (symmetric steps), by the mixture's second update."""
    gen = torch.Generator().manual_seed(3)
    x1, x2 = (torch.randn(N, 3, 8, 8, generator=gen, dtype=torch.float64) for _ in range(2))
    ref = make(symmetric, split_bn, 0.0)
    official_loss(ref, x1, x2, torch.Generator().manual_seed(7)).backward()
    runs = {}
    for mode in ("official", "once"):
        model = make(symmetric, split_bn, 0.0, bn_stats=mode)
        out = model([x1, x2], torch.Generator().manual_seed(7))
        out["loss"].backward()
        runs[mode] = model
        for (name, a), b in zip(model.backbone.named_parameters(), ref.backbone.parameters()):
            close(a.grad, b.grad, f"{mode}: grad backbone.{name}")
    for name, want in running_stats(ref).items():
        close(running_stats(runs["official"])[name], want, f"official: {name}")
    gaps = [(running_stats(runs["once"])[k] - v).abs().max().item() for k, v in running_stats(ref).items()]
    assert (max(gaps) > 1e-6) is symmetric  # asymmetric: x1, mix in both
