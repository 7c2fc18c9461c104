"""`unmix demo`: the whole pipeline, small, on data the project draws itself (no network).

    unmix demo [--size small|tiny] [--work-dir work_dirs/demo] [--out reports/demo] [--seed 0] [--force]

Stages (each reuses its finished outputs on a re-run unless `--force`):

1. data      labelled scenes in the real VOC layout (unmix.demo.toydata: JPEG + XML, VOC2007
             trainval/test and VOC2012 trainval), and a separate pool of unlabelled scenes whose
             objects are cut out as an image folder (`crops/train/<class>/<n>.jpg`, pretrain.data's
             'folder' dataset; `crops/test` holds the VOC2007 test objects, for kNN)
2. pretrain  `unmix pretrain` MoCo v2 ResNet-18 on the pool's crops, without and with Un-Mix (same seed,
             same everything else; configs/demo/pretrain-moco-v2*.py)
3. knn       `unmix knn` of both encoders on the crops (result records)
4. convert   `unmix convert` of both encoders into mmdet backbones (summary printed)
5. finetune  `unmix finetune --protocol voc-faster-rcnn-fpn-mmdet3` shrunk by
             configs/demo/voc-faster-rcnn-fpn-r18.py, for {random init, MoCo v2, MoCo v2 + Un-Mix}
             x BN {finetune, frozen} x `detect_seeds` seeds; each run evaluates on VOC2007 test
             and writes result.json
6. report    `unmix report` over every record -> --out (md, tex, csv, html, plots)

Everything goes through the subcommands' own public entry points, so the numbers are what the
real commands produce. A line per stage with the elapsed time goes to stderr and WORK_DIR/demo.log.
"""
from __future__ import annotations

import argparse
import os
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unmix.core import records
from unmix.core.config import to_plain
from unmix.core.logs import close_log, open_log
from unmix.core.errors import UnmixError
from unmix.core.eta import format_duration

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / "configs" / "demo"
PROTOCOL = "voc-faster-rcnn-fpn-mmdet3"
DETECTION_CONFIG = CONFIG_DIR / "voc-faster-rcnn-fpn-r18.py"
CLASSES: tuple[str, ...] = ("disc", "box", "triangle", "diamond")
BN_MODES: tuple[str, ...] = ("finetune", "frozen")


@dataclass(frozen=True)
class Size:
    """Everything `--size` changes. Detection data: `n_train` labelled scenes per VOC year (VOC2007
    and VOC2012 trainval, so 2 x n_train training images), `n_test` VOC2007 test scenes. The
    pretraining pool: the object crops of `n_pool` x 2 further scenes, never labelled for detection."""
    n_pool: int
    n_train: int
    n_test: int
    image: int                 # scene side (px); the detector trains and tests at this scale
    crop: int                  # pretraining / kNN image side (px)
    pretrain_epochs: int
    pretrain_batch: int
    queue: int                 # MoCo's K (a multiple of the batch)
    detect_epochs: int
    detect_batch: int
    detect_seeds: int          # fine-tuning seeds per cell (--seed, --seed + 1, ...): the report's n
    knn_k: int


SIZES: dict[str, Size] = {
    "small": Size(n_pool=500, n_train=25, n_test=100, image=64, crop=32, pretrain_epochs=6, pretrain_batch=32,
                  queue=256, detect_epochs=12, detect_batch=8, detect_seeds=3,
                  knn_k=50),
    "tiny": Size(n_pool=4, n_train=4, n_test=4, image=64, crop=32, pretrain_epochs=1, pretrain_batch=8,
                 queue=32, detect_epochs=1, detect_batch=2, detect_seeds=1,
                 knn_k=5),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", choices=list(SIZES), default="small",
                        help="small: the demo of docs/demo.md (stage times there); "
                             "tiny: seconds per stage, for tests")
    parser.add_argument("--work-dir", default="work_dirs/demo", help="data, checkpoints, runs, demo.log")
    parser.add_argument("--out", default="reports/demo", help="where the report goes")
    parser.add_argument("--seed", type=int, default=0, help="data and pretraining seed; the first fine-tuning seed")
    parser.add_argument("--force", action="store_true", help="redo every stage, even finished ones")
    parser.add_argument("--device", default=None, help="cpu, cuda (default: cuda when available)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="stages run side by side (the two pretrainings, the fine-tuning runs), each "
                             "in its own process with its share of the cores (default: the cores this "
                             "process may use; 1: one by one in this process)")


# ----------------------------------------------------------------------------------- progress

