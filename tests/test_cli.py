import argparse
import subprocess
import sys


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


def test_user_errors_are_one_line_without_traceback(monkeypatch, capsys):
    class Module:
        @staticmethod
        def add_arguments(p: argparse.ArgumentParser) -> None:
            p.add_argument("path")

        @staticmethod
        def run(args):
            raise UnmixError(f"{args.path}: truncated file")

    monkeypatch.setattr(cli, "_load", lambda name: Module)
    assert cli.main(["convert", "x.pth"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "unmix convert: error: x.pth: truncated file"
