"""Images/s of a MoCo v2 training step (forward + backward + SGD step), baseline vs Un-Mix.

Variants, timed side by side in one run (round-robin, one step of each in turn, median per
variant): asymmetric and symmetric MoCo v2, each without and with Un-Mix, plus an
"official-style" symmetric Un-Mix that encodes the reversed mixture a second time instead of
reversing the mixed embeddings.

Compute bound (a query forward+backward costs ~3 forwards, a key forward 1):
  asymmetric: base 1 query (3) + 1 key (1) = 4;  Un-Mix 2 queries + 1 key = 7   -> 7/4  = 1.75
  symmetric:  base 2 queries + 2 keys = 8;       Un-Mix 3 queries + 2 keys = 11 -> 11/8 = 1.375
  official symmetric: 4 queries + 2 keys = 14                                    -> 14/8 = 1.75
(counting forwards only: 3/2, 5/4 and 6/4). Goals: <= 1.8 asymmetric, <= 1.4 symmetric.

    python benchmarks/bench_unmix_step.py --batch 128 --iters 20 [--official PATH/unmix_c10.py]
        [--only "sym Un-Mix,sym Un-Mix bn_stats=official"]   (these variants and their baselines)

`--official` times the authors' own `ModelMoCo` (their CIFAR script, szq0214/Un-Mix
`unmix_c10.py`, from your checkout; nothing of it is in this repository) beside ours on the same
views and the same mixtures. The script trains at import, so only its torch imports and its three
model classes (SplitBatchNorm, ModelBase, ModelMoCo) are executed; its `.cuda()` calls are
identities on a CPU run. Its mixture is built as its training loop builds it (outside the model,
timed with the step), here with our `sample_mix`/`mix` from a generator seeded as ours.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import statistics
import time
from functools import partial
from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor

from pretrain.losses import info_nce
from pretrain.methods.moco import MoCo
from pretrain.mixing import mix, sample_mix


class OfficialMoCo(MoCo):
    """Symmetric Un-Mix as the official code computes it: the mixture encoded once per symmetric
    term (4 query passes + 2 key passes per step). Same loss value as `MoCo`."""

    def forward(self, views: list[Tensor], generator: torch.Generator | None = None
                ) -> dict[str, Tensor]:
        x1, x2 = views
        self._momentum_update()
        lo = partial(info_nce, queue=self.queue.clone(), temperature=self.T)
        k1, k2 = self._key(x1, generator), self._key(x2, generator)
        loss = lo(self._query(x1), k2) + lo(self._query(x2), k1)
        p = sample_mix(x1.shape, self.unmix.beta, self.unmix.prob, generator)
        x_mix = mix(x1, p)
        for k in (k2, k1):
            # one encoding of the mixture per symmetric term, reversed by flipping embeddings
            q_m = self._query(x_mix)
            loss = loss + p.lam * lo(q_m, k) + (1 - p.lam) * lo(q_m.flip(0), k)
        self._enqueue(torch.cat([k1, k2]))
        return {"loss": loss}


OFFICIAL_CLASSES = ("SplitBatchNorm", "ModelBase", "ModelMoCo")
OFFICIAL = "official code's ModelMoCo (symmetric)"


def load_official(path: Path) -> type:
    """`ModelMoCo` of the authors' CIFAR script without running the script: only its imports of
    torch/torchvision/numpy/functools/math and the three model classes are executed."""
    tree = ast.parse(path.read_text(), filename=str(path))

    def kept(node: ast.stmt) -> bool:
        if isinstance(node, ast.ClassDef):
            return node.name in OFFICIAL_CLASSES
        if isinstance(node, ast.Import):
            return all(a.name.split(".")[0] in {"torch", "torchvision", "numpy", "functools", "math"}
                       for a in node.names)
        if isinstance(node, ast.ImportFrom):
            return (node.module or "").split(".")[0] in {"torch", "torchvision", "functools"}
        return False

    namespace: dict = {}
    exec(compile(ast.Module([n for n in tree.body if kept(n)], []), str(path), "exec"), namespace)
    missing = [c for c in OFFICIAL_CLASSES if c not in namespace]
    if missing:
        raise SystemExit(f"{path}: no class {', '.join(missing)} (expected the authors' unmix_c10.py)")
    return namespace["ModelMoCo"]


@contextlib.contextmanager
def cuda_as_identity(active: bool) -> Iterator[None]:
    """The official code calls .cuda() on tensors and modules; on a CPU run those are no-ops."""
    if not active:
        yield
        return
    saved = torch.Tensor.cuda, torch.nn.Module.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self
    try:
        yield
    finally:
        torch.Tensor.cuda, torch.nn.Module.cuda = saved


VARIANTS = {  # name: (class, symmetric, unmix, other MoCo arguments)
    "asym base": (MoCo, False, False, {}),
    "asym Un-Mix": (MoCo, False, True, {}),
    "sym base": (MoCo, True, False, {}),
    "sym Un-Mix": (MoCo, True, True, {}),
    # the official BN running-statistics order (one extra no-grad mixture forward; fidelity.md row 28)
    "sym Un-Mix bn_stats=official": (MoCo, True, True, {"bn_stats": "official"}),
    "sym Un-Mix official (2 mix encodings)": (OfficialMoCo, True, True, {}),
}
BASELINE = {"asym Un-Mix": "asym base", "sym Un-Mix": "sym base", "sym Un-Mix bn_stats=official": "sym base",
            "sym Un-Mix official (2 mix encodings)": "sym base"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--iters", type=int, default=20, help="timed steps per variant")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--size", type=int, default=32, help="image side (CIFAR: 32)")
    ap.add_argument("--split-bn", type=int, default=8, help="SplitBatchNorm groups (0: plain BN)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--official", type=Path, default=None,
                    help="the authors' unmix_c10.py (szq0214/Un-Mix): time its ModelMoCo beside ours")
    ap.add_argument("--only", default=None,
                    help="comma-separated variant names to time (default: all); their baselines are added")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    # mixtures are drawn with prob 0.5 global / region; both cost the same encoder passes
    models, opts = {}, {}
    chosen = VARIANTS
    if args.only:
        names = [n.strip() for n in args.only.split(",")]
        unknown = [n for n in names if n not in VARIANTS]
        if unknown:
            raise SystemExit(f"--only: no variant {unknown}; choose from {list(VARIANTS)}")
        names += [BASELINE[n] for n in names if n in BASELINE]
        chosen = {n: v for n, v in VARIANTS.items() if n in names}
    for name, (cls, symmetric, unmix, extra) in chosen.items():
        torch.manual_seed(0)
        m = cls(arch="resnet18", stem="cifar", version="v2", K=4096, m=0.99, T=0.1,
                symmetric=symmetric, split_bn=args.split_bn,
                unmix={"enabled": unmix, "beta": 1.0, "prob": 0.5}, **extra).to(dev).train()
        models[name] = m
        opts[name] = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.06,
                                     momentum=0.9, weight_decay=5e-4)
    variants = dict(chosen)
    if args.official:
        with cuda_as_identity(dev.type != "cuda"):
            torch.manual_seed(0)
            m = load_official(args.official)(dim=128, K=4096, m=0.99, T=0.1, arch="resnet18",
                                             bn_splits=args.split_bn, symmetric=True).to(dev).train()
        models[OFFICIAL], variants[OFFICIAL] = m, None
        opts[OFFICIAL] = torch.optim.SGD(m.parameters(), lr=0.06, momentum=0.9, weight_decay=5e-4)
        BASELINE[OFFICIAL] = "sym base"
    g = torch.Generator().manual_seed(0)
    g_official = torch.Generator().manual_seed(0)
    views = [torch.randn(args.batch, 3, args.size, args.size, device=dev) for _ in range(2)]

    def loss_of(name: str) -> torch.Tensor:
        if name != OFFICIAL:
            return models[name](views, g)["loss"]
        x1, x2 = views  # the official training loop: the mixture is made outside the model
        p = sample_mix(x1.shape, 1.0, 0.5, g_official)
        x_mix = mix(x1, p)
        with cuda_as_identity(dev.type != "cuda"):
            return models[name](x1, x2, x_mix, x_mix.flip(0), p.lam)

    def step(name: str) -> float:
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        opts[name].zero_grad(set_to_none=True)
        loss_of(name).backward()
        opts[name].step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    times: dict[str, list[float]] = {n: [] for n in variants}
    for it in range(args.warmup + args.iters):
        for name in variants:  # round-robin: machine load drifts equally over all variants
            dt = step(name)
            if it >= args.warmup:
                times[name].append(dt)
        print(f"iter {it + 1}/{args.warmup + args.iters}", flush=True)

    print(f"\nMoCo v2 ResNet-18 CIFAR stem, batch {args.batch}, {args.size}px, split_bn "
          f"{args.split_bn}, {dev}, {args.iters} timed steps (median)")
    print(f"{'variant':40s} {'step ms':>9s} {'img/s':>8s} {'ratio':>7s}")
    med = {n: statistics.median(t) for n, t in times.items()}
    for name in variants:
        ratio = f"{med[name] / med[BASELINE[name]]:.2f}" if name in BASELINE else "1.00"
        print(f"{name:40s} {1e3 * med[name]:9.1f} {args.batch / med[name]:8.1f} {ratio:>7s}")
    if args.official:
        print(f"ours sym Un-Mix vs the official code: {med[OFFICIAL] / med['sym Un-Mix']:.2f}x faster "
              "(goal 1.25x; the FLOP bound of one saved encoder pass is 1.27x)")
    print("bounds: asym 7/4 = 1.75, sym 11/8 = 1.375, official sym 14/8 = 1.75; "
          "goals: asym <= 1.8, sym <= 1.4")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
