"""Precise BN (transfer/detection/precise_bn.py) against a closed form: after the update every
training-mode BN holds the mean over the batches of each batch's mean and unbiased variance
(fvcore 857aeb3 `update_bn_stats`, the version MoCo's detectron2 runs used)."""
import pytest
import torch
from torch import nn

from transfer.stack import ensure_stack

ensure_stack()

from transfer.detection import precise_bn  # noqa: E402
from unmix.core.errors import UnmixError  # noqa: E402


def _batches(n=5, shape=(4, 3, 5, 6), seed=0):
    g = torch.Generator().manual_seed(seed)
    # Different scale and shift per batch: the per-batch statistics really differ.
    return [torch.randn(shape, generator=g) * (1 + k) + k for k in range(n)]


def _naive_bn_train(x, bn):
    """BN in training mode written out: normalise with the batch's biased variance."""
    mu = x.mean(dim=(0, 2, 3), keepdim=True)
    var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    w, b = bn.weight.view(1, -1, 1, 1), bn.bias.view(1, -1, 1, 1)
    return (x - mu) / torch.sqrt(var + bn.eps) * w + b


def _tiny():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Conv2d(4, 2, 1), nn.BatchNorm2d(2))
    with torch.no_grad():  # non-trivial affine, so BN1's output is not just standardised
        model[1].weight.uniform_(0.5, 2.0)
        model[1].bias.uniform_(-1.0, 1.0)
    return model.train()


def _closed_form(model, batches):
    """Per BN: (mean over batches of the batch mean, mean over batches of the unbiased var)."""
    conv1, bn1, relu, conv2, _ = model
    stats = {1: ([], []), 4: ([], [])}
    with torch.no_grad():
        for x in batches:
            y1 = conv1(x)
            y2 = conv2(relu(_naive_bn_train(y1, bn1)))
            for idx, y in ((1, y1), (4, y2)):
                stats[idx][0].append(y.mean(dim=(0, 2, 3)))
                stats[idx][1].append(y.var(dim=(0, 2, 3), unbiased=True))
    return {i: (torch.stack(m).mean(0), torch.stack(v).mean(0)) for i, (m, v) in stats.items()}


def test_update_matches_the_closed_form_on_a_tiny_model():
    model, batches = _tiny(), _batches()
    expected = _closed_form(model, batches)
    seen = []
    n = precise_bn.update_bn_stats(model, iter(batches), len(batches), model, progress=seen.append)
    assert n == 2 and seen == [1, 2, 3, 4, 5]
    for idx, (mean, var) in expected.items():
        bn = model[idx]
        torch.testing.assert_close(bn.running_mean, mean, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(bn.running_var, var, rtol=1e-5, atol=1e-5)
        assert bn.momentum == 0.1  # restored


def test_equal_weights_per_batch_not_per_sample():
    """Batches of different sizes still count once each (fvcore 2020, not its 2021 estimator)."""
    bn = nn.BatchNorm1d(1).train()
    a = torch.tensor([[0.0], [2.0]])                  # mean 1, unbiased var 2
    b = torch.tensor([[10.0], [10.0], [13.0], [13.0]])  # mean 11.5, unbiased var 3
    precise_bn.update_bn_stats(bn, [a, b], 2, bn)
    assert bn.running_mean.item() == pytest.approx((1 + 11.5) / 2)
    assert bn.running_var.item() == pytest.approx((2 + 3) / 2)


def test_eval_mode_bn_is_left_alone_and_short_loaders_fail():
    model = _tiny()
    model[1].eval()  # as mmdet's norm_eval / frozen stages put some BNs
    before = model[1].running_mean.clone(), model[1].running_var.clone()
    assert precise_bn.bn_modules(model) == [model[4]]
    precise_bn.update_bn_stats(model, _batches(3), 3, model)
    assert torch.equal(model[1].running_mean, before[0]) and torch.equal(model[1].running_var, before[1])
    with pytest.raises(UnmixError, match="needs 4 batches.*only 3"):
        precise_bn.update_bn_stats(model, _batches(3), 4, model)
    assert model[4].momentum == 0.1
    assert precise_bn.update_bn_stats(model.eval(), _batches(1), 1, model) == 0


# ------------------------------------------------------------- the hook in a real Runner

from mmengine.model import BaseModel  # noqa: E402
from mmengine.registry import DATASETS, MODELS  # noqa: E402

TOY_X = _batches(1, shape=(6, 3, 5, 6), seed=3)[0]


@DATASETS.register_module(force=True)
class PreciseBNToySet(torch.utils.data.Dataset):
    def __len__(self):
        return len(TOY_X)

    def __getitem__(self, i):
        return {"inputs": TOY_X[i]}


@MODELS.register_module(force=True)
class PreciseBNToyModel(BaseModel):
    def __init__(self):
        super().__init__()
        self.net = _tiny()

    def forward(self, inputs, data_samples=None, mode="tensor"):
        out = self.net(inputs)
        return {"loss": out.pow(2).mean()} if mode == "loss" else out


def test_hook_runs_after_the_last_iteration_before_the_checkpoint(tmp_path):
    """In mmengine's Runner, built from a config as `unmix finetune` builds it: after 3 training
    iterations the hook recomputes the statistics over 4 batches of a new loader; each batch is
    the whole 6-sample set (batch 6, no shuffle, the finite loader restarted), so the closed
    form is that set's statistics through the final weights. The last checkpoint holds them."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    cfg = Config(dict(
        model=dict(type="PreciseBNToyModel"), work_dir=str(tmp_path),
        train_dataloader=dict(dataset=dict(type="PreciseBNToySet"), batch_size=6, num_workers=0,
                              sampler=dict(type="DefaultSampler", shuffle=False),
                              collate_fn=dict(type="default_collate")),
        train_cfg=dict(by_epoch=False, max_iters=3),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        custom_hooks=[dict(type="PreciseBNHook", num_iters=4)],
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", by_epoch=False, interval=3)),
        default_scope="mmdet", randomness=dict(seed=0)))
    runner = Runner.from_cfg(cfg)
    runner.train()
    hook = next(h for h in runner.hooks if isinstance(h, precise_bn.PreciseBNHook))
    assert hook.updates == 1
    net = runner.model.net
    expected = _closed_form(net, [TOY_X])
    for idx, (mean, var) in expected.items():
        torch.testing.assert_close(net[idx].running_mean, mean, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(net[idx].running_var, var, rtol=1e-5, atol=1e-5)
    saved = torch.load(tmp_path / "iter_3.pth", map_location="cpu", weights_only=False)["state_dict"]
    torch.testing.assert_close(saved["net.4.running_var"], expected[4][1], rtol=1e-5, atol=1e-5)