class Progress:
    """Timestamped lines (stage starts with ETAs, each task's end), to stderr and WORK_DIR/demo.log."""

    def __init__(self, log_path: Path) -> None:
        self.t0 = time.time()
        self.log = open_log(log_path, f"unmix.demo.{log_path}", datefmt="%H:%M:%S")

    def info(self, msg: str) -> None:
        self.log.info(f"[demo {time.time() - self.t0:6.1f} s] {msg}")

    def close(self) -> None:
        close_log(self.log)


# --------------------------------------------------------------------------------------- data

def _voc_boxes(xml_path: Path) -> list[tuple[str, tuple[int, int, int, int]]]:
    root = ET.parse(xml_path).getroot()
    out = []
    for obj in root.iter("object"):
        b = obj.find("bndbox")
        box = tuple(int(b.find(t).text) for t in ("xmin", "ymin", "xmax", "ymax"))
        out.append((obj.find("name").text, box))
    return out


def write_crops(voc_root: Path, out: Path, crop: int,
                splits: tuple[str, ...] = ("train", "test")) -> dict[str, int]:
    """Each annotated object of the VOC scenes, cut out with a 15% margin and resized to
    `crop` px, as `out/<split>/<class>/<image>_<k>.jpg` for each of `splits` (train: VOC2007+2012
    trainval, test: VOC2007 test). Returns the image count per split."""
    from PIL import Image

    sets_of = {"train": [("VOC2007", "trainval"), ("VOC2012", "trainval")], "test": [("VOC2007", "test")]}
    counts = {}
    for split in splits:
        sets = sets_of[split]
        n = 0
        for year, image_set in sets:
            year_dir = voc_root / "VOCdevkit" / year
            ids = (year_dir / "ImageSets" / "Main" / f"{image_set}.txt").read_text().split()
            for stem in ids:
                img = Image.open(year_dir / "JPEGImages" / f"{stem}.jpg").convert("RGB")
                for k, (name, (x1, y1, x2, y2)) in enumerate(_voc_boxes(year_dir / "Annotations" / f"{stem}.xml")):
                    m = 0.15 * max(x2 - x1, y2 - y1)
                    box = (max(0, x1 - 1 - m), max(0, y1 - 1 - m), min(img.width, x2 + m), min(img.height, y2 + m))
                    dst = out / split / name / f"{year}_{stem}_{k}.jpg"
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    img.crop(box).resize((crop, crop), Image.BICUBIC).save(dst, quality=92)
                    n += 1
        counts[split] = n
    return counts


# ------------------------------------------------------------------------------------ configs

def config_overrides(base: Any, child: Any, prefix: str = "") -> dict[str, Any]:
    """Flat mmengine cfg-options (`a.b.0.c=value`) that turn config `base` into `child`.

    Dicts are compared key by key and lists of equal length item by item (mmengine's
    `merge_from_dict` takes list indices as keys); anything else that differs is replaced whole.
    Keys only in `base` are kept by the merge, so they are not listed.
    """
    out: dict[str, Any] = {}
    if isinstance(base, dict) and isinstance(child, dict):
        for k, v in child.items():
            key = f"{prefix}{k}"
            if k not in base:
                out[key] = to_plain(v)
            else:
                out.update(config_overrides(base[k], v, key + "."))
        return out
    if isinstance(base, (list, tuple)) and isinstance(child, (list, tuple)) and len(base) == len(child) \
            and type(base) is type(child) and any(isinstance(x, dict) for x in child):
        for i, (b, c) in enumerate(zip(base, child)):
            out.update(config_overrides(b, c, f"{prefix}{i}."))
        return out
    if base != child:
        out[prefix.rstrip(".")] = to_plain(child)
    return out


def detection_overrides(config: Path = DETECTION_CONFIG, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """cfg-options that turn the protocol's config into `config` (plus `extra`, applied on top)."""
    from mmengine.config import Config

    from transfer.detection import protocols

    child = Config.fromfile(str(config))
    if extra:
        child.merge_from_dict(extra)
    base = protocols.load_config(PROTOCOL)
    # file-local names of the demo config, not config entries
    skip = {"classes", "scale", "channels", "epochs", "train_pipeline", "test_pipeline", "_voc", "_test",
            "vis_backends"}
    c = {k: v for k, v in child.to_dict().items() if k not in skip}
    return config_overrides(base.to_dict(), c)


# ------------------------------------------------------------------------------------- stages

ENCODERS: dict[str, tuple[str, str]] = {  # key -> (checkpoint label, pretraining config)
    "moco_v2": ("MoCo v2", "pretrain-moco-v2.py"),
    "moco_v2_unmix": ("MoCo v2 + Un-Mix", "pretrain-moco-v2-unmix.py"),
}
RANDOM_INIT = "random init"


def _cpu_seconds() -> float:
    import resource

    # this process and its finished children (the side-by-side stages' workers)
    return sum(r.ru_utime + r.ru_stime for r in map(resource.getrusage,
                                                    (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)))


def _fresh(path: Path, force: bool) -> None:
    """With --force, remove a stage's previous outputs (only ever inside the demo work dir)."""
    import shutil

    if force and path.exists():
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def _subcommand(module: Any, argv: list[str]) -> int:
    """Run a subcommand through its own parser and `run`, as `unmix NAME ARGV` would."""
    parser = argparse.ArgumentParser(prog=f"unmix {module.__name__}")
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(argv)) or 0)


