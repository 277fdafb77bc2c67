"""`automl dashboard ROOT`: one optuna-dashboard over every run under a folder, one study per run
named by the run's path under ROOT.

Fast: fake runs (trial tables through runs.save_rows) served in-process: both studies, their
trials, a trial and a run that appear later; a folder without runs is one line, exit 2. Slow: two
copies of the session's tiny KerasTuner digits run (same directory name, different parents)
served by the real command in a subprocess (`/api/studies` names both; the process is gone
after), and one look at the studies page in headless Chromium.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.browser import CHROMIUM, CHROMIUM_ARGS
from support.matrix import copy_run

from automl_app import runs
from automl_app.cli import cli
from automl_app.integrations.dashboard import serve

REPO = Path(__file__).resolve().parents[2]


def fake_run(run_dir: Path, n: int, objective: str = "val_accuracy") -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = {"status": "finished", "config": {"tuner": {"objective": objective}}}
    (run_dir / runs.MANIFEST).write_text(json.dumps(manifest))
    runs.save_rows(run_dir, rows(n))
    return run_dir


def rows(n: int) -> dict[str, dict]:
    return {
        str(i): {"trial_id": str(i), "status": "completed", "objective": 0.1 * (i + 1),
                 "hp_units": 8 * (i + 1), "curve": [[1, 0.1 * (i + 1)]]}
        for i in range(n)
    }  # fmt: skip


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.load(resp)


def studies(base: str) -> dict[str, dict]:
    return {s["study_name"]: s for s in get_json(f"{base}/api/studies")["study_summaries"]}


def test_one_dashboard_over_a_folder_of_runs(tmp_path):
    root = tmp_path / "runs"
    fake_run(root / "a", 2)
    fake_run(root / "group" / "a", 3, objective="val_loss")  # same name, another folder
    (root / "not-a-run").mkdir()
    lines: list[str] = []
    server = serve(root, port=0, say=lines.append).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert server.merged is not None and server.merged.found == 2
        found = studies(base)
        assert set(found) == {"a", "group/a"}
        assert found["group/a"]["directions"] == ["minimize"]
        detail = get_json(f"{base}/api/studies/{found['group/a']['study_id']}")
        assert len(detail["trials"]) == 3 and detail["objective_names"] == ["val_loss"]
        assert {p["name"] for t in detail["trials"] for p in t["params"]} == {"units"}
        assert [t["values"] for t in detail["trials"]] == [[0.1], [0.2], [pytest.approx(0.3)]]

        runs.save_rows(root / "a", rows(4))  # a trial finishes while the dashboard is open
        fake_run(root / "b", 1)  # a run that appears later
        deadline = time.time() + 20  # the copy's and the dashboard's 2 s refresh
        while time.time() < deadline:
            found = studies(base)
            n_a = len(get_json(f"{base}/api/studies/{found['a']['study_id']}")["trials"])
            if n_a == 4 and "b" in found:
                break
            time.sleep(0.5)
        assert n_a == 4 and set(found) == {"a", "group/a", "b"}
    finally:
        server.shutdown()


def test_a_folder_without_runs_is_refused(tmp_path):
    (tmp_path / "empty" / "deeper").mkdir(parents=True)
    res = CliRunner().invoke(cli, ["dashboard", str(tmp_path / "empty")], prog_name="automl")
    assert res.exit_code == 2, res.output
    assert len(res.output.strip().splitlines()) == 1
    assert "holds no runs" in res.output and "Traceback" not in res.output


def test_an_unreadable_run_is_named_and_left_out(tmp_path):
    root = tmp_path / "runs"
    fake_run(root / "good", 1)
    (root / "broken").mkdir()
    (root / "broken" / runs.MANIFEST).write_text("{not json")
    lines: list[str] = []
    server = serve(root, port=0, say=lines.append)
    try:
        assert server.merged.names == ["good"]
        assert any("broken" in line and "left out" in line for line in lines)
    finally:
        server.shutdown()


# ------------------------------------------------------------------ the real command, real runs


@pytest.fixture(scope="module")
def root_of_two(matrix_data, tmp_path_factory):
    """Two copies of the session's KerasTuner digits run under one ROOT, both named `kt`."""
    root = tmp_path_factory.mktemp("dashroot") / "runs"
    copy_run(matrix_data, "kt-digits", root / "first" / "kt")
    copy_run(matrix_data, "kt-digits", root / "second" / "kt")
    return root


@pytest.fixture(scope="module")
def served_root(root_of_two):
    """`automl dashboard ROOT --port 0` in a subprocess; its URL read from its line."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "automl_app.cli", "dashboard", str(root_of_two), "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=REPO, start_new_session=True)  # fmt: skip
    out: list[str] = []
    try:
        deadline = time.time() + 120
        url = None
        while url is None and time.time() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "".join(out)
            out.append(line)
            m = re.search(r"at (http://\S+/dashboard/)", line)
            url = m.group(1) if m else None
        assert url, "".join(out)
        yield {"proc": proc, "base": url.removesuffix("/dashboard/"), "url": url, "out": out}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C, as a user stops it
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=20)
        proc.stdout.close()


@pytest.mark.slow
def test_dashboard_root_serves_both_runs(served_root):
    line = "".join(served_root["out"])
    assert "2 runs under" in line and "2 studies" in line
    found = studies(served_root["base"])
    assert set(found) == {"first/kt", "second/kt"}
    for summary in found.values():
        detail = get_json(f"{served_root['base']}/api/studies/{summary['study_id']}")
        assert len(detail["trials"]) == 2 and all(
            t["state"] == "Complete" for t in detail["trials"]
        )


@pytest.mark.slow
def test_dashboard_root_in_headless_chromium(served_root):
    if not CHROMIUM.is_file():
        (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)(f"{CHROMIUM} not found")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)("playwright missing")
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(served_root["url"], wait_until="load")
            page.get_by_text("first/kt").first.wait_for(timeout=60_000)
            assert page.get_by_text("second/kt").first.is_visible()
        finally:
            browser.close()
    assert not errors


@pytest.mark.slow
def test_dashboard_root_stops_on_ctrl_c(served_root):
    """Last in the module: Ctrl-C ends the server and leaves no process behind."""
    proc = served_root["proc"]
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=20) is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # nothing of its process group is left
