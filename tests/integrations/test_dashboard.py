"""RUN_DIR/optuna.journal and `automl dashboard`: the trial table mirrored into Optuna's
JournalStorage as trials finish, and optuna-dashboard serving it over HTTP.

Fast: save_rows → journal → optuna.load_study (params, values, curves, states), idempotent and
safe with several processes; the server's JSON API on a small run; an old run's journal built
from trials.csv. Slow: a real search in a subprocess while the dashboard answers (trials seen
while the search still runs, all of them after), then the trials page in headless Chromium.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from support.browser import CHROMIUM, CHROMIUM_ARGS

from automl_app import runs
from automl_app.cli import cli
from automl_app.integrations.dashboard import serve
from automl_app.runs import journal

REPO = Path(__file__).resolve().parents[2]


def _missing(reason: str) -> None:
    """Skip where the browser is missing, but fail in CI, which installs it (make browser)."""
    import os

    (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)(reason)


def fake_run(run_dir: Path, objective: str = "val_accuracy") -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = {"status": "running", "config": {"tuner": {"objective": objective}}}
    (run_dir / runs.MANIFEST).write_text(json.dumps(manifest))
    return run_dir


def rows(n: int = 3) -> dict[str, dict]:
    out = {
        f"{i:02d}": {
            "trial_id": f"{i:02d}",
            "status": "completed",
            "objective": 0.5 + i / 10,
            "seconds": 2.5,
            "params": 1000 + i,
            "hp_learning_rate": 10.0**-i,
            "hp_activation": ["relu", "tanh"][i % 2],
            "curve": [[1, 0.3], [2, 0.5 + i / 10]],
        }
        for i in range(n)
    }
    out["90"] = {"trial_id": "90", "status": "failed", "objective": None, "error": "diverged",
                 "hp_learning_rate": 1.0, "hp_activation": "relu"}  # fmt: skip
    out["91"] = {"trial_id": "91", "status": "pruned", "objective": 0.2, "pruned_at": 1,
                 "hp_learning_rate": 0.1, "hp_activation": "relu", "curve": [[1, 0.2]]}  # fmt: skip
    out["92"] = {"trial_id": "92", "status": "running", "hp_learning_rate": 0.1}
    return out


def load(run_dir: Path) -> optuna.Study:
    return optuna.load_study(study_name=None, storage=journal.storage(run_dir))


def test_save_rows_mirrors_trials_into_the_journal_once(tmp_path):
    run = fake_run(tmp_path / "run")
    table = rows(3)
    runs.save_rows(run, table)
    study = load(run)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert study.metric_names == ["val_accuracy"]
    by_id = {t.user_attrs["trial_id"]: t for t in study.trials}
    assert set(by_id) == {"0", "1", "2", "90", "91"}  # the running trial waits until it ends
    t1 = by_id["1"]
    assert t1.state == optuna.trial.TrialState.COMPLETE and t1.value == pytest.approx(0.6)
    assert t1.params == {"learning_rate": pytest.approx(0.1), "activation": "tanh"}
    assert set(t1.distributions) == {"learning_rate", "activation"}
    assert t1.intermediate_values == {1: 0.3, 2: pytest.approx(0.6)}
    assert t1.user_attrs["seconds"] == 2.5 and t1.user_attrs["params"] == 1001
    assert t1.duration.total_seconds() == pytest.approx(2.5, abs=0.01)
    assert by_id["90"].state == optuna.trial.TrialState.FAIL
    assert by_id["90"].user_attrs["error"] == "diverged"
    assert by_id["91"].state == optuna.trial.TrialState.PRUNED
    assert by_id["91"].intermediate_values == {1: 0.2}
    assert study.best_trial.user_attrs["trial_id"] == "2"
    # the curve stays out of trials.csv (it is in trials.jsonl, for resume)
    assert "curve" not in (run / runs.TRIALS_CSV).read_text().splitlines()[0]
    assert runs.load_rows(run)["00"]["curve"] == [[1, 0.3], [2, 0.5]]

    runs.save_rows(run, table)  # idempotent: nothing is added twice
    assert len(load(run).trials) == 5
    table["92"].update(status="completed", objective=0.95)  # the running trial finished
    runs.save_rows(run, table)
    study = load(run)
    assert len(study.trials) == 6 and study.best_trial.user_attrs["trial_id"] == "92"


def test_parallel_writers_add_each_trial_once(tmp_path):
    """Worker processes of one search call save_rows at the same moment: the journal's file
    lock makes the read-check-append atomic."""
    run = fake_run(tmp_path / "run")
    (tmp_path / "rows.json").write_text(json.dumps(rows(6)))
    code = (
        "import json, sys; from automl_app import runs; "
        "runs.save_rows(sys.argv[1], json.load(open(sys.argv[2])))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(run), str(tmp_path / "rows.json")])
        for _ in range(4)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    ids = sorted(t.user_attrs["trial_id"] for t in load(run).trials)
    assert ids == sorted(["0", "1", "2", "3", "4", "5", "90", "91"])
    assert not Path(str(journal.journal_path(run)) + ".lock").exists()


def test_minimised_objective_and_a_run_without_kerastuner(tmp_path):
    run = fake_run(tmp_path / "run", objective="val_loss")
    table = {"0": {"trial_id": "0", "status": "completed", "objective": 0.3,
                   "hp_optimizer": "sgd", "hp_batch_size": 64}}  # fmt: skip
    runs.write_trial_table(run, table.values())  # AutoKeras and train-scratch write this way
    study = load(run)
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    (trial,) = study.trials
    assert trial.params == {"optimizer": "sgd", "batch_size": 64}  # a one-point range is kept
    assert type(trial.distributions["batch_size"]).__name__ == "IntDistribution"


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.load(resp)


def test_dashboard_serves_the_journal_over_http(tmp_path):
    run = fake_run(tmp_path / "run")
    runs.save_rows(run, rows(2))
    server = serve(run, port=0, say=lambda _l: None).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert server.url == f"{base}/dashboard/"
        (summary,) = get_json(f"{base}/api/studies")["study_summaries"]
        assert summary["study_name"] == "run" and summary["directions"] == ["maximize"]
        detail = get_json(f"{base}/api/studies/{summary['study_id']}")
        assert len(detail["trials"]) == 4
        assert detail["objective_names"] == ["val_accuracy"]
        names = {p["name"] for t in detail["trials"] for p in t["params"]}
        assert names == {"learning_rate", "activation"}
        with urllib.request.urlopen(server.url, timeout=30) as resp:
            assert b"Optuna Dashboard" in resp.read()
        table = rows(4)
        runs.save_rows(run, table)  # a trial finishes while the dashboard is open
        deadline = time.time() + 15  # optuna-dashboard caches trials for 2 s
        while len(detail["trials"]) < 6 and time.time() < deadline:
            time.sleep(0.5)
            detail = get_json(f"{base}/api/studies/{summary['study_id']}")
        assert len(detail["trials"]) == 6
    finally:
        server.shutdown()


def test_an_old_run_gets_its_journal_from_trials_csv(tmp_path):
    run = fake_run(tmp_path / "run")
    runs.save_rows(run, rows(3))
    journal.journal_path(run).unlink()  # as written before the journal existed
    lines: list[str] = []
    server = serve(run, port=0, say=lines.append)
    server.shutdown()
    assert lines and "built" in lines[0] and "5 trials" in lines[0]
    study = load(run)
    assert sorted(t.user_attrs["trial_id"] for t in study.trials) == ["0", "1", "2", "90", "91"]
    assert {t.state for t in study.trials} >= {optuna.trial.TrialState.COMPLETE}


def test_a_run_inside_a_folder_of_runs_is_served_alone(tmp_path):
    """RUN_DIR (it has run.json) keeps its one-run dashboard; its parent serves both."""
    for name in ("a", "b"):
        runs.save_rows(fake_run(tmp_path / name), rows(1))
    one = serve(tmp_path / "a", port=0, say=lambda _l: None).start()
    both = serve(tmp_path, port=0, say=lambda _l: None).start()
    try:
        assert one.merged is None and one.journal == journal.journal_path(tmp_path / "a")
        names = [s["study_name"] for s in get_json(f"http://127.0.0.1:{one.port}/api/studies")
                 ["study_summaries"]]  # fmt: skip
        assert names == ["a"]
        names = [s["study_name"] for s in get_json(f"http://127.0.0.1:{both.port}/api/studies")
                 ["study_summaries"]]  # fmt: skip
        assert sorted(names) == ["a", "b"] and both.journal is None
    finally:
        one.shutdown()
        both.shutdown()


def test_dashboard_cli_errors(tmp_path):
    res = CliRunner().invoke(cli, ["dashboard", str(tmp_path)], prog_name="automl")
    assert res.exit_code == 2 and "is not a run directory" in res.output
    run = fake_run(tmp_path / "run")
    busy = serve(run, port=0, say=lambda _l: None)
    try:
        res = CliRunner().invoke(
            cli, ["dashboard", str(run), "--port", str(busy.port)], prog_name="automl"
        )
        assert res.exit_code == 2 and "--port" in res.output
    finally:
        busy.shutdown()


# ------------------------------------------------------------------ a real search, live


@pytest.fixture(scope="module")
def live_search(tmp_path_factory):
    """A real search subprocess watched through the dashboard's JSON API while it runs."""
    run = tmp_path_factory.mktemp("live") / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("AUTOML_DATA_DIR", str(REPO.parent / "shared" / "datasets"))
    cmd = [sys.executable, "-m", "automl_app.cli", "search", "image", "--dataset", "digits",
           "--space", "fcn", "--max-trials", "4", "--epochs", "1", "--max-samples", "200",
           "--seed", "1", "--run-dir", str(run)]  # fmt: skip
    log = open(run.parent / "search.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    server = None
    seen_while_running: list[int] = []
    try:
        deadline = time.time() + 300
        while not (run / runs.MANIFEST).is_file():
            assert proc.poll() is None, (run.parent / "search.log").read_text()
            assert time.time() < deadline, "the search never wrote run.json"
            time.sleep(0.2)
        server = serve(run, port=0, say=lambda _l: None).start()
        base = f"http://127.0.0.1:{server.port}"
        polled = []
        while proc.poll() is None and time.time() < deadline:
            studies = get_json(f"{base}/api/studies")["study_summaries"]
            if studies:
                n = len(get_json(f"{base}/api/studies/{studies[0]['study_id']}")["trials"])
                polled.append(n)
                if n and proc.poll() is None:  # answered while the search was still running
                    seen_while_running.append(n)
            time.sleep(0.3)
        assert proc.wait(timeout=300) == 0, (run.parent / "search.log").read_text()
        final = []
        for _ in range(30):  # the dashboard's 2 s trial cache
            detail = get_json(f"{base}/api/studies/0")
            final = detail["trials"]
            if len(final) == 4:
                break
            time.sleep(0.5)
        yield {"run": run, "server": server, "base": base, "seen": seen_while_running,
               "polled": polled, "final": final, "detail": detail}  # fmt: skip
    finally:
        if proc.poll() is None:
            proc.kill()
        if server is not None:
            server.shutdown()
        log.close()


@pytest.mark.slow
def test_dashboard_answers_with_trials_while_the_search_runs(live_search):
    assert live_search["seen"], f"no trial seen while running; polls: {live_search['polled']}"
    final = live_search["final"]
    assert len(final) == 4
    assert all(t["state"] == "Complete" for t in final)
    assert all(t["params"] for t in final)
    assert all(t["intermediate_values"] for t in final)  # the per-epoch objective
    ids = sorted(t.user_attrs["trial_id"] for t in load(live_search["run"]).trials)
    rows_ids = sorted(journal.norm_id(k) for k in runs.load_rows(live_search["run"]))
    assert ids == rows_ids


@pytest.mark.slow
def test_trials_page_in_headless_chromium(live_search):
    """The dashboard's trial list (0.21's trials table; its /trialTable route draws nothing)."""
    if not CHROMIUM.is_file():
        _missing(f"{CHROMIUM} not found (make browser, or apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the Python package playwright is not installed (pip install playwright)")
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{live_search['base']}/dashboard/studies/0/trials", wait_until="load")
            page.get_by_text("4 Trials").wait_for(timeout=60_000)
            for n in range(4):
                assert page.get_by_text(f"Trial {n}", exact=True).first.is_visible()
            body = page.inner_text("body")
            assert "Complete" in body and "learning_rate" in body
        finally:
            browser.close()
    assert not errors