def stage_data(wd: Path, size: Size, seed: int, force: bool, p: Progress) -> tuple[Path, Path]:
    from unmix.demo import toydata

    root, voc, crops = wd / "data", wd / "data" / "voc", wd / "data" / "crops"
    done = root / "done.txt"
    _fresh(root, force)
    if done.is_file():
        p.info(f"reusing {root} ({done.read_text().strip()})")
        return voc, crops
    _fresh(root, True)
    pool = root / "pool"
    toydata.write_voc(voc, size.n_train, size.n_test, size=(size.image, size.image), classes=CLASSES, seed=seed)
    toydata.write_voc(pool, size.n_pool, 0, size=(size.image, size.image), classes=CLASSES, seed=seed + 1)
    counts = write_crops(pool, crops, size.crop, ("train",)) | write_crops(voc, crops, size.crop, ("test",))
    summary = (f"labelled: VOC2007 trainval {size.n_train} + VOC2012 trainval {size.n_train} + VOC2007 test "
               f"{size.n_test} scenes of {size.image} px; pretraining pool: {2 * size.n_pool} other scenes -> "
               f"{counts['train']} train crops ({counts['test']} test crops from VOC2007 test) of {size.crop} px; "
               f"classes {', '.join(CLASSES)}")
    done.write_text(summary + "\n")
    p.info(summary)
    return voc, crops


def stage_pretrain(wd: Path, key: str, crops: Path, size: Size, seed: int, force: bool,
                   device: str | None) -> Path:
    from pretrain import checkpoint as ckpt
    from pretrain import train

    _, config = ENCODERS[key]
    out = wd / "pretrain" / key
    _fresh(out, force)
    latest = out / ckpt.LATEST
    opts = {"data.root": str(crops), "data.size": size.crop, "train.seed": seed,
            "train.batch_size": size.pretrain_batch, "schedule.epochs": size.pretrain_epochs,
            "model.K": size.queue}
    if size.pretrain_batch < 16:
        opts["model.split_bn"] = 2
    argv = [str(CONFIG_DIR / config), "--work-dir", str(out), "--cfg-options",
            *[f"{k}={v}" for k, v in opts.items()]]
    if device:
        argv += ["--device", device]
    if latest.is_file():
        argv.append("--resume")  # a finished run returns at once; a cut one continues its trajectory
    _subcommand(train, argv)
    return latest


def stage_knn(wd: Path, key: str, checkpoint: Path, crops: Path, size: Size, seed: int, force: bool,
              device: str | None, p: Progress) -> None:
    from transfer.frozen import knn

    label, _ = ENCODERS[key]
    out = wd / "knn" / key
    _fresh(out, force)
    if records.is_finished(out):
        p.info(f"reusing {out / 'result.json'}")
        return
    argv = [str(checkpoint), "--dataset", "folder", "--data-root", str(crops), "--test-split", "test",
            "--image-size", str(size.crop), "--k", str(size.knn_k), "--label", label, "--work-dir", str(out),
            "--workers", "0", "--batch-size", "128", "--seed", str(seed)]
    if device:
        argv += ["--device", device]
    _subcommand(knn, argv)


def stage_convert(wd: Path, key: str, checkpoint: Path, force: bool, p: Progress) -> Path:
    from transfer.convert import cli

    out = wd / "converted" / f"{key}.pth"
    _fresh(out, force)
    if out.is_file():
        p.info(f"reusing {out}")
        return out
    _subcommand(cli, [str(checkpoint), "-o", str(out)])
    return out


