"""The pretraining recipes that claim to be someone's (configs/pretrain/) resolve to that source's
numbers, read from the official code (file:line in each config's comments), and build; the small
pieces of code they need (bottleneck ResNet-18 with SwAV's stem padding, colour-distortion strength,
prototype freezing in iterations, Adam, warm-up in iterations, htdt's views and SimCLR head)
behave as the official code does."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torchvision import transforms as T

from pretrain import augment
from pretrain.backbones import build_resnet
from pretrain.methods import build_method
from pretrain.methods.simclr import SimCLR
from pretrain.methods.swav import SwAV, queue_rows
from pretrain.mixing import mix, sample_mix
from pretrain.optim import build_optimizer, lr_at
from pretrain.train import _model_meta, load_config
from transfer.frozen.linear_protocols import PROTOCOLS

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "pretrain"
CIFAR_MEAN_STD = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))


def cfg(name: str):
    return load_config(str(CONFIGS / f"{name}.py"))


def plain(c) -> dict:
    return {k: c[k].to_dict() for k in ("model", "data", "optimizer", "schedule", "train")}


def jitter_of(view: T.Compose) -> T.ColorJitter:
    for t in view.transforms:
        if isinstance(t, T.RandomApply) and isinstance(t.transforms[0], T.ColorJitter):
            assert t.p == pytest.approx(0.8)
            return t.transforms[0]
    raise AssertionError(f"no RandomApply(ColorJitter) in {view}")


def find(view: T.Compose, kind: type):
    return [t for t in view.transforms if isinstance(t, kind)]


# ----------------------------------------------------------------------------- SwAV CIFAR
@pytest.mark.parametrize("name", ["swav_cifar10", "swav_cifar100", "swav_cifar10_unmix", "swav_cifar100_unmix"])
def test_swav_cifar_recipe_numbers(name):
    c = plain(cfg(name))
    m, o, s, d = c["model"], c["optimizer"], c["schedule"], c["data"]
    # UnMix_SwAV/for_CIFAR/script_unmix_c10.sh:14-37,67-68 and main_swav_unmix.py:60,68,70,90,186-192,229
    assert (m["arch"], m["stem"], m["stem_padding"]) == ("resnet18_bottleneck", "cifar", 2)
    assert (m["hidden_dim"], m["dim"], m["n_prototypes"]) == (512, 128, 100)
    assert (m["T"], m["eps"], m["sinkhorn_iters"], list(m["crops_for_assign"])) == (0.1, 0.05, 3, [0, 1])
    assert m["queue_length"] == 120 and queue_rows(120, 1, 128) == 0  # M:229: no queue on one GPU
    assert m["freeze_prototypes_iters"] == 5005
    assert (o["type"], o["lr"], o["momentum"], o["weight_decay"], o["eta"]) == ("larc", 0.6, 0.9, 1e-6, 0.001)
    assert o["exclude_bias_and_norm"] is False and "base_batch_size" not in o
    assert (s["policy"], s["warmup_epochs"], s["warmup_start"], s["min_lr"], s["epochs"]) == \
        ("cosine", 5, 0.0, 0.0006, 1000)
    assert c["train"]["batch_size"] == 128
    vk = d["view_kwargs"]
    assert (d["views"], vk["nmb_crops"], vk["size_crops"], vk["strength"]) == ("swav", [2], [32], 0.5)
    assert (vk["min_scale_crops"], vk["max_scale_crops"]) == ([0.14], [1.0])
    assert m["unmix"] == {"enabled": name.endswith("_unmix"), "beta": 1.0, "prob": 0.5}  # main_swav_unmix.py:132-135
    assert cfg(name).evaluation.linear_protocol == "swav-cifar" and "swav-cifar" in PROTOCOLS


def test_swav_cifar_views_are_the_official_colour_distortion():
    """multicropdataset.py:46-61,108-114: s=0.5 -> jitter (.4,.4,.4,.1) p .8, grayscale .2, no blur."""
    vk = plain(cfg("swav_cifar10"))["data"]["view_kwargs"]
    mv = augment.build_views("swav", "cifar10", **vk)
    assert len(mv) == 2
    for view in mv.transforms:
        j = jitter_of(view)
        assert (j.brightness, j.contrast, j.saturation) == ((0.6, 1.4),) * 3 and j.hue == (-0.1, 0.1)
        assert find(view, T.RandomGrayscale)[0].p == 0.2
        assert not find(view, T.RandomApply)[1:]  # no blur (nor anything else) at 32 px
        rrc = find(view, T.RandomResizedCrop)[0]
        assert (rrc.size, rrc.scale) == ((32, 32), (0.14, 1.0))
    assert (tuple(mv.post.mean), tuple(mv.post.std)) == CIFAR_MEAN_STD  # multicropdataset.py:47-48
    # ImageNet keeps SwAV's strength 1: jitter (.8,.8,.8,.2)
    assert jitter_of(augment.build_views("swav", "imagenet").transforms[0]).hue == (-0.2, 0.2)


def test_swav_cifar_backbone_is_bottleneck_2048_with_padded_stem():
    """src/resnet50.py:158,176-181,279-284,340-341: Bottleneck [2,2,2,2]; pad 1 then conv pad 1."""
    torch.manual_seed(0)
    net = build_resnet("resnet18_bottleneck", "cifar", stem_padding=2).eval()
    assert net.num_features == 2048 and [len(net.layer1), len(net.layer4)] == [2, 2]
    assert type(net.layer1[0]).__name__ == "Bottleneck" and net.maxpool.__class__ is nn.Identity
    x = torch.randn(2, 3, 32, 32)
    ref = F.conv2d(F.pad(x, (1, 1, 1, 1)), net.conv1.weight, padding=1)  # the official two paddings
    torch.testing.assert_close(net.conv1(x), ref)
    assert net.forward_stages(x)[-1].shape == (2, 2048, 5, 5)  # 34 -> 34, 17, 9, 5
    with pytest.raises(ValueError, match="stem_padding"):
        build_resnet("resnet50", "imagenet", stem_padding=2)


def test_swav_cifar_prototypes_frozen_for_5005_iterations_and_schedule():
    """main_swav_unmix.py:445-448 (`iteration < freeze_prototypes_niters`) and :193-197."""
    mcfg = dict(plain(cfg("swav_cifar10"))["model"], epochs=1000)
    with torch.device("meta"):
        model = build_method(mcfg)
    steps = 50_000 // 128  # drop_last loader, main_swav_unmix.py:160
    with pytest.raises(ValueError, match="steps_per_epoch"):
        model._frozen(0.0)
    model.steps_per_epoch = steps
    total = 1000 * steps
    assert [model._frozen(it / total) for it in (0, 5004, 5005, 6000)] == [True, True, False, False]
    s = plain(cfg("swav_cifar10"))["schedule"]
    lr = lambda it: lr_at(it, steps, 1000, 0.6, s["policy"], s["warmup_epochs"], s["warmup_start"],  # noqa: E731
                          s["min_lr"])
    warm = 5 * steps
    assert lr(warm - 1) == pytest.approx(0.6) and lr(warm // 2) == pytest.approx(0.6 * (warm // 2 + 1) / warm)
    t = 1000  # cosine as final + (base - final) * (1 + cos(pi t / T)) / 2 over the post-warm-up iterations
    assert lr(warm + t) == pytest.approx(0.0006 + 0.5 * (0.6 - 0.0006) * (1 + math.cos(math.pi * t / (total - warm))))
    assert lr(total - 1) == pytest.approx(0.0006, abs=1e-6)


def test_swav_checkpoint_meta_records_the_stem_padding():
    c = cfg("swav_cifar10")
    p = plain(c)
    meta = _model_meta(c, p["model"], p["data"], 1, 1000)
    assert (meta["arch"], meta["stem"], meta["stem_padding"]) == ("resnet18_bottleneck", "cifar", 2)
    assert _model_meta(c, dict(p["model"], stem_padding=1), p["data"], 1, 1000)["stem_padding"] == 1


# ----------------------------------------------------------------------------- SwAV ImageNet
def test_swav_imagenet_unmix_is_region_only():
    """UnMix_SwAV/for_ImageNet/main_swav_unmix.py:129 (default 0.0 since 0911f77) and
    scripts/unmix_swav_200ep_bs256_pretrain.sh:28-46."""
    c = plain(cfg("swav_imagenet_unmix"))
    m, s = c["model"], c["schedule"]
    assert m["unmix"] == {"enabled": True, "beta": 1.0, "prob": 0.0}
    assert (m["queue_length"], m["queue_start_epoch"], m["freeze_prototypes_iters"]) == (3840, 15, 5005)
    assert (m["n_prototypes"], m["dim"], m["hidden_dim"], m["T"], m["eps"]) == (3000, 128, 2048, 0.1, 0.05)
    assert (s["epochs"], s["warmup_epochs"], s["min_lr"], c["optimizer"]["lr"]) == (200, 0, 0.0006, 0.6)
    assert c["optimizer"]["type"] == "larc"
    assert c["train"]["batch_size"] == 4 * 64 and c["optimizer"]["weight_decay"] == 1e-6
    # 2 x 224 (0.14-1) + 6 x 96 (0.05-0.14)
    views = augment.build_views("swav", "imagenet").transforms
    assert [find(v, T.RandomResizedCrop)[0].size[0] for v in views] == [224] * 2 + [96] * 6


# ----------------------------------------------------------------------------- BYOL
@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIGS.glob("byol_*.py")))
def test_byol_mixture_goes_through_both_branches(name):
    """README.md:86-94: `model([x[1], mixed_images])` with BYOL's symmetric loss."""
    assert plain(cfg(name))["model"]["mix_branch"] == "both"


