import argparse
import subprocess
import sys

import pytest

from unmix import cli
from unmix.core.errors import UnmixError


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "unmix.cli", *args], capture_output=True, text=True)


def test_help_lists_every_subcommand_with_a_purpose():
    out = run_cli("--help")
    assert out.returncode == 0
    for name in ("pretrain", "knn", "linear", "convert", "finetune", "evaluate", "sweep", "report",
                 "demo", "doctor"):
        line = next(ln for ln in out.stdout.splitlines() if ln.strip().startswith(name + " "))
        assert len(line.split(None, 1)[1]) > 10, line


def test_unknown_subcommand_is_a_clear_error():
    out = run_cli("frobnicate")
    assert out.returncode == 2
    assert "unknown command 'frobnicate'" in out.stderr
    assert "Traceback" not in out.stderr


def test_unknown_option_is_a_clear_error():
    out = run_cli("doctor", "--no-such-option")
    assert out.returncode == 2
    assert "unrecognized arguments: --no-such-option" in out.stderr


def test_every_subcommand_module_imports_and_has_the_interface():
    """A broken or missing subcommand module is an import error here, never a silent skip."""
    for name in cli.COMMANDS:
        module = cli._load(name)
        assert callable(module.add_arguments) and callable(module.run), name
        # the options --help shows are the ones the command parses
        assert cli._add_arguments(name) is module.add_arguments, name


def test_user_errors_are_one_line_without_traceback(monkeypatch, capsys):
    class Module:
        @staticmethod
        def add_arguments(p: argparse.ArgumentParser) -> None:
            p.add_argument("path")

        @staticmethod
        def run(args):
            raise UnmixError(f"{args.path}: truncated file")

    monkeypatch.setattr(cli, "_load", lambda name: Module)
    monkeypatch.setattr(cli, "_add_arguments", lambda name: Module.add_arguments)
    assert cli.main(["convert", "x.pth"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "unmix convert: error: x.pth: truncated file"


# ------------------------------------------------------------------ instant --help, early checks

HEAVY = ("torch", "mmdet", "mmengine", "numpy")


def imported(*args):
    """(result, top-level packages imported) of `python -X importtime -m unmix.cli ARGS`."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "unmix.cli", *args],
                         capture_output=True, text=True)
    names = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in out.stderr.splitlines()
             if line.startswith("import time:") and line.count("|") == 2}
    return out, names


def test_help_imports_no_torch():
    for name in ("pretrain", "knn", "linear", "flatness", "convert", "finetune", "evaluate", "sweep"):
        out, names = imported(name, "--help")
        assert out.returncode == 0 and "usage: unmix " + name in out.stdout, out.stderr[-500:]
        assert not names & set(HEAVY), (name, names & set(HEAVY))


def test_finetune_refuses_a_missing_data_root_before_importing_the_stack(tmp_path):
    out, names = imported("finetune", "--checkpoint", "none", "--protocol", "voc-faster-rcnn-fpn",
                          "--data-root", str(tmp_path / "nope"))
    assert out.returncode == 1 and not names & set(HEAVY)
    errors = [ln for ln in out.stderr.splitlines() if not ln.startswith("import time:")]
    assert errors == [f"unmix finetune: error: {tmp_path / 'nope'}: no such directory (--data-root)"]
    out, _ = imported("finetune", "--checkpoint", "none", "--protocol", "voc-faster-rcnn-fpn",
                      "--device", "cpu", "--amp")
    assert out.returncode == 1 and "--amp: mixed precision is CUDA-only" in out.stderr
    out, _ = imported("finetune", "--checkpoint", "none", "--protocol", "voc-faster-rcnn-fpn",
                      "--device", "gpu0")
    assert out.returncode == 2 and "expected cpu, cuda or cuda:N" in out.stderr
    # the quick-mode values finetune and sweep share, checked before the stack is imported
    for flags, msg in ((["--fraction", "1.5"], "--fraction 1.5: expected a number in (0, 1]"),
                       (["--scale", "0", "48"], "--scale 0 48: expected two positive integers"),
                       (["--classes", str(tmp_path / "nope.txt")], "no such class file")):
        out, names = imported("finetune", "--checkpoint", "none", "--protocol", "voc-faster-rcnn-fpn",
                              *flags)
        assert out.returncode == 1 and not names & set(HEAVY) and msg in out.stderr


def test_every_option_has_help_text():
    for name in cli.COMMANDS:
        parser = argparse.ArgumentParser()
        cli._add_arguments(name)(parser)
        bare = [a.dest for a in parser._actions if not isinstance(a, argparse._HelpAction)
                and a.help in (None, "")]
        assert not bare, (name, bare)


def test_sweep_help_shows_the_spec_schema():
    out = run_cli("sweep", "--help")
    for key in ("work_root:", "data_root:", "checkpoints:", "protocols:", "bn:", "seeds:", "cfg_options:"):
        assert key in out.stdout, key


def test_workers_default_to_the_cpus_this_process_may_use(monkeypatch):
    import os

    from unmix.core.env import default_workers

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    assert default_workers() == 3
    parser = argparse.ArgumentParser()
    cli._add_arguments("knn")(parser)
    assert parser.parse_args(["c.pth", "--dataset", "cifar10", "--data-root", "d"]).workers == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert default_workers() == 8


def test_convert_checks_arch_and_format_names_against_the_tables(capsys):
    assert cli.main(["convert", "x.pth", "-o", "y.pth", "--arch", "resnet9"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("unmix convert: error: --arch: unknown 'resnet9' (choose from resnet18, resnet34")
    assert cli.main(["convert", "x.pth", "-o", "y.pth", "--format", "mocov9"]) == 1
    assert "--format: unknown 'mocov9' (choose from unmix-pretrain" in capsys.readouterr().err


def _documented_command(path: str, start: str) -> list[str]:
    """The command starting with `start` in a doc file, backslash continuations joined, README's
    leading '# ' comment marks dropped."""
    import pathlib
    import shlex

    lines = pathlib.Path(path).read_text().splitlines()
    i = next(k for k, line in enumerate(lines) if line.lstrip("# ").startswith(start))
    parts = []
    while True:
        text = lines[i].lstrip("# ").rstrip()
        parts.append(text.rstrip("\\"))
        if not text.endswith("\\"):
            return shlex.split(" ".join(parts))
        i += 1


@pytest.mark.parametrize("doc", ["README.md", "docs/transfer.md"])
def test_documented_slurm_and_torchrun_commands_match_the_parser(doc):
    from unmix.cli import _add_arguments

    parser = argparse.ArgumentParser()
    _add_arguments("finetune")(parser)
    srun = _documented_command(doc, "srun ")
    k = srun.index("unmix")
    assert srun[k + 1] == "finetune"
    args = parser.parse_args(srun[k + 2:])  # the whole documented command parses: flags and values
    assert args.launcher == "slurm"
    import pathlib
    import re

    torchrun = re.findall(r"torchrun [^`\n]*--launcher pytorch", pathlib.Path(doc).read_text())
    assert torchrun
    flags = [t for cmd in torchrun for t in cmd.split("finetune", 1)[1].split() if t.startswith("--")]
    known = {s for a in parser._actions for s in a.option_strings}
    assert flags and set(flags) <= known
