"""unmix finetune: protocol configs, BN modes, lr scaling, load assertion (fast), and every protocol
end to end on tiny real-format datasets on CPU (slow)."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision

from transfer.stack import ensure_stack

ensure_stack()

from transfer.detection import finetune as ft  # noqa: E402
from transfer.detection import protocols  # noqa: E402
from unmix.demo import toydata  # noqa: E402
from unmix.core import records  # noqa: E402
from unmix.core.files import sha256_file  # noqa: E402
from unmix.core.errors import UnmixError  # noqa: E402

SCALE = (96, 64)
REPO = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------- fixtures

@pytest.fixture
def private_tmp():
    """Our own temp dir: on this shared machine other pytest sessions prune /tmp/pytest-of-*,
    which can delete a slow test's tmp_path under its feet."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="unmix-ft-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def data():
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="unmix-ft-data-"))
    yield _write_data(root)
    shutil.rmtree(root, ignore_errors=True)


def _write_data(root):
    toydata.write_voc(root / "voc", 2, 2, size=SCALE, classes=toydata.VOC_CLASSES)
    toydata.write_coco(root / "coco", 4, 2, size=SCALE, classes=toydata.COCO_CLASSES)
    return {"voc": root / "voc", "coco": root / "coco"}


@pytest.fixture(scope="module")
def r18(data):
    torch.manual_seed(0)
    path = data["voc"].parent / "tv_r18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


def root_for(data, protocol):
    return str(data[protocols.get(protocol)["dataset"]])


# ---------------------------------------------------------------------- protocol configs

def test_registry_points_at_existing_configs():
    for name, meta in protocols.PROTOCOLS.items():
        assert protocols.config_path(name).is_file(), name
        assert protocols.config_path(name).stem == name
        assert meta["default_bn"] in protocols.BN_MODES


def test_full_size_settings_are_the_papers():
    voc = protocols.load_config("voc-faster-rcnn-fpn")
    train = voc.train_dataloader.dataset
    assert train.type == "RepeatDataset" and train.times * voc.train_cfg.max_epochs == 12
    assert train.dataset.datasets[0].pipeline[2].scale == (1000, 600)
    assert voc.test_dataloader.dataset.pipeline[1].scale == (1000, 600)
    assert voc.model.neck.get("norm_cfg") is None  # no BN in the new FPN layers
    for name in ("coco-retinanet-fpn", "coco-mask-rcnn-fpn"):
        cfg = protocols.load_config(name)
        assert cfg.train_cfg.max_epochs == 12
        assert cfg.optim_wrapper.optimizer.lr == 0.02 and cfg.auto_scale_lr.base_batch_size == 16
        assert cfg.train_dataloader.dataset.pipeline[2].scale == (1333, 800)
        assert cfg.model.neck.get("norm_cfg") is None
        assert cfg.val_evaluator.proposal_nums == (1, 10, 100)
    c4 = protocols.load_config("voc-faster-rcnn-c4")
    assert c4.train_cfg.max_iters == 24000 and c4.param_scheduler[1].milestones == [18000, 22000]
    assert c4.model.backbone.frozen_stages == -1 and c4.model.backbone.norm_cfg.type == "SyncBN"
    assert c4.model.roi_head.shared_head.type == "ResLayerExtraNorm"
    for name in protocols.PROTOCOLS:  # pytorch style, RGB, torchvision mean/std
        cfg = protocols.load_config(name)
        assert cfg.model.backbone.style == "pytorch"
        if name == "voc-faster-rcnn-c4-mmselfsup":
            continue  # runs mmdet's caffe preprocessor, as mmselfsup's config does (test_protocol_recipes)
        pre = cfg.model.data_preprocessor
        assert pre.bgr_to_rgb and list(pre.mean) == [123.675, 116.28, 103.53]
        assert list(pre.std) == [58.395, 57.12, 57.375]


@pytest.mark.parametrize("mode,norm,grad,norm_eval", [
    ("finetune", "BN", True, False), ("frozen", "BN", False, True), ("sync", "SyncBN", True, False)])
