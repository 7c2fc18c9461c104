"""The first form of Un-Mix: dataset-level image mixtures.

Paper: "Rethinking Image Mixture for Unsupervised Visual Representation Learning",
arXiv 2003.05438v1, eqs. 3-5. Semantics, flags and defaults: the authors' CMC/MoCo fork
(szq0214/CMC_with_Image_Mixture, `IM/mixture.py` and the `--IM` flags of `train_moco_ins.py`).

Each training image is mixed with *other images of the dataset* (each with its own augmentation)
before it reaches the encoder; the instance index/label stays the original's and the loss sees no
lambda. `im_type` selects, like the release's `--IM_type`:

- 'global' (eq. 3; fork `GM`): `g_num` rounds, each firing with prob `g_prob`:
  `img = lam*img + (1-lam)*other`, `lam ~ Beta(g_alpha, g_alpha)`, `other` un-mixed. Iterative, so
  the image mixed in last is mixed only once.
- 'region' (eqs. 4-5; fork `RM`): `r_num` rounds, each with prob `r_prob`: a CutMix box (`lam ~
  Beta(r_beta, r_beta)`, side `sqrt(1-lam)` of the image, centre uniform, clipped) is pasted from
  the other image. Only when round index 0 fires (the fork's `if mix_index == 0`), the context (the
  whole current image) is first multiplied by `r_pixel_decay` (1.0 = off; 0.2 best in the paper's
  Table 3); P(decay) is `r_prob` whatever `r_num` is.
- 'IM' (fork: `RM` wrapping `GM`): global rounds, then region rounds whose partners have been
  through their own global rounds (`Op.pre`).
- 'Cutout' (size 50 at 224 px, scaled to the image; p 0.1; filled with the dataset mean, the
  fork's normalised 0) and 'RandomErasing' (p 0.1, area 0.02-0.4, aspect 0.3-1/0.3, 20 attempts;
  filled, as the fork, with one uniform(0, 1) value in normalised units): the paper's baselines.

As in the fork (its transform normalises before the `IM` wrappers), mixing works on the views as
`post` (Normalize) leaves them: the decay multiplies the normalised tensor, so pixels move toward
the dataset mean (normalised 0), not toward black. Global mixing and pasting commute with the
normalisation; the decay is the one step where the order matters. Sampling (`sample_ops`) and
applying (`apply_ops`) are separate pure functions; all randomness comes from an explicit
`torch.Generator`. With several views (MoCo's two crops, which the fork concatenates along the
channels) every view is mixed identically: the same partners, lambdas and relative boxes, view k
with the partner's view k.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, NamedTuple, Sequence

import numpy as np
import torch

IM_TYPES = ("IM", "global", "region", "Cutout", "RandomErasing")


@dataclass(frozen=True)
class FirstFormParams:
    """Defaults are the release's flag defaults (the first code release, szq0214/CMC_with_Image_Mixture)."""

    im_type: str = "IM"
    g_alpha: float = 1.0
    g_num: int = 2
    g_prob: float = 0.1
    r_beta: float = 1.0
    r_prob: float = 0.1
    r_num: int = 2
    r_pixel_decay: float = 1.0
    cutout_size: int = 50       # at 224 px; scaled linearly for other sizes
    cutout_prob: float = 0.1
    erase_prob: float = 0.1
    erase_area: tuple[float, float] = (0.02, 0.4)
    erase_min_aspect: float = 0.3
    erase_attempts: int = 20    # the fork's --max_attempt

    def __post_init__(self) -> None:
        if self.im_type not in IM_TYPES:
            raise ValueError(f"im_type must be one of {IM_TYPES}, got {self.im_type!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["erase_area"] = list(self.erase_area)
        return d


class Op(NamedTuple):
    """One sampled operation. Geometry is relative (u, v in [0, 1), sizes as fractions) so the
    same op applies to views of different sizes."""

    kind: str                    # 'global' | 'region' | 'cutout' | 'erase'
    partner: int | None = None   # dataset index of the other image
    lam: float = 1.0
    u: float = 0.0               # box centre (x) as a fraction of W (region/cutout) or box x1 (erase)
    v: float = 0.0
    decay: float = 1.0           # context scale (region, round index 0 only)
    fw: float = 0.0              # box width / W (cutout, erase)
    fh: float = 0.0
    pre: tuple = ()              # ops applied to the partner first ('IM': its global rounds)
    value: float | None = None   # erase: the value written, in the mixed (normalised) units


def _uniform(g: torch.Generator) -> float:
    return float(torch.rand((), generator=g, dtype=torch.float64))


def sample_beta(a: float, b: float, g: torch.Generator) -> float:
    """Beta(a, b) from the generator (torch's Beta takes no generator; numpy's is seeded from g)."""
    if a == 1.0 and b == 1.0:
        return _uniform(g)
    seed = int(torch.randint(0, 2**62, (), generator=g))
    return float(np.random.default_rng(seed).beta(a, b))


def cutmix_box(h: int, w: int, lam: float, u: float, v: float) -> tuple[int, int, int, int]:
    """CutMix's `rand_bbox` with the centre given: (y1, y2, x1, x2), halves clipped to the image."""
    cut = math.sqrt(1.0 - lam)
    cw, ch = int(w * cut), int(h * cut)
    cx, cy = int(u * w), int(v * h)
    x1, x2 = min(max(cx - cw // 2, 0), w), min(max(cx + cw // 2, 0), w)
    y1, y2 = min(max(cy - ch // 2, 0), h), min(max(cy + ch // 2, 0), h)
    return y1, y2, x1, x2


def cutout_side(h: int, w: int, size_at_224: int) -> int:
    return max(1, round(size_at_224 * min(h, w) / 224))


def _global_ops(p: FirstFormParams, g: torch.Generator, num_items: int) -> list[Op]:
    ops = []
    for _ in range(p.g_num):
        if _uniform(g) < p.g_prob:
            partner = int(torch.randint(num_items, (), generator=g))
            ops.append(Op("global", partner, sample_beta(p.g_alpha, p.g_alpha, g)))
    return ops


def _region_ops(p: FirstFormParams, g: torch.Generator, num_items: int) -> list[Op]:
    ops = []
    for index in range(p.r_num):
        if _uniform(g) < p.r_prob:
            partner = int(torch.randint(num_items, (), generator=g))
            lam = sample_beta(p.r_beta, p.r_beta, g)
            # 'IM': the fork's RM reads its partners from the GM-wrapped dataset
            pre = tuple(_global_ops(p, g, num_items)) if p.im_type == "IM" else ()
            # the fork decays only at mix_index == 0, not at the first round that fires
            ops.append(Op("region", partner, lam, _uniform(g), _uniform(g),
                          decay=p.r_pixel_decay if index == 0 else 1.0, pre=pre))
    return ops


def _erase_op(p: FirstFormParams, g: torch.Generator, h: int, w: int) -> list[Op]:
    lo, hi = p.erase_area
    # The fork's RandomErasing (IM/mixture.py): sides floored, corner in [0, W - w), and one
    # uniform(0, 1) value written into every channel of the normalised tensor.
    for _ in range(p.erase_attempts):
        area = (lo + (hi - lo) * _uniform(g)) * h * w
        aspect = p.erase_min_aspect + (1 / p.erase_min_aspect - p.erase_min_aspect) * _uniform(g)
        eh, ew = int(math.sqrt(area * aspect)), int(math.sqrt(area / aspect))
        if ew < w and eh < h:
            x1 = int(torch.randint(0, w - ew, (), generator=g))
            y1 = int(torch.randint(0, h - eh, (), generator=g))
            return [Op("erase", u=x1 / w, v=y1 / h, fw=ew / w, fh=eh / h, value=_uniform(g))]
    return []


def sample_ops(p: FirstFormParams, g: torch.Generator, num_items: int, size: tuple[int, int]) -> list[Op]:
    """Draw the operations for one image (`size` = (H, W) of its first view, used by RandomErasing
    to retry boxes that do not fit, as in Zhong et al.)."""
    ops: list[Op] = []
    h, w = size
    if p.im_type in ("IM", "global"):
        ops += _global_ops(p, g, num_items)
    if p.im_type in ("IM", "region"):
        ops += _region_ops(p, g, num_items)
    if p.im_type == "Cutout" and _uniform(g) < p.cutout_prob:
        side = cutout_side(h, w, p.cutout_size)
        ops.append(Op("cutout", u=_uniform(g), v=_uniform(g), fw=side / w, fh=side / h))
    if p.im_type == "RandomErasing" and _uniform(g) < p.erase_prob:
        ops += _erase_op(p, g, h, w)
    return ops


def mix_global(img: torch.Tensor, other: torch.Tensor, lam: float) -> torch.Tensor:
    """Eq. 3, one round. Shape: (C, H, W) -> (C, H, W)."""
    return lam * img + (1.0 - lam) * other


def mix_region(img: torch.Tensor, other: torch.Tensor, box: tuple[int, int, int, int],
               decay: float = 1.0) -> torch.Tensor:
    """Eqs. 4-5, one round: context scaled by `decay` (on normalised tensors: toward the mean), box
    taken from `other`. Shape: (C, H, W)."""
    y1, y2, x1, x2 = box
    out = img * decay if decay != 1.0 else img.clone()
    out[..., y1:y2, x1:x2] = other[..., y1:y2, x1:x2]
    return out


def fill_box(img: torch.Tensor, box: tuple[int, int, int, int], fill: torch.Tensor) -> torch.Tensor:
    """Cutout / RandomErasing: the box set to `fill` (C,) per channel."""
    y1, y2, x1, x2 = box
    out = img.clone()
    out[..., y1:y2, x1:x2] = fill.to(out).view(-1, 1, 1)
    return out


def apply_op(img: torch.Tensor, op: Op, other: torch.Tensor | None, fill: torch.Tensor) -> torch.Tensor:
    h, w = img.shape[-2:]
    if op.kind == "global":
        return mix_global(img, other, op.lam)
    if op.kind == "region":
        return mix_region(img, other, cutmix_box(h, w, op.lam, op.u, op.v), op.decay)
    if op.kind == "cutout":
        side = max(1, round(op.fw * w))
        cx, cy = int(op.u * w), int(op.v * h)
        box = (max(cy - side // 2, 0), min(cy + side // 2, h), max(cx - side // 2, 0), min(cx + side // 2, w))
        return fill_box(img, box, fill)
    if op.kind == "erase":
        x1, y1 = int(round(op.u * w)), int(round(op.v * h))
        value = fill if op.value is None else torch.full_like(fill, op.value)
        return fill_box(img, (y1, min(y1 + round(op.fh * h), h), x1, min(x1 + round(op.fw * w), w)), value)
    raise ValueError(f"unknown op {op.kind!r}")


def apply_ops(views: Sequence[torch.Tensor], ops: Sequence[Op], partner_views: Sequence[Sequence[torch.Tensor]],
              fill: torch.Tensor) -> list[torch.Tensor]:
    """Apply `ops` in order to every view; `partner_views[j]` are the views of the j-th op that has
    a partner, its `pre` ops already applied (`partner_views_for`). View k is mixed with the
    partner's view k."""
    out = list(views)
    j = 0
    for op in ops:
        partner = None
        if op.partner is not None:
            partner = partner_views[j]
            j += 1
        out = [apply_op(v, op, None if partner is None else partner[k], fill) for k, v in enumerate(out)]
    return out


def item_seed(seed: int, epoch: int, index: int) -> int:
    """A per-(run, epoch, item) seed: the same mixtures whatever worker loads the item."""
    return (seed * 1_000_003 + epoch * 65_537 + index) % (2**63 - 1)


def partner_views_for(ops: Sequence[Op], load: Callable[[int], list[torch.Tensor]],
                      fill: torch.Tensor) -> list[list[torch.Tensor]]:
    """The views of each op's partner (`load(index)`), mixed by the partner's own `pre` ops first:
    in 'IM' a region partner is the globally mixed image, as the fork's RM reads it from GM."""
    out = []
    for op in ops:
        if op.partner is not None:
            views = load(op.partner)
            if op.pre:
                views = apply_ops(views, op.pre, partner_views_for(op.pre, load, fill), fill)
            out.append(views)
    return out


class FirstFormDataset(torch.utils.data.Dataset):
    """Wrap a dataset whose transform yields un-normalised [0, 1] views (a tensor or a list of
    tensors) with the first-form mixtures. `post` (e.g. Normalize) is applied to each view *before*
    mixing, as the fork normalises in its transform, so the pixel decay pulls toward the mean.
    `fill` (Cutout / RandomErasing) is given in input units and mapped through `post` too."""

    def __init__(self, dataset: torch.utils.data.Dataset, params: FirstFormParams,
                 post: Callable[[torch.Tensor], torch.Tensor] | None = None, seed: int = 0,
                 fill: Sequence[float] = (0.5, 0.5, 0.5)) -> None:
        self.dataset, self.params, self.post, self.seed = dataset, params, post, seed
        fill_t = torch.tensor(fill, dtype=torch.float32)
        self.fill = fill_t if post is None else post(fill_t.view(-1, 1, 1)).reshape(-1)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def _views(self, index: int) -> tuple[list[torch.Tensor], object, bool]:
        views, label = self.dataset[index]
        single = torch.is_tensor(views)
        views = [views] if single else list(views)
        if self.post is not None:
            views = [self.post(v) for v in views]
        return views, label, single

    def __getitem__(self, index: int):
        views, label, single = self._views(index)
        g = torch.Generator().manual_seed(item_seed(self.seed, self.epoch, index))
        ops = sample_ops(self.params, g, len(self.dataset), tuple(views[0].shape[-2:]))
        partners = partner_views_for(ops, lambda i: self._views(i)[0], self.fill)
        views = apply_ops(views, ops, partners, self.fill)
        return (views[0] if single else views), label
