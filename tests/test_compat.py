"""Each fix in transfer/stack/compat.py has a test here that fails without the fix."""
import pickle

import numpy as np
import pytest
import torch

from transfer.stack import ensure_stack

ensure_stack()

from mmengine.logging import MessageHub  # noqa: E402
from mmengine.runner import checkpoint as mm_checkpoint  # noqa: E402
from mmengine.runner.checkpoint import CheckpointLoader  # noqa: E402


def mmengine_style_checkpoint(path):
    """What mmengine's Runner.save_checkpoint writes: meta, state_dict and the message hub with
    HistoryBuffers of numpy values (the part torch >= 2.6's weights_only loader rejects)."""
    hub = MessageHub(name="compat-test")
    hub.update_scalar("train/loss", np.float64(1.5))
    hub.update_scalar("train/lr", 0.02)
    hub.update_info("iter", 3)
    torch.save({"meta": {"epoch": 1, "iter": 3, "seed": 0, "dataset_meta": {"classes": ("a",)}},
                "state_dict": {"w": torch.ones(2)},
                "message_hub": hub.state_dict()}, path)


def test_mmengine_cannot_resume_its_own_checkpoint_without_the_fix(tmp_path):
    path = tmp_path / "epoch_1.pth"
    mmengine_style_checkpoint(path)
    # mmengine's original loader (still importable, no longer registered) fails on torch >= 2.6
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        mm_checkpoint.load_from_local(str(path), map_location="cpu")


def test_fixed_loader_reads_mmengine_checkpoints_under_weights_only(tmp_path):
    path = tmp_path / "epoch_1.pth"
    mmengine_style_checkpoint(path)
    ckpt = CheckpointLoader.load_checkpoint(str(path), map_location="cpu")
    assert ckpt["meta"]["iter"] == 3
    hub = MessageHub(name="compat-test-2")
    hub.load_state_dict(ckpt["message_hub"])
    assert hub.get_scalar("train/loss").current() == 1.5


class Evil:
    def __reduce__(self):
        return (print, ("code from a checkpoint ran",))


def test_fixed_loader_still_refuses_code_in_pickles(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "payload": Evil()}, path)
    with pytest.raises(pickle.UnpicklingError):
        CheckpointLoader.load_checkpoint(str(path), map_location="cpu")


def test_allowlist_is_scoped_to_the_mmengine_loader(tmp_path):
    path = tmp_path / "epoch_1.pth"
    mmengine_style_checkpoint(path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)  # other torch.load calls stay strict


class _BuiltinsModule:
    """Unpickles as getattr(getattr, '__self__'): the builtins module."""

    def __reduce__(self):
        return (getattr, (getattr, "__self__"))


class _EvalRef:
    """Unpickles as getattr(<builtins>, 'eval'): no code runs at load, but the loaded object
    then holds builtins.eval where mmengine expects a statistics method."""

    def __reduce__(self):
        return (getattr, (_BuiltinsModule(), "eval"))


def test_getattr_is_allowed_only_for_history_buffer_statistics(tmp_path):
    path = tmp_path / "epoch_1.pth"
    torch.save({"meta": {"epoch": 1}, "state_dict": {}, "message_hub": {"x": _EvalRef()}}, path)
    with pytest.raises(pickle.UnpicklingError, match=r"refused getattr\(.*'(__self__|eval)'\)"):
        CheckpointLoader.load_checkpoint(str(path), map_location="cpu")
    # mmengine's own use still loads: getattr(HistoryBuffer, 'min'|'max'|'current'|'mean')
    from mmengine.logging.history_buffer import HistoryBuffer

    good = tmp_path / "epoch_2.pth"
    mmengine_style_checkpoint(good)
    hub = CheckpointLoader.load_checkpoint(str(good), map_location="cpu")["message_hub"]
    buf = hub["log_scalars"]["train/loss"]
    assert buf._statistics_methods["min"] is HistoryBuffer.min
    assert buf.statistics("mean") == 1.5


def test_a_config_is_reflowed_by_yapf_once_and_written_unchanged(monkeypatch):
    from mmengine.config import config as mm_config
    from yapf.yapflib import yapf_api

    from transfer.detection import protocols

    calls = []
    original = mm_config.FormatCode._unmix_original
    assert original is yapf_api.FormatCode  # the fix wraps yapf's own function
    cfg = protocols.load_config("voc-faster-rcnn-c4")

    def counting(text, style_config=None, **kw):
        calls.append(text)
        return original(text, style_config=style_config, **kw)

    monkeypatch.setattr(mm_config, "FormatCode", counting)
    reference = cfg.pretty_text  # yapf itself, no memo
    from transfer.stack import compat

    compat.memoize_config_format()  # wraps the counting function
    texts = [cfg.pretty_text for _ in range(4)]
    assert texts == [reference] * 4  # the text written is unchanged
    assert len(calls) == 2  # once for the reference, once for four dumps
    cfg.train_cfg.max_iters = 7
    assert "max_iters=7" in cfg.pretty_text and len(calls) == 3  # a changed config is reformatted