def test_bn_modes(mode, norm, grad, norm_eval):
    cfg = protocols.load_config("voc-faster-rcnn-c4")
    protocols.apply_bn(cfg, "c4", mode)
    for part in (cfg.model.backbone, cfg.model.roi_head.shared_head):
        assert part.norm_cfg == dict(type=norm, requires_grad=grad) and part.norm_eval is norm_eval
    fpn = protocols.load_config("coco-mask-rcnn-fpn")
    protocols.apply_bn(fpn, "fpn", mode)
    assert fpn.model.backbone.norm_cfg.type == norm and fpn.model.neck.get("norm_cfg") is None


def test_sync_bn_on_one_process_falls_back_loudly():
    assert protocols.resolve_bn("sync", 1, cuda=True)[0] == "finetune"
    assert "single process" in protocols.resolve_bn("sync", 1, cuda=True)[1]
    assert protocols.resolve_bn("sync", 2, cuda=False)[0] == "finetune"
    assert protocols.resolve_bn("sync", 8, cuda=True) == ("sync", None)
    assert protocols.resolve_bn("frozen", 1, cuda=False) == ("frozen", None)
    with pytest.raises(UnmixError, match="--bn"):
        protocols.resolve_bn("group", 1, cuda=False)


@pytest.mark.parametrize("name,total,expected", [
    ("voc-faster-rcnn-fpn", 16, 0.01), ("voc-faster-rcnn-fpn", 2, 0.00125),
    ("coco-mask-rcnn-fpn", 32, 0.04), ("voc-faster-rcnn-c4", 4, 0.005)])
def test_lr_scales_linearly(name, total, expected):
    cfg = protocols.load_config(name)
    info = protocols.scale_lr(cfg, total)
    assert info["lr"] == pytest.approx(expected) and cfg.optim_wrapper.optimizer.lr == pytest.approx(expected)
    assert cfg.auto_scale_lr.enable is False


def test_data_root_moves_datasets_and_coco_annotations():
    cfg = protocols.load_config("coco-mask-rcnn-fpn")
    protocols.set_data_root(cfg, "/x/coco")
    assert cfg.train_dataloader.dataset.data_root == "/x/coco/"
    assert cfg.val_evaluator.ann_file == "/x/coco/annotations/instances_val2017.json"
    voc = protocols.load_config("voc-faster-rcnn-fpn")
    protocols.set_data_root(voc, "/y")
    assert all(d.data_root == "/y/" for d in voc.train_dataloader.dataset.dataset.datasets)


def test_backbone_widths_follow_the_checkpoint():
    cfg = protocols.load_config("voc-faster-rcnn-c4")
    protocols.apply_backbone(cfg, "c4", {"depth": 18, "num_stages": 4, "out_indices": (0, 1, 2, 3),
                                         "init_cfg": dict(type="Pretrained", checkpoint="b.pth")})
    assert cfg.model.backbone.num_stages == 3 and cfg.model.backbone.out_indices == (2,)
    assert cfg.model.rpn_head.in_channels == 256 and cfg.model.roi_head.bbox_head.in_channels == 512
    assert cfg.model.roi_head.shared_head.init_cfg.checkpoint == "b.pth"
    fpn = protocols.load_config("voc-faster-rcnn-fpn")
    protocols.apply_backbone(fpn, "fpn", None)  # random init
    assert fpn.model.backbone.init_cfg is None and fpn.model.backbone.frozen_stages == -1


# ------------------------------------------------------------------ partial-load assertion

def _mmdet_r18():
    from mmdet.registry import MODELS

    return MODELS.build(dict(type="ResNet", depth=18, norm_eval=False, style="pytorch"))


