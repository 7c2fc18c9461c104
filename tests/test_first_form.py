"""pretrain.first_form against closed forms and naive references."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pretrain import first_form as ff


def _imgs(n, h=16, w=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(3, h, w, generator=g) for _ in range(n)]


def test_global_is_iterative_and_last_image_mixed_once():
    x, a, b = _imgs(3)
    ops = [ff.Op("global", 0, 0.7), ff.Op("global", 1, 0.4)]
    out, = ff.apply_ops([x], ops, [[a], [b]], torch.zeros(3))
    # eq. 3 unrolled: b enters last, with weight (1 - lam2) only
    torch.testing.assert_close(out, 0.4 * (0.7 * x + 0.3 * a) + 0.6 * b)


def _naive_rand_bbox(h, w, lam, cx, cy):
    # CutMix's reference rand_bbox (numpy), with the centre given
    cut_rat = np.sqrt(1.0 - lam)
    cut_w, cut_h = int(w * cut_rat), int(h * cut_rat)
    bbx1, bby1 = np.clip(cx - cut_w // 2, 0, w), np.clip(cy - cut_h // 2, 0, h)
    bbx2, bby2 = np.clip(cx + cut_w // 2, 0, w), np.clip(cy + cut_h // 2, 0, h)
    return bby1, bby2, bbx1, bbx2


def test_cutmix_box_matches_reference():
    rng = np.random.default_rng(0)
    for _ in range(200):
        h, w = rng.integers(4, 64, 2)
        lam, u, v = rng.random(3)
        ref = _naive_rand_bbox(h, w, lam, int(u * w), int(v * h))
        assert ff.cutmix_box(int(h), int(w), lam, u, v) == tuple(int(t) for t in ref)


def test_pixel_decay_scales_context_exactly():
    x, o = _imgs(2)
    p = ff.FirstFormParams(im_type="region", r_num=1, r_prob=1.0, r_pixel_decay=0.2)
    ops = ff.sample_ops(p, torch.Generator().manual_seed(3), 10, (16, 16))
    assert len(ops) == 1 and ops[0].decay == 0.2
    out, = ff.apply_ops([x], ops, [[o]], torch.zeros(3))
    y1, y2, x1, x2 = ff.cutmix_box(16, 16, ops[0].lam, ops[0].u, ops[0].v)
    inside = torch.zeros(16, 16, dtype=torch.bool)
    inside[y1:y2, x1:x2] = True
    assert torch.equal(out[:, inside], o[:, inside])
    assert torch.equal(out[:, ~inside], (0.2 * x)[:, ~inside])


def test_decay_only_at_round_index_zero_naive_reference():
    x, a, b = _imgs(3)
    p = ff.FirstFormParams(im_type="region", r_num=2, r_prob=1.0, r_pixel_decay=0.5)
    ops = ff.sample_ops(p, torch.Generator().manual_seed(1), 10, (16, 16))
    assert [o.decay for o in ops] == [0.5, 1.0]
    ref = x.clone() * 0.5  # naive: decay once, then paste two boxes
    for op, other in zip(ops, (a, b)):
        y1, y2, x1, x2 = ff.cutmix_box(16, 16, op.lam, op.u, op.v)
        for c in range(3):
            for i in range(y1, y2):
                for j in range(x1, x2):
                    ref[c, i, j] = other[c, i, j]
    out, = ff.apply_ops([x], ops, [[a], [b]], torch.zeros(3))
    assert torch.equal(out, ref)


def test_no_decay_when_round_zero_does_not_fire():
    # the fork (IM/mixture.py, RM) decays under `if mix_index == 0`: a later round that fires
    # first does not decay
    p = ff.FirstFormParams(im_type="region", r_num=3, r_prob=0.5, r_pixel_decay=0.2)
    seen_late_first = 0
    for s in range(200):
        round0_fired = ff._uniform(torch.Generator().manual_seed(s)) < 0.5  # round 0's draw, replayed
        ops = ff.sample_ops(p, torch.Generator().manual_seed(s), 10, (16, 16))
        decays = [o.decay for o in ops]
        assert decays.count(0.2) == int(round0_fired) and all(d in (0.2, 1.0) for d in decays)
        if ops and not round0_fired:
            seen_late_first += 1
            assert ops[0].decay == 1.0
    assert seen_late_first > 20


def test_decay_probability_is_r_prob_monte_carlo():
    # r_num 5, r_prob 0.1: the fork decays with P = r_prob = 0.10; decaying at the first round
    # that fires would give 1 - 0.9**5 = 0.41
    p = ff.FirstFormParams(im_type="region", r_num=5, r_prob=0.1, r_pixel_decay=0.2)
    n = 20000
    g = torch.Generator().manual_seed(0)
    hits = sum(any(o.decay != 1.0 for o in ff.sample_ops(p, g, 10, (8, 8))) for _ in range(n))
    tol = 4 * math.sqrt(0.1 * 0.9 / n)  # 4 standard errors of a binomial proportion
    assert abs(hits / n - 0.10) < tol
    assert abs(1 - 0.9**5 - 0.10) > 10 * tol  # the old rule would fail by far


class _Const(torch.utils.data.Dataset):
    """Item i: one view, constant per channel."""

    def __init__(self, values):
        self.values = values

    def __len__(self):
        return len(self.values)

    def __getitem__(self, i):
        return torch.tensor(self.values[i]).view(3, 1, 1).expand(3, 8, 8).clone(), i


MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def _normalize(v):
    return (v - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)


def test_decay_of_the_mean_image_changes_nothing():
    # the fork decays the normalised tensor: an image equal to the dataset mean is normalised 0
    p = ff.FirstFormParams(im_type="region", r_num=1, r_prob=1.0, r_pixel_decay=0.2)
    ds = ff.FirstFormDataset(_Const([MEAN] * 4), p, post=_normalize, fill=MEAN)
    for i in range(4):
        torch.testing.assert_close(ds[i][0], torch.zeros(3, 8, 8), atol=1e-6, rtol=0)


def test_decay_pulls_the_context_toward_the_mean():
    x, o = (0.9, 0.1, 0.3), (0.2, 0.7, 0.5)
    p = ff.FirstFormParams(im_type="region", r_num=1, r_prob=1.0, r_pixel_decay=0.2)
    ds = ff.FirstFormDataset(_Const([x, o]), p, post=_normalize, fill=MEAN, seed=2)
    for i in range(2):
        out = ds[i][0]
        op, = ff.sample_ops(p, torch.Generator().manual_seed(ff.item_seed(2, 0, i)), 2, (8, 8))
        y1, y2, x1, x2 = ff.cutmix_box(8, 8, op.lam, op.u, op.v)
        inside = torch.zeros(8, 8, dtype=torch.bool)
        inside[y1:y2, x1:x2] = True
        own, other = _normalize(ds.dataset[i][0]), _normalize(ds.dataset[op.partner][0])
        torch.testing.assert_close(out[:, ~inside], (0.2 * own)[:, ~inside])
        torch.testing.assert_close(out[:, inside], other[:, inside])


def test_im_region_partner_goes_through_the_global_rounds():
    # fork: IM() = RM(GM(dataset)), so RM's partner self.dataset[rand_index] is a GM output
    p = ff.FirstFormParams(im_type="IM", g_num=1, g_prob=1.0, r_num=1, r_prob=1.0)
    ds = ff.FirstFormDataset(_Views(), p, seed=11)
    for i in range(10):
        (v0, v1), _ = ds[i]
        ops = ff.sample_ops(p, torch.Generator().manual_seed(ff.item_seed(11, 0, i)), 10, (8, 8))
        glob, reg = ops
        pre, = reg.pre
        assert glob.kind == pre.kind == "global" and reg.kind == "region"
        y1, y2, x1, x2 = ff.cutmix_box(8, 8, reg.lam, reg.u, reg.v)
        inside = torch.zeros(8, 8, dtype=torch.bool)
        inside[y1:y2, x1:x2] = True
        for base, v in ((0.0, v0), (100.0, v1)):
            own = glob.lam * (base + i) + (1 - glob.lam) * (base + glob.partner)
            partner = pre.lam * (base + reg.partner) + (1 - pre.lam) * (base + pre.partner)
            torch.testing.assert_close(v[:, ~inside], torch.full_like(v[:, ~inside], own))
            torch.testing.assert_close(v[:, inside], torch.full_like(v[:, inside], partner))


def test_region_alone_has_unmixed_partners():
    p = ff.FirstFormParams(im_type="region", r_num=3, r_prob=1.0)
    ops = ff.sample_ops(p, torch.Generator().manual_seed(0), 10, (8, 8))
    assert len(ops) == 3 and all(o.pre == () for o in ops)


@pytest.mark.parametrize("im_type", ff.IM_TYPES)
def test_probability_zero_changes_nothing(im_type):
    p = ff.FirstFormParams(im_type=im_type, g_prob=0.0, r_prob=0.0, cutout_prob=0.0, erase_prob=0.0)
    for s in range(20):
        assert ff.sample_ops(p, torch.Generator().manual_seed(s), 10, (16, 16)) == []


def test_im_is_global_then_region_and_reproducible():
    p = ff.FirstFormParams(im_type="IM", g_num=3, g_prob=1.0, r_num=2, r_prob=1.0, g_alpha=0.5)
    ops1 = ff.sample_ops(p, torch.Generator().manual_seed(7), 100, (32, 32))
    ops2 = ff.sample_ops(p, torch.Generator().manual_seed(7), 100, (32, 32))
    ops3 = ff.sample_ops(p, torch.Generator().manual_seed(8), 100, (32, 32))
    assert [o.kind for o in ops1] == ["global"] * 3 + ["region"] * 2
    assert ops1 == ops2 and ops1 != ops3
    assert all(0 <= o.partner < 100 and 0 <= o.lam <= 1 for o in ops1)


def test_beta_sampler_moments():
    g = torch.Generator().manual_seed(0)
    xs = np.array([ff.sample_beta(2.0, 5.0, g) for _ in range(4000)])
    assert abs(xs.mean() - 2 / 7) < 0.01
    assert abs(xs.var() - (2 * 5) / (49 * 8)) < 0.003


def test_cutout_scaled_size_and_mean_fill():
    assert ff.cutout_side(224, 224, 50) == 50 and ff.cutout_side(32, 32, 50) == 7
    p = ff.FirstFormParams(im_type="Cutout", cutout_prob=1.0)
    x = torch.rand(3, 32, 32)
    fill = torch.tensor([0.1, 0.2, 0.3])
    for s in range(20):
        ops = ff.sample_ops(p, torch.Generator().manual_seed(s), 5, (32, 32))
        out, = ff.apply_ops([x], ops, [], fill)
        changed = (out != x).any(0)
        assert 0 < changed.sum() <= 49
        assert torch.equal(out[:, changed], fill.view(3, 1).expand(3, int(changed.sum())))


def test_random_erasing_area_and_aspect():
    p = ff.FirstFormParams(im_type="RandomErasing", erase_prob=1.0)
    x = torch.rand(3, 64, 64)
    for s in range(30):
        ops = ff.sample_ops(p, torch.Generator().manual_seed(s), 5, (64, 64))
        assert len(ops) == 1
        out, = ff.apply_ops([x], ops, [], torch.zeros(3))
        erased = (out != x).any(0)
        ys, xs = torch.nonzero(erased, as_tuple=True)
        eh, ew = int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)
        assert 0.02 * 4096 * 0.8 <= eh * ew <= 0.4 * 4096 * 1.2
        assert 0.3 * 0.8 <= eh / ew <= (1 / 0.3) * 1.2
        # the fork writes one uniform(0, 1) value into every channel (IM/mixture.py, RandomErasing)
        value = ops[0].value
        assert 0 <= value < 1 and torch.equal(out[:, erased], torch.full((3, int(erased.sum())), value))


def test_random_erasing_box_as_the_fork_draws_it():
    # naive reference of the fork's loop: sides floored, corner in [0, W - w), 20 attempts
    p = ff.FirstFormParams(im_type="RandomErasing", erase_prob=1.0)
    for s in range(50):
        g = torch.Generator().manual_seed(s)
        assert ff._uniform(g) < 1.0  # the erase_prob draw
        want = None
        for _ in range(20):
            area = (0.02 + 0.38 * ff._uniform(g)) * 24 * 24
            aspect = 0.3 + (1 / 0.3 - 0.3) * ff._uniform(g)
            mh, mw = int(np.sqrt(area * aspect)), int(np.sqrt(area / aspect))
            if mw < 24 and mh < 24:
                x0 = int(torch.randint(0, 24 - mw, (), generator=g))
                y0 = int(torch.randint(0, 24 - mh, (), generator=g))
                want = (x0, y0, mw, mh)
                break
        ops = ff.sample_ops(p, torch.Generator().manual_seed(s), 5, (24, 24))
        if want is None:
            assert ops == []
            continue
        op, = ops
        assert (round(op.u * 24), round(op.v * 24), round(op.fw * 24), round(op.fh * 24)) == want


class _Views(torch.utils.data.Dataset):
    """Item i: two constant views (i and 100 + i), so mixtures are readable closed forms."""

    def __len__(self):
        return 10

    def __getitem__(self, i):
        return [torch.full((3, 8, 8), float(i)), torch.full((3, 8, 8), 100.0 + i)], i


def test_wrapper_mixes_both_crops_identically():
    p = ff.FirstFormParams(im_type="global", g_num=1, g_prob=1.0)
    ds = ff.FirstFormDataset(_Views(), p, seed=5)
    (v0, v1), label = ds[3]
    assert label == 3
    g = torch.Generator().manual_seed(ff.item_seed(5, 0, 3))
    op, = ff.sample_ops(p, g, 10, (8, 8))
    j, lam = op.partner, op.lam
    torch.testing.assert_close(v0, torch.full((3, 8, 8), lam * 3 + (1 - lam) * j))
    torch.testing.assert_close(v1, torch.full((3, 8, 8), lam * 103 + (1 - lam) * (100 + j)))
    # same item, same epoch -> same mixture; new epoch -> new draw
    assert torch.equal(ds[3][0][0], v0)
    ds.set_epoch(1)
    assert not torch.equal(ds[3][0][0], v0) or math.isclose(lam, 1.0)


def test_wrapper_applies_post_before_mixing():
    # the fork normalises in its transform, before the IM wrappers: decay scales post's output
    p = ff.FirstFormParams(im_type="region", r_num=1, r_prob=1.0, r_pixel_decay=0.5)
    ds = ff.FirstFormDataset(_Views(), p, post=lambda v: v + 1000.0, seed=3)
    (v0, _), _ = ds[4]
    op, = ff.sample_ops(p, torch.Generator().manual_seed(ff.item_seed(3, 0, 4)), 10, (8, 8))
    y1, y2, x1, x2 = ff.cutmix_box(8, 8, op.lam, op.u, op.v)
    outside = torch.ones(8, 8, dtype=torch.bool)
    outside[y1:y2, x1:x2] = False
    assert torch.equal(v0[:, outside], torch.full_like(v0[:, outside], 502.0))
