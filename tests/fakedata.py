"""Writers of tiny datasets in the real on-disk formats, for tests (no network).

- `write_cifar10(root, n_train, n_test)` / `write_cifar100(...)`: the pickles torchvision reads
  (`cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta`; `cifar-100-python/train, test,
  meta`). torchvision verifies the published md5 sums of the real files; `cifar_md5_patch` /
  `stl10_md5_patch` return the (class, attribute, value) triples that point those checks at the md5
  sums of the files written here, so the integrity check still runs, on our bytes:
      for cls, attr, value in fakedata.cifar_md5_patch(root, "cifar10"):
          monkeypatch.setattr(cls, attr, value)
  (`patch_md5(monkeypatch, root, name)` does exactly that.)
- `write_stl10(root, n_train, n_test, n_unlabeled)`: `stl10_binary/*.bin` (uint8, column-major
  3x96x96 as the real files; labels 1..10) + `class_names.txt`.
- `write_image_folder(root, classes, per_class, size)`: `root/<class>/img_k.png`.
- `write_tiny_imagenet(root, classes, per_class, size)`: `train/<wnid>/images/*.JPEG`,
  `val/images/*.JPEG` + `val/val_annotations.txt`, `wnids.txt`.
Images are random but seeded, so tests are reproducible.
"""
from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
from PIL import Image


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _images(n: int, size: int, seed: int) -> np.ndarray:
    return _rng(seed).integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def _cifar_batch(imgs: np.ndarray, labels: list[int], key: str) -> dict:
    # The real files store rows of 3072 bytes (R plane, G plane, B plane), keys as str in py3 pickles.
    return {"data": imgs.transpose(0, 3, 1, 2).reshape(len(imgs), -1), key: labels,
            "batch_label": "fake", "filenames": [f"img{i}.png" for i in range(len(imgs))]}