# ----------------------------------------------------------------------------- first form
@pytest.mark.parametrize("name,epochs", [("moco_v1_imagenet100_firstform_240ep", 240),
                                         ("moco_v1_imagenet100_firstform", 400),
                                         ("moco_v1_imagenet100_firstform_800ep", 800)])
def test_first_form_imagenet100_budgets(name, epochs):
    """arXiv 2003.05438v1 budgets 240/400/800 (Tables 1-5), section 4.1 (batch 128, m 0.99,
    K 16384); CMC_with_Image_Mixture train_moco_ins.py:53-65 (600 epochs, drops 360/480/540, lr
    0.03, crop 0.1), :118-119 (K 16384, T 0.07)."""
    c = plain(cfg(name))
    m, s, o, d = c["model"], c["schedule"], c["optimizer"], c["data"]
    assert s["epochs"] == epochs and s["policy"] == "step" and s["gamma"] == 0.1
    assert s["milestones"] == [round(epochs * f) for f in (360 / 600, 480 / 600, 540 / 600)]
    assert (o["type"], o["lr"], o["momentum"], o["weight_decay"]) == ("sgd", 0.03, 0.9, 1e-4)
    assert c["train"]["batch_size"] == 128
    assert (m["version"], m["K"], m["m"], m["T"], m["dim"], m["symmetric"]) == ("v1", 16384, 0.99, 0.07, 128, False)
    ff = d["first_form"]
    assert (ff["enabled"], ff["im_type"], ff["g_num"], ff["r_num"], ff["r_prob"], ff["r_pixel_decay"]) == \
        (True, "IM", 4, 5, 0.1, 0.2)
    assert d["views"] == "moco_v1" and tuple(d["view_kwargs"]["crop_scale"]) == (0.1, 1.0)
    view = augment.build_views("moco_v1", "imagenet100", normalize=False, **d["view_kwargs"]).transforms[0]
    assert find(view, T.RandomResizedCrop)[0].scale == (0.1, 1.0)
    j = find(view, T.ColorJitter)[0]  # ColorJitter(0.4, 0.4, 0.4, 0.4) always on, train_moco_ins.py:214
    assert j.hue == (-0.4, 0.4) and find(view, T.RandomGrayscale)[0].p == 0.2


