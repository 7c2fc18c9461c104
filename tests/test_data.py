"""pretrain.data: every dataset through torchvision's real loaders on files in the real formats."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from pretrain import data
from tests import fakedata
from unmix.core.errors import UnmixError


def test_cifar10_reads_real_pickles(tmp_path, monkeypatch):
    fakedata.write_cifar10(tmp_path, n_train=12, n_test=5)
    fakedata.patch_md5(monkeypatch, tmp_path, "cifar10")
    train = data.build_dataset("cifar10", tmp_path, "train")
    test = data.build_dataset("cifar10", tmp_path, "test")
    assert len(train) == 12 and len(test) == 5
    # naive reference: decode the first row of data_batch_1 by hand
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        raw = pickle.load(f, encoding="latin1")
    img, label = train[0]
    np.testing.assert_array_equal(np.asarray(img), raw["data"][0].reshape(3, 32, 32).transpose(1, 2, 0))
    assert label == raw["labels"][0]
    # root may also be the dataset folder itself
    assert len(data.build_dataset("cifar10", tmp_path / "cifar-10-batches-py", "test")) == 5


def test_cifar100_and_transform(tmp_path, monkeypatch):
    fakedata.write_cifar100(tmp_path, n_train=6, n_test=3)
    fakedata.patch_md5(monkeypatch, tmp_path, "cifar100")
    ds = data.build_dataset("cifar100", tmp_path, "train", transform=data.eval_transform("cifar100"))
    x, y = ds[1]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and 0 <= y < 100
    assert data.num_classes("cifar100") == 100


def test_cifar_md5_mismatch_is_an_unmix_error(tmp_path):
    fakedata.write_cifar10(tmp_path, n_train=5, n_test=1)  # no md5 patch: real sums differ
    with pytest.raises(UnmixError, match="md5"):
        data.build_dataset("cifar10", tmp_path, "train")


def test_missing_files_list_what_was_expected(tmp_path):
    with pytest.raises(UnmixError, match="not found"):
        data.build_dataset("cifar10", tmp_path / "nope", "train")
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(UnmixError, match="data_batch_1.*test_batch.*batches.meta"):
        data.build_dataset("cifar10", tmp_path, "train")
    with pytest.raises(UnmixError, match="train_X.bin"):
        data.build_dataset("stl10", tmp_path, "train")
    with pytest.raises(UnmixError, match="split"):
        data.build_dataset("cifar10", tmp_path, "val")
    with pytest.raises(UnmixError, match="unknown dataset"):
        data.build_dataset("mnist", tmp_path, "train")


def test_stl10_splits(tmp_path, monkeypatch):
    fakedata.write_stl10(tmp_path, n_train=4, n_test=3, n_unlabeled=5)
    fakedata.patch_md5(monkeypatch, tmp_path, "stl10")
    sizes = {s: len(data.build_dataset("stl10", tmp_path, s)) for s in data.DATASETS["stl10"].splits}
    assert sizes == {"train": 4, "test": 3, "unlabeled": 5, "train+unlabeled": 9}
    img, label = data.build_dataset("stl10", tmp_path, "unlabeled")[0]
    assert img.size == (96, 96) and label == -1
    # naive reference: first test image, planes stored column-major, labels 1-based
    raw = np.frombuffer((tmp_path / "stl10_binary" / "test_X.bin").read_bytes(), np.uint8)
    ref = raw.reshape(-1, 3, 96, 96)[0].transpose(2, 1, 0)
    img, label = data.build_dataset("stl10", tmp_path, "test")[0]
    np.testing.assert_array_equal(np.asarray(img), ref)
    assert label == (tmp_path / "stl10_binary" / "test_y.bin").read_bytes()[0] - 1


def test_tiny_imagenet_val_annotations(tmp_path):
    root = fakedata.write_tiny_imagenet(tmp_path / "tiny-imagenet-200", classes=["n02", "n01", "n03"],
                                        per_class=2, val_per_class=2)
    train = data.build_dataset("tiny-imagenet", tmp_path, "train")  # parent of tiny-imagenet-200 works
    val = data.build_dataset("tiny-imagenet", root, "val")
    assert train.classes == ["n01", "n02", "n03"] and len(train) == 6 and len(val) == 6
    lines = (root / "val" / "val_annotations.txt").read_text().split("\n")
    for k in range(6):
        fname, wnid = lines[k].split("\t")[:2]
        assert val.samples[k][0].endswith(fname) and val[k][1] == train.class_to_idx[wnid]
    assert val[0][0].size == (64, 64)


def test_imagenet100_restricts_to_appendix_classes(tmp_path):
    extra = ["n99999999"]
    fakedata.write_image_folder(tmp_path / "val", list(data.IMAGENET100_CLASSES) + extra, per_class=1, size=8)
    ds = data.build_dataset("imagenet100", tmp_path, "val")
    assert len(ds.classes) == 100 and "n99999999" not in ds.classes and len(ds) == 100
    assert ds.classes == sorted(data.IMAGENET100_CLASSES)
    full = data.build_dataset("imagenet", tmp_path, "val")
    assert len(full.classes) == 101
    fakedata.write_image_folder(tmp_path / "train", ["n02869837"], per_class=1, size=8)
    with pytest.raises(UnmixError, match="99 of the 100 classes missing"):
        data.build_dataset("imagenet100", tmp_path, "train")


def test_folder_and_eval_transform(tmp_path):
    fakedata.write_image_folder(tmp_path / "train", classes=2, per_class=3, size=40)
    ds = data.build_dataset("folder", tmp_path, "train", transform=data.eval_transform("folder", 32))
    assert len(ds) == 6 and ds[0][0].shape == (3, 32, 32)
    assert data.num_classes("folder", ds) == 2
    flat = data.build_dataset("folder", tmp_path / "train", "train")  # class folders directly under root
    assert len(flat) == 6
    t = data.eval_transform("imagenet")
    assert t(Image.new("RGB", (300, 400))).shape == (3, 224, 224)


def test_registry_tables_are_consistent():
    assert set(data.DATASETS) == {"cifar10", "cifar100", "stl10", "tiny-imagenet", "imagenet", "imagenet100", "folder"}
    assert data.MEAN_STD["cifar100"] == data.MEAN_STD["cifar10"]
    assert data.IMAGE_SIZE == {"cifar10": 32, "cifar100": 32, "stl10": 96, "tiny-imagenet": 64,
                               "imagenet": 224, "imagenet100": 224, "folder": 224}


# ---------------------------------------------------------------- augmentations (pretrain.augment)
from pretrain import augment  # noqa: E402


@pytest.mark.parametrize("method,n", [("moco_v1", 2), ("moco_v2", 2), ("simclr", 2), ("byol", 2), ("swav", 2)])
def test_cifar_views_shapes_and_no_blur(method, n):
    mv = augment.build_views(method, "cifar10")
    views = mv(Image.new("RGB", (32, 32), (120, 30, 200)))
    assert len(views) == n and all(v.shape == (3, 32, 32) for v in views)
    assert "GaussianBlur" not in repr(mv)  # no blur at 32 px (Un-Mix CIFAR demo)


def test_imagenet_views_follow_the_papers():
    swav = augment.build_views("swav", "imagenet")
    sizes = [v.shape[-1] for v in swav(Image.new("RGB", (256, 300)))]
    assert sizes == [224, 224] + [96] * 6
    byol = augment.build_views("byol", "imagenet")
    r1, r2 = repr(byol.transforms[0]), repr(byol.transforms[1])
    assert "GaussianBlur" in r1 and "RandomSolarize" not in r1       # view 1: blur p 1.0, no solarize
    assert "p=0.1" in r2 and "RandomSolarize" in r2                   # view 2: blur p 0.1, solarize 0.2
    assert "GaussianBlur" in repr(augment.build_views("moco_v2", "imagenet"))
    assert "GaussianBlur" not in repr(augment.build_views("moco_v1", "imagenet"))
    raw = augment.build_views("moco_v2", "cifar10", normalize=False)(Image.new("RGB", (32, 32), (255, 255, 255)))
    assert raw[0].max() <= 1.0 and raw[0].min() >= 0.0


def test_device_augment_batched_and_reproducible():
    mean, std = data.MEAN_STD["cifar10"]
    aug = augment.DeviceAugment(32, mean, std)
    x = torch.randint(0, 256, (6, 3, 40, 40), dtype=torch.uint8)
    a = aug(x, generator=torch.Generator().manual_seed(1))
    b = aug(x, generator=torch.Generator().manual_seed(1))
    c = aug(x, generator=torch.Generator().manual_seed(2))
    assert a.shape == (6, 3, 32, 32) and a.dtype == torch.float32 and torch.equal(a, b) and not torch.equal(a, c)
    # with scale (1, 1), ratio 1, no jitter/grayscale, no flip draw changes values: identity crop
    ident = augment.DeviceAugment(40, (0, 0, 0), (1, 1, 1), scale=(1.0, 1.0), ratio=(1.0, 1.0),
                                  jitter_p=0.0, gray_p=0.0)
    y = ident(x, generator=torch.Generator().manual_seed(0))
    ref = x.float() / 255
    flipped = ref.flip(-1)
    for i in range(6):
        assert torch.allclose(y[i], ref[i], atol=1e-5) or torch.allclose(y[i], flipped[i], atol=1e-5)
