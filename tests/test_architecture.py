"""The layer contracts in pyproject.toml (import-linter) hold, and they do fail on a back-edge.

The tree is copied (Python files only) to a temp dir and one import is added that breaks a rule;
`lint-imports` must then report that contract broken. `make test` also runs `lint-imports` on
the real tree before pytest."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _copy_tree(dst: Path) -> Path:
    for pkg in ("unmix", "pretrain", "transfer"):
        shutil.copytree(REPO / pkg, dst / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", dst / "pyproject.toml")
    return dst


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(root))
    return subprocess.run([str(LINT), "--no-cache"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_tree_keeps_every_contract(tmp_path):
    out = _lint(_copy_tree(tmp_path))
    assert out.returncode == 0, out.stdout[-3000:]
    assert "0 broken" in out.stdout


@pytest.mark.parametrize("module, line, contract", [
    ("unmix/core/records.py", "import transfer.report.tables", "Layers: the app"),
    ("pretrain/train.py", "import transfer.frozen.knn", "Layers: the app"),
    ("transfer/stack/__init__.py", "import transfer.detection.protocols", "Inside transfer"),
    ("transfer/frozen/common.py", "import transfer.convert.verify", "Frozen-feature evaluation"),
    ("transfer/convert/rules.py", "import mmdet", "torch-only part"),
    ("pretrain/losses.py", "import mmengine", "mmdet, mmcv and mmengine only"),
    ("transfer/convert/formats.py", "import transfer.convert.rules", "No import cycles"),
])
def test_a_back_edge_breaks_its_contract(tmp_path, module, line, contract):
    root = _copy_tree(tmp_path)
    path = root / module
    path.write_text(path.read_text() + f"\n{line}  # injected by the test\n")
    out = _lint(root)
    assert out.returncode != 0
    broken = out.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, out.stdout[-3000:]