class _Det(torch.nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone


def test_load_check_passes_on_exact_copy_and_names_what_is_missing():
    torch.manual_seed(0)
    tv = {k: v for k, v in torchvision.models.resnet18().state_dict().items() if not k.startswith("fc.")}
    model = _Det(_mmdet_r18())
    model.backbone.load_state_dict(tv)
    ft.check_loaded(model, tv, "fpn")
    # MoCo-style prefixes that never matched: every tensor missing, and said so.
    with pytest.raises(UnmixError, match="not in the checkpoint"):
        ft.check_loaded(model, {f"encoder_q.0.{k}": v for k, v in tv.items()}, "fpn")
    # One tensor silently left at its init value.
    model.backbone.layer3[0].conv1.weight.data.add_(1.0)
    with pytest.raises(UnmixError, match="1 tensors differ.*layer3.0.conv1.weight"):
        ft.check_loaded(model, tv, "fpn")


def test_unknown_protocol_and_missing_checkpoint_are_user_errors(tmp_path):
    with pytest.raises(UnmixError, match="unknown protocol"):
        ft.finetune("none", "voc-ssd", work_dir=tmp_path)
    with pytest.raises(UnmixError, match="no such checkpoint"):
        ft.finetune(str(tmp_path / "nope.pth"), "voc-faster-rcnn-fpn", work_dir=tmp_path / "w")
    rec = records.load(tmp_path / "w" / "result.json")
    assert rec["status"] == "failed" and "no such checkpoint" in rec["error"]


def test_missing_data_root_is_one_line_error(tmp_path, r18):
    with pytest.raises(UnmixError, match="VOC data root"):
        ft.finetune(str(r18), "voc-faster-rcnn-fpn", work_dir=tmp_path, data_root=str(tmp_path / "no"))


def test_amp_is_mmdets_and_refused_on_cpu():
    """mmdet 3.3 tools/train.py --amp: optim_wrapper.type AmpOptimWrapper, loss_scale dynamic."""
    cfg = protocols.load_config("voc-faster-rcnn-fpn")
    with pytest.raises(UnmixError, match="--amp: mixed precision is CUDA-only"):
        ft.apply_amp(cfg, cuda=False)
    assert cfg.optim_wrapper.type == "OptimWrapper"  # untouched by the refusal
    assert "AmpOptimWrapper" in ft.apply_amp(cfg, cuda=True)
    assert (cfg.optim_wrapper.type, cfg.optim_wrapper.loss_scale) == ("AmpOptimWrapper", "dynamic")
    assert cfg.optim_wrapper.optimizer.type == "SGD"


def test_wandb_is_one_more_vis_backend_or_a_one_line_refusal():
    import importlib.util

    cfg = protocols.load_config("voc-faster-rcnn-fpn")
    before = list(cfg.visualizer.vis_backends)
    if importlib.util.find_spec("wandb") is None:
        with pytest.raises(UnmixError, match="--wandb: the wandb package is not installed"):
            ft.add_wandb(cfg, "run")
        return
    ft.add_wandb(cfg, "run")
    assert cfg.visualizer.vis_backends[:-1] == before
    assert cfg.visualizer.vis_backends[-1]["type"] == "WandbVisBackend"


def test_device_cpu_and_a_missing_gpu():
    assert ft.resolve_device("cpu") is False
    if not torch.cuda.is_available():
        with pytest.raises(UnmixError, match="--device cuda:0: CUDA is not available"):
            ft.resolve_device("cuda:0")
    with ft.mmengine_device(False):
        from mmengine.device import get_device

        assert get_device() == "cpu"


# ----------------------------------------------------------------------- end to end (slow)

def check_record(rec, work_dir, protocol, world_size=1):
    on_disk = records.load(Path(work_dir) / "result.json")
    assert on_disk["status"] == "finished", on_disk["error"]
    assert on_disk == json.loads(json.dumps(rec, default=str))
    p = on_disk["protocol"]
    assert p["name"] == protocol and p["iterations"] >= 2 and p["world_size"] == world_size
    assert p["lr"] == pytest.approx(p["lr_base"] * p["batch_size_total"] / p["lr_base_batch"])
    for key in ("torch", "mmcv", "mmengine", "mmdet", "device", "unmix_commit"):
        assert key in on_disk["env"]
    assert on_disk["metrics"] and all(0.0 <= v <= 100.0 for v in on_disk["metrics"].values())
    assert (Path(work_dir) / "config.py").is_file() and (Path(work_dir) / "backbone.pth").is_file()
    assert list(Path(work_dir).glob("*/vis_data/events.out.tfevents*")), "no TensorBoard scalars"
    return on_disk


@pytest.mark.slow
@pytest.mark.parametrize("protocol", list(protocols.PROTOCOLS))
def test_every_protocol_trains_two_iterations_and_evaluates(protocol, data, r18, private_tmp):
    rec = ft.finetune(str(r18), protocol, seed=1, work_dir=private_tmp, data_root=root_for(data, protocol),
                      cfg_options=protocols.smoke_options(protocol, scale=SCALE))
    rec = check_record(rec, private_tmp, protocol)
    assert rec["checkpoint"]["sha256"] == sha256_file(r18) and rec["checkpoint"]["arch"] == "resnet18"
    assert rec["backbone_load_checked"] is True
    meta = protocols.get(protocol)
    assert rec["protocol"]["variant"] == meta["variant"] and rec["protocol"]["source"] == meta["source"]
    if meta["default_bn"] == "sync":  # default SyncBN, one process: recorded as plain BN
        assert rec["protocol"]["bn_requested"] == "sync" and rec["protocol"]["bn_used"] == "finetune"
        assert "single process" in rec["protocol"]["bn_note"]
    # Precise BN ran (smoke: as many batches as iterations) where the protocol has it.
    assert rec["protocol"]["precise_bn_iters"] == (2 if meta.get("precise_bn") else None)
    logs = "".join(p.read_text() for p in Path(private_tmp).glob("*/*.log"))
    assert ("precise BN: updated" in logs) == bool(meta.get("precise_bn"))
    assert re.search(r"unmix: iter (\d+)/\1 \(100%\) loss [0-9.]+ lr \S+ eta 0s", logs), "no progress line"
    if meta["dataset"] == "voc":
        assert {"AP50", "recall"} <= set(rec["metrics"])
        if meta["layout"] == "c4":
            assert {"AP", "AP75"} <= set(rec["metrics"])
    if "mask-rcnn" in protocol:
        assert {"bbox_AP", "segm_AP", "segm_AP75"} <= set(rec["metrics"])


# Interrupt, SIGTERM, resume from the newest loadable checkpoint with the same losses, reruns into
# finished work dirs: tests/test_finetune_resume.py.


@pytest.mark.slow
def test_two_processes_gloo_match_single_process_structure(data, r18, private_tmp):
    name = "voc-faster-rcnn-fpn"
    opts = protocols.smoke_options(name, scale=SCALE, batch=1)
    single = ft.finetune(str(r18), name, work_dir=private_tmp / "one", data_root=root_for(data, name),
                         cfg_options=protocols.smoke_options(name, scale=SCALE, batch=2))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(29500 + os.getpid() % 1000), "-m", "unmix.cli", "finetune",
           "--checkpoint", str(r18), "--protocol", name, "--launcher", "pytorch",
           "--work-dir", str(private_tmp / "two"), "--data-root", root_for(data, name),
           "--cfg-options", *[f"{k}={v!r}" for k, v in opts.items()]]
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    two = check_record(records.load(private_tmp / "two" / "result.json"), private_tmp / "two", name, world_size=2)
    assert two["protocol"]["batch_size_total"] == 2 == single["protocol"]["batch_size_total"]
    assert two["protocol"]["lr"] == single["protocol"]["lr"]
    assert set(two) == set(single) and set(two["protocol"]) == set(single["protocol"])
    assert set(two["metrics"]) == set(single["metrics"]) and two["env"]["world_size"] == 2


