"""The run kinds of issue 17's matrix, each trained once per session on tiny data.

`matrix_runs` builds the seven kinds (KerasTuner on digits and on an image folder, AutoKeras on
the folder, on a mixed-type CSV and on a text CSV, train-scratch on digits and on the folder) under
one session folder; nobody writes into those runs. A test module that runs commands on them (which
write export/, selected/, report/ …) takes its own copy with `copy_runs` or `copy_run`, so no test
sees another's writes and the order tests run in never matters. The fixtures are registered in
tests/conftest.py, so any test module may ask for them.
"""

from __future__ import annotations

import csv
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from support.images import make_folder, odd_files

KINDS = (
    "kt-digits",
    "kt-folder",
    "ak-image",
    "ak-structured",
    "ak-text",
    "scratch-digits",
    "scratch-folder",
)
IMAGE_KINDS = frozenset({"kt-digits", "kt-folder", "ak-image", "scratch-digits", "scratch-folder"})
KERASTUNER_KINDS = frozenset({"kt-digits", "kt-folder"})

# The data files' names appear in `automl runs`' data column; no run name contains them.
TABLE_CSV = "mixed_table.csv"
TEXT_CSV = "review_texts.csv"
FOLDER = "photos"

# What each kind trains (the data options are added by `_data_args`). Each one is as small as the
# command allows: one epoch, tiny models, a few hundred digits, 32-pixel folder images. The two
# KerasTuner searches run two trials and keep one checkpoint, so one trial's weights are not kept;
# the folder search exports a flip test-time-augmented model, so every command meets one.
TINY_SCRATCH = ["--alpha", "0.35", "--batch-size", "8", "--epochs", "1"]
COMMANDS: dict[str, list[str]] = {
    "kt-digits": ["search", "image", "--space", "fcn", "--max-trials", "2", "--epochs", "1",
                  "--max-samples", "200", "--keep-checkpoints", "1"],
    "kt-folder": ["search", "image", "--space", "fcn", "--max-trials", "2", "--epochs", "1",
                  "--image-size", "32", "--keep-checkpoints", "1", "--tta", "flip"],
    "ak-image": ["search", "image", "--engine", "autokeras", "--block", "vanilla",
                 "--max-trials", "1", "--epochs", "1", "--image-size", "32"],
    "ak-structured": ["search", "structured", "--target", "label", "--max-trials", "1",
                      "--epochs", "1", "--seed", "1"],
    "ak-text": ["search", "text", "--text-column", "review", "--target", "sentiment",
                "--max-trials", "1", "--epochs", "1", "--seed", "1", "--max-samples", "40"],
    "scratch-digits": ["train-scratch", "mobilenetv2", "--max-samples", "200", *TINY_SCRATCH],
    "scratch-folder": ["train-scratch", "mobilenetv2", "--recipe", "mobilenetv2_scratch_fast",
                       "--image-size", "32", *TINY_SCRATCH],
}  # fmt: skip


def cli(*args: str) -> Result:
    """`automl ARGS` in this process (TensorFlow is imported once per session, not per command).

    Exceptions are caught so a cell's failure reads as the exception in one line, not a traceback
    of Click's runner."""
    from automl_app.cli import cli as automl

    return CliRunner().invoke(automl, [str(a) for a in args], prog_name="automl")


def explain(res: Result) -> str:
    """One line first (the exit code and the command's `Error:` line, or an uncaught exception),
    then the output's last lines: what a failing cell prints."""
    lines = res.output.strip().splitlines()
    first = next((ln for ln in lines if ln.startswith("Error: ")), lines[-1] if lines else "")
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        first = f"uncaught {type(res.exception).__name__}: {str(res.exception)[:300]}"
    tail = "\n".join(lines[-8:])
    return f"exit {res.exit_code}: {first}\n{tail}"


