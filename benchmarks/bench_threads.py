"""Pretraining throughput under the old thread default and the new policy, idle and beside one
busy process, measured side by side in one run (unmix.core.threads; README "Threads").

Each measurement is a fresh child process (OpenMP reads its variables when torch starts) that
times Un-Mix MoCo v2 steps of the demo's pretraining config (configs/demo/pretrain-moco-v2-unmix.py:
ResNet-18, 32 px, batch 32) on random views. "old" is torch's default (threads = cores, libgomp's
spinning wait); "new" is `thread_environment(cores)` (passive wait). The busy process is `yes`
writing to /dev/null, as a user's other job. Rounds alternate the order of the cells, so drift
of the machine's load hits both policies alike. Goal (issue 16): under one busy process, at least
40% of the idle throughput (a fair share of 2 cores is 50%).

    .venv/bin/python benchmarks/bench_threads.py [--rounds 3] [--steps 6]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from unmix.core.threads import COUNT_VARIABLES, WAIT_VARIABLES, available_cores, thread_environment  # noqa: E402

CHILD = r"""
import json, sys, time
import torch
from pretrain.methods import build_method
from pretrain.train import load_config
from unmix.core.config import to_plain
cfg = load_config(sys.argv[1])
m = to_plain(cfg.model.to_dict())
torch.manual_seed(0)
model = build_method(m).train()
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
batch, steps = int(sys.argv[2]), int(sys.argv[3])
views = [torch.randn(batch, 3, 32, 32) for _ in range(2)]
g = torch.Generator().manual_seed(0)
times = []
for i in range(steps + 1):
    t = time.perf_counter()
    loss = model(views, generator=g)["loss"]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if i:
        times.append(time.perf_counter() - t)
print(json.dumps({"img_s": batch * len(times) / sum(times), "threads": torch.get_num_threads()}))
"""


def environments(cores: int) -> dict[str, dict[str, str]]:
    base = {k: v for k, v in os.environ.items() if k not in WAIT_VARIABLES + COUNT_VARIABLES}
    base["PYTHONPATH"] = str(REPO)
    return {"old": {**base, **{k: str(cores) for k in COUNT_VARIABLES}},
            "new": thread_environment(cores, base)}


def measure(env: dict[str, str], batch: int, steps: int) -> float:
    config = str(REPO / "configs" / "demo" / "pretrain-moco-v2-unmix.py")
    out = subprocess.run([sys.executable, "-c", CHILD, config, str(batch), str(steps)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["img_s"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--batch", type=int, default=32)
    args = p.parse_args()
    cores = available_cores()
    envs = environments(cores)
    results: dict[tuple[str, str], list[float]] = {}
    for r in range(args.rounds):
        for load in ("idle", "busy"):
            busy = subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) if load == "busy" else None
            try:
                for name in (("old", "new") if r % 2 == 0 else ("new", "old")):
                    results.setdefault((name, load), []).append(measure(envs[name], args.batch, args.steps))
            finally:
                if busy:
                    busy.kill()
                    busy.wait()
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    med = {k: sorted(v)[len(v) // 2] for k, v in results.items()}
    print(f"Un-Mix MoCo v2 demo step, batch {args.batch}, {cores} cores, median of {args.rounds} rounds")
    print(f"  {'policy':<6} {'idle img/s':>11} {'1 busy img/s':>13} {'busy/idle':>10}")
    for name in ("old", "new"):
        idle, busy = med[(name, "idle")], med[(name, "busy")]
        print(f"  {name:<6} {idle:11.1f} {busy:13.1f} {busy / idle:10.2f}")
    print(f"  new/old: idle {med[('new', 'idle')] / med[('old', 'idle')]:.2f}, "
          f"busy {med[('new', 'busy')] / med[('old', 'busy')]:.2f}")


if __name__ == "__main__":
    main()