def stage_finetune(wd: Path, label: str, checkpoint: str, bn: str, voc: Path, size: Size, seed: int,
                   force: bool) -> str:
    """One fine-tuning cell; returns the line the demo log gets."""
    from transfer.detection.finetune import finetune
    from transfer.stack import ensure_stack

    ensure_stack()
    key = "random_init" if checkpoint == "none" else Path(checkpoint).stem
    out = wd / "finetune" / f"{key}_{bn}_seed{seed}"
    _fresh(out, force)
    if records.is_finished(out):
        return f"reusing {out / 'result.json'}"
    _fresh(out, True)  # a cut run starts over: the demo's runs are short
    extra = {"train_dataloader.batch_size": size.detect_batch, "train_cfg.max_epochs": size.detect_epochs,
             "train_cfg.val_interval": size.detect_epochs,
             "default_hooks.checkpoint.interval": size.detect_epochs,
             "param_scheduler.1.end": size.detect_epochs,
             "param_scheduler.1.milestones": [max(1, size.detect_epochs - 1)]}
    rec = finetune(checkpoint, PROTOCOL, bn=bn, seed=seed, work_dir=out, data_root=str(voc),
                   cfg_options=detection_overrides(extra=extra), label=label)
    m = rec["metrics"]
    return f"{label}, BN {bn}, seed {seed}: " + ", ".join(
        f"{k} {v:.1f}" for k, v in m.items() if isinstance(v, (int, float)) and "/" not in k)


def stage_report(wd: Path, out: Path, p: Progress) -> Path:
    from transfer.report import cli as report

    _subcommand(report, [str(wd / "knn"), str(wd / "finetune"), "-o", str(out),
                         "--baseline", ENCODERS["moco_v2"][0], "--name", "unmix demo"])
    return out / "report.md"


# ---------------------------------------------------------------------------------------- run

def run(args: argparse.Namespace) -> int:
    if args.size not in SIZES:
        raise UnmixError(f"--size {args.size}: choose from {', '.join(SIZES)}")
    size = SIZES[args.size]
    wd = Path(args.work_dir)
    out = Path(args.out)
    wd.mkdir(parents=True, exist_ok=True)
    p = Progress(wd / "demo.log")
    os.environ.setdefault("UNMIX_NO_PROGRESS", "0")
    try:
        return _pipeline(args, size, wd, out, p)
    finally:
        p.close()


# Expected CPU seconds per task of each kind (docs/demo.md's measured stage costs), for the ETAs
# before a stage has run; refined by how fast this machine turns out to be.
COSTS: dict[str, dict[str, float]] = {
    "small": {"data": 4, "pretrain": 210, "knn": 3, "convert": 2, "finetune": 38, "report": 2},
    "tiny": {"data": 1, "pretrain": 10, "knn": 4, "convert": 2, "finetune": 12, "report": 2},
}


