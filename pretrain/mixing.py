"""Un-Mix image mixtures, final (in-batch, soft-lambda) form.

Only the query-side view is mixed, after normalisation, on its device. The partner of sample i is
sample N-1-i (the batch reversed along dim 0), so the "reversed mixture" of the loss is the mixed
batch reversed, and its embeddings are the mixed embeddings reversed: batch norm does not depend on
sample order, so `encoder(x.flip(0)) == encoder(x).flip(0)` and the reversed term costs no forward.

Everything here is a pure function of tensors and explicit parameters; randomness comes only from
the `torch.Generator` passed in (CPU generator; the draws are scalars).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields

import torch
from torch import Tensor

Box = tuple[int, int, int, int]  # (y1, y2, x1, x2), half-open


@dataclass(frozen=True)
class UnMixConfig:
    """Un-Mix switches of a method: `beta` of lam ~ Beta(beta, beta), `prob` = P(global mixup)."""

    enabled: bool = False
    beta: float = 1.0
    prob: float = 0.5

    def __post_init__(self) -> None:
        if self.beta <= 0:
            raise ValueError(f"unmix.beta must be > 0, got {self.beta}")
        if not 0.0 <= self.prob <= 1.0:
            raise ValueError(f"unmix.prob must be in [0, 1], got {self.prob}")

    @classmethod
    def from_any(cls, value: "UnMixConfig | Mapping | bool | None") -> "UnMixConfig":
        """Accept a config dict ({'enabled', 'beta', 'prob'}), a bool, None (off) or an instance."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, bool):
            return cls(enabled=value)
        known = {f.name for f in fields(cls)}
        unknown = set(value) - known
        if unknown:
            raise ValueError(f"unknown unmix keys {sorted(unknown)}; expected {sorted(known)}")
        return cls(**dict(value))


@dataclass(frozen=True)
class MixParams:
    """One iteration's mixture: `mode` 'global' (mixup) or 'region' (CutMix box from the partner).

    `lam` is the share of sample i in mixed sample i (for 'region': the exact kept-area ratio).
    """

    mode: str
    lam: float
    box: Box | None = None


def sample_beta(beta: float, generator: torch.Generator | None = None) -> float:
    """lam ~ Beta(beta, beta) from two Gamma(beta, 1) draws (reproducible from `generator`)."""
    conc = torch.full((2,), float(beta), dtype=torch.float64)
    g = torch._standard_gamma(conc, generator=generator)
    return float(g[0] / (g[0] + g[1]))


