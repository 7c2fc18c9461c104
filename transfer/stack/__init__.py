"""The OpenMMLab stack made usable: call `ensure_stack()` before importing mmdet or mmcv.ops.

It (1) registers `transfer.stack.mmcv_ext` as `mmcv._ext` when compiled mmcv is absent, (2)
applies the torch >= 2.6 / numpy 2 fixes of `transfer.stack.compat`, and (3) registers mmdet's
modules with mmengine's registries. Idempotent and cheap after the first call.

The package holds: this set-up, `compat` (the fixes), `mmcv_ext` (the kernel stand-in) and
`backbones` (our CIFAR-stem ResNet, registered in mmdet's MODELS when imported). It is the floor
of everything in `transfer` that touches mmdet: the converter's verification and `detection`
import it; it imports only `unmix.core` and the OpenMMLab packages.
"""
from __future__ import annotations

import importlib.util
import os
import sys

from unmix.core.errors import UnmixError

_done = False


def _compiled_ext_present() -> bool:
    current = sys.modules.get("mmcv._ext")
    if current is not None:
        return not getattr(current, "IS_STAND_IN", False)
    try:
        return importlib.util.find_spec("mmcv._ext") is not None
    except (ImportError, ValueError):
        return False


def mmcv_ops_kind() -> str:
    """'compiled' (mmcv built with ops), 'stand-in' (ours over torchvision) or 'missing'."""
    current = sys.modules.get("mmcv._ext")
    if current is not None:
        return "stand-in" if getattr(current, "IS_STAND_IN", False) else "compiled"
    if importlib.util.find_spec("mmcv") is None:
        return "missing"
    return "compiled" if _compiled_ext_present() else "missing"


def install_stand_in() -> bool:
    """Register our kernels as `mmcv._ext` unless compiled mmcv provides them. True if installed.

    `UNMIX_MMCV_OPS=stand-in` forces the stand-in even over compiled mmcv (to compare the two
    side by side: benchmarks/bench_mmcv_ops.py)."""
    forced = os.environ.get("UNMIX_MMCV_OPS", "") == "stand-in"
    if _compiled_ext_present() and not forced:
        return False
    if "mmcv.ops" in sys.modules and "mmcv._ext" not in sys.modules:
        raise UnmixError("mmcv.ops was imported before transfer.stack.ensure_stack(); "
                         "call ensure_stack() first")
    try:
        import mmcv
    except ImportError:
        raise UnmixError("mmcv is not installed; run tools/setup.sh") from None
    from transfer.stack import mmcv_ext

    sys.modules["mmcv._ext"] = mmcv_ext
    mmcv._ext = mmcv_ext  # type: ignore[attr-defined]
    return True


def ensure_stack(register_modules: bool = True) -> None:
    """Idempotently prepare mmcv/mmengine/mmdet for use in this process."""
    global _done
    if _done:
        return
    install_stand_in()
    from transfer.stack import compat

    compat.apply()
    if register_modules:
        from mmdet.utils import register_all_modules

        register_all_modules(init_default_scope=True)  # so MODELS.build works outside a Runner
    _done = True


def mmdet_config_path(relative: str) -> str:
    """Absolute path of one of mmdet's own configs, e.g. 'faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
    (what `_base_ = 'mmdet::...'` resolves to; `Config.fromfile` does not take the prefix itself)."""
    import os

    import mmdet

    path = os.path.join(os.path.dirname(mmdet.__file__), ".mim", "configs", relative)
    if not os.path.isfile(path):
        raise UnmixError(f"{path}: mmdet config not found (is mmdet {mmdet.__version__} installed "
                         "with its configs? run tools/setup.sh)")
    return path
