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

Stages 2-5 run as one pool of processes (unmix.demo.parallel): each run starts as soon as the runs
it reads have finished and a core is free (`--jobs 1`: one by one in this process).

Everything goes through the subcommands' own public entry points, so the numbers are what the
real commands produce. A line per stage with the elapsed time goes to stderr and WORK_DIR/demo.log.
"""
from __future__ import annotations

import argparse
from collections import Counter
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
from unmix.demo.parallel import Task, cpu_seconds, estimate, run_tasks, wait_for_workers

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
                        help="runs side by side (pretraining, conversion, kNN, fine-tuning; each as soon as "
                             "its inputs exist), each in its own process with its share of the cores "
                             "(default: the cores this process may use; 1: one by one in this process)")


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


def data_paths(wd: Path) -> tuple[Path, Path]:
    """(the labelled VOC root, the crops image folder) of the data stage."""
    return wd / "data" / "voc", wd / "data" / "crops"


def stage_data(wd: Path, size: Size, seed: int, force: bool, p: Progress) -> tuple[Path, Path]:
    from unmix.demo import toydata

    root, (voc, crops) = wd / "data", data_paths(wd)
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


def pretrain_checkpoint(wd: Path, key: str) -> Path:
    """Where encoder `key`'s pretraining run leaves its checkpoint (what knn and convert read)."""
    from pretrain import checkpoint as ckpt

    return wd / "pretrain" / key / ckpt.LATEST


def converted_path(wd: Path, key: str) -> Path:
    return wd / "converted" / f"{key}.pth"


def stage_pretrain(wd: Path, key: str, crops: Path, size: Size, seed: int, force: bool,
                   device: str | None) -> None:
    from pretrain import train

    _, config = ENCODERS[key]
    latest = pretrain_checkpoint(wd, key)
    out = latest.parent
    _fresh(out, force)
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
    if not latest.is_file():
        raise UnmixError(f"{out}: the pretraining run ended without {latest.name}")


def stage_knn(wd: Path, key: str, crops: Path, size: Size, seed: int, force: bool,
              device: str | None) -> str | None:
    """kNN of encoder `key`; returns a note for the demo log when it reused a finished record."""
    from transfer.frozen import knn

    label, _ = ENCODERS[key]
    out = wd / "knn" / key
    _fresh(out, force)
    if records.is_finished(out):
        return f"reusing {out / 'result.json'}"
    argv = [str(pretrain_checkpoint(wd, key)), "--dataset", "folder", "--data-root", str(crops),
            "--test-split", "test", "--image-size", str(size.crop), "--k", str(size.knn_k), "--label", label,
            "--work-dir", str(out), "--workers", "0", "--batch-size", "128", "--seed", str(seed)]
    if device:
        argv += ["--device", device]
    _subcommand(knn, argv)
    return None


def stage_convert(wd: Path, key: str, force: bool) -> str | None:
    """`unmix convert` of encoder `key` to converted_path; a note when it reused the file."""
    from transfer.convert import cli

    out = converted_path(wd, key)
    _fresh(out, force)
    if out.is_file():
        return f"reusing {out}"
    _subcommand(cli, [str(pretrain_checkpoint(wd, key)), "-o", str(out)])
    return None


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
# before a task has run; refined by how fast this machine turns out to be.
COSTS: dict[str, dict[str, float]] = {
    "small": {"data": 2, "pretrain": 210, "knn": 5, "convert": 2, "finetune": 38, "report": 2},
    "tiny": {"data": 1, "pretrain": 10, "knn": 4, "convert": 2, "finetune": 12, "report": 2},
}


