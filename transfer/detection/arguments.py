"""The options of `unmix finetune|evaluate|sweep`, and the checks of their values that need no
library: importing this imports neither torch nor mmdet, so `--help` answers at once and a typo'd
path is refused in a second, not after the ~20 s it takes to import the detection stack."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from transfer.detection.datacheck import CLASS_MODES
from transfer.detection.protocols import BN_MODES, PROTOCOLS
from unmix.core.errors import UnmixError

DEVICE_RE = re.compile(r"^(cpu|cuda(:\d+)?)$")

SWEEP_SCHEMA = """\
SPEC (YAML), every key but checkpoints and protocols optional:

  work_root: work_dirs/sweep            # cells go to WORK_ROOT/LABEL/PROTOCOL/BN/seedN
  data_root: {voc: data/VOCdevkit, coco: data/coco}   # or one path (default: the configs')
  checkpoints:                          # a path, {label, path}, or 'none' (random init)
    - {label: mocov2, path: checkpoints/mocov2.pth}
    - none
  protocols: [voc-faster-rcnn-fpn]      # names as in `unmix finetune --help`
  bn: [finetune, frozen]                # default: each protocol's own
  seeds: [0, 1, 2]                      # default: [0]
  cfg_options: {train_cfg.max_epochs: 1}   # mmengine overrides applied to every cell
                                        # (lists become tuples where the config has tuples)
  quick: false                          # true: every cell as `unmix finetune --quick`
  scale: [320, 192]                     # every cell as `--scale W H` (default: none)
  fraction: 0.1                         # every cell as `--fraction F` (default: none)
  classes: auto                         # auto | protocol | data | FILE, as `--classes`

