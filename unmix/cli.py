"""`unmix` console script: one dispatcher, one module per subcommand.

Each subcommand lives in its own module exposing `add_arguments(parser)` and `run(args) -> int`.
Modules are imported only when their subcommand runs, so `unmix --help` stays instant and a
broken detection stack never stops `unmix knn`. The commands whose module imports torch or mmdet
take their options from a separate light module (ARGUMENTS): `unmix knn --help` and a refused
option (a missing --data-root, an unknown protocol) answer before any of it is imported. A
parser may set `check_args` (set_defaults): called on the parsed options before the import.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from unmix.core.errors import UnmixError
from unmix.core.files import ENVIRONMENT_ERRNOS, os_error
from unmix.core.signals import Terminated, sigterm_as_interrupt
from unmix.core.threads import apply as apply_thread_policy

# name -> (module, one-line purpose)
COMMANDS: dict[str, tuple[str, str]] = {
    "pretrain": ("pretrain.train", "pre-train an encoder (MoCo v1/v2, SimCLR, BYOL, SwAV), with or without Un-Mix"),
    "knn": ("transfer.frozen.knn", "weighted kNN accuracy of any checkpoint on an image dataset"),
    "linear": ("transfer.frozen.linear", "linear-probe accuracy of any checkpoint on an image dataset"),
    "flatness": ("transfer.frozen.flatness", "sorted softmax-output distribution of checkpoints (paper Fig. 5)"),
    "convert": ("transfer.convert.cli", "turn any ResNet checkpoint into a verified mmdetection backbone"),
    "finetune": ("transfer.detection.finetune", "fine-tune a detector from a checkpoint under a named protocol"),
    "data": ("transfer.detection.datacmd", "check a detection dataset as `finetune` reads it (unmix data check)"),
    "evaluate": ("transfer.detection.evaluate", "re-evaluate a trained detector's work dir"),
    "sweep": ("transfer.detection.sweep", "run a grid of checkpoints x protocols x BN modes x seeds"),
    "report": ("transfer.report.cli", "write paper-style tables and plots from result records"),
    "demo": ("unmix.demo.pipeline", "the whole pipeline on embedded data: pretrain, convert, fine-tune, report"),
    "doctor": ("unmix.doctor", "check the installed stack: versions, mmcv ops, one detector iteration"),
}


# name -> "module:function" adding the options, for the commands whose own module is heavy
ARGUMENTS: dict[str, str] = {
    "pretrain": "pretrain.arguments:pretrain",
    "knn": "transfer.frozen.arguments:knn",
    "linear": "transfer.frozen.arguments:linear",
    "flatness": "transfer.frozen.arguments:flatness",
    "convert": "transfer.convert.arguments:convert",
    "finetune": "transfer.detection.arguments:finetune",
    "evaluate": "transfer.detection.arguments:evaluate",
    "data": "transfer.detection.arguments:data",
    "sweep": "transfer.detection.arguments:sweep",
}

# The commands that run torch for long: they take --threads, and the policy is set before torch starts.
LONG = ("pretrain", "knn", "linear", "flatness", "finetune", "evaluate", "sweep", "demo", "doctor")


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _top_parser() -> argparse.ArgumentParser:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {purpose}" for name, (_, purpose) in COMMANDS.items()]
    p = argparse.ArgumentParser(
        prog="unmix",
        description="Transfer evaluation for self-supervised image encoders, with Un-Mix pretraining.",
        epilog="commands:\n" + "\n".join(lines) + "\n\nRun `unmix COMMAND --help` for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from unmix import __version__

    p.add_argument("--version", action="version", version=f"unmix {__version__}")
    p.add_argument("command", metavar="COMMAND", help="one of: " + ", ".join(COMMANDS))
    p.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return p


def _load(name: str):
    return importlib.import_module(COMMANDS[name][0])


def _add_arguments(name: str):
    """The function adding `name`'s options: from its light module, else from the command's own."""
    if name not in ARGUMENTS:
        return _load(name).add_arguments
    module, function = ARGUMENTS[name].split(":")
    return getattr(importlib.import_module(module), function)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    if not argv:
        top.print_help()
        return 2
    ns = top.parse_args(argv)
    if ns.command not in COMMANDS:
        top.error(f"unknown command {ns.command!r} (choose from {', '.join(COMMANDS)})")
    parser = argparse.ArgumentParser(prog=f"unmix {ns.command}", description=COMMANDS[ns.command][1])
    _add_arguments(ns.command)(parser)
    if ns.command in LONG:
        parser.add_argument("--threads", type=_positive_int, default=None,
                            help="torch CPU threads (default: OMP_NUM_THREADS if set, else the cores this "
                                 "process may use); idle threads wait passively (see `unmix doctor`)")
    args = parser.parse_args(ns.args)
    if ns.command in LONG:
        policy = apply_thread_policy(args.threads)
        args.threads, args.thread_policy = policy.threads, policy.describe()
    check = vars(args).pop("check_args", None)
    try:
        if check is not None:
            check(args)
        module = _load(ns.command)
        with sigterm_as_interrupt():
            return int(module.run(args) or 0)
    except UnmixError as e:
        print(f"unmix {ns.command}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        # A full disk or a read-only directory met inside a library (mmengine's logs, a data
        # loader): the machine's problem, said in one line with the file. Anything else is a bug.
        if e.errno not in ENVIRONMENT_ERRNOS or not e.filename:
            raise
        print(f"unmix {ns.command}: error: {os_error(e, e.filename)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        how = "terminated (SIGTERM)" if isinstance(e, Terminated) else "interrupted"
        print(f"unmix {ns.command}: {how}", file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130


if __name__ == "__main__":
    sys.exit(main())
