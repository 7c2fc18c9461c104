"""transfer.stack.roi_align_cpu: torchvision's CPU RoIAlign backward, bit for bit.

The reference is torchvision's own kernel (`torch.ops.torchvision._roi_align_backward`), called on
the same inputs; equality is of the bits (an int view), so a reordered float sum would fail.
"""
import pytest
import torch
import torchvision  # noqa: F401  (registers torch.ops.torchvision)

from transfer.stack import roi_align_cpu


def reference(grad, rois, scale, batch, channels, height, width, sr, aligned):
    return torch.ops.torchvision._roi_align_backward(grad, rois, scale, 7, 7, batch, channels,
                                                     height, width, sr, aligned)


def ours(grad, rois, scale, batch, channels, height, width, sr, aligned):
    return roi_align_cpu.roi_align_backward(grad, rois, scale, 7, 7, batch, channels, height,
                                            width, sr, aligned)


def bits(t: torch.Tensor) -> torch.Tensor:
    t = t.contiguous()
    return t.view(torch.int64 if t.dtype == torch.float64 else torch.int32)


def random_rois(gen, n, batch, size, dtype):
    """Boxes of every kind the kernel branches on: inside, across and past the borders,
    degenerate (zero or negative size), tiny and larger than the image (several points a bin)."""
    xy = torch.rand(n, 2, generator=gen, dtype=dtype) * size * 1.4 - size * 0.2
    wh = torch.rand(n, 2, generator=gen, dtype=dtype) * size * 1.2
    wh[: n // 10] = 0.0
    wh[n // 10: n // 5] *= -0.1
    wh[n // 5: n // 4] *= 0.02
    ids = torch.randint(0, batch, (n, 1), generator=gen).to(dtype)
    return torch.cat([ids, xy, xy + wh], 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sr", [0, 2])
def test_same_bits_as_torchvision(dtype, aligned, sr):
    gen = torch.Generator().manual_seed(0)
    batch, channels, height, width, scale = 3, 5, 11, 9, 0.25
    rois = random_rois(gen, 120, batch, 40, dtype)
    grad = torch.randn(120, channels, 7, 7, generator=gen, dtype=dtype)
    args = (grad, rois, scale, batch, channels, height, width, sr, aligned)
    assert torch.equal(bits(ours(*args)), bits(reference(*args)))


def test_overlapping_rois_in_blocks_keep_the_kernel_order(monkeypatch):
    """Many RoIs over one small map: each element sums hundreds of terms, so any other order
    changes bits (checked below on torchvision itself); small blocks split the sums too."""
    gen = torch.Generator().manual_seed(1)
    rois = random_rois(gen, 400, 2, 16, torch.float32)
    grad = torch.randn(400, 8, 7, 7, generator=gen)
    args = (grad, rois, 0.5, 2, 8, 8, 8, 0, True)
    expected = reference(*args)
    perm = torch.randperm(400, generator=gen)
    reordered = reference(grad[perm], rois[perm], *args[2:])
    assert not torch.equal(bits(reordered), bits(expected))  # the test can see an order change
    monkeypatch.setattr(roi_align_cpu, "BLOCK_ELEMENTS", 4 * 8 * 37)  # 37 points a block
    assert torch.equal(bits(ours(*args)), bits(expected))


def test_demo_shaped_call_and_empty_inputs():
    gen = torch.Generator().manual_seed(2)
    # the demo's P2 call: 8 images of 16x16, 64 channels, ~500 RoIs of 3-8 feature pixels
    xy = torch.rand(500, 2, generator=gen) * 50
    rois = torch.cat([torch.randint(0, 8, (500, 1), generator=gen).float(), xy,
                      xy + 12 + torch.rand(500, 2, generator=gen) * 16], 1)
    grad = torch.randn(500, 64, 7, 7, generator=gen)
    args = (grad, rois, 0.25, 8, 64, 16, 16, 0, True)
    assert torch.equal(bits(ours(*args)), bits(reference(*args)))
    none = (grad[:0], rois[:0], 0.25, 8, 64, 16, 16, 0, True)
    assert torch.equal(ours(*none), reference(*none))
    outside = rois.clone()
    outside[:, 1:] += 1000.0  # every sampling point beyond the map: nothing is added
    args = (grad, outside, 0.25, 8, 64, 16, 16, 0, True)
    assert torch.equal(bits(ours(*args)), bits(reference(*args)))


def test_only_cpu_float_is_taken_over():
    assert roi_align_cpu.supported(torch.zeros(1))
    assert roi_align_cpu.supported(torch.zeros(1, dtype=torch.float64))
    assert not roi_align_cpu.supported(torch.zeros(1, dtype=torch.float16))
