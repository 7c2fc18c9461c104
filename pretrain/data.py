"""Image datasets for pretraining and evaluation, read through torchvision's own loaders.

`build_dataset(name, root, split)` returns a `torch.utils.data.Dataset` of `(image, label)`
(PIL image unless a transform is given; label -1 for STL-10's unlabeled split). Layouts under
`root` (what each loader expects; a missing file is an `UnmixError` that lists them):

| name          | layout                                                                  | splits |
| ------------- | ----------------------------------------------------------------------- | ------ |
| cifar10       | `cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}`          | train, test |
| cifar100      | `cifar-100-python/{train,test,meta}`                                     | train, test |
| stl10         | `stl10_binary/{train,test}_{X,y}.bin, unlabeled_X.bin`  | train, test, unlabeled, train+unlabeled |
| tiny-imagenet | `train/<wnid>/images/*.JPEG`, `val/images/*.JPEG` + `val/val_annotations.txt` | train, val |
| imagenet      | `train/<wnid>/*.JPEG`, `val/<wnid>/*.JPEG`                               | train, val |
| imagenet100   | as imagenet, restricted to `IMAGENET100_CLASSES` (arXiv 2003.05438v1, Appendix A) | train, val |
| folder        | `<split>/<class>/*` (or `<class>/*` directly under root)                 | any |

`root` may also be the dataset's own folder (e.g. `.../cifar-10-batches-py` or
`.../tiny-imagenet-200`). The CIFAR and STL-10 loaders verify torchvision's published md5 sums.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, NamedTuple

import torch
from torchvision import datasets as tvd
from torchvision import transforms as T

from unmix.core.errors import UnmixError

IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
# The official CIFAR demos normalise CIFAR-100 with CIFAR-10's statistics too.
CIFAR_MEAN_STD = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))

# Appendix A of Un-Mix: Rethinking Image Mixtures for Unsupervised Visual Representation Learning, arXiv 2003.05438v1
# (the CMC ImageNet-100 list), in the paper's order.
IMAGENET100_CLASSES: tuple[str, ...] = tuple("""
n02869837 n01749939 n02488291 n02107142 n13037406 n02091831 n04517823 n04589890 n03062245 n01773797
n01735189 n07831146 n07753275 n03085013 n04485082 n02105505 n01983481 n02788148 n03530642 n04435653
n02086910 n02859443 n13040303 n03594734 n02085620 n02099849 n01558993 n04493381 n02109047 n04111531
n02877765 n04429376 n02009229 n01978455 n02106550 n01820546 n01692333 n07714571 n02974003 n02114855
n03785016 n03764736 n03775546 n02087046 n07836838 n04099969 n04592741 n03891251 n02701002 n03379051
n02259212 n07715103 n03947888 n04026417 n02326432 n03637318 n01980166 n02113799 n02086240 n03903868
n02483362 n04127249 n02089973 n03017168 n02093428 n02804414 n02396427 n04418357 n02172182 n01729322
n02113978 n03787032 n02089867 n02119022 n03777754 n04238763 n02231487 n03032252 n02138441 n02104029
n03837869 n03494278 n04136333 n03794056 n03492542 n02018207 n04067472 n03930630 n03584829 n02123045
n04229816 n02100583 n03642806 n04336792 n03259280 n02116738 n02108089 n03424325 n01855672 n02090622
""".split())
assert len(IMAGENET100_CLASSES) == 100 and len(set(IMAGENET100_CLASSES)) == 100


class DatasetSpec(NamedTuple):
    build: Callable[..., torch.utils.data.Dataset]  # (root, split, transform, download) -> Dataset
    splits: tuple[str, ...] | None                   # None: any sub-folder name
    num_classes: int | None                          # None: read from the dataset (folder)
    image_size: int
    mean_std: tuple[tuple[float, ...], tuple[float, ...]]


def _locate(root: Path, folder: str) -> Path:
    """`root` may be the parent of the dataset's folder (torchvision's convention) or the folder."""
    return root.parent if root.name == folder and not (root / folder).is_dir() else root


def _require(name: str, base: Path, files: list[str], download: bool) -> None:
    if download:
        return
    missing = [f for f in files if not (base / f).exists()]
    if missing:
        raise UnmixError(f"{base}: {name} files missing: {', '.join(missing)} "
                         f"(expected {', '.join(files)} there; see docs/pretrain.md, 'Data layouts')")


def _torchvision(cls: type, name: str, root: Path, download: bool, files: list[str], **kw) -> Any:
    root = _locate(root, cls.base_folder)
    _require(name, root / cls.base_folder, files, download)
    try:
        return cls(str(root), download=download, **kw)
    except RuntimeError as e:  # torchvision's md5 check: "not found or corrupted"
        raise UnmixError(f"{root / cls.base_folder}: {name} files fail torchvision's md5 check ({e})") from None


def _cifar(cls: type, name: str) -> Callable[..., Any]:
    def build(root: Path, split: str, transform=None, download: bool = False):
        files = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
        return _torchvision(cls, name, root, download, files, train=split == "train", transform=transform)
    return build


def _stl10(root: Path, split: str, transform=None, download: bool = False):
    files = [f for f, _ in tvd.STL10.train_list + tvd.STL10.test_list]
    return _torchvision(tvd.STL10, "stl10", root, download, files, split=split, transform=transform)


class RestrictedImageFolder(tvd.ImageFolder):
    """An ImageFolder that only sees `classes` (all must exist), indexed in sorted order."""

    def __init__(self, root: str, classes: tuple[str, ...], **kwargs) -> None:
        self._only = tuple(sorted(classes))
        super().__init__(root, **kwargs)

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        missing = [c for c in self._only if not os.path.isdir(os.path.join(directory, c))]
        if missing:
            raise UnmixError(f"{directory}: {len(missing)} of the {len(self._only)} classes missing "
                             f"(e.g. {', '.join(missing[:5])})")
        return list(self._only), {c: i for i, c in enumerate(self._only)}


def _image_folder(path: Path, transform, classes: tuple[str, ...] | None = None) -> tvd.ImageFolder:
    if not path.is_dir():
        raise UnmixError(f"{path}: image folder not found (expected {path}/<class>/<image>)")
    try:
        if classes is not None:
            return RestrictedImageFolder(str(path), classes, transform=transform)
        return tvd.ImageFolder(str(path), transform=transform)
    except FileNotFoundError as e:  # no class folders / no images
        raise UnmixError(f"{path}: {e}") from None


def _imagenet(classes: tuple[str, ...] | None) -> Callable[..., Any]:
    def build(root: Path, split: str, transform=None, download: bool = False):
        if download:
            raise UnmixError(f"{root}: ImageNet cannot be downloaded; place train/ and val/ class folders there")
        return _image_folder(root / split, transform, classes)
    return build


class TinyImageNetVal(tvd.VisionDataset):
    """Tiny ImageNet's val split: flat `val/images/` labelled by `val/val_annotations.txt`
    (tab-separated `file wnid x y w h`); class indices follow the sorted train wnids."""

    def __init__(self, root: str, classes: list[str], transform=None) -> None:
        super().__init__(root, transform=transform)
        ann = Path(root) / "val" / "val_annotations.txt"
        if not ann.is_file():
            raise UnmixError(f"{ann}: missing (Tiny ImageNet labels its val images there)")
        self.classes = classes
        self.class_to_idx = {c: i for i, c in enumerate(classes)}
        self.samples: list[tuple[str, int]] = []
        for n, line in enumerate(ann.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) < 2 or parts[1] not in self.class_to_idx:
                raise UnmixError(f"{ann}:{n}: expected 'FILE<TAB>WNID...' with a train wnid, got {line!r}")
            self.samples.append((str(Path(root) / "val" / "images" / parts[0]), self.class_to_idx[parts[1]]))
        self.targets = [t for _, t in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, target = self.samples[index]
        img = tvd.folder.default_loader(path)
        if self.transform is not None:
            img = self.transform(img)
        return img, target


def _tiny_imagenet(root: Path, split: str, transform=None, download: bool = False):
    if download:
        raise UnmixError(f"{root}: download Tiny ImageNet (tiny-imagenet-200.zip) and unzip it there")
    if not (root / "train").is_dir() and (root / "tiny-imagenet-200").is_dir():
        root = root / "tiny-imagenet-200"
    train = _image_folder(root / "train", transform)
    if split == "train":
        return train
    return TinyImageNetVal(str(root), train.classes, transform=transform)


def _folder(root: Path, split: str, transform=None, download: bool = False):
    return _image_folder(root / split if (root / split).is_dir() else root, transform)


DATASETS: dict[str, DatasetSpec] = {
    "cifar10": DatasetSpec(_cifar(tvd.CIFAR10, "cifar10"), ("train", "test"), 10, 32, CIFAR_MEAN_STD),
    "cifar100": DatasetSpec(_cifar(tvd.CIFAR100, "cifar100"), ("train", "test"), 100, 32, CIFAR_MEAN_STD),
    "stl10": DatasetSpec(_stl10, tvd.STL10.splits, 10, 96, IMAGENET_MEAN_STD),
    "tiny-imagenet": DatasetSpec(_tiny_imagenet, ("train", "val"), 200, 64, IMAGENET_MEAN_STD),
    "imagenet": DatasetSpec(_imagenet(None), ("train", "val"), 1000, 224, IMAGENET_MEAN_STD),
    "imagenet100": DatasetSpec(_imagenet(IMAGENET100_CLASSES), ("train", "val"), 100, 224, IMAGENET_MEAN_STD),
    "folder": DatasetSpec(_folder, None, None, 224, IMAGENET_MEAN_STD),
}
MEAN_STD: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {k: v.mean_std for k, v in DATASETS.items()}
IMAGE_SIZE: dict[str, int] = {k: v.image_size for k, v in DATASETS.items()}


def spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise UnmixError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}") from None


def build_dataset(name: str, root: str | os.PathLike, split: str, transform=None,
                  download: bool = False) -> torch.utils.data.Dataset:
    """The `split` of dataset `name` under `root`, yielding `(transform(image), label)`."""
    s = spec(name)
    if s.splits is not None and split not in s.splits:
        raise UnmixError(f"{name}: unknown split {split!r}; choose from {', '.join(s.splits)}")
    root = Path(root).expanduser()
    if not download and not root.is_dir():
        raise UnmixError(f"{root}: {name} data root not found (see docs/pretrain.md, 'Data layouts')")
    return s.build(root, split, transform=transform, download=download)


def num_classes(name: str, dataset: torch.utils.data.Dataset | None = None) -> int:
    """Number of classes of `name`; for 'folder' read from `dataset.classes`."""
    n = spec(name).num_classes
    if n is None:
        if dataset is None or not hasattr(dataset, "classes"):
            raise UnmixError(f"{name}: the number of classes comes from the data; pass the dataset")
        n = len(dataset.classes)
    return n


def normalize(name: str) -> T.Normalize:
    mean, std = spec(name).mean_std
    return T.Normalize(mean, std)


def eval_transform(name: str, size: int | None = None) -> T.Compose:
    """Deterministic evaluation transform (kNN bank/queries, linear probe validation):
    ImageNet-size data: resize to size/0.875 then centre crop; small data: resize + centre crop
    to the native size (a no-op on CIFAR/STL-10/Tiny ImageNet images)."""
    size = size or spec(name).image_size
    resize = int(round(size / 0.875)) if size >= 224 else size
    return T.Compose([T.Resize(resize), T.CenterCrop(size), T.ToTensor(), normalize(name)])