# ----------------------------------------------------------------------------- htdt presets
HTDT = ["simclr_cifar10_htdt", "simclr_cifar100_htdt", "byol_cifar10_htdt", "byol_cifar100_htdt",
        "simclr_cifar10_htdt_unmix", "byol_cifar100_htdt_unmix"]


@pytest.mark.parametrize("name", HTDT)
def test_htdt_presets_numbers(name):
    """htdt/self-supervised cfg.py:21-126, README.md:56,64, train.py:22-54, model.py:5-29."""
    c = plain(cfg(name))
    m, o, s, d = c["model"], c["optimizer"], c["schedule"], c["data"]
    assert (m["arch"], m["stem"], m["dim"], m["hidden_dim"]) == ("resnet18", "cifar", 64, 1024)
    if m["type"] == "simclr":
        assert (m["T"], m["out_bn"], m["joint_head"]) == (0.5, True, True)
    else:
        assert (m["tau"], m["mix_branch"]) == (0.99, "both")
    assert (o["type"], o["lr"], o["weight_decay"]) == ("adam", 3e-3, 1e-6) and "base_batch_size" not in o
    assert (s["policy"], s["epochs"], s["warmup_iters"], s["milestones"], s["gamma"]) == \
        ("step", 1000, 500, [1000 - 50, 1000 - 25], 0.2)
    assert c["train"]["batch_size"] == 512
    vk = d["view_kwargs"]
    assert (d["views"], tuple(vk["crop_scale"]), tuple(vk["jitter"]), vk["jitter_p"], vk["gray_p"]) == \
        ("htdt", (0.2, 1.0), (0.4, 0.4, 0.4, 0.1), 0.8, 0.1)
    want = CIFAR_MEAN_STD if "cifar10_" in name else ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761))
    assert tuple(map(tuple, vk["mean_std"])) == want  # datasets/cifar10.py:7-10, cifar100.py:7-10
    assert m["unmix"]["enabled"] == name.endswith("_unmix")


