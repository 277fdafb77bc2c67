"""The CLI through Click's CliRunner: help, version, and every usage error's exit code/message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from automl_app import __version__
from automl_app.cli import cli

GOLDEN = Path(__file__).parent / "golden"


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, prog_name="automl")


def test_version():
    res = run("--version")
    assert res.exit_code == 0 and __version__ in res.output


def _commands(group=cli, prefix=()):
    """Every command path of the CLI, the root group and sub-groups included."""
    import click

    yield prefix
    if isinstance(group, click.Group):
        for name, cmd in sorted(group.commands.items()):
            yield from _commands(cmd, (*prefix, name))


COMMAND_PATHS = list(_commands())


@pytest.mark.parametrize("args", COMMAND_PATHS, ids=lambda a: " ".join(a) or "root")
def test_help_matches_golden(args):
    """Every command's --help is checked in; `make golden` refreshes them on purpose."""
    import os

    res = run(*args, "--help")
    assert res.exit_code == 0
    golden = GOLDEN / f"help_{'_'.join(args).replace('-', '_') or 'root'}.txt"
    if os.environ.get("AUTOML_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(res.output)
    assert golden.exists(), f"{golden} missing: run `make golden` and review the new file"
    assert res.output == golden.read_text(), f"{golden} differs: `make golden` if intended"


def test_help_does_not_import_tensorflow():
    code = (
        "import sys; from automl_app.cli import cli; from click.testing import CliRunner; "
        "r = CliRunner().invoke(cli, ['search', 'image', '--help']); assert r.exit_code == 0; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'keras_tuner', 'tensorflow_datasets')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--dataset", "imagenet"], "'imagenet' is not one of"),
        (
            ["--tuner", "tpe2"],
            "'tpe2' is not one of 'random', 'grid', 'bayesian', 'hyperband', 'tpe'",
        ),
        (["--max-trials", "0"], "0 is not in the range x>=1"),
        (["--epochs", "-1"], "-1 is not in the range x>=1"),
        (["--space", "nosuch"], "unknown search space 'nosuch': use one of cnn, fcn"),
        (["--set", "units=3", "--space", "fcn"], "has no hyperparameter 'units'"),
        (["--space", "fcn", "--hypermodel", "x.py:build"], "exclusive"),
    ],
)
def test_usage_errors_exit_2(tmp_path, args, fragment):
    res = run("search", "image", "--run-dir", str(tmp_path / "r"), *args)
    assert res.exit_code == 2, res.output
    assert fragment in res.output
    assert "Traceback" not in res.output


def test_malformed_space_file_exits_1_naming_file_and_key(tmp_path):
    bad = tmp_path / "mine.yaml"
    bad.write_text("model: fcn\nhyperparameters:\n  num_layers: {type: int, min: 4, max: 2}\n")
    res = run("search", "image", "--space", str(bad), "--run-dir", str(tmp_path / "r"))
    assert res.exit_code == 1
    assert str(bad) in res.output and "num_layers" in res.output and "empty range" in res.output


def test_existing_run_dir_needs_overwrite(tmp_path):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / "run.json").write_text("{}")
    res = run("search", "image", "--run-dir", str(run_dir), "--space", "fcn")
    assert res.exit_code == 2 and "--overwrite" in res.output


def test_export_of_a_non_run_dir_exits_2(tmp_path):
    res = run("export", str(tmp_path), "--out", str(tmp_path / "o"))
    assert res.exit_code == 2 and "not a run directory" in res.output
