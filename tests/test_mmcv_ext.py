"""Pin the torchvision-backed `mmcv._ext` stand-in to compiled mmcv 2.1.0's behaviour.

tests/golden/mmcv_ops.pt holds compiled mmcv's outputs on fixed inputs (written by
tests/golden/make_mmcv_golden.py in an environment with compiled mmcv), so these tests need no
compiled mmcv. Focal loss: compiled mmcv has no CPU kernel, so its golden entries are mmcv's CUDA
kernel formula evaluated element by element in float64.
"""
from pathlib import Path

import pytest
import torch

from transfer.stack import mmcv_ext
from transfer.stack import ensure_stack, mmcv_ops_kind

GOLDEN = torch.load(Path(__file__).parent / "golden" / "mmcv_ops.pt", weights_only=True)
X = GOLDEN["inputs"]


def stand_in_roi_align(feats, rois, aligned, sr):
    """Call the stand-in exactly as mmcv's RoIAlignFunction calls `ext_module`."""
    out = feats.new_zeros(rois.shape[0], feats.shape[1], 7, 7)
    empty = feats.new_zeros(0)
    mmcv_ext.roi_align_forward(feats, rois, out, empty, empty, aligned_height=7, aligned_width=7,
                               spatial_scale=0.25, sampling_ratio=sr, pool_mode=1, aligned=aligned)
    grad_in = torch.zeros_like(feats)
    mmcv_ext.roi_align_backward(X["grad_out"], rois, empty, empty, grad_in, aligned_height=7,
                                aligned_width=7, spatial_scale=0.25, sampling_ratio=sr, pool_mode=1,
                                aligned=aligned)
    return out, grad_in


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sr", [0, 2])
def test_roi_align_matches_compiled_mmcv_forward_and_backward(aligned, sr):
    out, grad = stand_in_roi_align(X["feats"], X["rois"], aligned, sr)
    key = f"aligned{int(aligned)}_sr{sr}"
    torch.testing.assert_close(out, GOLDEN[f"roi_align_fwd_{key}"], rtol=0, atol=1e-12)
    torch.testing.assert_close(grad, GOLDEN[f"roi_align_bwd_{key}"], rtol=0, atol=1e-12)


@pytest.mark.parametrize("thr", [0.3, 0.5, 0.7])
@pytest.mark.parametrize("offset", [0, 1])
def test_nms_keeps_the_same_boxes_in_the_same_order(thr, offset):
    keep = mmcv_ext.nms(X["boxes"], X["scores"], iou_threshold=thr, offset=offset)
    expected = GOLDEN[f"nms_keep_thr{thr}_offset{offset}"]
    assert 0 < len(expected) < len(X["boxes"])  # the inputs really suppress something
    assert keep.tolist() == expected.tolist()


@pytest.mark.parametrize("weighted", [False, True])
def test_sigmoid_focal_loss_matches_mmcv_kernel_formula(weighted):
    logits, target = X["logits"], X["target"]
    weight = X["weight"] if weighted else logits.new_empty(0)
    out, grad = torch.zeros_like(logits), torch.zeros_like(logits)
    mmcv_ext.sigmoid_focal_loss_forward(logits, target, weight, out, gamma=2.0, alpha=0.25)
    mmcv_ext.sigmoid_focal_loss_backward(logits, target, weight, grad, gamma=2.0, alpha=0.25)
    torch.testing.assert_close(out, GOLDEN[f"focal_fwd_weight{int(weighted)}"], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(grad, GOLDEN[f"focal_bwd_weight{int(weighted)}"], rtol=1e-12, atol=1e-14)


def test_focal_backward_is_the_derivative_of_forward():
    logits = X["logits"].clone().requires_grad_(True)
    target, empty = X["target"], X["logits"].new_empty(0)
    # the textbook sigmoid focal loss, differentiated by autograd
    p = torch.sigmoid(logits)
    pos = torch.nn.functional.one_hot(target, 6)[:, :5].bool()
    loss = torch.where(pos, -0.25 * (1 - p) ** 2 * torch.log(p), -0.75 * p ** 2 * torch.log(1 - p))
    loss.sum().backward()
    grad = torch.zeros_like(logits)
    mmcv_ext.sigmoid_focal_loss_backward(logits.detach(), target, empty, grad, gamma=2.0, alpha=0.25)
    torch.testing.assert_close(grad, logits.grad, rtol=1e-9, atol=1e-12)


def test_public_mmcv_ops_use_the_stand_in_when_mmcv_is_not_compiled():
    ensure_stack()
    from mmcv.ops import nms, roi_align

    if mmcv_ops_kind() != "stand-in":
        pytest.skip("compiled mmcv is installed; the stand-in stays out of the way")
    _, keep = nms(X["boxes"], X["scores"], 0.5)
    assert keep.tolist() == GOLDEN["nms_keep_thr0.5_offset0"].tolist()
    out = roi_align(X["feats"], X["rois"], (7, 7), 0.25, 0, "avg", True)
    torch.testing.assert_close(out, GOLDEN["roi_align_fwd_aligned1_sr0"], rtol=0, atol=1e-12)


def test_other_kernels_fail_naming_the_op_and_the_fix():
    with pytest.raises(mmcv_ext.MissingKernelError, match="'deform_conv_forward'.*--compiled-mmcv"):
        mmcv_ext.deform_conv_forward(torch.zeros(1))
    with pytest.raises(mmcv_ext.MissingKernelError, match="pool_mode='max'"):
        stand_in = torch.zeros(1, 1, 7, 7)
        mmcv_ext.roi_align_forward(torch.zeros(1, 1, 8, 8), torch.zeros(1, 5), stand_in, stand_in,
                                   stand_in, 7, 7, 1.0, 0, 0, True)
