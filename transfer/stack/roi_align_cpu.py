"""RoIAlign's backward on the CPU, vectorised, with the numbers of torchvision's kernel to the bit.

torchvision's CPU `_roi_align_backward` walks the output gradient one element (RoI, channel, bin)
at a time and recomputes that bin's sampling geometry (float and integer divisions, bilinear
weights) for every channel. In the demo's Faster R-CNN (about 500 RoIs x 64 channels a step) that
was 5.8 of a fine-tuning run's ~42 CPU seconds, five times the forward pass (which shares the
geometry across channels). Here the geometry is computed once per sampling point; each
(point, corner) then contributes one row of C gradients, added into a (B*H*W, C) buffer by
`scatter_add_` along dim 0.

Same numbers, not only close ones: each float operation is the kernel's (`(g * w) / count`, the
sample position summed in the kernel's order, `1. - ly` in double as the C++ evaluates it, the
float dtype of the input), and every grad_input element gets its additions in the kernel's order
(RoI, bin row, bin column, sample row, sample column, corner), because the CPU scatter_add_ adds
the rows that share a target in index order (its sorted fast path sorts stably, its generic loop
walks the index). That last point is the kernel's behaviour, not a documented promise:
tests/test_roi_align_cpu.py pins the whole function to torchvision's, bit for bit.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

# Rows of C gradients formed at a time: about 2 MiB of float32, so the rows stay in cache
# between being formed and being added (measured: 2-4x faster than one 25 MB block).
BLOCK_ELEMENTS = 1 << 19


def supported(grad: Tensor) -> bool:
    """CPU float32/float64: what this module reproduces (half and CUDA stay with torchvision)."""
    return grad.device.type == "cpu" and grad.dtype in (torch.float32, torch.float64)


def _samples(rois: Tensor, dt: torch.dtype, spatial_scale: float, pooled: tuple[int, int],
             sampling_ratio: int, aligned: bool) -> tuple[Tensor, ...]:
    """Every sampling point in the kernel's order (RoI, bin row, bin column, sample row, sample
    column): (RoI index, bin row, bin column, y, x, count of the point's bin)."""
    ph_n, pw_n = pooled
    scale = torch.tensor(spatial_scale, dtype=dt)  # the kernel's `const T& spatial_scale`
    offset = torch.tensor(0.5 if aligned else 0.0, dtype=dt)
    start_w, start_h = rois[:, 1] * scale - offset, rois[:, 2] * scale - offset
    width = (rois[:, 3] * scale - offset) - start_w
    height = (rois[:, 4] * scale - offset) - start_h
    if not aligned:  # malformed RoIs become 1x1, as in the kernel
        width, height = width.clamp_min(1.0), height.clamp_min(1.0)
    bin_h, bin_w = height / ph_n, width / pw_n
    if sampling_ratio > 0:
        grid_h = grid_w = torch.full((rois.shape[0],), sampling_ratio, dtype=torch.long)
    else:  # ceil(roi_height / pooled_height); an empty or inverted RoI samples nothing
        grid_h = torch.ceil(height / ph_n).long().clamp_min(0)
        grid_w = torch.ceil(width / pw_n).long().clamp_min(0)
    per_roi = ph_n * pw_n * grid_h * grid_w
    n = torch.repeat_interleave(torch.arange(rois.shape[0]), per_roi)
    j = torch.arange(n.numel()) - torch.repeat_interleave(torch.cumsum(per_roi, 0) - per_roi, per_roi)
    gh, gw = grid_h[n], grid_w[n]
    ix, j = j % gw, j // gw
    iy, j = j % gh, j // gh
    pw, ph = j % pw_n, j // pw_n
    # y = roi_start_h + ph * bin_size_h + (iy + .5f) * bin_size_h / roi_bin_grid_h, left to right
    y = start_h[n] + ph.to(dt) * bin_h[n] + (iy.to(dt) + 0.5) * bin_h[n] / gh.to(dt)
    x = start_w[n] + pw.to(dt) * bin_w[n] + (ix.to(dt) + 0.5) * bin_w[n] / gw.to(dt)
    return n, ph, pw, y, x, (gh * gw).to(dt)


def _corners(y: Tensor, x: Tensor, height: int, width: int) -> tuple[Tensor, Tensor, Tensor]:
    """The kernel's bilinear_interpolate_gradient: (inside, (S, 4) weights, (S, 4) positions in
    one H*W plane)."""
    dt = y.dtype
    inside = ~((y < -1.0) | (y > height) | (x < -1.0) | (x > width))
    zero = torch.zeros((), dtype=dt)
    y, x = torch.where(y <= 0, zero, y), torch.where(x <= 0, zero, x)
    y_low, x_low = y.long(), x.long()  # (int) of a non-negative value
    y_top, x_top = y_low >= height - 1, x_low >= width - 1
    y_low, x_low = torch.where(y_top, height - 1, y_low), torch.where(x_top, width - 1, x_low)
    y_high, x_high = torch.where(y_top, y_low, y_low + 1), torch.where(x_top, x_low, x_low + 1)
    y, x = torch.where(y_top, y_low.to(dt), y), torch.where(x_top, x_low.to(dt), x)
    ly, lx = y - y_low.to(dt), x - x_low.to(dt)
    hy, hx = (1.0 - ly.double()).to(dt), (1.0 - lx.double()).to(dt)  # `T hy = 1. - ly`
    weights = torch.stack([hy * hx, hy * lx, ly * hx, ly * lx], 1)
    rows_low, rows_high = y_low * width, y_high * width
    pos = torch.stack([rows_low + x_low, rows_low + x_high, rows_high + x_low, rows_high + x_high], 1)
    return inside, weights, pos


def roi_align_backward(grad: Tensor, rois: Tensor, spatial_scale: float, pooled_height: int,
                       pooled_width: int, batch: int, channels: int, height: int, width: int,
                       sampling_ratio: int, aligned: bool) -> Tensor:
    """torchvision.ops' `_roi_align_backward(grad, rois, ...)` on the CPU: (batch, channels,
    height, width), the same bits. grad: (K, C, pooled_height, pooled_width); rois: (K, 5)."""
    out = grad.new_zeros(batch * height * width, channels)
    k, dt = rois.shape[0], grad.dtype
    if grad.numel() > 0 and k > 0:
        n, ph, pw, y, x, count = _samples(rois.contiguous().to(dt), dt, spatial_scale,
                                          (pooled_height, pooled_width), sampling_ratio, aligned)
        inside, weights, pos = _corners(y, x, height, width)
        pos = pos + (rois[:, 0].long()[n] * (height * width)).unsqueeze(1)
        rows = (n * pooled_height + ph) * pooled_width + pw  # the grad row of each point's bin
        if not bool(inside.all()):  # the kernel adds nothing for points outside the map
            keep = inside.nonzero().squeeze(1)
            weights, pos, rows, count = weights[keep], pos[keep], rows[keep], count[keep]
        # (K, C, ph, pw) -> rows (K*ph*pw, C); numpy's transposing copy measured ~1.5x torch's here
        g = torch.from_numpy(np.ascontiguousarray(grad.detach().numpy().transpose(0, 2, 3, 1)))
        g = g.view(-1, channels)
        if rows.numel() != g.shape[0] or not bool((rows == torch.arange(g.shape[0])).all()):
            g = g.index_select(0, rows)  # bins with several points (or none) repeat (drop) rows
        divide = not bool((count == 1).all())  # x / 1 == x exactly: skip the common case
        block = max(1, BLOCK_ELEMENTS // (4 * channels))
        for a in range(0, rows.numel(), block):
            b = min(a + block, rows.numel())
            vals = g[a:b, None, :] * weights[a:b, :, None]  # (points, 4 corners, C)
            if divide:
                vals.div_(count[a:b, None, None])
            out.scatter_add_(0, pos[a:b].reshape(-1, 1).expand(-1, channels), vals.view(-1, channels))
    return out.view(batch, height, width, channels).permute(0, 3, 1, 2)
