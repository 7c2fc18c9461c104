"""`unmix doctor`: is the stack usable here? Versions, mmcv kernels, one detector iteration.

Exit 0 only if every check passes; otherwise each failing check is named with how to fix it.
"""
from __future__ import annotations

import argparse
import importlib
import platform
import time
import traceback
from typing import Callable

FIX_SETUP = "run `tools/setup.sh` (README, Quick start)"
FIX_COMPILED = "or build compiled mmcv: `tools/setup.sh --compiled-mmcv`"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None,
                        help="device for the kernel and training checks (default: cuda if available, else cpu)")
    parser.add_argument("--skip-train", action="store_true",
                        help="skip the Faster R-CNN training iteration (the slowest check, ~5 s on CPU)")


def _version(mod: str) -> str:
    try:
        module = importlib.import_module(mod)
    except Exception as e:  # reported, not raised: doctor must always print its table
        return f"MISSING ({type(e).__name__}: {e})"
    version = getattr(module, "__version__", None)
    if version is None:
        from importlib.metadata import version as dist_version

        version = dist_version(mod)
    return version


def versions() -> dict[str, str]:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__}
    for mod in ("torchvision", "mmcv", "mmengine", "mmdet", "pycocotools", "pandas"):
        info[mod] = _version(mod)
    cuda = torch.cuda.is_available()
    info["cuda"] = (f"available: {torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})"
                    if cuda else f"not available (torch built with CUDA {torch.version.cuda})")
    return info


def check_nms(device: str) -> str:
    import torch
    from mmcv.ops import nms

    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=torch.float32,
                         device=device)
    scores = torch.tensor([0.9, 0.8, 0.7], device=device)
    _, keep = nms(boxes, scores, 0.5)
    assert keep.tolist() == [0, 2], f"nms kept {keep.tolist()}, expected [0, 2]"
    return "kept [0, 2] of 3 boxes as expected"


def check_roi_align(device: str) -> str:
    import torch
    from mmcv.ops import RoIAlign

    # A linear ramp is reproduced exactly by bilinear sampling: the mean over an RoI is its centre.
    h, w = 16, 16
    feat = torch.arange(w, dtype=torch.float32, device=device).repeat(1, 1, h, 1).requires_grad_(True)
    rois = torch.tensor([[0, 2.0, 2.0, 10.0, 10.0]], device=device)
    out = RoIAlign((2, 2), spatial_scale=1.0, sampling_ratio=2, aligned=True)(feat, rois)
    # aligned=True shifts the RoI by -0.5: x in [1.5, 9.5], two bins centred at 3.5 and 7.5.
    expected = torch.tensor([[3.5, 7.5]], device=device)
    assert torch.allclose(out[0, 0], expected.expand(2, 2), atol=1e-5), f"RoIAlign gave {out[0, 0].tolist()}"
    out.sum().backward()
    assert abs(feat.grad.sum().item() - 4.0) < 1e-4, "RoIAlign gradient does not sum to the 4 output cells"
    return "forward and backward match the closed form"


def check_train_iteration(device: str) -> str:
    import torch
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmengine.config import Config
    from mmengine.optim import OptimWrapper
    from mmengine.structures import InstanceData

    from transfer.stack import mmdet_config_path

    cfg = Config.fromfile(mmdet_config_path("faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py"))
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model).to(device)
    model.train()
    img = torch.randint(0, 256, (3, 128, 160), dtype=torch.uint8, device=device)
    sample = DetDataSample(metainfo=dict(img_shape=(128, 160), ori_shape=(128, 160), scale_factor=(1.0, 1.0),
                                         pad_shape=(128, 160), batch_input_shape=(128, 160)))
    sample.gt_instances = InstanceData(bboxes=torch.tensor([[20.0, 30.0, 90.0, 100.0]], device=device),
                                       labels=torch.tensor([3], device=device))
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9))
    start = time.perf_counter()
    losses = model.train_step(dict(inputs=[img], data_samples=[sample]), optim)
    took = time.perf_counter() - start
    total = sum(v.item() for k, v in losses.items() if "loss" in k)
    assert torch.isfinite(torch.tensor(total)), f"non-finite loss {total}"
    return f"Faster R-CNN R50-FPN train step on {device}: loss {total:.3f}, {took:.2f} s"


def run(args: argparse.Namespace) -> int:
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    print("unmix doctor")
    for name, value in versions().items():
        print(f"  {name:<12} {value}")
    from unmix.core.threads import openmp_runtime

    print(f"  {'threads':<12} {getattr(args, 'thread_policy', None) or torch.get_num_threads()}")
    print(f"  {'openmp':<12} {openmp_runtime()} (torch {torch.get_num_threads()} threads)")
    failures: list[str] = []

    def check(name: str, fn: Callable[[], str], fix: str) -> None:
        try:
            print(f"  [ok]   {name}: {fn()}")
        except Exception as e:
            last = traceback.extract_tb(e.__traceback__)[-1]
            print(f"  [FAIL] {name}: {type(e).__name__}: {e} (at {last.filename}:{last.lineno})")
            print(f"         fix: {fix}")
            failures.append(name)

    def stack() -> str:
        from transfer.stack import ensure_stack, mmcv_ops_kind

        ensure_stack()
        kind = mmcv_ops_kind()
        desc = {"compiled": "compiled mmcv kernels",
                "stand-in": "unmix's torchvision-backed stand-in (transfer/stack/mmcv_ext.py)"}.get(kind, kind)
        return f"mmcv ops: {desc}; mmdet modules registered"

    check("stack", stack, FIX_SETUP)
    if not failures:
        check("mmcv.ops.nms", lambda: check_nms(device), f"{FIX_SETUP}, {FIX_COMPILED}")
        check("mmcv.ops.RoIAlign", lambda: check_roi_align(device), f"{FIX_SETUP}, {FIX_COMPILED}")
        if not args.skip_train:
            check("detector", lambda: check_train_iteration(device), FIX_SETUP)
    if failures:
        print(f"unmix doctor: {len(failures)} check(s) failed: {', '.join(failures)}")
        return 1
    print("unmix doctor: all checks passed")
    return 0