def write_cifar10(root: str | Path, n_train: int = 20, n_test: int = 10, seed: int = 0) -> Path:
    base = Path(root) / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)
    per = [n_train // 5 + (i < n_train % 5) for i in range(5)]
    for i, n in enumerate(per, 1):
        labels = [int(x) for x in _rng(seed + i).integers(0, 10, n)]
        _pickle(base / f"data_batch_{i}", _cifar_batch(_images(n, 32, seed + i), labels, "labels"))
    labels = [int(x) for x in _rng(seed + 99).integers(0, 10, n_test)]
    _pickle(base / "test_batch", _cifar_batch(_images(n_test, 32, seed + 99), labels, "labels"))
    _pickle(base / "batches.meta", {"label_names": [f"class{i}" for i in range(10)], "num_cases_per_batch": per[0]})
    return Path(root)


def write_cifar100(root: str | Path, n_train: int = 20, n_test: int = 10, seed: int = 0) -> Path:
    base = Path(root) / "cifar-100-python"
    base.mkdir(parents=True, exist_ok=True)
    for name, n, s in (("train", n_train, seed + 1), ("test", n_test, seed + 2)):
        fine = [int(x) for x in _rng(s).integers(0, 100, n)]
        batch = _cifar_batch(_images(n, 32, s), fine, "fine_labels")
        batch["coarse_labels"] = [f // 5 for f in fine]
        _pickle(base / name, batch)
    _pickle(base / "meta", {"fine_label_names": [f"fine{i}" for i in range(100)],
                            "coarse_label_names": [f"coarse{i}" for i in range(20)]})
    return Path(root)


def cifar_md5_patch(root: str | Path, name: str = "cifar10") -> list[tuple[type, str, object]]:
    from torchvision import datasets as tvd

    cls = {"cifar10": tvd.CIFAR10, "cifar100": tvd.CIFAR100}[name]
    base = Path(root) / cls.base_folder
    return [
        (cls, "train_list", [[f, _md5(base / f)] for f, _ in cls.train_list]),
        (cls, "test_list", [[f, _md5(base / f)] for f, _ in cls.test_list]),
        (cls, "meta", {**cls.meta, "md5": _md5(base / cls.meta["filename"])}),
    ]


def write_stl10(root: str | Path, n_train: int = 10, n_test: int = 10, n_unlabeled: int = 10,
                seed: int = 0, size: int = 96) -> Path:
    base = Path(root) / "stl10_binary"
    base.mkdir(parents=True, exist_ok=True)
    for name, n, s in (("train", n_train, seed + 1), ("test", n_test, seed + 2), ("unlabeled", n_unlabeled, seed + 3)):
        # STL-10 stores each image as 3 planes, each column-major (torchvision transposes (0,1,3,2)).
        x = _images(n, size, s).transpose(0, 3, 2, 1)
        (base / f"{name}_X.bin").write_bytes(np.ascontiguousarray(x).tobytes())
        if name != "unlabeled":
            (base / f"{name}_y.bin").write_bytes(_rng(s).integers(1, 11, n).astype(np.uint8).tobytes())
    (base / "class_names.txt").write_text("\n".join(f"class{i}" for i in range(10)) + "\n")
    return Path(root)


def stl10_md5_patch(root: str | Path) -> list[tuple[type, str, object]]:
    from torchvision import datasets as tvd

    base = Path(root) / tvd.STL10.base_folder
    return [(tvd.STL10, "train_list", [[f, _md5(base / f)] for f, _ in tvd.STL10.train_list]),
            (tvd.STL10, "test_list", [[f, _md5(base / f)] for f, _ in tvd.STL10.test_list])]


def patch_md5(monkeypatch, root: str | Path, name: str) -> None:
    """Point torchvision's md5 checks for `name` at the fake files under `root` (tests only)."""
    triples = stl10_md5_patch(root) if name == "stl10" else cifar_md5_patch(root, name)
    for cls, attr, value in triples:
        monkeypatch.setattr(cls, attr, value)


def write_image_folder(root: str | Path, classes: list[str] | int = 3, per_class: int = 4, size: int = 32,
                       seed: int = 0, ext: str = "png") -> Path:
    root = Path(root)
    classes = [f"class{i}" for i in range(classes)] if isinstance(classes, int) else classes
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for k, img in enumerate(_images(per_class, size, seed + 7919 * c)):
            Image.fromarray(img).save(root / name / f"img_{k}.{ext}")
    return root


def write_tiny_imagenet(root: str | Path, classes: list[str] | int = 3, per_class: int = 4, val_per_class: int = 2,
                        size: int = 64, seed: int = 0) -> Path:
    root = Path(root)
    classes = [f"n{i:08d}" for i in range(classes)] if isinstance(classes, int) else classes
    for c, wnid in enumerate(classes):
        d = root / "train" / wnid / "images"
        d.mkdir(parents=True, exist_ok=True)
        for k, img in enumerate(_images(per_class, size, seed + c)):
            Image.fromarray(img).save(d / f"{wnid}_{k}.JPEG", format="JPEG")
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
    (root / "val" / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for k, img in enumerate(_images(val_per_class * len(classes), size, seed + 1000)):
        wnid = classes[k % len(classes)]
        Image.fromarray(img).save(root / "val" / "images" / f"val_{k}.JPEG", format="JPEG")
        lines.append(f"val_{k}.JPEG\t{wnid}\t0\t0\t{size - 1}\t{size - 1}")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    (root / "wnids.txt").write_text("\n".join(classes) + "\n")
    return root


def write_random_resnet(path: str | Path, arch: str = "resnet18", seed: int = 0) -> Path:
    """A randomly initialised encoder saved as a bare torchvision-named state dict (the simplest
    format `unmix convert` reads): the checkpoint kNN/linear/flatness CLI tests evaluate."""
    import torch

    from pretrain.backbones import build_resnet

    torch.manual_seed(seed)
    torch.save(build_resnet(arch).state_dict(), path)
    return Path(path)
