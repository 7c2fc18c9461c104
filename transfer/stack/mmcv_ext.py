"""A stand-in for mmcv's compiled extension (`mmcv._ext`), backed by torchvision's compiled ops.

mmcv-lite ships no kernels, yet `import mmdet.models` imports `mmcv.ops`, whose ~60 submodules each
look their kernels up in `mmcv._ext`. Faster R-CNN, RetinaNet and Mask R-CNN call only these at
run time, and this module provides exactly those, on CPU and CUDA:

    nms                                  torchvision.ops.nms (offset=1 by shifting x2, y2)
    roi_align_forward / _backward        torchvision's roi_align kernels (avg mode; identical numbers;
                                         the CPU backward vectorised to the same bits: roi_align_cpu)
    sigmoid_focal_loss_forward/_backward mmcv's own elementwise formula, vectorised in torch
    get_compiler_version, get_compiling_cuda_version

Every other kernel name resolves to a function that raises `MissingKernelError` naming the op
and how to get compiled mmcv. `transfer.stack.ensure_stack()` registers this module as
`mmcv._ext` only when compiled mmcv is absent.
"""
from __future__ import annotations

import torch
import torchvision  # noqa: F401  (loads torchvision's C++ ops into torch.ops.torchvision)
from torch import Tensor

from transfer.stack import roi_align_cpu

IS_STAND_IN = True  # lets `transfer.stack.mmcv_ops_kind` tell this module from compiled mmcv
FLT_MIN = 1.1754943508222875e-38  # mmcv's kernels clamp with the float32 FLT_MIN whatever the dtype
PROVIDED = ("nms", "roi_align_forward", "roi_align_backward", "sigmoid_focal_loss_forward",
            "sigmoid_focal_loss_backward", "get_compiler_version", "get_compiling_cuda_version")
HOW_TO_FIX = ("install mmcv with compiled ops: `tools/setup.sh --compiled-mmcv` "
              "(README, 'Compiled mmcv')")


class MissingKernelError(NotImplementedError):
    pass


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float, offset: int = 0) -> Tensor:
    """Indices kept, by decreasing score. `offset=1` is the legacy (x2 - x1 + 1) box width."""
    if boxes.numel() == 0:
        return boxes.new_zeros(0, dtype=torch.long)
    if offset not in (0, 1):
        raise ValueError(f"nms offset must be 0 or 1, got {offset}")
    if offset == 1:
        # (x2 + 1) - x1 is exactly the legacy width, for areas and intersections alike.
        boxes = torch.cat([boxes[:, :2], boxes[:, 2:4] + 1], dim=1)
    return torch.ops.torchvision.nms(boxes[:, :4].contiguous(), scores.contiguous(),
                                     float(iou_threshold))


def _check_avg(pool_mode: int) -> None:
    if pool_mode != 1:
        raise MissingKernelError("mmcv._ext.roi_align (pool_mode='max') is not provided by unmix's "
                                 "torchvision-backed stand-in; " + HOW_TO_FIX)


def roi_align_forward(input: Tensor, rois: Tensor, output: Tensor, argmax_y: Tensor,
                      argmax_x: Tensor, aligned_height: int, aligned_width: int,
                      spatial_scale: float, sampling_ratio: int, pool_mode: int,
                      aligned: bool) -> None:
    """Fills `output` (K, C, ah, aw) in place, as mmcv's kernel does."""
    _check_avg(pool_mode)
    out = torch.ops.torchvision.roi_align(input, rois, float(spatial_scale), int(aligned_height),
                                          int(aligned_width), int(sampling_ratio), bool(aligned))
    output.copy_(out)


def roi_align_backward(grad_output: Tensor, rois: Tensor, argmax_y: Tensor, argmax_x: Tensor,
                       grad_input: Tensor, aligned_height: int, aligned_width: int,
                       spatial_scale: float, sampling_ratio: int, pool_mode: int,
                       aligned: bool) -> None:
    """Fills `grad_input` (N, C, H, W) in place."""
    _check_avg(pool_mode)
    n, c, h, w = grad_input.shape
    args = (grad_output, rois, float(spatial_scale), int(aligned_height), int(aligned_width),
            n, c, h, w, int(sampling_ratio), bool(aligned))
    if roi_align_cpu.supported(grad_output):
        # torchvision's numbers, several times faster on the CPU (transfer/stack/roi_align_cpu.py)
        grad_input.copy_(roi_align_cpu.roi_align_backward(*args))
        return
    grad_input.copy_(torch.ops.torchvision._roi_align_backward(*args))


def _focal_terms(input: Tensor, target: Tensor, weight: Tensor):
    # input: (N, C) logits; target: (N,) class index, C meaning background (no positive class)
    n, c = input.shape
    pos = target.view(-1, 1) == torch.arange(c, device=input.device).view(1, -1)  # (N, C)
    p = torch.sigmoid(input)
    tiny = FLT_MIN
    w = None
    if weight.numel() > 0:
        w = weight[target.clamp(max=weight.numel() - 1)].view(-1, 1)  # (N, 1), per-sample class weight
    return pos, p, tiny, w


def sigmoid_focal_loss_forward(input: Tensor, target: Tensor, weight: Tensor, output: Tensor,
                               gamma: float, alpha: float) -> None:
    """Elementwise focal loss into `output` (N, C); mmcv's kernel formula."""
    pos, p, tiny, w = _focal_terms(input, target, weight)
    term_p = (1 - p).pow(gamma) * torch.log(p.clamp(min=tiny))
    term_n = p.pow(gamma) * torch.log((1 - p).clamp(min=tiny))
    loss = torch.where(pos, -alpha * term_p, -(1 - alpha) * term_n)
    output.copy_(loss if w is None else loss * w)


def sigmoid_focal_loss_backward(input: Tensor, target: Tensor, weight: Tensor, grad_input: Tensor,
                                gamma: float, alpha: float) -> None:
    """d(loss)/d(input) into `grad_input` (N, C); mmcv's kernel formula."""
    pos, p, tiny, w = _focal_terms(input, target, weight)
    term_p = (1 - p).pow(gamma) * (1 - p - gamma * p * torch.log(p.clamp(min=tiny)))
    term_n = p.pow(gamma) * (gamma * (1 - p) * torch.log((1 - p).clamp(min=tiny)) - p)
    grad = torch.where(pos, -alpha * term_p, -(1 - alpha) * term_n)
    grad_input.copy_(grad if w is None else grad * w)


def get_compiler_version() -> str:
    return f"none (unmix stand-in over torchvision {torchvision.__version__})"


def get_compiling_cuda_version() -> str:
    return torch.version.cuda or "not available"


def __getattr__(name: str):
    """Any other kernel: a function that fails loudly when called (not when looked up, since
    `mmcv.utils.ext_loader.load_ext` checks every name of every op module at import time)."""
    if name.startswith("__"):
        raise AttributeError(name)

    def missing(*args, **kwargs):
        raise MissingKernelError(
            f"mmcv op {name!r} needs compiled mmcv; unmix's stand-in provides only "
            f"{', '.join(PROVIDED)}. To use it, {HOW_TO_FIX}")

    missing.__name__ = name
    return missing
