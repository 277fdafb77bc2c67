"""`automl predict` as users run it: a real subprocess (stdout holds the CSV and nothing else,
stderr names skipped files), and CliRunner for the one-line refusals (exit 2).

The runs are the session's matrix runs (tests/support/matrix.py); predict only reads them.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support.images import encode
from support.matrix import Built, build_run, cli

from automl_app.analysis.predict import decode_file, read_rows

REPO = Path(__file__).resolve().parents[2]


def automl(*args: str | Path) -> subprocess.CompletedProcess:
    """`python -m automl_app.cli ARGS` in a fresh process, stdout and stderr apart."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, "-m", "automl_app.cli", *map(str, args)],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=300,
    )  # fmt: skip


def _one_line_refusal(res, fragment: str) -> None:
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) == 1, res.output
    assert lines[0].startswith("Error: ") and fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def new_photos(matrix_data: Built, tmp_path_factory) -> dict:
    """A folder (with a nested one) of the matrix's good photos and three bad files: a truncated
    JPEG, a text file named .png and an empty file."""
    from PIL import Image

    root = tmp_path_factory.mktemp("new-photos") / "inbox"
    (root / "nested").mkdir(parents=True)
    good = []
    for i, src in enumerate(matrix_data.photos["good"][::4]):
        dest = (root / "nested" if i % 2 else root) / f"{i:02d}_{Path(src).name}"
        shutil.copy(src, dest)
        good.append(str(dest))
    jpeg = encode(Image.new("RGB", (30, 20), (200, 10, 10)), "JPEG")
    bad = {root / "cut.jpg": jpeg[: len(jpeg) // 2], root / "notes.png": b"not an image\n" * 5,
           root / "nested" / "empty.jpg": b""}  # fmt: skip
    for path, data in bad.items():
        path.write_bytes(data)
    return {"root": root, "good": sorted(good), "bad": sorted(str(p) for p in bad)}


@pytest.mark.slow
def test_folder_run_over_a_folder_with_bad_files(matrix_data: Built, new_photos: dict) -> None:
    """Acceptance: every good image has a row, every bad one is named on stderr with the scan's
    reason and skipped; labels agree with calling the SavedModel directly; stdout is only CSV."""
    from automl_app.tf_env import tf

    run = build_run(matrix_data, "kt-folder")
    res = automl("predict", run, new_photos["root"])
    assert res.returncode == 0, res.stderr
    rows = read_rows(res.stdout)
    assert sorted(r["input"] for r in rows) == new_photos["good"]
    assert res.stdout.splitlines()[0] == "input,label,probability,blue,green,red"
    reasons = {"cut.jpg": "truncated", "notes.png": "not an image", "empty.jpg": "empty"}
    for path in new_photos["bad"]:
        assert f"skipped: {path}: {reasons[Path(path).name]}" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    model = tf().saved_model.load(str(run / "best" / "saved_model"))
    labels = json.loads((run / "best" / "labels.json").read_text())
    for row in rows:
        probs = np.asarray(model.serve(decode_file(row["input"])[0][None]))[0]
        assert row["label"] == labels[int(probs.argmax())], row
        assert float(row["probability"]) == pytest.approx(float(probs.max()), abs=1e-5)


@pytest.mark.slow
def test_structured_run_over_a_csv_without_target(matrix_data: Built, tmp_path) -> None:
    """Acceptance: one row per CSV row; an extra column is ignored with one line on stderr."""
    run = build_run(matrix_data, "ak-structured")
    src = list(csv.DictReader(open(matrix_data.table_csv)))[:9]
    path = tmp_path / "new_rows.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["colour", "height", "weight", "comment"])
        w.writerows([[r["colour"], r["height"], r["weight"], "n/a"] for r in src])
    res = automl("predict", run, path, "--top-k", "2")
    assert res.returncode == 0, res.stderr
    rows = read_rows(res.stdout)
    assert [r["input"] for r in rows] == [str(i) for i in range(1, len(src) + 1)]
    classes = json.loads((run / "best" / "labels.json").read_text())
    assert all(r["label"] in classes and r["top1_label"] == r["label"] for r in rows)
    for r in rows:
        assert sum(float(r[c]) for c in classes) == pytest.approx(1.0, abs=1e-4)
    assert res.stderr.count("ignored columns") == 1 and "comment" in res.stderr


@pytest.mark.slow
def test_jsonl_to_a_file(matrix_data: Built, new_photos: dict, tmp_path) -> None:
    out = tmp_path / "rows.jsonl"
    res = cli("predict", build_run(matrix_data, "kt-folder"), *new_photos["good"][:3],
              "--out", out, "--format", "jsonl", "--top-k", "3", "--batch-size", "2")  # fmt: skip
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["input"] for r in rows] == new_photos["good"][:3]
    assert all(len(r["top_k"]) == 3 and set(r["probabilities"]) == {"blue", "green", "red"}
               for r in rows)  # fmt: skip


@pytest.mark.slow
def test_refusals_one_line_exit_2(matrix_data: Built, new_photos: dict, tmp_path) -> None:
    """CSV to an image run, an image to a table run, no inputs found, --top-k above the classes,
    a missing input, a wrong size for a fixed-size model, a folder that is not a run."""
    from PIL import Image

    digits = build_run(matrix_data, "kt-digits")
    table = build_run(matrix_data, "ak-structured")
    (tmp_path / "empty").mkdir()
    Image.new("L", (28, 28)).save(tmp_path / "big.png")
    cases = [
        ((digits, matrix_data.table_csv), "is a table; this is an image run"),
        ((table, new_photos["good"][0]), "INPUT must be one CSV or Parquet file"),
        ((digits, tmp_path / "empty"), "no files found in"),
        ((digits, new_photos["good"][0], "--top-k", "11"), "--top-k must be at most 10"),
        ((digits, tmp_path / "missing.png"), "does not exist"),
        ((digits,), "give at least one INPUT"),
        ((digits, tmp_path / "big.png"), "28x28; this model takes 8x8 images"),
        ((tmp_path / "empty", tmp_path / "big.png"), "is neither a run directory"),
    ]
    for args, fragment in cases:
        _one_line_refusal(cli("predict", *args), fragment)


def test_help_lists_the_options() -> None:
    res = cli("predict", "--help")
    assert res.exit_code == 0
    for option in ("--out", "--format", "--top-k", "--batch-size", "--verbose"):
        assert option in res.output