class Eta:
    """The demo's remaining time: expected task costs, scaled by measured/expected so far, laid out
    as the pool schedules them (unmix.demo.parallel.estimate)."""

    def __init__(self, size: str, cores: int, jobs: int) -> None:
        self.costs, self.cores, self.jobs = COSTS[size], cores, jobs
        self.expected_done = self.measured = 0.0

    def duration(self, kind: str, threads: int) -> float:
        speed = self.measured / self.expected_done if self.expected_done else 1.0
        return self.costs[kind] / threads * speed

    def record(self, kind: str, wall_s: float, threads: int) -> None:
        self.expected_done += self.costs[kind] / threads
        self.measured += wall_s

    def ends(self, pending: list[Task], running: list[Task], now: float) -> dict[str, float]:
        """Seconds from `now` until each task ends (pending and running ones)."""
        def dur(t: Task) -> float:
            return self.duration(t.extra["kind"], t.threads)

        return estimate(pending, [(t, max(0.0, dur(t) - (now - t.started))) for t in running], dur,
                        self.cores, self.jobs)


def _shares(cores: int, jobs: int, n: int) -> tuple[int, int]:
    """(processes at once, torch threads each) for n independent tasks."""
    procs = max(1, min(jobs, n, cores))
    return procs, max(1, cores // procs)


def _pool_tasks(args: argparse.Namespace, size: Size, wd: Path, voc: Path, crops: Path,
                cores: int, jobs: int) -> list[Task]:
    """Every task between the data and the report, in the order the pool prefers among ready ones:
    pretraining (the longest, first), each conversion (it unlocks six runs), the encoders' fine-tuning
    runs, the random-init ones (they need nothing), kNN last (nothing waits for it: it fills the
    last idle core). With `--jobs 1` each takes every core, one by one."""
    pre = _shares(cores, jobs, len(ENCODERS))[1] if jobs > 1 else cores
    rest = _shares(cores, jobs, (1 + len(ENCODERS)) * len(BN_MODES) * size.detect_seeds)[1] if jobs > 1 else cores
    logs, label_of = wd / "logs", {k: v[0] for k, v in ENCODERS.items()}
    a = (args.seed, args.force)

    def task(kind: str, name: str, fn: Any, fargs: tuple, log: str, after: tuple[str, ...] = ()) -> Task:
        return Task(name, fn, fargs, log=logs / f"{log}.log", after=after, threads=pre if kind == "pretrain" else rest,
                    extra={"kind": kind})

    def cell(label: str, ck: str, bn: str, seed: int, after: tuple[str, ...]) -> Task:
        log = f"finetune_{label.replace(' ', '_').replace('+', 'p')}_{bn}_seed{seed}"
        return task("finetune", f"finetune {label} / BN {bn} / seed {seed}", stage_finetune,
                    (wd, label, ck, bn, voc, size, seed, args.force), log, after)

    seeds = range(args.seed, args.seed + size.detect_seeds)
    tasks = [task("pretrain", f"pretrain {label_of[k]}", stage_pretrain, (wd, k, crops, size, *a, args.device),
                  f"pretrain_{k}") for k in ENCODERS]
    tasks += [task("convert", f"convert {label_of[k]}", stage_convert, (wd, k, args.force), f"convert_{k}",
                   (f"pretrain {label_of[k]}",)) for k in ENCODERS]
    tasks += [cell(label_of[k], str(converted_path(wd, k)), bn, seed, (f"convert {label_of[k]}",))
              for seed in seeds for k in ENCODERS for bn in BN_MODES]
    tasks += [cell(RANDOM_INIT, "none", bn, seed, ()) for seed in seeds for bn in BN_MODES]
    tasks += [task("knn", f"knn {label_of[k]}", stage_knn, (wd, k, crops, size, *a, args.device), f"knn_{k}",
                   (f"pretrain {label_of[k]}",)) for k in ENCODERS]
    return tasks


STAGE_WHAT = {
    "pretrain": "unmix pretrain configs/demo/pretrain-moco-v2*.py",
    "convert": "unmix convert of each encoder as its pretraining ends",
    "finetune": f"unmix finetune --protocol {PROTOCOL} (configs/demo/{DETECTION_CONFIG.name})",
    "knn": "unmix knn of both encoders",
}


def _run_pool(tasks: list[Task], cores: int, jobs: int, eta: Eta, p: Progress,
              timings: list[tuple[str, float, float]]) -> None:
    """Run the pool, with a line as each stage's first task starts (its ETA and the whole demo's)
    and as each task ends."""
    pending, running, announced = list(tasks), [], set()
    total = Counter(t.extra["kind"] for t in tasks)

    def left(now: float) -> tuple[dict[str, float], float]:
        ends = eta.ends(pending, running, now)
        return ends, max(ends.values(), default=0.0) + eta.duration("report", cores)

    def on_start(task: Task) -> None:
        pending.remove(task)
        running.append(task)
        kind = task.extra["kind"]
        if kind not in announced:
            announced.add(kind)
            ends, whole = left(task.started)
            here = max(ends[t.name] for t in pending + running if t.extra["kind"] == kind)
            p.info(f"== {kind}: {STAGE_WHAT[kind]}, {total[kind]} run(s) of {task.threads} thread(s); "
                   f"ETA this stage {format_duration(here)}, the whole demo {format_duration(whole)} more")

    for k, task in enumerate(run_tasks(tasks, jobs, cores, on_start), 1):
        running.remove(task)
        eta.record(task.extra["kind"], task.wall_s, task.threads)
        timings.append((task.name, task.wall_s, task.cpu_s))
        msg = f" ({task.result})" if isinstance(task.result, str) else ""
        p.info(f"{task.name}: done in {task.wall_s:.1f} s{msg} [{k}/{len(tasks)}, the demo "
               f"{format_duration(left(time.time())[1])} more]")


def _pipeline(args: argparse.Namespace, size: Size, wd: Path, out: Path, p: Progress) -> int:
    from unmix.core.threads import available_cores

    t0 = time.time()
    cores = available_cores()
    jobs = args.jobs or cores
    p.info(f"unmix demo --size {args.size} --seed {args.seed}: work dir {wd}, report {out}, "
           f"{cores} core(s), up to {jobs} run(s) at once"
           f"{' (--force: redoing every stage)' if args.force else ''}")
    eta = Eta(args.size, cores, jobs)
    timings: list[tuple[str, float, float]] = []

    def alone(kind: str, fn: Any, fargs: tuple, what: str, more: float) -> Any:
        p.info(f"== {kind}: {what}; ETA this stage {format_duration(eta.duration(kind, cores))}, "
               f"the whole demo {format_duration(more)} more")
        t, c = time.time(), cpu_seconds()  # this process only: the pool's workers are counted per run
        result = fn(*fargs)
        timings.append((kind, time.time() - t, cpu_seconds() - c))
        eta.record(kind, timings[-1][1], cores)
        p.info(f"{kind}: done in {timings[-1][1]:.1f} s")
        return result

    tasks = _pool_tasks(args, size, wd, *data_paths(wd), cores, jobs)
    whole = eta.duration("data", cores) + max(eta.ends(tasks, [], 0.0).values()) + eta.duration("report", cores)
    alone("data", stage_data, (wd, size, args.seed, args.force, p),
                       "generated VOC scenes and object crops", whole)
    p.info(f"== {len(tasks)} runs in one pool, up to {min(jobs, cores)} at once, each as soon as its inputs "
           f"exist and its cores are free" + (f" (logs: {wd / 'logs'}/*.log)" if jobs > 1 else ""))
    _run_pool(tasks, cores, jobs, eta, p, timings)
    md = alone("report", stage_report, (wd, out, p), f"unmix report -> {out}", eta.duration("report", cores))

    lines = ["| stage | wall (s) | CPU (s) |", "| --- | ---: | ---: |"]
    lines += [f"| {n} | {w:.0f} | {c:.0f} |" for n, w, c in timings]
    wall = time.time() - t0
    wait_for_workers()  # their CPU time (imports included) into the total
    lines.append(f"| total | {wall:.0f} | {_cpu_seconds():.0f} |")
    timing_md = "\n".join(lines) + "\n"
    (wd / "timings.md").write_text(timing_md)
    p.info("stage timings (this run; reused stages take ~0 s; side-by-side stages overlap):\n" + timing_md)
    print(md.read_text())
    print(f"unmix demo: report in {out}/ (report.md, report.html, report.tex, cells.csv, plots/); "
          f"records, checkpoints and logs in {wd}/ (demo.log, timings.md, logs/)")
    return 0
