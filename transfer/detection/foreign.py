"""A detector checkpoint trained elsewhere, made a work dir `unmix evaluate` can score: like
mmdet's `tools/test.py CONFIG CKPT`, the checkpoint is any mmengine/mmdet checkpoint (meta,
state_dict) and CONFIG an mmdet config file, `mmdet::PATH` (one of mmdet's own configs) or one of
our protocol names (its config resolved exactly as `unmix finetune` resolves it, so the record
carries the same protocol section and the report compares it with fine-tuned runs).

The work dir gets the resolved `config.py` (mmdet's tools can use it too) and, once evaluated, a
finished result.json whose protocol section says `evaluated_only`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from unmix.core import files, records
from unmix.core.env import env_info
from unmix.core.errors import UnmixError
from unmix.core.files import sha256_file
from transfer.detection import checkpoints, options, protocols
from transfer.detection.finetune import build_config

DEFAULT_ROOT = Path("work_dirs") / "evaluate"


def _mmdet_config(config: str, data_root: str | None, cfg_options: dict | None):
    """An mmdet config with our datasets and metrics swapped in (same definitions, and the
    record's metric names and per-class AP), and the data root moved."""
    from mmengine.config import Config

    from transfer.stack import mmdet_config_path

    path = mmdet_config_path(config[len("mmdet::"):]) if config.startswith("mmdet::") else config
    try:
        cfg = Config.fromfile(str(path))
    except Exception as e:  # a syntax error or a missing base: one line, naming the file
        raise UnmixError(f"{path}: cannot load config ({type(e).__name__}: {e})") from None
    cfg_options = options.apply(cfg, cfg_options)
    if data_root:
        protocols.set_data_root(cfg, str(Path(data_root).absolute()))
    protocols.use_unmix_datasets(cfg)
    metric_types = protocols.use_unmix_metrics(cfg)
    section = {"name": f"config:{Path(path).stem}", "task": "detection", "config": str(path),
               "data_root": protocols.data_root_of(cfg), "metrics_types": metric_types,
               "cfg_options": dict(cfg_options or {})}
    return cfg, section


def _protocol_config(name: str, work_dir: Path, data_root: str | None, cfg_options: dict | None,
                     cuda: bool):
    return build_config(name, None, 0, work_dir, data_root, cfg_options, None, "none", 1, cuda)


def prepare(config: str, ckpt: str, work_dir: str | None = None, data_root: str | None = None,
            cfg_options: dict | None = None, label: str | None = None, force: bool = False
            ) -> tuple[Path, dict[str, Any]]:
    """(the work dir, holding config.py; the record to finish once evaluated)."""
    import torch

    protocols.register_modules()
    src = Path(ckpt)
    checkpoints.check(src)  # one line for a truncated file or one that is not a detector's
    sha = sha256_file(src)
    label = label or records.default_label(src)
    stem = config if config in protocols.PROTOCOLS else Path(config.split("::")[-1]).stem
    work_dir = Path(work_dir or DEFAULT_ROOT / records.run_name(label, sha, stem)).resolve()
    records.refuse_finished(work_dir, force)
    cuda = torch.cuda.is_available()
    if config in protocols.PROTOCOLS:
        cfg, section = _protocol_config(config, work_dir, data_root, cfg_options, cuda)
    else:
        cfg, section = _mmdet_config(config, data_root, cfg_options)
    section["evaluated_only"] = True  # trained elsewhere: the schedule in config.py is not this run's
    cfg.work_dir = str(work_dir)
    files.make_dir(work_dir)
    cfg.dump(str(work_dir / "config.py"))
    ck_section = {"label": label, "path": str(src.resolve()), "sha256": sha, "format": "mmdet",
                  "arch": None, "stem": None, "pretrain": None}
    env = env_info(device="cuda" if cuda else "cpu", world_size=1)
    return work_dir, records.new_record("detection", ck_section, section, env=env)
