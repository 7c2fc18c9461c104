"""Write tests/golden/mmcv_ops.pt: compiled mmcv 2.1.0's outputs on fixed inputs.

Run once in an environment with compiled mmcv (`tools/setup.sh --compiled-mmcv`):
    python tests/golden/make_mmcv_golden.py
The stand-in tests (tests/test_mmcv_ext.py) then pin our torchvision-backed kernels to these
numbers without needing compiled mmcv. Compiled mmcv has no CPU sigmoid-focal-loss kernel (CUDA
only), so that entry is mmcv's CUDA kernel formula evaluated in float64 (see `focal_reference`).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import torch

OUT = Path(__file__).with_name("mmcv_ops.pt")


def inputs() -> dict:
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 4, 20, 24, generator=g, dtype=torch.float64)
    k = 32
    xy1 = torch.rand(k, 2, generator=g, dtype=torch.float64) * torch.tensor([80.0, 64.0])
    wh = torch.rand(k, 2, generator=g, dtype=torch.float64) * 40 + 0.5
    idx = torch.randint(0, 2, (k, 1), generator=g).double()
    rois = torch.cat([idx, xy1, xy1 + wh], dim=1)
    grad_out = torch.randn(k, 4, 7, 7, generator=g, dtype=torch.float64)
    # NMS: clustered boxes so suppression really happens; distinct scores (ties are order-undefined)
    centers = torch.rand(6, 2, generator=g) * 100
    b = centers.repeat_interleave(25, 0) + torch.randn(150, 2, generator=g) * 6
    size = torch.rand(150, 2, generator=g) * 30 + 10
    boxes = torch.cat([b, b + size], dim=1).float()
    scores = torch.randperm(150, generator=g).float() / 150 + 0.001
    logits = torch.randn(40, 5, generator=g, dtype=torch.float64) * 3
    target = torch.randint(0, 6, (40,), generator=g)  # 5 = background
    weight = torch.rand(6, generator=g, dtype=torch.float64) + 0.5
    return dict(feats=feats, rois=rois, grad_out=grad_out, boxes=boxes, scores=scores,
                logits=logits, target=target, weight=weight)


def focal_reference(logits, target, weight, gamma=2.0, alpha=0.25):
    """mmcv/ops/csrc/common/cuda/sigmoid_focal_loss_cuda_kernel.cuh, element by element."""
    flt_min = 1.1754943508222875e-38
    n, c = logits.shape
    fwd = torch.zeros(n, c, dtype=torch.float64)
    bwd = torch.zeros(n, c, dtype=torch.float64)
    for i in range(n):
        t = int(target[i])
        for j in range(c):
            p = 1.0 / (1.0 + math.exp(-float(logits[i, j])))
            if t == j:
                f = -alpha * (1 - p) ** gamma * math.log(max(p, flt_min))
                b = -alpha * (1 - p) ** gamma * (1 - p - gamma * p * math.log(max(p, flt_min)))
            else:
                f = -(1 - alpha) * p ** gamma * math.log(max(1 - p, flt_min))
                b = -(1 - alpha) * p ** gamma * (gamma * (1 - p) * math.log(max(1 - p, flt_min)) - p)
            w = float(weight[t]) if weight is not None else 1.0
            fwd[i, j], bwd[i, j] = f * w, b * w
    return fwd, bwd


def main() -> int:
    import mmcv
    import importlib.util

    if importlib.util.find_spec("mmcv._ext") is None:
        print("compiled mmcv is required (tools/setup.sh --compiled-mmcv)", file=sys.stderr)
        return 1
    from mmcv.ops import nms, roi_align

    x = inputs()
    out = {"mmcv_version": str(mmcv.__version__), "torch_version": str(torch.__version__), "inputs": x}
    for aligned in (True, False):
        for sr in (0, 2):
            f = x["feats"].clone().requires_grad_(True)
            y = roi_align(f, x["rois"], (7, 7), 0.25, sr, "avg", aligned)
            y.backward(x["grad_out"])
            out[f"roi_align_fwd_aligned{int(aligned)}_sr{sr}"] = y.detach()
            out[f"roi_align_bwd_aligned{int(aligned)}_sr{sr}"] = f.grad.detach()
    for thr in (0.3, 0.5, 0.7):
        for offset in (0, 1):
            _, keep = nms(x["boxes"], x["scores"], thr, offset=offset)
            out[f"nms_keep_thr{thr}_offset{offset}"] = keep
    for w in (None, x["weight"]):
        fwd, bwd = focal_reference(x["logits"], x["target"], w)
        out[f"focal_fwd_weight{w is not None:d}"] = fwd
        out[f"focal_bwd_weight{w is not None:d}"] = bwd
    torch.save(out, OUT)
    print(f"wrote {OUT} ({len(out)} entries)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
