"""A sweep's cfg_options reach each cell's config as finetune resolves it (issue 17.4: "a sweep
with scale: [64, 48] fails every cell": YAML has lists, mmcv's Resize wants a tuple)."""
from __future__ import annotations

import numpy as np

from transfer.stack import ensure_stack

ensure_stack()

from mmdet.registry import TRANSFORMS  # noqa: E402

from transfer.detection import finetune as ft  # noqa: E402
from transfer.detection import protocols  # noqa: E402
from transfer.detection import sweep as sw  # noqa: E402
from unmix.core import records  # noqa: E402
from unmix.demo import toydata  # noqa: E402

KEY = "train_dataloader.dataset.dataset.datasets.0.pipeline.2.scale"


def test_a_yaml_list_in_cfg_options_reaches_the_cell_config_as_a_tuple(tmp_path):
    protocols.register_modules()
    toydata.write_voc(tmp_path / "voc", 2, 2, size=(96, 64), classes=toydata.VOC_CLASSES)
    spec_file = tmp_path / "grid.yaml"
    spec_file.write_text(f"work_root: {tmp_path / 'runs'}\n"
                         f"data_root: {tmp_path / 'voc'}\n"
                         "checkpoints: [none]\n"
                         "protocols: [voc-faster-rcnn-fpn]\n"
                         "bn: [frozen]\n"
                         f"cfg_options: {{{KEY}: [64, 48], train_cfg.max_epochs: 1}}\n")
    spec = sw.load_spec(spec_file)
    assert spec["cfg_options"][KEY] == [64, 48]  # YAML's list, as the sweep passes it on
    resolved = []

    def resolve(checkpoint, protocol, bn, seed, work_dir, data_root, cfg_options, resume, label, **kw):
        """finetune's config resolution (build_config), without the training."""
        cfg, section = ft.build_config(protocol, bn, seed, work_dir, data_root, cfg_options, None,
                                       "none", 1, False)
        resolved.append(cfg)
        rec = records.new_record("detection", {"label": label, "path": None}, section, env={})
        records.finish(rec, {"AP50": 0.0})
        records.write(rec, work_dir)
        return rec

    out = sw.sweep(spec, finetune_fn=resolve, log=lambda m: None)
    assert len(out["finished"]) == 1 and not out["failed"]
    step = resolved[0].train_dataloader.dataset.dataset.datasets[0].pipeline[2]
    assert step.type == "Resize" and step.scale == (64, 48) and isinstance(step.scale, tuple)
    # mmcv's Resize takes it: a 100x60 image fits into 64x48 keeping its ratio -> 64x38
    img = np.zeros((60, 100, 3), np.uint8)
    assert TRANSFORMS.build(dict(step))({"img": img})["img"].shape == (38, 64, 3)
    assert resolved[0].train_cfg.max_epochs == 1
    # the record finetune wrote says the spec's cfg_options (merged, as JSON): the cell is done
    assert sw.stale_cells(list(sw.cells(spec)), spec) == {}
    # the spec edited afterwards: the finished cell ran otherwise, and says which key
    edited = dict(spec, cfg_options={**spec["cfg_options"], "train_cfg.max_epochs": 2})
    (wd, (status, diffs)), = sw.stale_cells(list(sw.cells(edited)), edited).items()
    assert status == "finished" and diffs == ["cfg_options train_cfg.max_epochs=1 (the spec: 2)"]
