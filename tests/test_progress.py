"""Fine-tuning's progress line (transfer/detection/progress.py) in mmengine's Runner, on a clock
the test drives, and the ETA arithmetic shared with pretraining (unmix/core/eta.py)."""
import torch
from mmengine.model import BaseModel
from mmengine.registry import DATASETS, MODELS

from transfer.stack import ensure_stack

ensure_stack()

from transfer.detection.progress import ProgressHook  # noqa: E402
from unmix.core.eta import format_duration, remaining_s  # noqa: E402


@DATASETS.register_module(force=True)
class ProgressToySet(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return {"inputs": torch.full((2,), float(i))}


@MODELS.register_module(force=True)
class ProgressToyModel(BaseModel):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(2))

    def forward(self, inputs, data_samples=None, mode="tensor"):
        return {"loss": (inputs * self.w).pow(2).mean()}


class Clock:
    """4 s pass between two readings."""

    def __init__(self):
        self.t = -4.0

    def __call__(self):
        self.t += 4.0
        return self.t


def test_a_line_every_10_s_with_loss_lr_and_eta(tmp_path):
    """Readings at 0 (before training), 4, 8, 12, ... s: with a 10 s interval the lines come after
    iterations 3 and 6, and after the last one (7). At iteration 3, 12 s for 3 iterations leaves
    4 x 4 = 16 s."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    cfg = Config(dict(
        model=dict(type="ProgressToyModel"), work_dir=str(tmp_path),
        train_dataloader=dict(dataset=dict(type="ProgressToySet"), batch_size=2, num_workers=0,
                              sampler=dict(type="DefaultSampler", shuffle=False),
                              collate_fn=dict(type="default_collate")),
        train_cfg=dict(by_epoch=False, max_iters=7),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.05)),
        default_hooks=dict(checkpoint=None, logger=dict(type="LoggerHook", interval=1000)),
        default_scope="mmdet", randomness=dict(seed=0)))
    runner = Runner.from_cfg(cfg)
    hook = ProgressHook(interval_s=10, clock=Clock())
    runner.register_hook(hook)
    runner.train()
    assert [line.split()[2] for line in hook.lines] == ["3/7", "6/7", "7/7"]
    first = hook.lines[0].split()
    assert first[first.index("lr") + 1] == "0.05" and first[-1] == "16s"
    assert float(first[first.index("loss") + 1]) > 0
    assert hook.lines[-1].endswith("eta 0s")
    logged = "".join(p.read_text() for p in tmp_path.glob("*/*.log"))
    assert all(line in logged for line in hook.lines)


def test_eta_and_durations():
    assert remaining_s(30.0, 3, 10) == 70.0
    assert remaining_s(5.0, 0, 10) is None
    assert [format_duration(s) for s in (None, 42, 185, 3725)] == ["?", "42s", "3m05s", "1h02m"]