def write_table_csv(path: Path, n: int = 120) -> Path:
    """Mixed types: two numeric columns (one with missing values), a categorical string column
    (with missing values) and a three-class string target that the features predict."""
    rng = np.random.default_rng(0)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["height", "weight", "colour", "label"])
        for i in range(n):
            cls = i % 3
            height = 150 + 15 * cls + rng.normal(0, 4)
            weight = "" if i % 7 == 3 else f"{50 + 10 * cls + rng.normal(0, 3):.1f}"
            colour = "" if i % 11 == 5 else ["red", "green", "blue"][(cls + (i % 5 == 0)) % 3]
            w.writerow([f"{height:.1f}", weight, colour, ["small", "medium", "large"][cls]])
    return path


def write_text_csv(path: Path, n: int = 60) -> Path:
    """Short reviews whose words give away the sentiment (pos/neg)."""
    good, bad = ["great", "fine", "lovely", "superb"], ["awful", "poor", "dull", "broken"]
    rng = np.random.default_rng(0)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["review", "sentiment"])
        for i in range(n):
            pos = i % 2 == 0
            words = rng.choice(good if pos else bad, size=4).tolist() + ["film"]
            w.writerow([" ".join(words), "pos" if pos else "neg"])
    return path


@dataclass
class Built:
    """The session's data and runs: `runs[kind]` is a run directory nobody writes into."""

    base: Path
    photos: dict
    table_csv: Path
    text_csv: Path
    runs: dict[str, Path] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def _data_args(kind: str, built: Built) -> list[str]:
    if kind.endswith("-digits"):
        return ["--dataset", "digits"]
    if kind == "ak-structured":
        return ["--csv", str(built.table_csv)]
    if kind == "ak-text":
        return ["--csv", str(built.text_csv)]
    return ["--data-dir", str(built.photos["root"])]


@pytest.fixture(scope="session")
def photos_folder(tmp_path_factory) -> dict:
    """An image folder with bad files (listed under "bad"), odd modes and extreme aspect ratios
    (under "odd"); every folder run of the session trains on it. Its scan cache stays in the
    session's tmp folder."""
    base = tmp_path_factory.mktemp("photos")
    root = base / FOLDER
    made = make_folder(root, per_class=10)
    made["odd"] = odd_files(root)
    os.environ["AUTOML_CACHE_DIR"] = str(base / "cache")
    return {"root": root, "base": base, **made}


@pytest.fixture(scope="session")
def matrix_data(tmp_path_factory, photos_folder) -> Built:
    base = tmp_path_factory.mktemp("matrix")
    return Built(
        base=base,
        photos=photos_folder,
        table_csv=write_table_csv(base / TABLE_CSV),
        text_csv=write_text_csv(base / TEXT_CSV),
    )


def build_run(built: Built, kind: str) -> Path:
    """Train `kind` once (later calls return the same run); a failed run fails every test that
    needs it with the command's own output."""
    if kind in built.runs:
        return built.runs[kind]
    if kind in built.failed:  # tried once this session: fail fast, with the same message
        pytest.fail(built.failed[kind], pytrace=False)
    run_dir = built.base / "built" / kind
    t0 = time.perf_counter()
    res = cli(*COMMANDS[kind], *_data_args(kind, built), "--run-dir", run_dir)
    built.seconds[kind] = time.perf_counter() - t0
    built.outputs[kind] = res.output
    if res.exit_code != 0:
        built.failed[kind] = f"building the {kind} run failed: {explain(res)}"
        pytest.fail(built.failed[kind], pytrace=False)
    built.runs[kind] = run_dir
    return run_dir


@pytest.fixture(scope="session")
def matrix_runs(matrix_data) -> Built:
    """Every kind, built on first use (a test needing one kind asks `build_run` instead)."""
    for kind in KINDS:
        build_run(matrix_data, kind)
    return matrix_data


def copy_run(built: Built, kind: str, dest: Path) -> Path:
    """A private copy of one built run (without its lock), for tests that write into runs."""
    src = build_run(built, kind)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".lock"))
    return dest
