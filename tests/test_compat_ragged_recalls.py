"""compat.fix_ragged_recalls: mmdet's eval_recalls under numpy >= 1.24 with ragged per-image IoUs."""
import numpy as np
import pytest

from transfer.stack import ensure_stack

ensure_stack()

from mmdet.evaluation.functional import eval_recalls as exported  # noqa: E402
from mmdet.evaluation.metrics import voc_metric  # noqa: E402


def boxes(*rows):
    return np.array(rows, dtype=np.float32).reshape(-1, 4)


def scored(*rows):
    return np.array(rows, dtype=np.float32).reshape(-1, 5)


# Image 1: 2 gts, 3 detections; image 2: 1 gt, 1 detection -> IoU matrices 2x3 and 1x1 (ragged).
GTS = [boxes([0, 0, 10, 10], [20, 20, 30, 30]), boxes([0, 0, 10, 10])]
DETS = [scored([0, 0, 10, 10, 0.9], [20, 20, 25, 30, 0.8], [50, 50, 60, 60, 0.1]),
        scored([0, 0, 10, 5, 0.7])]


def test_original_fails_on_ragged_inputs():
    original = voc_metric.eval_recalls._unmix_original
    with pytest.raises(ValueError, match="inhomogeneous"):
        original(GTS, DETS, proposal_nums=[100], iou_thrs=[0.5])


def test_fixed_matches_closed_form():
    # IoUs of the best matches: 1.0, 0.5, 0.5 -> recall at 0.5 is 3/3, at 0.6 is 1/3.
    rec = voc_metric.eval_recalls(GTS, DETS, proposal_nums=[100], iou_thrs=[0.5, 0.6])
    np.testing.assert_allclose(rec, [[1.0, 1 / 3]], atol=1e-6)
    # Top-1 proposal only: image 1 keeps its best box (IoU 1), image 2 its only one (0.5).
    rec1 = voc_metric.eval_recalls(GTS, DETS, proposal_nums=[1], iou_thrs=[0.5])
    np.testing.assert_allclose(rec1, [[2 / 3]], atol=1e-6)


def test_fixed_equals_original_on_homogeneous_inputs():
    gts = [boxes([0, 0, 10, 10]), boxes([5, 5, 15, 15])]
    dets = [scored([0, 0, 8, 10, 0.5]), scored([5, 5, 15, 12, 0.9])]
    original = voc_metric.eval_recalls._unmix_original
    np.testing.assert_array_equal(voc_metric.eval_recalls(gts, dets, [1, 10], [0.5, 0.7]),
                                  original(gts, dets, [1, 10], [0.5, 0.7]))
    assert exported is voc_metric.eval_recalls or getattr(exported, "_unmix_fixed", False)
