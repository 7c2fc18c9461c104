"""Faster R-CNN R50-FPN: one training iteration and one inference pass, with compiled mmcv's
kernels vs unmix's torchvision-backed stand-in, side by side in one run.

Needs an environment with compiled mmcv (`tools/setup.sh --compiled-mmcv`, or
`--python PATH` pointing at one); each variant runs in its own subprocess (a process can hold only
one `mmcv._ext`), the stand-in forced with UNMIX_MMCV_OPS=stand-in.

    python benchmarks/bench_mmcv_ops.py [--python PY] [--iters 5] [--size 512x640] [--device cpu]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time, torch
from transfer.stack import ensure_stack, mmcv_ops_kind, mmdet_config_path
ensure_stack()
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.structures import InstanceData
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
iters, h, w, device = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
torch.manual_seed(0)
cfg = Config.fromfile(mmdet_config_path('faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'))
cfg.model.backbone.init_cfg = None
model = MODELS.build(cfg.model).to(device)
g = torch.Generator().manual_seed(0)
def batch():
    imgs, samples = [], []
    for _ in range(2):
        imgs.append(torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g).to(device))
        s = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0),
                                        pad_shape=(h, w), batch_input_shape=(h, w)))
        xy = torch.rand(4, 2, generator=g) * torch.tensor([w * 0.6, h * 0.6])
        wh = torch.rand(4, 2, generator=g) * torch.tensor([w * 0.3, h * 0.3]) + 16
        s.gt_instances = InstanceData(bboxes=torch.cat([xy, xy + wh], 1).to(device),
                                      labels=torch.randint(0, 80, (4,), generator=g).to(device))
        samples.append(s)
    return dict(inputs=imgs, data_samples=samples)
optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.0001, momentum=0.9))
sync = torch.cuda.synchronize if device.startswith('cuda') else (lambda: None)
def timed(fn):
    out = []
    for i in range(iters + 1):
        data = batch(); sync(); t = time.perf_counter(); fn(data); sync()
        if i: out.append(time.perf_counter() - t)   # first call is warm-up
    return out
model.train(); train = timed(lambda d: model.train_step(d, optim))
model.eval()
with torch.no_grad(): infer = timed(lambda d: model.test_step(d))
print(json.dumps(dict(kind=mmcv_ops_kind(), train=train, infer=infer)))
"""


def run(python: str, force_stand_in: bool, args) -> dict:
    env = dict(os.environ)
    env.pop("UNMIX_MMCV_OPS", None)
    if force_stand_in:
        env["UNMIX_MMCV_OPS"] = "stand-in"
    h, w = map(int, args.size.split("x"))
    out = subprocess.run([python, "-c", CHILD, str(args.iters), str(h), str(w), args.device],
                         capture_output=True, text=True, env=env, cwd=os.path.dirname(os.path.dirname(
                             os.path.abspath(__file__))))
    if out.returncode != 0:
        sys.exit(f"benchmark child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--python", default=sys.executable, help="interpreter of an env with compiled mmcv")
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--size", default="512x640", help="HxW of the 2 input images")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    compiled = run(args.python, False, args)
    stand_in = run(args.python, True, args)
    if compiled["kind"] != "compiled":
        print(f"note: this environment has no compiled mmcv (kind={compiled['kind']}); "
              "both columns use the stand-in")
    print(f"Faster R-CNN R50-FPN, batch 2 x {args.size}, {args.device}, median of {args.iters} "
          f"(after 1 warm-up)")
    print(f"{'pass':<12}{compiled['kind'] + ' s':>14}{stand_in['kind'] + ' s':>14}{'ratio':>8}")
    for key in ("train", "infer"):
        a, b = statistics.median(compiled[key]), statistics.median(stand_in[key])
        print(f"{key:<12}{a:>14.3f}{b:>14.3f}{b / a:>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
