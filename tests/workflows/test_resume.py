"""Resume after SIGKILL and after a finished run, through the real CLI in a subprocess."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BASE = [
    "search",
    "image",
    "--space",
    "fcn",
    "--set",
    "num_layers=2",
    "--set",
    "layer_size=512",
    "--epochs",
    "2",
    "--max-samples",
    "300",
    "--seed",
    "0",
]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "automl_app.cli", *args]


def rows(run: Path) -> list[dict]:
    with open(run / "trials.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def kill_after_trials(run: Path, argv: list[str], n_done: int, timeout: float = 240) -> None:
    """Start the search, wait until `n_done` trials are recorded, then SIGKILL it."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    try:
        while time.time() - t0 < timeout:
            path = run / "trials.jsonl"
            if path.exists() and len(path.read_text().splitlines()) >= n_done:
                time.sleep(0.3)  # let the next trial start, so one is in flight
                break
            if proc.poll() is not None:
                pytest.fail("search finished before it could be killed")
            time.sleep(0.1)
        else:
            pytest.fail("search did not record trials in time")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


@pytest.mark.parametrize("tuner", ["random", "tpe", "grid", "bayesian", "hyperband"])
def test_sigkill_then_resume_completes_every_trial_once(tmp_path, tuner):
    run = tmp_path / "run"
    argv = cli(*BASE, "--tuner", tuner, "--max-trials", "5", "--run-dir", str(run))
    kill_after_trials(run, argv, n_done=2)
    before = {r["trial_id"]: r for r in rows(run)}
    assert 2 <= len(before) < 5
    assert json.loads((run / "run.json").read_text())["status"] == "running"

    again = subprocess.run(argv, capture_output=True, text=True)
    assert again.returncode == 2 and "--resume" in again.stderr

    resumed = subprocess.run(argv + ["--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    after = rows(run)
    ids = [r["trial_id"] for r in after]
    assert len(ids) == 5 and len(set(ids)) == 5
    assert all(r["status"] in ("completed", "pruned") for r in after)
    for r in after:  # finished trials were not re-run: their rows are untouched
        if r["trial_id"] in before:
            assert r["seconds"] == before[r["trial_id"]]["seconds"]
    if tuner == "grid":  # no configuration twice
        hps = [tuple(v for k, v in r.items() if k.startswith("hp_")) for r in after]
        assert len(set(hps)) == len(hps)
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["status"] == "completed" and manifest["resumed"] == 1
    assert (run / "best" / "saved_model" / "saved_model.pb").exists()


def test_resume_with_more_trials_and_same_shape(tmp_path):
    run, ref = tmp_path / "run", tmp_path / "ref"
    first = subprocess.run(
        cli(*BASE, "--max-trials", "2", "--run-dir", str(run)), capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr
    more = subprocess.run(
        cli(*BASE, "--max-trials", "4", "--run-dir", str(run), "--resume"),
        capture_output=True,
        text=True,
    )
    assert more.returncode == 0, more.stderr
    assert [r["trial_id"] for r in rows(run)] == ["0", "1", "2", "3"]
    straight = subprocess.run(
        cli(*BASE, "--max-trials", "4", "--run-dir", str(ref)), capture_output=True, text=True
    )
    assert straight.returncode == 0, straight.stderr
    assert list(rows(run)[0]) == list(rows(ref)[0]), "trials.csv must have the same columns"


def test_resume_writes_the_row_a_killed_search_ended_without(tmp_path):
    """A trial the oracle ended whose row was never written (a chief killed between a remote
    worker's end_trial and its read-back) gets its row back on --resume, not a second run."""
    run = tmp_path / "run"
    first = subprocess.run(
        cli(*BASE, "--max-trials", "2", "--run-dir", str(run)), capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr
    lines = (run / "trials.jsonl").read_text().splitlines()
    lost = json.loads(lines[1])
    (run / "trials.jsonl").write_text(lines[0] + "\n")
    more = subprocess.run(
        cli(*BASE, "--max-trials", "3", "--run-dir", str(run), "--resume"),
        capture_output=True,
        text=True,
    )
    assert more.returncode == 0, more.stderr
    after = {r["trial_id"]: r for r in rows(run)}
    assert sorted(after) == ["0", "1", "2"]
    back = after[lost["trial_id"]]
    assert back["status"] == "completed"
    assert float(back["objective"]) == pytest.approx(lost["objective"])  # the oracle's record
    assert float(back["hp_learning_rate"]) == pytest.approx(lost["hp_learning_rate"])


def test_resume_refuses_different_data(tmp_path):
    run = tmp_path / "run"
    ok = subprocess.run(
        cli(*BASE, "--max-trials", "1", "--run-dir", str(run)), capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(
        cli(*BASE[:-2], "--seed", "1", "--max-trials", "2", "--run-dir", str(run), "--resume"),
        capture_output=True,
        text=True,
        env={**os.environ},
    )
    assert bad.returncode == 2 and "data differ" in bad.stderr
