"""Files under faults: a full disk, a damaged run.json or trials.csv, two commands on one run.

The full-disk tests mount a 2 MiB tmpfs (root only; skipped otherwise, saying why) and fill it:
the write fails with one line and the previous file or export stays byte for byte. The damaged
file tests run every command that reads the file (CliRunner) on a copy of one real finished run.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from automl_app import runs
from automl_app.cli import cli
from automl_app.errors import DataError, UsageError
from automl_app.runs.files import DiskFullError
from automl_app.runs.trials import read_csv

SEARCH = ["search", "image", "--space", "fcn", "--set", "num_layers=2", "--set", "layer_size=32",
          "--max-samples", "200", "--epochs", "1", "--seed", "0", "--max-trials", "2"]  # fmt: skip


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """One real finished tiny search (2 trials), copied by each test that damages it."""
    run = tmp_path_factory.mktemp("finished") / "run"
    out = subprocess.run(
        [sys.executable, "-m", "automl_app.cli", *SEARCH, "--run-dir", str(run)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return run


@pytest.fixture
def run_copy(finished, tmp_path) -> Path:
    return Path(shutil.copytree(finished, tmp_path / "runs" / "run"))


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs, unmounted afterwards."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root and `mount` (CI runs the tests as root)")
    disk = tmp_path / "disk"
    disk.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def fill(disk: Path) -> None:
    """Write a filler file until the disk refuses even one byte."""
    fd = os.open(disk / ".filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (1 << 16, 1 << 12, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    finally:
        os.close(fd)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def invoke(*args: str):
    result = CliRunner().invoke(cli, list(args))
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exc_info
    assert "Traceback" not in result.output
    return result


# ---------------------------------------------------------------------- damaged files, fast


def test_damaged_run_json_says_what_and_how(tmp_path):
    run = tmp_path / "run"
    runs.start(run, "search image", {"tuner": {"tuner": "random"}}, engine="kerastuner")
    runs.update(run, status="completed")
    good = (run / "run.json").read_text()
    for damage, says in (
        # cut inside a key: a cut at the middle could land after a "}" (run.json holds argv)
        (good[: good.index('"command"') + 5], "not valid JSON (truncated?)"),
        ("", "empty: truncated?"),
        ("[1, 2]", "a JSON list, not an object"),
        ('{"status": 3}', "status of the wrong type"),
    ):
        (run / "run.json").write_text(damage)
        with pytest.raises(DataError) as err:
            runs.load_manifest(run)
        assert f"{run / 'run.json'} is damaged ({says}" in str(err.value)
        assert f"cp {run / '.run.json.prev'} {run / 'run.json'}" in str(err.value)
    (run / "run.json").write_bytes(b"\xff\xfe{")
    shutil.copy(run / ".run.json.prev", run / "run.json")  # the way out it names
    assert runs.load_manifest(run)["command"] == "search image"
    (run / ".run.json.prev").unlink()
    (run / "run.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(DataError, match=r"not UTF-8 text .*start the run again with --overwrite"):
        runs.load_manifest(run)


def test_damaged_trials_csv_is_rebuilt_from_jsonl_or_named(tmp_path, capsys):
    rows = {
        str(i): {"trial_id": str(i), "status": "completed", "objective": i / 10} for i in (0, 1)
    }
    runs.save_rows(tmp_path, rows)
    path = tmp_path / "trials.csv"
    good = path.read_text()
    for damage, says in (
        (good[:-9], "row 2 has"),  # cut inside the last row
        (good.rstrip("\n") + ",extra\n", "row 2 has"),
        ("", "empty: truncated?"),
        ("id;status\n0;completed\n", "its header has no trial_id column"),
    ):
        path.write_text(damage)
        assert [r["trial_id"] for r in read_csv(path)] == ["0", "1"]
        assert f"warning: {path} was damaged ({says}" in capsys.readouterr().err
        assert path.read_text() == good  # rewritten from trials.jsonl
    path.write_text(good[:-9])
    (tmp_path / "trials.jsonl").write_text('{"trial_id": "0"}\n{"trial_')
    with pytest.raises(DataError, match=r"trials.csv is damaged \(row 2 .*and so is its source: "):
        read_csv(path)
    (tmp_path / "trials.jsonl").unlink()
    with pytest.raises(DataError, match="restore it from a backup"):
        read_csv(path)


# ------------------------------------------------------------------------- lock, subprocess


HOLD = "import sys, time; from automl_app import runs; runs.lock(sys.argv[1]); print('held', flush=True); time.sleep(120)"  # noqa: E501


def test_second_command_refused_at_once_and_a_killed_holder_frees_the_lock(tmp_path):
    run = tmp_path / "run"
    runs.start(run, "search image", {}, engine="kerastuner")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"held"
        t0 = time.monotonic()
        result = invoke(*SEARCH, "--run-dir", str(run), "--resume")
        refused_in = time.monotonic() - t0
        assert result.exit_code == 2
        assert f"is in use by pid {holder.pid} (automl " in result.output
        assert len(result.output.strip().splitlines()) == 1
        assert refused_in < 10  # at once: no data loaded, no TensorFlow imported
        with pytest.raises(UsageError, match="in use by"):
            runs.lock(run)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    runs.lock(run).release()  # the kernel dropped the dead holder's lock


# -------------------------------------------------------------- a real run, every reader


@pytest.mark.slow
def test_every_reader_names_a_damaged_run_json(run_copy, tmp_path):
    text = (run_copy / "run.json").read_text()
    (run_copy / "run.json").write_text(text[: len(text) // 3])
    damaged = f"{run_copy / 'run.json'} is damaged (not valid JSON (truncated?)"
    way = f"cp {run_copy / '.run.json.prev'} {run_copy / 'run.json'}"
    for args in (
        ["report", str(run_copy)],
        ["select", str(run_copy)],
        ["evaluate", str(run_copy)],
        ["export", str(run_copy), "--out", str(tmp_path / "out")],
        [*SEARCH, "--run-dir", str(run_copy), "--resume"],
    ):
        result = invoke(*args)
        assert result.exit_code == 1, (args, result.output)
        assert damaged in result.output and way in result.output, (args, result.output)
    listing = invoke("runs", str(run_copy.parent))
    assert listing.exit_code == 0 and damaged in listing.output


@pytest.mark.slow
def test_every_reader_survives_a_damaged_trials_csv(run_copy):
    csv_text = (run_copy / "trials.csv").read_text()
    for args in (
        ["runs", str(run_copy.parent)],
        ["report", str(run_copy)],
        ["select", str(run_copy)],
    ):
        (run_copy / "trials.csv").write_text(csv_text[:-20])
        result = invoke(*args)
        assert result.exit_code == 0, (args, result.output)
        assert f"warning: {run_copy / 'trials.csv'} was damaged (" in result.output
        assert "rewrote it from trials.jsonl" in result.output
        assert (run_copy / "trials.csv").read_text() == csv_text


# ------------------------------------------------------------------------------ a full disk


@pytest.mark.slow
def test_disk_full_writing_records_keeps_the_previous_ones(finished, small_disk):
    run = small_disk / "run"
    run.mkdir()
    for name in ("run.json", "trials.jsonl", "trials.csv"):
        shutil.copy(finished / name, run / name)
    before = snapshot(run)
    fill(small_disk)
    with pytest.raises(DiskFullError) as err:
        runs.update(run, note="x")
    assert str(err.value).startswith(f"disk full writing {run / 'run.json'}: No space left")
    assert "the previous file is intact" in str(err.value)
    with pytest.raises(DiskFullError, match="trials.jsonl: No space left on device; the previous"):
        runs.save_rows(run, runs.load_rows(run))
    result = invoke(*SEARCH, "--run-dir", str(run), "--resume")
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {err.value}", result.output
    after = snapshot(run)
    assert {k: after[k] for k in before} == before  # records intact, byte for byte
    assert not [k for k in after if k.endswith(".tmp")]


@pytest.mark.slow
def test_disk_full_during_export_keeps_the_previous_export(finished, small_disk):
    out = small_disk / "model"
    first = invoke("export", str(finished), "--out", str(out))
    assert first.exit_code == 0, first.output
    before = snapshot(out)
    fill(small_disk)
    result = invoke("export", str(finished), "--out", str(out))
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0], result.output
    assert snapshot(out) == before
    leftovers = [p.name for p in small_disk.iterdir() if p.name.startswith(".model")]
    assert not leftovers  # the half-written export was removed
