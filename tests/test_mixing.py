"""Un-Mix final-form mixtures against naive per-sample references."""
from __future__ import annotations

import pytest
import torch

from pretrain.backbones import build_resnet
from pretrain.distributed import SplitBatchNorm
from pretrain.mixing import (MixParams, UnMixConfig, cutmix_box, kept_ratio, mix, sample_beta,
                             sample_mix, unmix_loss)


def naive_mix(x: torch.Tensor, p: MixParams) -> torch.Tensor:
    n, _, h, w = x.shape
    out = torch.empty_like(x)
    for i in range(n):
        j = n - 1 - i
        for yy in range(h):
            for xx in range(w):
                if p.mode == "global":
                    out[i, :, yy, xx] = p.lam * x[i, :, yy, xx] + (1 - p.lam) * x[j, :, yy, xx]
                else:
                    y1, y2, x1, x2 = p.box
                    inside = y1 <= yy < y2 and x1 <= xx < x2
                    out[i, :, yy, xx] = x[j, :, yy, xx] if inside else x[i, :, yy, xx]
    return out


@pytest.mark.parametrize("n", [4, 5])
def test_global_mix_matches_loop(n):
    x = torch.randn(n, 3, 8, 8)
    p = MixParams("global", 0.3, None)
    torch.testing.assert_close(mix(x, p), naive_mix(x, p))


@pytest.mark.parametrize("box", [(2, 6, 1, 5), (0, 8, 0, 3), (3, 3, 0, 8)])
def test_region_mix_matches_loop_and_keeps_input(box):
    x = torch.randn(5, 3, 8, 8)
    x0 = x.clone()
    p = MixParams("region", kept_ratio(box, 8, 8), box)
    torch.testing.assert_close(mix(x, p), naive_mix(x, p))
    assert torch.equal(x, x0)  # the clean view is not touched


def test_cutmix_box_and_exact_lam():
    # lam 0.75 on 32x32: side int(32*0.5)=16, centred -> 16x16, kept 1 - 256/1024
    box = cutmix_box(32, 32, 0.75, 16, 16)
    assert box == (8, 24, 8, 24)
    assert kept_ratio(box, 32, 32) == pytest.approx(0.75)
    # corner centre: halves clipped to the image -> 8x8 box, kept 1 - 64/1024
    box = cutmix_box(32, 32, 0.75, 0, 0)
    assert box == (0, 8, 0, 8)
    assert kept_ratio(box, 32, 32) == pytest.approx(1 - 64 / 1024)
    # non-square, clipped bottom-right: sides int(16*.707)=11, int(32*.707)=22 -> halves 5, 11
    box = cutmix_box(16, 32, 0.5, 15, 30)
    assert box == (10, 16, 19, 32)
    assert kept_ratio(box, 16, 32) == pytest.approx(1 - 6 * 13 / (16 * 32))
    # lam 1 -> empty box, lam 1
    assert kept_ratio(cutmix_box(32, 32, 1.0, 5, 5), 32, 32) == 1.0


def test_sample_mix_region_lam_is_kept_ratio_and_reproducible():
    g = torch.Generator().manual_seed(3)
    seen = set()
    for _ in range(200):
        p = sample_mix((4, 3, 24, 32), beta=1.0, prob=0.5, generator=g)
        seen.add(p.mode)
        assert 0.0 <= p.lam <= 1.0
        if p.mode == "region":
            assert p.lam == pytest.approx(kept_ratio(p.box, 24, 32))
            x = torch.randn(2, 1, 24, 32)
            mixed = mix(x, p)
            # exact share of sample 0's pixels in mixed sample 0
            assert (mixed[0] == x[0]).float().mean().item() == pytest.approx(p.lam)
        else:
            assert p.box is None
    assert seen == {"global", "region"}
    a = [sample_mix((32, 32), 1.0, 0.5, torch.Generator().manual_seed(7)) for _ in range(2)]
    assert a[0] == a[1]
    assert all(sample_mix((8, 8), 1.0, 1.0, g).mode == "global" for _ in range(20))
    assert all(sample_mix((8, 8), 1.0, 0.0, g).mode == "region" for _ in range(20))


def test_sample_beta_moments():
    g = torch.Generator().manual_seed(0)
    for beta in (1.0, 0.5):
        draws = torch.tensor([sample_beta(beta, g) for _ in range(4000)])
        var = 1.0 / (4 * (2 * beta + 1))  # Beta(b, b): mean 1/2, var 1/(4(2b+1))
        assert draws.mean().item() == pytest.approx(0.5, abs=0.03)
        assert draws.var().item() == pytest.approx(var, rel=0.1)


@pytest.mark.parametrize("norm", [None, 2])
def test_reversed_embeddings_equal_embeddings_of_reversed_batch(norm):
    torch.manual_seed(0)
    kw = {} if norm is None else {"norm_layer": lambda c: SplitBatchNorm(c, num_splits=norm)}
    enc = build_resnet("resnet18", "cifar", **kw).train()
    x = mix(torch.randn(4, 3, 32, 32), MixParams("global", 0.6))
    a = enc(x).flip(0)
    b = enc(x.flip(0))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_unmix_loss_weights_and_reverses():
    z = torch.randn(4, 3)
    t = torch.randn(4, 3)
    loss_fn = lambda a, b: ((a - b) ** 2).sum(1).mul(torch.arange(1.0, 5.0)).mean()  # noqa: E731
    expect = 0.3 * loss_fn(z, t) + 0.7 * loss_fn(z[[3, 2, 1, 0]], t)
    torch.testing.assert_close(unmix_loss(loss_fn, z, t, 0.3), expect)


def test_unmix_config():
    assert UnMixConfig.from_any(None).enabled is False
    assert UnMixConfig.from_any({"enabled": True, "prob": 0.0}) == UnMixConfig(True, 1.0, 0.0)
    with pytest.raises(ValueError, match="unknown unmix keys"):
        UnMixConfig.from_any({"alpha": 1.0})
    with pytest.raises(ValueError):
        UnMixConfig(prob=1.5)
