"""`--storage URL`: the run's study written to the user's Optuna RDB storage as well as to
RUN_DIR/optuna.journal (same trials, same values), never twice, refused before data loads when
the URL cannot work.

Fast: fake runs through runs.save_rows into a SQLite file (idempotent, catch-up, --overwrite
replaces the study, another run of the same name is a warning); URLs checked without connecting.
Slow: a tiny real KerasTuner digits search with a SQLite storage.
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from automl_app import runs
from automl_app.config import (
    DataConfig,
    SearchConfig,
    SpaceConfig,
    TunerConfig,
    check_storage,
)
from automl_app.errors import UsageError
from automl_app.runs import journal


def fake_run(run_dir: Path, url: str, started: str = "2026-01-01T00:00:00") -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = {"status": "running", "started_at": started,
                "config": {"tuner": {"objective": "val_accuracy"}, "storage": url}}  # fmt: skip
    (run_dir / runs.MANIFEST).write_text(json.dumps(manifest))
    return run_dir


def rows(n: int) -> dict[str, dict]:
    return {
        f"{i:02d}": {"trial_id": f"{i:02d}", "status": "completed", "objective": 0.5 + i / 10,
                     "hp_units": 16 * (i + 1), "curve": [[1, 0.4], [2, 0.5 + i / 10]]}
        for i in range(n)
    }  # fmt: skip


def same_trials(run_dir: Path, url: str, name: str) -> list[tuple]:
    """The storage's trials; asserted equal to the journal's (ids, params, values, curves)."""

    def key(t):
        return (t.user_attrs["trial_id"], t.state, t.value, t.params, t.intermediate_values)

    theirs = optuna.load_study(study_name=name, storage=url)
    ours = optuna.load_study(study_name=None, storage=journal.storage(run_dir))
    assert sorted(map(key, theirs.trials)) == sorted(map(key, ours.trials))
    assert theirs.direction == ours.direction
    return sorted(map(key, theirs.trials))


def test_the_study_lands_in_the_storage_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    run = fake_run(tmp_path / "runs" / "digits-a", url)
    table = rows(2)
    runs.save_rows(run, table)
    assert len(same_trials(run, url, "digits-a")) == 2
    study = optuna.load_study(study_name="digits-a", storage=url)
    assert study.metric_names == ["val_accuracy"]
    assert study.user_attrs["automl_run_dir"] == str(run.resolve())

    runs.save_rows(run, table)  # a resume saves the same rows again: nothing is added twice
    assert len(same_trials(run, url, "digits-a")) == 2
    runs.save_rows(run, rows(3))  # one more trial finished
    assert len(same_trials(run, url, "digits-a")) == 3


def test_a_storage_that_was_unreachable_catches_up(tmp_path):
    url = f"sqlite:///{tmp_path / 'later' / 'optuna.db'}"
    run = fake_run(tmp_path / "run", url)
    with pytest.warns(UserWarning, match="--storage .* not updated"):
        runs.save_rows(run, rows(2))  # the folder is missing: the journal is written anyway
    assert len(optuna.load_study(study_name=None, storage=journal.storage(run)).trials) == 2
    (tmp_path / "later").mkdir()
    runs.save_rows(run, rows(2))  # nothing new in the journal; the storage catches up
    assert len(same_trials(run, url, "run")) == 2


def test_overwrite_replaces_the_study_and_another_run_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    run = fake_run(tmp_path / "a" / "run", url)
    runs.save_rows(run, rows(3))
    # --overwrite: the same directory, a new run (new start time, fresh journal)
    journal.journal_path(run).unlink()
    fake_run(run, url, started="2026-02-02T00:00:00")
    runs.save_rows(run, {k: {**v, "objective": 0.1} for k, v in rows(1).items()})
    assert same_trials(run, url, "run") == [
        ("0", optuna.trial.TrialState.COMPLETE, 0.1, {"units": 16}, {1: 0.4, 2: 0.5})
    ]
    other = fake_run(tmp_path / "b" / "run", url)  # a different run with the same name
    with pytest.warns(UserWarning, match="already holds a study 'run' from another run"):
        runs.save_rows(other, rows(2))
    assert len(optuna.load_study(study_name=None, storage=journal.storage(other)).trials) == 2
    assert len(optuna.load_study(study_name="run", storage=url).trials) == 1


@pytest.mark.parametrize(
    "url, words",
    [
        ("redis://localhost/0", "must use one of sqlite, postgresql"),
        ("not a url", "must be an Optuna RDB storage URL"),
        ("sqlite://", "needs a file"),
        ("sqlite:////no/such/folder/x.db", "does not exist"),
        ("postgresql+nosuchdriver://u:secret@host/db", "no driver"),
    ],
)
def test_a_bad_url_is_one_line(url, words):
    with pytest.raises(UsageError, match=words) as err:
        check_storage(url)
    assert "\n" not in str(err.value) and "secret" not in str(err.value)


def test_a_bad_url_stops_the_search_before_data_loads(tmp_path):
    from automl_app import workflows

    cfg = SearchConfig(
        data=DataConfig(dataset="digits"),
        run_dir=str(tmp_path / "run"),
        storage="mongodb://localhost/x",
    )
    with pytest.raises(UsageError, match="--storage must use one of"):
        workflows.search(cfg, say=lambda _l: None)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_real_search_writes_the_same_trials_to_sqlite(tmp_path, data_dir):
    from automl_app import workflows

    url = f"sqlite:///{tmp_path / 'x.db'}"
    run = tmp_path / "digits-storage"
    cfg = SearchConfig(
        data=DataConfig(dataset="digits", max_samples=200),
        space=SpaceConfig(space="fcn"),
        tuner=TunerConfig(max_trials=2, epochs=1, keep_checkpoints=1),
        run_dir=str(run),
        quiet=True,
        storage=url,
    )
    workflows.search(cfg, say=lambda _l: None)
    trials = same_trials(run, url, "digits-storage")
    assert len(trials) == 2 and all(t[2] is not None for t in trials)
    runs.save_rows(run, runs.load_rows(run))  # what --resume does first: nothing duplicated
    assert len(same_trials(run, url, "digits-storage")) == 2
    assert json.loads((run / runs.MANIFEST).read_text())["config"]["storage"] == url


@pytest.mark.parametrize(
    "argv",
    [
        ["search", "image", "--max-trials", "1"],
        ["search", "structured", "--csv", "x.csv", "--target", "y"],
        ["train-scratch", "mobilenetv2"],
    ],
)
def test_the_cli_refuses_a_bad_storage_before_data_loads(tmp_path, argv):
    """Every command with --storage (KerasTuner, AutoKeras, train-scratch) checks it first."""
    from click.testing import CliRunner

    from automl_app.cli import cli

    run_dir = tmp_path / "run"
    result = CliRunner().invoke(
        cli, [*argv, "--storage", "redis://host/0", "--run-dir", str(run_dir)]
    )
    assert result.exit_code == 2, result.output
    assert "--storage" in result.output and "redis://host/0" in result.output
    assert "Traceback" not in result.output
    assert not run_dir.exists()