A finished cell is skipped, a failed one recorded and the grid goes on; an interrupted one
resumes from its newest loadable checkpoint when the sweep runs again. A label is one plain
name (no '/', '\\\\' or '..'). The flags --quick, --scale, --fraction and --classes override
the spec's keys. A shrunk sweep (quick, scale or fraction) puts its cells under
WORK_ROOT/VARIANT/ (e.g. WORK_ROOT/quick/LABEL/...), apart from the full sweep's; a cell whose
record says it ran with other quick/scale/fraction/classes/cfg_options stops the sweep before
anything runs (exit 1), and --force re-runs such cells from scratch."""


def _device(value: str) -> str:
    if not DEVICE_RE.match(value):
        raise argparse.ArgumentTypeError(f"{value!r}: expected cpu, cuda or cuda:N")
    return value


def finetune(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True,
                        help="checkpoint in any format `unmix convert` reads, or 'none' (random init)")
    parser.add_argument("--protocol", required=True, choices=list(PROTOCOLS),
                        help="the detection protocol (docs/transfer.md): " + ", ".join(PROTOCOLS))
    parser.add_argument("--bn", choices=list(BN_MODES), default=None,
                        help="finetune (BN trained), frozen (BN fixed), sync (SyncBN); "
                             "default: the protocol's")
    parser.add_argument("--seed", type=int, default=0, help="seed of the run (default 0)")
    parser.add_argument("--work-dir", default=None,
                        help="where checkpoints, logs and result.json go (default: "
                             "work_dirs/finetune/LABEL-SHA8_PROTOCOL_BN_sSEED)")
    parser.add_argument("--data-root", default=None, help="dataset root (default: the config's)")
    parser.add_argument("--label", default=None,
                        help="checkpoint label in the record (default: the file name; for "
                             "latest.pth and the like, the run directory's name)")
    parser.add_argument("--cfg-options", nargs="+", default=None, metavar="KEY=VALUE",
                        help="mmengine config overrides, e.g. train_cfg.max_epochs=1")
    parser.add_argument("--resume", action="store_true",
                        help="resume from the work dir's newest loadable checkpoint")
    add_classes(parser)
    parser.add_argument("--quick", action="store_true",
                        help="a first look: images at a quarter of the protocol's scale and 2%% of its "
                             "schedule, the schedule's shape kept (warm-up, lr steps); recorded, and "
                             "never tabulated with full runs (docs/transfer.md)")
    parser.add_argument("--scale", nargs=2, type=int, metavar=("W", "H"), default=None,
                        help="fit the test scale into W x H and scale every resize step alike")
    parser.add_argument("--fraction", type=float, default=None,
                        help="run this fraction of the schedule (iterations; FPN: of each epoch's images)")
    parser.add_argument("--force", action="store_true",
                        help="replace a finished run's record in the work dir (default: refuse)")
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm"], default="none",
                        help="multi-process launcher: pytorch under torchrun, slurm under srun "
                             "(default none: one process)")
    parser.add_argument("--device", type=_device, default=None,
                        help="cpu, cuda or cuda:N (default: cuda when available; under a "
                             "launcher each process takes its local rank's GPU)")
    parser.add_argument("--amp", action="store_true",
                        help="mixed precision (mmengine's AmpOptimWrapper, float16 with dynamic "
                             "loss scaling, as mmdet's tools/train.py --amp); CUDA only")
    parser.add_argument("--wandb", action="store_true",
                        help="also log to Weights & Biases (mmengine's WandbVisBackend; needs "
                             "`pip install wandb`; WANDB_MODE=offline works without an account)")
    parser.set_defaults(check_args=check_finetune)


def check_finetune(args: argparse.Namespace) -> None:
    """Every value that can be checked without the detection stack, in a second."""
    if args.checkpoint.lower() != "none" and not Path(args.checkpoint).is_file():
        raise UnmixError(f"{args.checkpoint}: no such checkpoint file (--checkpoint; 'none' for random init)")
    if args.data_root is not None and not Path(args.data_root).is_dir():
        raise UnmixError(f"{args.data_root}: no such directory (--data-root)")
    if args.work_dir is not None and Path(args.work_dir).exists() and not Path(args.work_dir).is_dir():
        raise UnmixError(f"{args.work_dir}: a file, not a work dir (--work-dir)")
    if args.amp and args.device == "cpu":
        raise UnmixError("--amp: mixed precision is CUDA-only here (mmengine's AmpOptimWrapper); "
                         "drop --amp on --device cpu")
    if args.device not in (None, "cpu", "cuda") and args.launcher != "none":
        raise UnmixError(f"--device {args.device}: under --launcher {args.launcher} each process "
                         "takes its local rank's GPU; pass cuda or nothing")
    check_shrink(args)


def check_shrink(args: argparse.Namespace) -> None:
    """--scale, --fraction and --classes, as finetune and sweep share them (a sweep spec's own
    keys: sweep.validate_spec); None means not given."""
    if args.scale is not None and min(args.scale) < 1:
        raise UnmixError(f"--scale {args.scale[0]} {args.scale[1]}: expected two positive integers")
    if args.fraction is not None and not 0 < args.fraction <= 1:
        raise UnmixError(f"--fraction {args.fraction:g}: expected a number in (0, 1]")
    if args.classes not in (None, *CLASS_MODES) and not Path(args.classes).is_file():
        raise UnmixError(f"--classes {args.classes}: no such class file (or auto, protocol, data)")


def add_classes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--classes", default="auto", metavar="auto|protocol|data|FILE",
                        help="the class set: auto (default: the protocol's 20 VOC / 80 COCO classes "
                             "when the data's are those, else the data's own, heads sized to them), "
                             "protocol (refuse other data), data (always the data's), or a file "
                             "with one class name per line")


def data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["check"], help="check: parse and summarise the data")
    parser.add_argument("--protocol", required=True, choices=list(PROTOCOLS),
                        help="the detection protocol whose splits to check")
    parser.add_argument("--data-root", required=True, help="the dataset root (VOC or COCO layout)")
    add_classes(parser)
    parser.add_argument("--cfg-options", nargs="+", default=None, metavar="KEY=VALUE",
                        help="mmengine config overrides, as for `unmix finetune`")
    parser.add_argument("--work-dir", default=None, help="also write WORK_DIR/data_check.txt")


def evaluate(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Evaluate a detector: a work dir `unmix finetune` wrote (WORK_DIR), or any mmdet "
        "checkpoint with its config, like mmdet's tools/test.py CONFIG CKPT (CONFIG: an mmdet "
        "config file, mmdet::PATH for one of mmdet's own, or one of our protocol names).")
    parser.add_argument("target", metavar="WORK_DIR|CONFIG",
                        help="a work dir written by `unmix finetune`, or a config (file, "
                             "mmdet::PATH, or a protocol name: " + ", ".join(PROTOCOLS) + ")")
    parser.add_argument("ckpt", metavar="CKPT", nargs="?", default=None,
                        help="with CONFIG: the detector checkpoint (an mmdet/mmengine .pth)")
    parser.add_argument("--checkpoint", default=None,
                        help="with WORK_DIR: checkpoint to evaluate (default: the one last_checkpoint names)")
    parser.add_argument("--work-dir", default=None,
                        help="with CONFIG: where config.py, logs and result.json go (default: "
                             "work_dirs/evaluate/CKPT-SHA8_CONFIG)")
    parser.add_argument("--data-root", default=None,
                        help="with CONFIG: dataset root (default: the config's)")
    parser.add_argument("--label", default=None,
                        help="with CONFIG: checkpoint label in the record (default: the file name)")
    parser.add_argument("--cfg-options", nargs="+", default=None, metavar="KEY=VALUE",
                        help="with CONFIG: mmengine config overrides")
    parser.add_argument("--metric-options", nargs="+", default=None, metavar="KEY=VALUE",
                        help="evaluator overrides, e.g. eval_mode=area or iou_thrs=[0.5]")
    parser.add_argument("--show-dir", default=None, metavar="DIR",
                        help="draw the detections of the first --show-images test images into "
                             "DIR (mmdet's DetVisualizationHook; ground truth left, predictions right)")
    parser.add_argument("--show-images", type=int, default=8, metavar="N",
                        help="how many images --show-dir draws (default 8)")
    parser.add_argument("--score-thr", type=float, default=0.3,
                        help="score threshold of the drawn detections (default 0.3, mmdet's)")
    parser.add_argument("--no-record", action="store_true", help="print only; leave result.json alone")
    parser.add_argument("--force", action="store_true",
                        help="with CONFIG: replace a finished record in --work-dir (default: refuse)")
    parser.set_defaults(check_args=check_evaluate)


def check_evaluate(args: argparse.Namespace) -> None:
    target = Path(args.target)
    if target.is_dir():
        if args.ckpt is not None:
            raise UnmixError(f"{args.target}: a work dir takes no CKPT (use --checkpoint FILE)")
        return
    if not (args.target in PROTOCOLS or args.target.startswith("mmdet::") or target.is_file()):
        raise UnmixError(f"{args.target}: neither a work dir, a config file, mmdet::PATH nor a "
                         f"protocol ({', '.join(PROTOCOLS)})")
    if args.ckpt is None:
        raise UnmixError(f"{args.target}: a config needs the checkpoint to evaluate (CONFIG CKPT)")
    if not Path(args.ckpt).is_file():
        raise UnmixError(f"{args.ckpt}: no such checkpoint file")
    if args.data_root is not None and not Path(args.data_root).is_dir():
        raise UnmixError(f"{args.data_root}: no such directory (--data-root)")
    if args.show_images < 1:
        raise UnmixError(f"--show-images {args.show_images}: must be at least 1")


def sweep(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = SWEEP_SCHEMA
    parser.add_argument("spec", help="sweep spec (YAML), see below")
    parser.add_argument("--dry-run", action="store_true", help="list the cells and their state only")
    parser.add_argument("--quick", action=argparse.BooleanOptionalAction, default=None,
                        help="every cell as `unmix finetune --quick` (overrides the spec's quick)")
    parser.add_argument("--scale", nargs=2, type=int, metavar=("W", "H"), default=None,
                        help="every cell as `unmix finetune --scale W H` (overrides the spec's scale)")
    parser.add_argument("--fraction", type=float, default=None,
                        help="every cell as `unmix finetune --fraction F` (overrides the spec's fraction)")
    parser.add_argument("--classes", default=None, metavar="auto|protocol|data|FILE",
                        help="the class set of every cell, as `unmix finetune --classes` "
                             "(overrides the spec's classes; default auto)")
    parser.add_argument("--force", action="store_true",
                        help="re-run from scratch the cells whose record says they ran with other "
                             "quick/scale/fraction/classes/cfg_options (default: stop, naming one)")
    parser.set_defaults(check_args=check_shrink)  # the flags' values, before the spec is read


def sweep_overrides(args: argparse.Namespace) -> dict:
    """The spec keys the command line sets (a flag given overrides the spec's key)."""
    given = {"quick": args.quick, "scale": args.scale, "fraction": args.fraction,
             "classes": args.classes}
    return {k: v for k, v in given.items() if v is not None}
