"""The four methods: forward/backward with and without Un-Mix, queue content, determinism, hooks,
and MoCo's single-encoding Un-Mix loss against an explicit reference (reversal re-encoded)."""
from __future__ import annotations

import copy

import pytest
import torch
from torch.nn import functional as F

from pretrain.losses import info_nce
from pretrain.methods import METHODS, build_method
from pretrain.mixing import mix, sample_mix

ROLES = {"backbone", "projector", "predictor", "momentum_backbone", "momentum_projector",
         "prototypes", "queue", "queue_ptr"}
SMALL = {  # tiny heads / queues so the tests stay fast
    "moco": {"K": 16, "split_bn": 2, "symmetric": True},
    "simclr": {"hidden_dim": 32},
    "byol": {"hidden_dim": 32, "dim": 16},
    "swav": {"hidden_dim": 32, "n_prototypes": 10, "queue_length": 8, "queue_start_epoch": 0},
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def views(n_small: int = 0, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return ([torch.randn(4, 3, 32, 32, generator=g) for _ in range(2)]
            + [torch.randn(4, 3, 16, 16, generator=g) for _ in range(n_small)])


def make(name: str, unmix: bool, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = {"type": name, "arch": "resnet18", "stem": "cifar",
           "unmix": {"enabled": unmix, "beta": 1.0, "prob": 0.5}, **SMALL[name], **kw}
    return build_method(cfg).train()


def step(model, xs, seed=0, progress=0.5):
    if hasattr(model, "before_step"):
        model.before_step(progress)
    out = model(xs, torch.Generator().manual_seed(seed))
    out["loss"].backward()
    if hasattr(model, "after_backward"):
        model.after_backward(progress)
    return out


@pytest.mark.parametrize("unmix", [False, True])
@pytest.mark.parametrize("name", sorted(METHODS))
def test_forward_backward(name, unmix):
    model = make(name, unmix)
    out = step(model, views(2 if name == "swav" else 0))
    assert torch.isfinite(out["loss"]) and out["loss"].ndim == 0
    assert ("loss_mix" in out) == unmix and ("lam" in out) == unmix
    for key, value in out.items():
        assert key == "loss" or not value.requires_grad
    grad = model.backbone.conv1.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    # state-dict keys carry only the fixed role names
    assert {k.split(".")[0] for k in model.state_dict()} <= ROLES
    if hasattr(model, "momentum_backbone"):
        assert all(p.grad is None for p in model.momentum_backbone.parameters())


@pytest.mark.parametrize("name", sorted(METHODS))
def test_same_seed_same_loss(name):
    model = make(name, True)
    xs = views(2 if name == "swav" else 0)
    twin = copy.deepcopy(model)
    a = step(model, xs, seed=5)
    b = step(twin, xs, seed=5)
    assert a["loss"].item() == b["loss"].item()
    assert a["lam"].item() == b["lam"].item()


@pytest.mark.parametrize("symmetric", [False, True])
def test_moco_enqueues_only_clean_keys(symmetric):
    model = make("moco", True, symmetric=symmetric, split_bn=0)
    x1, x2 = views()
    with torch.no_grad():
        k1, k2 = (F.normalize(model.momentum_projector(model.momentum_backbone(x)), dim=1)
                  for x in (x1, x2))
    step(model, [x1, x2])
    expect = torch.cat([k1, k2]) if symmetric else k2
    n = expect.shape[0]
    torch.testing.assert_close(model.queue[:n], expect, atol=1e-5, rtol=1e-4)
    assert int(model.queue_ptr) == n
    # a second step wraps the pointer around the queue (K=16)
    step(model, [x1, x2])
    assert int(model.queue_ptr) == (2 * n) % 16


@pytest.mark.parametrize("symmetric", [False, True])
def test_moco_unmix_loss_equals_explicit_reference(symmetric):
    """Ours encodes the mixture once and reverses its embeddings; the reference encodes the
    mixture and the reversed mixture separately, for each key set (as the official code encodes
    the mixture once per symmetric term). With BN in train mode both give the same loss."""
    model = make("moco", True, symmetric=symmetric, split_bn=0)
    ref = copy.deepcopy(model)
    x1, x2 = views()
    queue = ref.queue.clone()
    seed = 11
    out = model([x1, x2], torch.Generator().manual_seed(seed))
    params = sample_mix(x1.shape, 1.0, 0.5, torch.Generator().manual_seed(seed))
    q = lambda x: F.normalize(ref.projector(ref.backbone(x)), dim=1)  # noqa: E731
    with torch.no_grad():
        k = lambda x: F.normalize(ref.momentum_projector(ref.momentum_backbone(x)), dim=1)  # noqa
        k1, k2 = k(x1), k(x2)
    lo = lambda a, b: info_nce(a, b, queue, ref.T)  # noqa: E731
    x_mix = mix(x1, params)
    q_m, q_mrev = q(x_mix), q(x_mix.flip(0))  # the reversed mixture encoded on its own
    loss = lo(q(x1), k2) + params.lam * lo(q_m, k2) + (1 - params.lam) * lo(q_mrev, k2)
    if symmetric:
        loss = loss + lo(q(x2), k1) + params.lam * lo(q_m, k1) + (1 - params.lam) * lo(q_mrev, k1)
    assert out["loss"].item() == pytest.approx(loss.item(), rel=1e-4)
    assert out["lam"].item() == pytest.approx(params.lam)


def test_byol_hooks_and_branches():
    model = make("byol", True)
    assert model.momentum(0.0) == pytest.approx(0.996) and model.momentum(1.0) == pytest.approx(1.0)
    xs = views()
    before = model.momentum_backbone.conv1.weight.clone()
    step(model, xs)
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    model.after_step(0.0)
    online = model.backbone.conv1.weight
    torch.testing.assert_close(model.momentum_backbone.conv1.weight,
                               0.996 * before + 0.004 * online.detach())
    both = make("byol", True, mix_branch="both")
    a = step(make("byol", True), xs, seed=3)
    b = step(both, xs, seed=3)
    assert a["loss_clean"].item() == pytest.approx(b["loss_clean"].item(), rel=1e-5)
    assert b["loss_mix"].item() > a["loss_mix"].item()  # 'both' adds the target-side terms
    with pytest.raises(ValueError, match="mix_branch"):
        make("byol", True, mix_branch="target")


def test_swav_hooks_and_queue():
    model = make("swav", True, epochs=10, freeze_prototypes_epochs=1)
    with torch.no_grad():
        model.prototypes.weight.mul_(3.0)
    xs = views(2)
    step(model, xs, progress=0.05)  # inside the first epoch: prototypes frozen
    torch.testing.assert_close(model.prototypes.weight.norm(dim=1), torch.ones(10))
    assert model.prototypes.weight.grad is None
    assert model.queue.shape == (2, 8, 128)
    assert model.queue[:, :4].abs().sum() > 0  # filled with this batch's (clean and mixed) embeddings
    model.zero_grad()
    step(model, xs, progress=0.5)
    assert model.prototypes.weight.grad is not None
    assert model.queue[:, -1].abs().sum() > 0  # full: used for the codes from now on


def test_build_method_errors():
    with pytest.raises(ValueError, match="method type"):
        build_method({"type": "dino"})
    with pytest.raises(ValueError, match="bogus"):
        build_method({"type": "moco", "bogus": 1})
    with pytest.raises(ValueError, match="version"):
        build_method({"type": "moco", "version": "v3", "arch": "resnet18", "stem": "cifar"})
