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


def test_decay_only_on_first_fired_round_naive_reference():
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
        ys, xs = torch.nonzero((out != x).any(0), as_tuple=True)
        eh, ew = int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)
        assert 0.02 * 4096 * 0.8 <= eh * ew <= 0.4 * 4096 * 1.2
        assert 0.3 * 0.8 <= eh / ew <= (1 / 0.3) * 1.2


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


def test_wrapper_applies_post_after_mixing():
    p = ff.FirstFormParams(im_type="global", g_prob=0.0)
    ds = ff.FirstFormDataset(_Views(), p, post=lambda v: v * 2)
    assert torch.equal(ds[4][0][1], torch.full((3, 8, 8), 208.0))
