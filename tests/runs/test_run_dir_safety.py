"""What is not ours is safe: --overwrite empties only a run (run.json) or an empty directory, and a
command that fails before training leaves no run directory behind (or one a plain rerun takes)."""

from __future__ import annotations

import json

import pytest

from automl_app import runs
from automl_app.errors import DataError, UsageError


def _fail_inside(run_dir, exc: BaseException, **kw) -> None:
    with pytest.raises(type(exc)):
        with runs.open_run(run_dir, command="search image", engine="kerastuner", config={}, **kw):
            raise exc


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path):
    thesis = tmp_path / "mine" / "thesis.txt"
    thesis.parent.mkdir()
    thesis.write_text("four years of work")
    with pytest.raises(UsageError) as err:
        runs.prepare_run_dir(thesis.parent, overwrite=True)
    assert str(err.value) == (
        f"--overwrite refuses to empty {str(thesis.parent)!r}: it holds files (thesis.txt) but no "
        "run (run.json missing); pass a new or empty --run-dir"
    )
    with pytest.raises(UsageError, match="refuses to empty"):  # open_run checks before the lock
        with runs.open_run(thesis.parent, command="c", engine="e", config={}, overwrite=True):
            pass
    assert thesis.read_text() == "four years of work"
    assert sorted(p.name for p in thesis.parent.iterdir()) == ["thesis.txt"]


def test_overwrite_refuses_the_home_directory_even_with_a_run_json(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("export X=1")
    (home / "run.json").write_text("{}")
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(UsageError, match="refuses to empty .*: it is your home directory"):
        runs.prepare_run_dir(home, overwrite=True)
    assert (home / ".bashrc").is_file()


def test_overwrite_replaces_a_run_an_empty_folder_or_a_lone_lock(tmp_path):
    run = tmp_path / "run"
    runs.prepare_run_dir(run, overwrite=False)
    runs.start(run, "search image", {})
    (run / "tuner").mkdir()
    (run / "tuner" / "oracle.json").write_text("{}")
    assert runs.prepare_run_dir(run, overwrite=True) == run
    assert list(run.iterdir()) == []
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / runs.LOCK).write_text("pid 1")
    with runs.open_run(lone, command="c", engine="e", config={}, overwrite=True) as r:
        r.finish()
    assert json.loads((lone / "run.json").read_text())["status"] == "completed"


def test_a_file_is_not_a_run_dir(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("x")
    with pytest.raises(UsageError, match="is a file, not a directory"):
        runs.prepare_run_dir(f, overwrite=True)
    assert f.read_text() == "x"


@pytest.mark.parametrize("exc", [DataError("one class"), UsageError("bad"), ValueError("boom")])
def test_a_failure_before_training_removes_the_directory_it_created(tmp_path, exc):
    run = tmp_path / "runs" / "new"
    _fail_inside(run, exc)
    assert not run.exists() and not (tmp_path / "runs").exists()  # parents it created too
    with runs.open_run(run, command="c", engine="e", config={}) as r:  # a plain rerun
        r.finish()
    assert runs.load_manifest(run)["status"] == "completed"


def test_a_failure_before_training_empties_an_empty_folder_it_was_given(tmp_path):
    run = tmp_path / "given"
    run.mkdir()
    _fail_inside(run, DataError("too few images"))
    assert run.is_dir() and not [p for p in run.iterdir() if p.name != runs.LOCK]


def test_a_failure_after_training_started_keeps_the_run(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(DataError):
        with runs.open_run(run, command="c", engine="e", config={}):
            (run / "trials.csv").write_text("trial_id\n0\n")
            raise DataError("export check failed")
    manifest = runs.load_manifest(run)
    assert manifest["status"] == "failed" and manifest["error"] == "export check failed"
    assert not runs.failed_before_training(run)
    with pytest.raises(UsageError, match="already exists; pass --overwrite"):
        runs.prepare_run_dir(run, overwrite=False)


def test_an_interrupt_before_training_keeps_the_run_for_resume(tmp_path):
    run = tmp_path / "run"
    _fail_inside(run, KeyboardInterrupt())
    assert runs.load_manifest(run)["status"] == "interrupted"


def test_a_plain_rerun_takes_a_run_that_failed_before_training(tmp_path):
    """--overwrite of an old run, then the new input is refused: the directory holds only a
    failed run.json, and the fixed command needs no --overwrite."""
    run = tmp_path / "run"
    with runs.open_run(run, command="c", engine="e", config={}) as r:
        (run / "trials.csv").write_text("trial_id\n0\n")
        r.finish()
    _fail_inside(run, DataError("--max-samples 5 is too few"), overwrite=True)
    assert runs.load_manifest(run)["status"] == "failed"
    assert runs.failed_before_training(run)
    with runs.open_run(run, command="c", engine="e", config={"fixed": True}) as r:
        r.finish()
    manifest = runs.load_manifest(run)
    assert manifest["status"] == "completed" and manifest["config"] == {"fixed": True}
    assert not (run / ".run.json.prev").exists() or "fixed" in (run / ".run.json.prev").read_text()


def test_a_refused_resume_is_never_removed(tmp_path):
    run = tmp_path / "run"
    with runs.open_run(run, command="search image", engine="kerastuner", config={}) as r:
        r.finish()
    _fail_inside(run, DataError("different data"), resume=True)
    assert runs.load_manifest(run)["status"] in ("completed", "failed")
    assert (run / "run.json").is_file()


def test_pre_training_files_name_the_data_layers_frame_file():
    from automl_app.data.tables import FRAME_FILE

    assert FRAME_FILE in runs.PRE_TRAINING