def test_htdt_schedule_and_optimizer():
    """train.py:39 (Adam, L2 on every parameter), :43-54 (lr * (k + 1) / 500 for k < 500), :22-24."""
    c = plain(cfg("byol_cifar10_htdt"))
    s = c["schedule"]
    steps = 50_000 // 512
    lr = lambda it: lr_at(it, steps, 1000, 3e-3, s["policy"], 0, s["warmup_start"], 0.0,  # noqa: E731
                          s["milestones"], s["gamma"], s["warmup_iters"])
    assert [lr(k) for k in (0, 249, 499, 500)] == pytest.approx([3e-3 / 500, 3e-3 * 250 / 500, 3e-3, 3e-3])
    assert [lr(949 * steps), lr(950 * steps), lr(975 * steps)] == pytest.approx([3e-3, 6e-4, 1.2e-4])
    net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    opt = build_optimizer(net, c["optimizer"], 3e-3)
    assert type(opt) is torch.optim.Adam
    assert all(g["weight_decay"] == 1e-6 for g in opt.param_groups)
    assert sum(len(g["params"]) for g in opt.param_groups) == 4  # biases and BN decayed too


def test_htdt_views_colour_before_bicubic_crop():
    """datasets/transforms.py:4-22: RandomApply(ColorJitter) p .8, RandomGrayscale .1, then
    RandomResizedCrop(bicubic, 0.2-1, 3/4-4/3), flip .5."""
    vk = plain(cfg("simclr_cifar100_htdt"))["data"]["view_kwargs"]
    mv = augment.build_views("htdt", "cifar100", **vk)
    view = mv.transforms[0]
    kinds = [type(t).__name__ for t in view.transforms]
    assert kinds == ["RandomApply", "RandomGrayscale", "RandomResizedCrop", "RandomHorizontalFlip", "ToTensor"]
    rrc = view.transforms[2]
    assert (rrc.scale, rrc.ratio, rrc.interpolation) == ((0.2, 1.0), (3 / 4, 4 / 3), T.InterpolationMode.BICUBIC)
    assert view.transforms[1].p == 0.1 and jitter_of(view).hue == (-0.1, 0.1)
    assert tuple(mv.post.std) == (0.2675, 0.2565, 0.2761)


