"""README.md's code blocks, executed (doctest style) so the README cannot drift from the code.

- ```python blocks run in order, in one namespace, in a scratch directory holding what they
  name (`photos/`, the `/tmp/readme-search` run, which is built with the README's own search
  command on fewer examples); `/tmp/readme-*` paths point into that directory.
- `automl …` lines of shell blocks (```bash, or `$ automl …` prompts in output blocks) are parsed
  by the real CLI: every command, option name and value type must exist (no training).
- A block that cannot run here carries `<!-- not run: why -->` on the line before it; the test
  counts those, so skipping one more is a visible change.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from automl_app.cli import cli

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MARK = re.compile(r"^<!--\s*not run:\s*(.+?)\s*-->$")
SKIPPED = 2  # blocks marked `not run` in README.md (see test_not_run_markers_are_counted)


@dataclass
class Block:
    lang: str
    code: str
    line: int  # 1-based line of the opening fence
    not_run: str | None  # the marker's reason


def readme_blocks(text: str | None = None) -> list[Block]:
    lines = (README.read_text() if text is None else text).splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        if lines[i].startswith("```"):
            lang, start = lines[i][3:].strip(), i
            j = i + 1
            while not lines[j].startswith("```"):
                j += 1
            before = lines[start - 1].strip() if start else ""
            mark = MARK.match(before)
            out.append(Block(lang, "\n".join(lines[start + 1 : j]), start + 1,
                             mark.group(1) if mark else None))  # fmt: skip
            i = j + 1
        else:
            i += 1
    return out


def automl_commands(block: Block) -> list[list[str]]:
    """The argument lists of the block's `automl …` command lines (continuations joined)."""
    prompts = block.lang != "bash"  # an output block: only its `$ ` lines are commands
    commands, current = [], ""
    for line in block.code.splitlines():
        if prompts and not current:
            if not line.startswith("$ "):
                continue
            line = line[2:]
        current += line.rstrip("\\").rstrip() + " " if line.rstrip().endswith("\\") else line
        if line.rstrip().endswith("\\"):
            continue
        args = shlex.split(current, comments=True)
        current = ""
        if args and args[0] == "automl":
            commands.append(args[1:])
    return commands


def dry_parse(args: list[str]) -> click.Command:
    """Parse `automl ARGS` down to the leaf command as the CLI would, without invoking it."""
    ctx = cli.make_context("automl", list(args))
    cmd: click.Command = cli
    while isinstance(cmd, click.Group):
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        name, sub, rest = cmd.resolve_command(ctx, rest)
        ctx = sub.make_context(name, rest, parent=ctx)
        cmd = sub
    return cmd


def test_not_run_markers_are_counted():
    text = README.read_text()
    blocks = readme_blocks()
    skipped = [b for b in blocks if b.not_run]
    assert len(skipped) == SKIPPED, [(b.line, b.not_run) for b in skipped]
    markers = [line for line in text.splitlines() if MARK.match(line.strip())]
    assert len(markers) == SKIPPED, "a `not run` marker that precedes no block"
    assert sum(b.lang == "python" for b in blocks) >= 2


def test_shell_commands_parse(tmp_path, monkeypatch):
    """Every `automl …` line of a shell block names real commands and options (no TensorFlow)."""
    monkeypatch.chdir(tmp_path)
    for name in ("photos", "RUN_DIR", "DIR"):
        (tmp_path / name).mkdir()
    checked = 0
    for block in readme_blocks():
        if block.lang not in ("", "bash") or block.not_run:
            continue
        for args in automl_commands(block):
            args = [a.replace("/tmp/readme-", str(tmp_path / "readme-")) for a in args]
            try:
                dry_parse(args)
            except click.exceptions.Exit as exc:  # --help, --version: printed and exit 0
                assert exc.exit_code == 0, args
            except click.ClickException as exc:
                pytest.fail(f"README.md line {block.line}: automl {shlex.join(args)}: "
                            f"{exc.format_message()}")  # fmt: skip
            checked += 1
    assert checked >= 15, checked


@pytest.fixture
def scratch(tmp_path, monkeypatch, data_dir, tfds_dir):
    """A directory holding what the README's Python blocks name, as their working directory."""
    import signal

    from click.testing import CliRunner
    from support.images import make_folder

    monkeypatch.setenv("AUTOML_DATA_DIR", str(data_dir))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tfds_dir))
    monkeypatch.chdir(tmp_path)
    make_folder(tmp_path / "photos", per_class=12, bad=False)
    search = next(
        c for b in readme_blocks() for c in automl_commands(b) if c[:2] == ["search", "image"]
    )
    args = [a.replace("/tmp/readme-", str(tmp_path / "readme-")) for a in search]
    res = CliRunner().invoke(cli, [*args, "--max-samples", "300", "--max-trials", "1"])
    assert res.exit_code == 0, res.output  # the README's search, on fewer examples
    handler = signal.getsignal(signal.SIGINT)
    yield tmp_path
    signal.signal(signal.SIGINT, handler)  # the runs installed the lifecycle's Ctrl-C handler


@pytest.mark.slow
def test_python_blocks_run(scratch):
    import numpy as np

    ns: dict = {"__name__": "readme"}
    ran = 0
    for block in readme_blocks():
        if block.lang != "python" or block.not_run:
            continue
        code = block.code.replace("/tmp/readme-", str(scratch / "readme-"))
        exec(compile(code, f"README.md:{block.line}", "exec"), ns)  # noqa: S102
        ran += 1
    assert ran == 2
    probs = np.asarray(ns["probs"])
    assert probs.shape == (2, 10) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert ns["manifest"]["status"] == "completed"  # the last run of the API block
    for run in ("api-digits", "api-photos", "api-scratch"):
        assert (scratch / "runs" / run / "best" / "saved_model").is_dir(), run
    assert list((scratch / "runs" / "api-digits" / "report" / "evaluate").glob("*/*.json"))