# ------------------------------------------------------------------ CIFAR stem (issue 17.3)

def test_cifar_stem_is_refused_by_finetune_and_sweep_before_anything_is_written(tmp_path, capsys):
    """A CIFAR-stem encoder (strides 1/2/4/8) into a detector whose anchors assume 4/8/16/32:
    exit 1, one line saying what to evaluate it with, no work dir, no record."""
    from pretrain.backbones import build_resnet
    from unmix import cli

    src = tmp_path / "cifar_r18.pth"
    torch.save(build_resnet("resnet18", stem="cifar").state_dict(), src)  # plain state dict, 3x3 conv1
    wd = tmp_path / "run"
    assert cli.main(["finetune", "--checkpoint", str(src), "--protocol", "voc-faster-rcnn-fpn",
                     "--work-dir", str(wd)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CIFAR-stem" in err[0] and "1/2/4/8" in err[0]
    assert "unmix knn" in err[0] and "unmix linear" in err[0] and str(src) in err[0]
    assert not wd.exists()
    spec = tmp_path / "sweep.yaml"
    spec.write_text(f"work_root: {tmp_path / 'sweep'}\ncheckpoints: [{src}]\n"
                    "protocols: [voc-faster-rcnn-fpn]\n")
    assert cli.main(["sweep", str(spec)]) == 1
    assert "CIFAR-stem" in capsys.readouterr().err
    assert not (tmp_path / "sweep").exists()
