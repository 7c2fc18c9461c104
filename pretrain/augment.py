"""Each method's view augmentations as published, with small-image variants, and a batched
on-device augmentation for data loading that keeps up with a GPU.

`build_views(method, dataset, size=None, normalize=True)` -> `MultiView` (a PIL image -> list of
view tensors). Methods: 'moco_v1', 'moco_v2', 'simclr', 'byol', 'swav', and 'htdt' (the
htdt/self-supervised CIFAR recipe, for its SimCLR/BYOL presets). Images of 64 px or less
(CIFAR, Tiny ImageNet) get the CIFAR recipe of the Un-Mix MoCo demo: no blur (a blur at 32 px
wipes out the image), RandomResizedCrop(size), flip, ColorJitter(.4,.4,.4,.1) p .8, grayscale
p .2; BYOL keeps its solarize, SimCLR its strength-1 jitter. With `normalize=False` views stay in
[0, 1] and `MultiView.post` is None (the first-form wrapper normalises after mixing).

`DeviceAugment`: random-resized-crop + flip + colour jitter + grayscale + normalise on a uint8
batch (N, 3, H, W) on `x.device`, one generator, no Python loop over images; use with
`data.device_augment=True` for fixed-size data (CIFAR, STL-10, Tiny ImageNet). Hue is rotated in
YIQ space (an approximation of torchvision's HSV hue) and the jitter order is fixed.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import transforms as T

from pretrain.data import IMAGE_SIZE, MEAN_STD

SMALL = 64  # images this size or smaller take the no-blur CIFAR recipe


class MultiView:
    """Apply each transform to the same image; returns the list of views (then `post` on each)."""

    def __init__(self, transforms: Sequence[Callable], post: Callable | None = None) -> None:
        self.transforms = list(transforms)
        self.post = post

    def __call__(self, img) -> list[torch.Tensor]:
        views = [t(img) for t in self.transforms]
        return [self.post(v) for v in views] if self.post is not None else views

    def __len__(self) -> int:
        return len(self.transforms)

    def __repr__(self) -> str:
        body = "\n".join(f"  {t}" for t in self.transforms)
        return f"MultiView(\n{body},\n  post={self.post})"


def _blur(size: int, p: float) -> Callable:
    k = int(0.1 * size) // 2 * 2 + 1  # SimCLR: kernel 10% of the image side, odd
    return T.RandomApply([T.GaussianBlur(k, sigma=(0.1, 2.0))], p=p)


def _view(size: int, scale: tuple[float, float], jitter: tuple[float, ...], jitter_p: float,
          gray_p: float = 0.2, blur_p: float = 0.0, solarize_p: float = 0.0) -> T.Compose:
    ts = [T.RandomResizedCrop(size, scale=scale), T.RandomHorizontalFlip()]
    ts.append(T.RandomApply([T.ColorJitter(*jitter)], p=jitter_p) if jitter_p < 1 else T.ColorJitter(*jitter))
    ts.append(T.RandomGrayscale(p=gray_p))
    if blur_p > 0 and size > SMALL:
        ts.append(_blur(size, blur_p))
    if solarize_p > 0:
        ts.append(T.RandomSolarize(128, p=solarize_p))
    ts.append(T.ToTensor())
    return T.Compose(ts)


CIFAR_JITTER = (0.4, 0.4, 0.4, 0.1)


def moco_v1(size: int, crop_scale: tuple[float, float] = (0.2, 1.0), **_) -> list[T.Compose]:
    # MoCo v1: crop 0.2-1 (the first form's ImageNet-100 fork: 0.1-1), grayscale 0.2, jitter 0.4
    # (hue 0.4) always on, flip.
    if size <= SMALL:
        return [_view(size, (0.08, 1.0), CIFAR_JITTER, 0.8)] * 2
    # the official order: grayscale before the jitter (UnMix_MoCo/for_ImageNet/main_moco_unmix.py:249-256,
    # CMC_with_Image_Mixture train_moco_ins.py:211-218)
    view = T.Compose([T.RandomResizedCrop(size, scale=tuple(crop_scale)), T.RandomGrayscale(p=0.2),
                      T.ColorJitter(0.4, 0.4, 0.4, 0.4), T.RandomHorizontalFlip(), T.ToTensor()])
    return [view, view]


def moco_v2(size: int, **_) -> list[T.Compose]:
    # MoCo v2: crop 0.2-1, jitter (.4,.4,.4,.1) p .8, grayscale .2, blur p .5, flip.
    if size <= SMALL:
        return [_view(size, (0.08, 1.0), CIFAR_JITTER, 0.8)] * 2
    return [_view(size, (0.2, 1.0), CIFAR_JITTER, 0.8, blur_p=0.5)] * 2


def simclr(size: int, strength: float = 1.0, **_) -> list[T.Compose]:
    # SimCLR: crop 0.08-1, jitter (.8s,.8s,.8s,.2s) p .8, grayscale .2, blur p .5 (not on CIFAR).
    s = strength
    return [_view(size, (0.08, 1.0), (0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s), 0.8, blur_p=0.5)] * 2


def byol(size: int, **_) -> list[T.Compose]:
    # BYOL: asymmetric; view 1 blur p 1.0 / solarize 0, view 2 blur p 0.1 / solarize 0.2.
    j = (0.4, 0.4, 0.2, 0.1)
    return [_view(size, (0.08, 1.0), j, 0.8, blur_p=1.0, solarize_p=0.0),
            _view(size, (0.08, 1.0), j, 0.8, blur_p=0.1, solarize_p=0.2)]


def swav(size: int, nmb_crops: Sequence[int] | None = None, size_crops: Sequence[int] | None = None,
         min_scale_crops: Sequence[float] | None = None, max_scale_crops: Sequence[float] | None = None,
         strength: float = 1.0, **_) -> list[T.Compose]:
    # SwAV multi-crop: 2x224 (0.14-1) + 6x96 (0.05-0.14); CIFAR: 2x32 (0.14-1); colour distortion
    # of strength s, jitter (.8s,.8s,.8s,.2s) p .8 + grayscale .2 (s=1 on ImageNet; the Un-Mix
    # CIFAR code uses s=0.5, UnMix_SwAV/for_CIFAR/src/multicropdataset.py:46,108-114), blur .5.
    s = strength
    if nmb_crops is None:
        if size <= SMALL:
            nmb_crops, size_crops, min_scale_crops, max_scale_crops = [2], [size], [0.14], [1.0]
        else:
            nmb_crops, size_crops = [2, 6], [size, round(size * 96 / 224)]
            min_scale_crops, max_scale_crops = [0.14, 0.05], [1.0, 0.14]
    views = []
    for n, sz, lo, hi in zip(nmb_crops, size_crops, min_scale_crops, max_scale_crops):
        views += [_view(sz, (lo, hi), (0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s), 0.8, blur_p=0.5)] * n
    return views


def htdt(size: int, crop_scale: tuple[float, float] = (0.2, 1.0), jitter: tuple[float, ...] = CIFAR_JITTER,
         jitter_p: float = 0.8, gray_p: float = 0.1, **_) -> list[T.Compose]:
    # htdt/self-supervised (datasets/transforms.py:4-22, defaults cfg.py:32-42), the base the
    # Un-Mix authors credit for SimCLR/BYOL: colour first, then a bicubic RandomResizedCrop
    # (0.2-1, ratio 3/4-4/3) and flip; jitter (.4,.4,.4,.1) p .8, grayscale p .1, no blur.
    view = T.Compose([T.RandomApply([T.ColorJitter(*jitter)], p=jitter_p), T.RandomGrayscale(p=gray_p),
                      T.RandomResizedCrop(size, scale=tuple(crop_scale), ratio=(3 / 4, 4 / 3),
                                          interpolation=T.InterpolationMode.BICUBIC),
                      T.RandomHorizontalFlip(p=0.5), T.ToTensor()])
    return [view, view]


AUGMENTATIONS: dict[str, Callable[..., list[T.Compose]]] = {
    "moco_v1": moco_v1, "moco_v2": moco_v2, "simclr": simclr, "byol": byol, "swav": swav, "htdt": htdt,
}


def build_views(method: str, dataset: str, size: int | None = None, normalize: bool = True,
                mean_std: Sequence[Sequence[float]] | None = None, **kwargs) -> MultiView:
    """The views of `method` ('moco_v1', ...) for images of `dataset` (sets size and mean/std;
    `mean_std` overrides the dataset's, e.g. htdt's own CIFAR-100 statistics)."""
    if method not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {method!r}; choose from {', '.join(AUGMENTATIONS)}")
    size = size or IMAGE_SIZE[dataset]
    mean, std = mean_std if mean_std is not None else MEAN_STD[dataset]
    return MultiView(AUGMENTATIONS[method](size, **kwargs), T.Normalize(mean, std) if normalize else None)


# ---------------------------------------------------------------- batched, on the device
def _gray(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)


def _blend(a: torch.Tensor, b: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return (f.view(-1, 1, 1, 1) * a + (1 - f.view(-1, 1, 1, 1)) * b).clamp(0, 1)


_RGB2YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


class DeviceAugment(nn.Module):
    """One random view of a uint8 batch (N, 3, H, W) -> normalised float (N, 3, size, size).

    Shape: (N, 3, H, W) uint8 -> (N, 3, size, size) float32, on x.device."""

    def __init__(self, size: int, mean: Sequence[float], std: Sequence[float],
                 scale: tuple[float, float] = (0.08, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                 jitter: tuple[float, float, float, float] = CIFAR_JITTER, jitter_p: float = 0.8,
                 gray_p: float = 0.2) -> None:
        super().__init__()
        self.size, self.scale, self.ratio = size, scale, ratio
        self.jitter, self.jitter_p, self.gray_p = jitter, jitter_p, gray_p
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def _rand(self, n: int, g: torch.Generator | None, device) -> torch.Tensor:
        return torch.rand(n, generator=g, device="cpu").to(device)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        n, _, h, w = x.shape
        dev = x.device
        r = lambda: self._rand(n, generator, dev)  # noqa: E731 (CPU generator: same draws on any device)
        # random resized crop (area fraction and log-aspect uniform, clamped to fit) + flip, as one affine
        area = self.scale[0] + (self.scale[1] - self.scale[0]) * r()
        logr = math.log(self.ratio[0]) + (math.log(self.ratio[1]) - math.log(self.ratio[0])) * r()
        aspect = torch.exp(logr)
        cw = torch.sqrt(area * aspect).clamp(max=1.0)  # fraction of W
        ch = torch.sqrt(area / aspect).clamp(max=1.0)
        cx = (r() * (1 - cw) + cw / 2) * 2 - 1          # centre in [-1, 1]
        cy = (r() * (1 - ch) + ch / 2) * 2 - 1
        flip = torch.where(r() < 0.5, -1.0, 1.0).to(dev)
        theta = torch.zeros(n, 2, 3, device=dev)
        theta[:, 0, 0], theta[:, 0, 2] = cw * flip, cx
        theta[:, 1, 1], theta[:, 1, 2] = ch, cy
        grid = F.affine_grid(theta, (n, 3, self.size, self.size), align_corners=False)
        y = F.grid_sample(x.float() / 255.0, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        # colour jitter (brightness, contrast, saturation, hue), applied with prob jitter_p
        b, c, s, hue = self.jitter
        on = (r() < self.jitter_p).float()
        fb = 1 + on * b * (2 * r() - 1)
        fc = 1 + on * c * (2 * r() - 1)
        fs = 1 + on * s * (2 * r() - 1)
        fh = on * hue * (2 * r() - 1)
        y = (y * fb.view(-1, 1, 1, 1)).clamp(0, 1)
        y = _blend(y, _gray(y).mean((2, 3), keepdim=True).expand_as(y), fc)
        y = _blend(y, _gray(y).expand_as(y), fs)
        # hue: rotate the chroma plane of YIQ, folded into one 3x3 matrix per image
        m = _RGB2YIQ.to(dev)
        rot = torch.zeros(n, 3, 3, device=dev)
        cos, sin = torch.cos(2 * math.pi * fh), torch.sin(2 * math.pi * fh)
        rot[:, 0, 0], rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = 1.0, cos, -sin, sin, cos
        y = torch.einsum("nij,njhw->nihw", torch.linalg.inv(m) @ rot @ m, y).clamp(0, 1)
        gray = (r() < self.gray_p).view(-1, 1, 1, 1)
        y = torch.where(gray, _gray(y).expand_as(y), y)
        return (y - self.mean) / self.std
