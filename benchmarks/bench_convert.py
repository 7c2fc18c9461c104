"""Time `unmix convert` on a ResNet-50 (MoCo v2 layout): load + convert + verify + save.

Goal (issue 4): conversion plus verification under 5 s on our 2-core CPU machine. The one-off
import of the OpenMMLab stack (`ensure_stack`, several seconds) is reported separately, since a
long-lived process (finetune, sweep) pays it once. Prints each phase and the ratio to the goal.

    .venv/bin/python benchmarks/bench_convert.py [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
import torchvision


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    t0 = time.perf_counter()
    from transfer.stack import ensure_stack

    ensure_stack()
    import transfer.stack.backbones  # noqa: F401
    t_stack = time.perf_counter() - t0

    from transfer.convert.conversion import save_conversion
    from transfer.convert.load import read_checkpoint
    from transfer.convert.rules import convert_state_dict
    from transfer.convert.verify import convert_and_verify, verify_features

    tmp = Path(tempfile.mkdtemp(prefix="bench_convert_"))
    q = torchvision.models.resnet50()
    sd = {f"module.encoder_q.{k}": v for k, v in q.state_dict().items()}
    sd |= {f"module.encoder_k.{k}": v.clone() for k, v in q.state_dict().items()}
    sd["module.queue"] = torch.randn(128, 65536)
    src = tmp / "moco_r50.pth.tar"
    torch.save({"epoch": 200, "arch": "resnet50", "state_dict": sd, "optimizer": {}}, src)
    size_mb = src.stat().st_size / 2**20

    print(f"machine: {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"source: MoCo v2 layout ResNet-50, {size_mb:.0f} MB; ensure_stack() import {t_stack:.2f} s")
    totals = []
    for i in range(args.repeat):
        t = time.perf_counter()
        obj, _ = read_checkpoint(src)
        t_load = time.perf_counter() - t
        t = time.perf_counter()
        conv = convert_state_dict(obj)
        t_conv = time.perf_counter() - t
        t = time.perf_counter()
        verify_features(conv)
        t_ver = time.perf_counter() - t
        t = time.perf_counter()
        full = convert_and_verify(src)         # what the CLI does: all of it, plus sha256
        save_conversion(full, tmp / "dst.pth")
        t_all = time.perf_counter() - t
        totals.append(t_all)
        print(f"run {i}: load {t_load:.2f} s, convert {t_conv:.2f} s, verify {t_ver:.2f} s; "
              f"end to end (load+convert+verify+sha256+save) {t_all:.2f} s")
    best = min(totals)
    print(f"best end to end {best:.2f} s = {best / 5.0:.2f} x the 5 s goal "
          f"(+ {t_stack:.2f} s one-off stack import in a fresh process)")


if __name__ == "__main__":
    main()
