"""`unmix` console script: one dispatcher, one module per subcommand.

Each subcommand lives in its own module exposing `add_arguments(parser)` and `run(args) -> int`.
Modules are imported only when their subcommand runs, so `unmix --help` stays instant and a
broken detection stack never stops `unmix knn`.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from unmix.core.errors import UnmixError
from unmix.core.files import ENVIRONMENT_ERRNOS, os_error
from unmix.core.signals import Terminated, sigterm_as_interrupt

# name -> (module, one-line purpose)
COMMANDS: dict[str, tuple[str, str]] = {
    "pretrain": ("pretrain.train", "pre-train an encoder (MoCo v1/v2, SimCLR, BYOL, SwAV), with or without Un-Mix"),
    "knn": ("transfer.frozen.knn", "weighted kNN accuracy of any checkpoint on an image dataset"),
    "linear": ("transfer.frozen.linear", "linear-probe accuracy of any checkpoint on an image dataset"),
    "flatness": ("transfer.frozen.flatness", "sorted softmax-output distribution of checkpoints (paper Fig. 5)"),
    "convert": ("transfer.convert.cli", "turn any ResNet checkpoint into a verified mmdetection backbone"),
    "finetune": ("transfer.detection.finetune", "fine-tune a detector from a checkpoint under a named protocol"),
    "evaluate": ("transfer.detection.evaluate", "re-evaluate a trained detector's work dir"),
    "sweep": ("transfer.detection.sweep", "run a grid of checkpoints x protocols x BN modes x seeds"),
    "report": ("transfer.report.cli", "write paper-style tables and plots from result records"),
    "demo": ("unmix.demo.pipeline", "the whole pipeline on embedded data: pretrain, convert, fine-tune, report"),
    "doctor": ("unmix.doctor", "check the installed stack: versions, mmcv ops, one detector iteration"),
}


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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    if not argv:
        top.print_help()
        return 2
    ns = top.parse_args(argv)
    if ns.command not in COMMANDS:
        top.error(f"unknown command {ns.command!r} (choose from {', '.join(COMMANDS)})")
    module = _load(ns.command)
    parser = argparse.ArgumentParser(prog=f"unmix {ns.command}", description=COMMANDS[ns.command][1])
    module.add_arguments(parser)
    args = parser.parse_args(ns.args)
    try:
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