def htdt_contrastive_loss(x0: torch.Tensor, x1: torch.Tensor, tau: float) -> torch.Tensor:
    """htdt methods/contrastive.py:8-23, written out: both directions, self-similarity masked."""
    x0, x1 = F.normalize(x0, dim=1), F.normalize(x1, dim=1)
    n = x0.shape[0]
    eye = torch.eye(n, dtype=x0.dtype) * 1e9
    target = torch.arange(n)
    l01, l10 = x0 @ x1.t() / tau, x1 @ x0.t() / tau
    l00, l11 = x0 @ x0.t() / tau - eye, x1 @ x1.t() / tau - eye
    return (F.cross_entropy(torch.cat([l01, l00], 1), target) + F.cross_entropy(torch.cat([l10, l11], 1), target)) / 2


def htdt_head(model: SimCLR, h: torch.Tensor) -> torch.Tensor:
    """model.py:5-16 + contrastive.py:32,38 from our weights: Linear, BN, ReLU, Linear, BN, with
    batch statistics over all of `h` (both views)."""
    lin1, bn1, _, lin2, bn2 = model.projector
    def bn(x, m):
        return (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + m.eps) * m.weight + m.bias
    return bn(lin2(torch.relu(bn(lin1(h), bn1))), bn2)


def test_simclr_htdt_head_and_loss_match_the_reference():
    torch.manual_seed(0)
    model = SimCLR("resnet18", "cifar", unmix={"enabled": True, "beta": 1.0, "prob": 0.5}, dim=8,
                   hidden_dim=16, T=0.5, out_bn=True, joint_head=True).double().train()
    x1, x2 = torch.randn(6, 3, 8, 8, dtype=torch.float64), torch.randn(6, 3, 8, 8, dtype=torch.float64)
    out = model([x1, x2], generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        h1, h2 = model.backbone(x1), model.backbone(x2)
        z1, z2 = htdt_head(model, torch.cat([h1, h2])).split(6)
        clean = htdt_contrastive_loss(z1, z2, 0.5)
        params = sample_mix(x1.shape, 1.0, 0.5, torch.Generator().manual_seed(3))
        x_mix = mix(x1, params)
        # model([x[1], mixed]) and model([x[1], flip(mixed)]), each through the joint head
        terms = []
        for xm in (x_mix, x_mix.flip(0)):
            zt, zm = htdt_head(model, torch.cat([h2, model.backbone(xm)])).split(6)
            terms.append(htdt_contrastive_loss(zt, zm, 0.5))
        mixed = params.lam * terms[0] + (1 - params.lam) * terms[1]
    torch.testing.assert_close(out["loss_clean"], clean, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(out["loss_mix"], mixed, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(out["lam"].double(), torch.tensor(params.lam, dtype=torch.float64))


# ----------------------------------------------------------------------------- every recipe builds
RECIPES = ["swav_cifar10", "swav_cifar100_unmix", "swav_imagenet_unmix", "byol_cifar10_unmix",
           "moco_v1_imagenet100_firstform_800ep", *HTDT]


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_builds(name):
    c = plain(cfg(name))
    with torch.device("meta"):
        model = build_method(dict(c["model"], epochs=c["schedule"]["epochs"]) if c["model"]["type"] == "swav"
                             else c["model"])
    assert sum(p.numel() for p in model.backbone.parameters()) > 0
    if isinstance(model, SwAV):  # CIFAR: Bottleneck [2,2,2,2]; ImageNet: ResNet-50 [3,4,6,3]
        assert [len(model.backbone.layer1), model.backbone.num_features] == [2 if "cifar" in name else 3, 2048]
    opt = build_optimizer(model, c["optimizer"], c["optimizer"]["lr"])
    assert opt.param_groups
    augment.build_views(c["data"]["views"], c["data"]["name"], normalize=False, **(c["data"].get("view_kwargs") or {}))


def test_swav_cifar_backbone_loads_into_mmdet_with_its_padding():
    """`unmix convert` metadata -> mmdet config: CifarResNet depth 26 (Bottleneck [2,2,2,2]), stem
    padding 2; the weights load strictly and give the same C5."""
    from transfer.convert.mmdet_cfg import mmdet_backbone_cfg
    from transfer.stack.backbones import CifarResNet

    cfg = mmdet_backbone_cfg({"arch": "resnet18_bottleneck", "stem": "cifar", "stem_padding": 2})
    assert (cfg.pop("type"), cfg["depth"], cfg["stem_padding"]) == ("CifarResNet", 26, 2)
    torch.manual_seed(0)
    ours = build_resnet("resnet18_bottleneck", "cifar", stem_padding=2).eval()
    det = CifarResNet(**cfg)
    det.load_state_dict(ours.state_dict(), strict=True)
    det.eval()  # mmdet's ResNet.train() returns None, so not chained
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(det(x)[-1], ours.forward_stages(x)[-1])


def apex_larc_sgd_step(params: list[torch.Tensor], sgd: torch.optim.SGD, wd: float, trust: float) -> None:
    """NVIDIA/apex apex/parallel/LARC.py `LARC.step` (clip=False) around torch SGD, written out."""
    with torch.no_grad():
        for p in params:
            p_norm, g_norm = torch.norm(p), torch.norm(p.grad)
            if p_norm != 0 and g_norm != 0:
                p.grad += wd * p
                p.grad *= trust * p_norm / (g_norm + p_norm * wd + 1e-8)
    sgd.step()  # weight decay 0 inside: LARC absorbed it


def test_larc_is_apex_larc_around_sgd():
    """SwAV's optimiser (main_swav_unmix.py:186-192): two steps, parameters equal in float64;
    a zero tensor is neither adapted nor decayed."""
    torch.manual_seed(0)
    shapes = [(5, 4), (4,), (3,)]
    init = [torch.randn(s, dtype=torch.float64) for s in shapes]
    init[2].zero_()
    ours = [nn.Parameter(t.clone()) for t in init]
    ref = [nn.Parameter(t.clone()) for t in init]
    opt = build_optimizer(nn.ParameterList(ours), {"type": "larc", "momentum": 0.9, "weight_decay": 1e-2,
                                                   "eta": 0.001, "exclude_bias_and_norm": False}, 0.6)
    sgd = torch.optim.SGD(ref, lr=0.6, momentum=0.9, weight_decay=0.0)
    for step in range(2):
        grads = [torch.randn(s, dtype=torch.float64) * (step + 1) for s in shapes]
        for p, q, g in zip(ours, ref, grads):
            p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        apex_larc_sgd_step(ref, sgd, 1e-2, 0.001)
    for p, q in zip(ours, ref):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-12, atol=1e-15)
    assert not torch.equal(ours[0].detach(), init[0])


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIGS.glob("moco_*.py")))
def test_moco_lr_is_set_once_per_epoch(name):
    """unmix_c10.py:324,358-367 (and MoCo ImageNet's main_moco_unmix.py:274,425): the lr of epoch
    e is base * 0.5 * (1 + cos(pi e / epochs)) (or the step value), for every iteration of e."""
    c = plain(cfg(name))
    s, base = c["schedule"], c["optimizer"]["lr"]
    assert s["per_epoch"] is True
    steps, epochs = 7, s["epochs"]
    lr = lambda it: lr_at(it, steps, epochs, base, s["policy"], s.get("warmup_epochs", 0), 0.0,  # noqa: E731
                          s.get("min_lr", 0.0), s.get("milestones", ()), s.get("gamma", 0.1), None, True)
    for e in (0, 1, epochs // 2, epochs - 1):
        want = (base * 0.5 * (1 + math.cos(math.pi * e / epochs)) if s["policy"] == "cosine"
                else base * 0.1 ** sum(e >= m for m in s["milestones"]))
        assert [lr(e * steps + i) for i in (0, 3, 6)] == pytest.approx([want] * 3)


def test_moco_imagenet_recipes():
    """main_moco_unmix.py:48-109, 235-256 and run.sh:2 of UnMix_MoCo/for_ImageNet."""
    v1, v2 = plain(cfg("moco_v1_imagenet_unmix")), plain(cfg("moco_v2_imagenet_unmix"))
    assert v1["model"]["unmix"]["prob"] == 0.0 and v2["model"]["unmix"]["prob"] == 0.5
    for c, t in ((v1, 0.07), (v2, 0.2)):
        m, o = c["model"], c["optimizer"]
        assert (m["K"], m["m"], m["T"], m["dim"], c["train"]["batch_size"]) == (65536, 0.999, t, 128, 256)
        assert (o["lr"], o["weight_decay"], o["momentum"], c["schedule"]["epochs"]) == (0.03, 1e-4, 0.9, 200)
    assert (v1["schedule"]["policy"], v1["schedule"]["milestones"], v2["schedule"]["policy"]) == \
        ("step", [120, 160], "cosine")
    kinds = [type(t).__name__ for t in augment.build_views("moco_v1", "imagenet").transforms[0].transforms]
    assert kinds == ["RandomResizedCrop", "RandomGrayscale", "ColorJitter", "RandomHorizontalFlip", "ToTensor"]


def test_moco_cifar_demo_recipe():
    """unmix_c10.py:24-48, 60-64, 84-94 (symmetric demo; the README's asymmetric rows drop
    --symmetric)."""
    for name in ("moco_v1_cifar10", "moco_v1_cifar100_unmix"):
        c = plain(cfg(name))
        m, o, s = c["model"], c["optimizer"], c["schedule"]
        assert (m["arch"], m["stem"], m["version"], m["dim"], m["K"], m["m"], m["T"]) == \
            ("resnet18", "cifar", "v1", 128, 4096, 0.99, 0.1)
        assert (m["symmetric"], m["split_bn"], c["train"]["batch_size"]) == (True, 8, 512)
        assert (o["type"], o["lr"], o["weight_decay"], o["momentum"]) == ("sgd", 0.06, 5e-4, 0.9)
        assert (s["policy"], s["epochs"], s["per_epoch"]) == ("cosine", 1000, True)
        assert (cfg(name).knn.k, cfg(name).knn.t) == (200, 0.1)  # unmix_c10.py:47-48
        if name.endswith("_unmix"):
            assert m["unmix"] == {"enabled": True, "beta": 1.0, "prob": 0.5}
    view = augment.build_views("moco_v1", "cifar10").transforms[0]
    kinds = [type(t).__name__ for t in view.transforms]
    assert kinds == ["RandomResizedCrop", "RandomHorizontalFlip", "RandomApply", "RandomGrayscale", "ToTensor"]
    assert find(view, T.RandomResizedCrop)[0].scale == (0.08, 1.0) and jitter_of(view).hue == (-0.1, 0.1)
