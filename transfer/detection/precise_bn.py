"""Precise BN: replace the BN running statistics by their true average over N training batches.

MoCo's detectron2 protocols (`TEST.PRECISE_BN.ENABLED: True`, `NUM_ITER` 200) run detectron2's
`hooks.PreciseBN` once, after the last training iteration and before the final checkpoint and
evaluation. It calls fvcore's `update_bn_stats` as it was in early 2020 (fvcore 857aeb3,
2020-02-18, the version detectron2 v0.1.1 used), which this module reproduces:

- the layers: every BatchNorm1d/2d/3d and SyncBatchNorm module that is in training mode (in a
  C4 detector with `norm_eval=False`: all backbone BNs, the res5 head's BNs and its extra norm);
- the data: a *new* training data loader (training augmentation), with no workers;
- the forward: the model in training mode, without gradients, one batch per iteration;
- the averaging: each BN's momentum is set to 1, so after a batch its `running_mean` is that
  batch's mean and its `running_var` that batch's *unbiased* variance (torch BN's update rule);
  the result is the plain mean over the N batches of those per-batch values, each batch weighted
  equally (fvcore's "average of variance"). fvcore changed this in 2021-05 (batch-size-weighted
  population variance); that later estimator is not the one the published numbers used.

`update_bn_stats` is the pure part (a model, batches and a forward function); `PreciseBNHook`
(type='PreciseBNHook' in `custom_hooks`) is the mmengine hook around it.
"""
from __future__ import annotations

import copy
import itertools
import time
from typing import Any, Callable, Iterable, Iterator

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmdet.registry import HOOKS
from torch import nn

from unmix.core.errors import UnmixError

# fvcore 857aeb3 precise_bn.py:9-14 (nn.SyncBatchNorm subclasses none of the others).
BN_TYPES: tuple[type[nn.Module], ...] = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d,
                                         nn.SyncBatchNorm)


def bn_modules(model: nn.Module) -> list[nn.Module]:
    """The BN layers whose statistics Precise BN recomputes: those in training mode."""
    return [m for m in model.modules() if m.training and isinstance(m, BN_TYPES)]


@torch.no_grad()
def update_bn_stats(model: nn.Module, batches: Iterable[Any], num_iters: int,
                    forward: Callable[[Any], Any],
                    progress: Callable[[int], None] | None = None) -> int:
    """Set every training-mode BN's running mean/var to the mean over `num_iters` batches of
    that batch's mean / unbiased variance. Returns the number of BN layers updated.

    `forward(batch)` runs the model on one batch (in training mode); `progress(i)` is called
    after batch i (1-based). Raises UnmixError if `batches` yields fewer than `num_iters`.

    Shape: each BN's running_mean and running_var (C,), C its number of channels.
    """
    if num_iters < 1:
        raise UnmixError(f"precise BN: num_iters must be >= 1, got {num_iters}")
    bns = bn_modules(model)
    if not bns:
        return 0
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = 1.0  # running stats := this batch's stats
    means = [torch.zeros_like(bn.running_mean) for bn in bns]
    variances = [torch.zeros_like(bn.running_var) for bn in bns]
    done = 0
    try:
        for batch in itertools.islice(batches, num_iters):
            forward(batch)
            done += 1
            for i, bn in enumerate(bns):  # running average over batches, equal weights
                means[i] += (bn.running_mean - means[i]) / done
                variances[i] += (bn.running_var - variances[i]) / done
            if progress is not None:
                progress(done)
        if done != num_iters:
            raise UnmixError(f"precise BN needs {num_iters} batches but the data loader gave "
                             f"only {done}")
        for i, bn in enumerate(bns):
            bn.running_mean.copy_(means[i])
            bn.running_var.copy_(variances[i])
    finally:
        for bn, m in zip(bns, momenta):
            bn.momentum = m
    return len(bns)


def _cycle(loader: Iterable[Any]) -> Iterator[Any]:
    """Batches forever: a finite (epoch-based) loader is restarted, as detectron2's infinite
    training sampler would simply go on."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            return


@HOOKS.register_module()
class PreciseBNHook(Hook):
    """detectron2's PreciseBN hook for mmengine: after the last training iteration (and every
    `interval` iterations if > 0, detectron2's TEST.EVAL_PERIOD), recompute the statistics of
    the training-mode BN layers over `num_iters` batches of a new training data loader.

    Priority LOW: after the optimizer step of the last iteration, before CheckpointHook
    (VERY_LOW), so the last checkpoint holds the precise statistics, as detectron2 orders them.
    """

    priority = "LOW"

    def __init__(self, num_iters: int = 200, interval: int = 0, num_workers: int = 0) -> None:
        if num_iters < 1:
            raise UnmixError(f"PreciseBNHook: num_iters must be >= 1, got {num_iters}")
        self.num_iters = int(num_iters)
        self.interval = int(interval)
        self.num_workers = int(num_workers)
        self.updates = 0  # how many times the statistics were recomputed

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None,
                         outputs: Any = None) -> None:
        done = runner.iter + 1  # iterations finished, as detectron2's `trainer.iter + 1`
        if done == runner.max_iters or (self.interval > 0 and done % self.interval == 0):
            self.update(runner)

    def _loader(self, runner):
        cfg = copy.deepcopy(runner.cfg.train_dataloader)
        cfg["num_workers"] = self.num_workers
        cfg["persistent_workers"] = False
        # A new order (detectron2 builds a new training loader), reproducible from the run's seed.
        seed = None if runner.seed is None else runner.seed + 1
        return runner.build_dataloader(cfg, seed=seed)

    def update(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not bn_modules(model):
            runner.logger.info("precise BN: no BN layer in training mode, nothing to update")
            return
        t0 = time.time()

        def forward(batch: Any) -> None:
            data = model.data_preprocessor(batch, True)
            model._run_forward(data, mode="loss")

        def progress(i: int) -> None:
            if i % 50 == 0 or i == self.num_iters:
                eta = (time.time() - t0) / i * (self.num_iters - i)
                runner.logger.info(f"precise BN: {i}/{self.num_iters} batches, ETA {eta:.0f}s")

        runner.logger.info(f"precise BN: recomputing BN statistics over {self.num_iters} "
                           "training batches")
        n = update_bn_stats(model, _cycle(self._loader(runner)), self.num_iters, forward, progress)
        self.updates += 1
        runner.logger.info(f"precise BN: updated {n} BN layers in {time.time() - t0:.1f}s")