def cutmix_box(h: int, w: int, lam: float, cy: int, cx: int) -> Box:
    """CutMix's box: side int(H*sqrt(1-lam)) by int(W*sqrt(1-lam)) centred at (cy, cx), each half
    (side // 2) clipped to the image. As in CutMix, an odd side loses one pixel
    (2 * (side // 2))."""
    cut = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(h * cut), int(w * cut)
    y1 = min(max(cy - cut_h // 2, 0), h)
    y2 = min(max(cy + cut_h // 2, 0), h)
    x1 = min(max(cx - cut_w // 2, 0), w)
    x2 = min(max(cx + cut_w // 2, 0), w)
    return (y1, y2, x1, x2)


def kept_ratio(box: Box, h: int, w: int) -> float:
    """Fraction of the image outside `box`: the exact lam of a region mixture."""
    y1, y2, x1, x2 = box
    return 1.0 - (y2 - y1) * (x2 - x1) / float(h * w)


def sample_mix(batch_size_hw: Sequence[int], beta: float = 1.0, prob: float = 0.5,
               generator: torch.Generator | None = None) -> MixParams:
    """Draw one iteration's mixture for images of spatial size (H, W).

    `batch_size_hw`: (H, W) or a full (N, C, H, W) shape; the last two entries are used.
    Draw order (fixed, so a seed reproduces it): lam, r, then for 'region' the centre (cy, cx).
    """
    return sample_mix_chain([batch_size_hw], beta, prob, generator)[0]


def sample_mix_chain(shapes: Sequence[Sequence[int]], beta: float = 1.0, prob: float = 0.5,
                     generator: torch.Generator | None = None) -> list[MixParams]:
    """One iteration's mixtures of several batches (SwAV's crop pairs), each (H, W) or (N, C, H, W).

    As the official SwAV + Un-Mix loop: one lam ~ Beta(beta, beta) and one r for all of them;
    'global' (r < prob) mixes every batch with that lam. 'region' draws a fresh centre per batch
    and sizes each box by the running lam, which every box resets to its kept ratio: batch k's box
    comes from batch k-1's corrected lam (batch 0's from the Beta draw), and the loss's lam is the
    last entry's. Draw order: lam, r, then (cy, cx) per batch in turn.
    """
    lam = sample_beta(beta, generator)
    r = float(torch.rand((), generator=generator, dtype=torch.float64))
    if r < prob:
        return [MixParams("global", lam, None) for _ in shapes]
    out = []
    for shape in shapes:
        h, w = (int(s) for s in tuple(shape)[-2:])
        cy = int(torch.randint(h, (), generator=generator))
        cx = int(torch.randint(w, (), generator=generator))
        box = cutmix_box(h, w, lam, cy, cx)
        lam = kept_ratio(box, h, w)  # the chained correction: the next box is sized by it
        out.append(MixParams("region", lam, box))
    return out


def mix(x: Tensor, params: MixParams) -> Tensor:
    """Mix each sample with its partner in the reversed batch.

    Shape: x (N, C, H, W) -> (N, C, H, W)."""
    # (N, C, H, W): partner of sample i is sample N-1-i
    partner = x.flip(0)
    if params.mode == "global":
        # (N, C, H, W)
        return params.lam * x + (1.0 - params.lam) * partner
    if params.mode == "region":
        y1, y2, x1, x2 = params.box
        # (N, C, H, W): a copy, so the caller's clean view stays clean
        out = x.clone()
        # (N, C, y2-y1, x2-x1) <- the same window of the partner
        out[:, :, y1:y2, x1:x2] = partner[:, :, y1:y2, x1:x2]
        return out
    raise ValueError(f"unknown mix mode {params.mode!r}")


def unmix_loss(loss_fn: Callable[[Tensor, Tensor], Tensor], z_mix: Tensor, targets: Tensor,
               lam: float) -> Tensor:
    """`lam * L(z_mix, t) + (1 - lam) * L(z_mix.flip(0), t)`.

    `z_mix` are the embeddings of the mixed batch (N, ...); their reversal is the embedding of the
    reversed mixture (batch norm is order-invariant), whose sample i holds a (1 - lam) share of
    sample i. `targets` (N, ...) are the clean targets of the other view, index-aligned.
    """
    return lam * loss_fn(z_mix, targets) + (1.0 - lam) * loss_fn(z_mix.flip(0), targets)


def add_unmix(out: dict[str, Tensor], loss: Tensor, x: Tensor, cfg: UnMixConfig,
              generator: torch.Generator | None,
              mixed_loss: Callable[[Tensor, float], Tensor]) -> Tensor:
    """The Un-Mix term of one step, for every method: draw this iteration's (mode, lam, box),
    mix `x` with its reversed batch, and return `loss + mixed_loss(x_mix, lam)`, logging
    `loss_mix` and `lam` (detached) in `out`. Unchanged `loss` when Un-Mix is off.

    `mixed_loss(x_mix, lam)` is the method's own label-space mixture, usually built from
    `unmix_loss`. Shape: x (N, C, H, W)."""
    if not cfg.enabled:
        return loss
    params = sample_mix(x.shape, cfg.beta, cfg.prob, generator)
    loss_mix = mixed_loss(mix(x, params), params.lam)
    out["loss_mix"] = loss_mix.detach()
    out["lam"] = torch.tensor(params.lam, device=x.device)
    return loss + loss_mix