class Eta:
    """The demo's remaining time: expected task costs, scaled by measured/expected so far."""

    def __init__(self, size: str, cores: int) -> None:
        self.costs, self.cores = COSTS[size], cores
        self.expected_done = self.measured = 0.0

    def wall(self, kind: str, n: int, procs: int = 1, threads: int | None = None) -> float:
        waves = -(-n // max(1, procs))
        speed = self.measured / self.expected_done if self.expected_done else 1.0
        return waves * self.costs[kind] / (threads or self.cores) * speed

    def record(self, kind: str, wall_s: float, threads: int | None = None) -> None:
        self.expected_done += self.costs[kind] / (threads or self.cores)
        self.measured += wall_s


def _shares(cores: int, jobs: int, n: int) -> tuple[int, int]:
    """(processes at once, torch threads each) for n independent tasks."""
    procs = max(1, min(jobs, n, cores))
    return procs, max(1, cores // procs)


def _pipeline(args: argparse.Namespace, size: Size, wd: Path, out: Path, p: Progress) -> int:
    from unmix.core.threads import available_cores
    from unmix.demo.parallel import Task, run_tasks

    t0 = time.time()
    cores = available_cores()
    jobs = args.jobs or cores
    p.info(f"unmix demo --size {args.size} --seed {args.seed}: work dir {wd}, report {out}, "
           f"{cores} core(s), up to {jobs} stage(s) at once"
           f"{' (--force: redoing every stage)' if args.force else ''}")
    eta = Eta(args.size, cores)
    runs_n = (1 + len(ENCODERS)) * len(BN_MODES) * size.detect_seeds
    pre, fine = _shares(cores, jobs, len(ENCODERS)), _shares(cores, jobs, runs_n)
    n_early = len(BN_MODES) * size.detect_seeds if pre == fine else 0  # random-init cells, see below
    plan = [("data", 1, (1, None)), ("pretrain", len(ENCODERS), pre), ("knn", len(ENCODERS), (1, None)),
            ("convert", len(ENCODERS), (1, None)), ("finetune", runs_n - n_early, fine), ("report", 1, (1, None))]
    timings: list[tuple[str, float, float]] = []

    def group(kind: str, tasks: list[Task], procs: int, threads: int | None, what: str) -> list[Task]:
        kinds = [t.extra.get("kind", kind) for t in tasks]
        here = sum(eta.wall(k, kinds.count(k), procs, threads) for k in set(kinds))
        left = here + sum(eta.wall(k, n, *sh) for k, n, sh in plan[[k for k, _, _ in plan].index(kind) + 1:])
        p.info(f"== {kind}: {what}; ETA this stage {format_duration(here)}, "
               f"the whole demo {format_duration(left)} more")
        done = []
        for task in run_tasks(tasks, procs if threads else 1, threads or cores):
            eta.record(task.extra.get("kind", kind), task.wall_s, threads)
            timings.append((task.name, task.wall_s, task.cpu_s))
            done.append(task)
            msg = f" ({task.result})" if isinstance(task.result, str) else ""
            p.info(f"{task.name}: done in {task.wall_s:.1f} s{msg} [{len(done)}/{len(tasks)}]")
        return done

    data = group("data", [Task("data", stage_data, (wd, size, args.seed, args.force, p))], 1, None,
                 "generated VOC scenes and object crops")
    voc, crops = data[0].result
    logs = wd / "logs"

    def finetune_task(label: str, ck: str, bn: str, seed: int) -> Task:
        return Task(f"finetune {label} / BN {bn} / seed {seed}", stage_finetune,
                    (wd, label, ck, bn, voc, size, seed, args.force), extra={"kind": "finetune"},
                    log=logs / f"finetune_{label.replace(' ', '_').replace('+', 'p')}_{bn}_seed{seed}.log")

    seeds = range(args.seed, args.seed + size.detect_seeds)
    # The random-init cells need no encoder: queued behind the pretraining runs in one pool (same
    # shares), they take a core as soon as the shorter pretraining run frees one.
    early = [finetune_task(RANDOM_INIT, "none", bn, seed) for seed in seeds for bn in BN_MODES][:n_early]
    tasks = [Task(f"pretrain {label}", stage_pretrain, (wd, key, crops, size, args.seed, args.force, args.device),
                  log=logs / f"pretrain_{key}.log", extra={"key": key}) for key, (label, _) in ENCODERS.items()]
    ckpts = {t.extra["key"]: t.result for t in group(
        "pretrain", tasks + early, *pre, f"unmix pretrain configs/demo/pretrain-moco-v2*.py, {pre[0]} at once x "
        f"{pre[1]} thread(s)" + (f", then {len(early)} random-init fine-tuning runs as cores free up"
                                 if early else "") + (f" (logs: {logs}/*.log)" if pre[0] > 1 else ""))
        if "key" in t.extra}
    group("knn", [Task(f"knn {label}", stage_knn, (wd, key, ckpts[key], crops, size, args.seed, args.force,
                                                   args.device, p)) for key, (label, _) in ENCODERS.items()],
          1, None, "unmix knn of both encoders")
    converted = {t.extra["key"]: t.result for t in group(
        "convert", [Task(f"convert {label}", stage_convert, (wd, key, ckpts[key], args.force, p), extra={"key": key})
                    for key, (label, _) in ENCODERS.items()], 1, None, "unmix convert of both encoders")}
    runs = ([] if early else [(RANDOM_INIT, "none")]) + [(ENCODERS[k][0], str(converted[k])) for k in ENCODERS]
    tasks = [finetune_task(label, ck, bn, seed) for seed in seeds for label, ck in runs for bn in BN_MODES]
    group("finetune", tasks, *fine, f"unmix finetune --protocol {PROTOCOL} (configs/demo/{DETECTION_CONFIG.name}), "
          f"{len(tasks)} runs, {fine[0]} at once x {fine[1]} thread(s)")
    md = group("report", [Task("report", stage_report, (wd, out, p))], 1, None, f"unmix report -> {out}")[0].result

    lines = ["| stage | wall (s) | CPU (s) |", "| --- | ---: | ---: |"]
    lines += [f"| {n} | {w:.0f} | {c:.0f} |" for n, w, c in timings]
    lines.append(f"| total | {time.time() - t0:.0f} | {_cpu_seconds():.0f} |")
    timing_md = "\n".join(lines) + "\n"
    (wd / "timings.md").write_text(timing_md)
    p.info("stage timings (this run; reused stages take ~0 s; side-by-side stages overlap):\n" + timing_md)
    print(md.read_text())
    print(f"unmix demo: report in {out}/ (report.md, report.html, report.tex, cells.csv, plots/); "
          f"records, checkpoints and logs in {wd}/ (demo.log, timings.md, logs/)")
    return 0
