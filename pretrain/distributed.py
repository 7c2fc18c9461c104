"""Process-group helpers for the pretraining methods; all of them are identities on one process.

Model code calls these instead of `torch.distributed` directly, so it runs unchanged on CPU,
one GPU or many. `SplitBatchNorm` simulates the per-GPU batch norm of multi-GPU training on one
device (MoCo's CIFAR demo uses 8 splits).
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn import functional as F


def world_size() -> int:
    """Number of processes in the default group (1 when torch.distributed is not initialised)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank in the default group (0 when torch.distributed is not initialised)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


@torch.no_grad()
def concat_all_gather(x: Tensor) -> Tensor:
    """Concatenate `x` (N, ...) from every process along dim 0 -> (W*N, ...); no gradient."""
    if world_size() == 1:
        return x
    out = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out, dim=0)


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums every process's gradient for the local slice."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # noqa: D401
        out = [torch.empty_like(x) for _ in range(world_size())]
        dist.all_gather(out, x.contiguous())
        ctx.n = x.shape[0]
        return torch.cat(out, dim=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.contiguous()
        # every process's loss depends on our slice: the true gradient is the sum over processes
        dist.all_reduce(grad)
        return grad[rank() * ctx.n:(rank() + 1) * ctx.n]


def gather_with_grad(x: Tensor) -> Tensor:
    """Concatenate `x` (N, ...) from every process -> (W*N, ...), gradients flowing back to the
    local slice (SimCLR's cross-process negatives). Assumes equal N on every process."""
    if world_size() == 1:
        return x
    return _GatherWithGrad.apply(x)


@torch.no_grad()
def batch_shuffle(x: Tensor, generator: torch.Generator | None = None,
                  local: bool = False) -> tuple[Tensor, Tensor | None]:
    """MoCo's shuffle-BN, before the key encoder: returns (this process's share of a shuffled global
    batch, the index that undoes it). On one process this is a no-op unless `local` (MoCo's CIFAR
    demo shuffles within the device so that SplitBatchNorm groups differ from the query's).
    Shape: x (N, ...) -> (N, ...), idx_unshuffle (W*N,) or None."""
    ws = world_size()
    if ws == 1 and not local:
        return x, None
    x_all = concat_all_gather(x)
    idx_shuffle = torch.randperm(x_all.shape[0], generator=generator).to(x.device)
    if ws > 1:
        # every process must use rank 0's permutation
        dist.broadcast(idx_shuffle, src=0)
    idx_unshuffle = torch.argsort(idx_shuffle)
    n = x.shape[0]
    idx_this = idx_shuffle.view(ws, n)[rank()]
    return x_all[idx_this], idx_unshuffle


@torch.no_grad()
def batch_unshuffle(x: Tensor, idx_unshuffle: Tensor | None) -> Tensor:
    """Undo `batch_shuffle` on the key embeddings. Shape: (N, ...) -> (N, ...)."""
    if idx_unshuffle is None:
        return x
    x_all = concat_all_gather(x)
    n = x.shape[0]
    idx_this = idx_unshuffle.view(world_size(), n)[rank()]
    return x_all[idx_this]


class SplitBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d that, in training, normalises the batch in `num_splits` groups (samples
    i, i+S, i+2S, ... form a group, as in MoCo's CIFAR demo); in eval it is plain BN. Running
    statistics are the mean over groups. A BatchNorm2d subclass, so state-dict keys are BN keys."""

    def __init__(self, num_features: int, num_splits: int = 8, **kwargs) -> None:
        super().__init__(num_features, **kwargs)
        if num_splits < 1:
            raise ValueError(f"num_splits must be >= 1, got {num_splits}")
        self.num_splits = num_splits

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.num_splits == 1:
            return super().forward(x)
        n, c, h, w = x.shape
        s = self.num_splits
        if n % s:
            raise ValueError(f"SplitBatchNorm: batch {n} is not divisible by num_splits {s}")
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
        momentum = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                    else self.momentum)
        # (S*C,) running stats, one copy per group; updated in place by F.batch_norm
        mean_s = self.running_mean.repeat(s) if self.track_running_stats else None
        var_s = self.running_var.repeat(s) if self.track_running_stats else None
        weight = self.weight.repeat(s) if self.affine else None
        bias = self.bias.repeat(s) if self.affine else None
        # (N, C, H, W) -> (N/S, S*C, H, W): sample i lands in channel block i % S
        out = F.batch_norm(x.reshape(n // s, s * c, h, w), mean_s, var_s, weight, bias,
                           True, momentum, self.eps)
        if self.track_running_stats:
            with torch.no_grad():
                self.running_mean.copy_(mean_s.view(s, c).mean(0))
                self.running_var.copy_(var_s.view(s, c).mean(0))
        # (N/S, S*C, H, W) -> (N, C, H, W) with the same memory, but NOT an autograd view: the
        # ResNet's in-place ReLU / residual add on a view make autograd rebase it (CopySlices +
        # AsStridedBackward: whole-activation copies in every backward, ~3% of a query pass at
        # ResNet-18/32 px). `out` has no other user and batch norm's backward saves its input,
        # not its output, so writing it in place is as safe as after a plain BatchNorm2d.
        return torch.ops.aten._unsafe_view(out, (n, c, h, w))
