"""`unmix evaluate --show-dir`: the first few evaluated images drawn with their detections.

mmdet's DetVisualizationHook (tools/test.py --show-dir) draws every test image, and in a val loop
none to a file; this hook draws the first `max_images` of either loop through the same
visualizer call (DetLocalVisualizer.add_datasample: ground truth left, predictions above
`score_thr` right, one image per file named after the source image), then stops.
"""
from __future__ import annotations

import os.path as osp
from typing import Sequence

import mmcv
from mmdet.registry import HOOKS
from mmengine.fileio import get
from mmengine.hooks import Hook
from mmengine.visualization import Visualizer


@HOOKS.register_module()
class UnmixShowHook(Hook):
    def __init__(self, out_dir: str, max_images: int = 8, score_thr: float = 0.3) -> None:
        self.out_dir = out_dir
        self.max_images = int(max_images)
        self.score_thr = float(score_thr)
        self.drawn: list[str] = []

    def _draw(self, outputs: Sequence) -> None:
        visualizer = Visualizer.get_current_instance()
        for sample in outputs:
            if len(self.drawn) >= self.max_images:
                return
            img = mmcv.imfrombytes(get(sample.img_path), channel_order="rgb")
            out_file = osp.join(self.out_dir, osp.basename(sample.img_path))
            visualizer.add_datasample(osp.basename(sample.img_path), img, data_sample=sample,
                                      show=False, pred_score_thr=self.score_thr, out_file=out_file)
            self.drawn.append(out_file)

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._draw(outputs or [])

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._draw(outputs or [])
