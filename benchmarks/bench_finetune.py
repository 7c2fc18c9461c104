"""Time per training iteration: `unmix finetune` vs mmdet's own entry point (tools/train.py's
logic: Config.fromfile + Runner.from_cfg + train) on the same resolved config and the same data,
side by side in one process, alternating A/B runs. Goal: ratio ours/mmdet <= 1.02.

    python benchmarks/bench_finetune.py [--protocol voc-faster-rcnn-fpn] [--iters 12] [--rounds 2]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torchvision

from transfer.stack import ensure_stack

ensure_stack()

from mmengine.config import Config  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.registry import HOOKS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from transfer.detection import protocols  # noqa: E402
from unmix.demo import toydata  # noqa: E402
from transfer.detection.finetune import finetune  # noqa: E402

TIMES: list[float] = []


@HOOKS.register_module(force=True)
class IterTimeProbe(Hook):
    """Wall time of each training iteration (data loading included), synchronised on CUDA."""

    priority = "LOWEST"

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self._t = time.perf_counter()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        TIMES.append(time.perf_counter() - self._t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--protocol", default="voc-faster-rcnn-fpn", choices=list(protocols.PROTOCOLS))
    ap.add_argument("--arch", default="resnet18", choices=["resnet18", "resnet50"])
    ap.add_argument("--iters", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--scale", default="128,96")
    args = ap.parse_args()
    scale = tuple(int(x) for x in args.scale.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="bench_finetune_"))
    ds = protocols.get(args.protocol)["dataset"]
    n = args.iters  # 2 images/iteration over VOC07+VOC12 (n each) or COCO train (2n)
    if ds == "voc":
        root = toydata.write_voc(tmp / "voc", n, 2, size=scale, classes=toydata.VOC_CLASSES)
    else:
        root = toydata.write_coco(tmp / "coco", 2 * n, 2, size=scale, classes=toydata.COCO_CLASSES)
    torch.manual_seed(0)
    ckpt = tmp / f"{args.arch}.pth"
    torch.save(getattr(torchvision.models, args.arch)().state_dict(), ckpt)
    opts = protocols.smoke_options(args.protocol, scale=scale, iters=args.iters)
    opts["custom_hooks"] = [dict(type="IterTimeProbe")]
    opts["train_cfg.val_interval"] = 10**6  # time training only
    opts["default_hooks.checkpoint.interval"] = 10**6
    ours, theirs = [], []
    def run_ours(r: int) -> list[float]:
        TIMES.clear()
        try:
            finetune(str(ckpt), args.protocol, bn="frozen", work_dir=tmp / f"ours{r}",
                     data_root=str(root), cfg_options=opts)
        except Exception:
            pass  # evaluation on no validation run is irrelevant here; the timings are in TIMES
        return TIMES[args.warmup:]

    def run_mmdet(r: int) -> list[float]:
        # mmdet's own path (tools/train.py) on the config our first run resolved and saved.
        TIMES.clear()
        cfg = Config.fromfile(str(tmp / "ours0" / "config.py"))
        cfg.work_dir = str(tmp / f"mmdet{r}")
        Runner.from_cfg(cfg).train()
        return TIMES[args.warmup:]

    ours += run_ours(0)  # also writes the config mmdet's path reads
    for r in range(args.rounds):
        # alternate the order, so neither side always pays for running first
        if r % 2 == 0:
            theirs += run_mmdet(r)
            ours += run_ours(r + 1)
        else:
            ours += run_ours(r + 1)
            theirs += run_mmdet(r)
    mo, mt = statistics.median(ours), statistics.median(theirs)
    dev = "cuda " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    print(f"\nprotocol {args.protocol}, {args.arch}, {scale[0]}x{scale[1]}, batch 2, device {dev}")
    print(f"unmix finetune : median {mo * 1e3:8.1f} ms/iter  (n={len(ours)})")
    print(f"mmdet Runner   : median {mt * 1e3:8.1f} ms/iter  (n={len(theirs)})")
    print(f"ratio ours/mmdet: {mo / mt:.3f}  (goal <= 1.02)")


if __name__ == "__main__":
    main()
