"""Faults in parallel searches, through the real CLI on 127.0.0.1 (tiny digits searches).

A worker killed or hung mid-trial, the chief killed with a worker left behind, the launching
command killed: each test measures the recovery and checks, from the chief's own record
(RUN_DIR/workers/events.jsonl: every trial handed out, ended, or taken back from a lost worker),
that no completed trial is lost and at most the interrupted trial runs twice. The heartbeat
knobs are shortened (liveness.py: 1 s beats, a worker lost after 8 s, a chief after 8 s).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from automl_app.distributed import liveness, workers

pytestmark = [pytest.mark.slow, pytest.mark.timing]

SEARCH = ["search", "image", "--space", "fcn", "--set", "num_layers=2", "--set", "layer_size=32",
          "--max-samples", "200", "--epochs", "1", "--seed", "0", "--tuner", "random"]  # fmt: skip
LIMIT_S = 8  # AUTOML_WORKER_TIMEOUT_S and AUTOML_CHIEF_TIMEOUT_S below
ENV = {
    **os.environ,
    "AUTOML_HEARTBEAT_S": "1",
    "AUTOML_WORKER_TIMEOUT_S": str(LIMIT_S),
    "AUTOML_CHIEF_TIMEOUT_S": str(LIMIT_S),
}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "automl_app.cli", *args]


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        cli(*args), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def events(run: Path) -> list[dict]:
    return liveness.read_events(run / "workers" / liveness.EVENTS)[0]


def assigned(run: Path) -> Counter:
    return Counter(e["trial_id"] for e in events(run) if e["event"] == "assign")


def rows(run: Path) -> dict[str, dict]:
    path = run / "trials.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return {r["trial_id"]: r for r in map(json.loads, lines)}


def wait_for(what: str, check, proc: subprocess.Popen | None = None, timeout: float = 300):
    """Poll `check()` until it returns something truthy; fail if `proc` ends first."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        found = check()
        if found:
            return found
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"ended before {what}:\n{proc.stdout.read()[-3000:]}")
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def first_assign(run: Path, tuner: str):
    return next((e for e in events(run) if e["event"] == "assign" and e["tuner_id"] == tuner), None)


def role(run: Path, tuner: str) -> psutil.Process | None:
    """The process of one role of the search in `run` (`automl worker --tuner-id TUNER`)."""
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if "worker" in cmd and str(run) in cmd and tuner in cmd and "-c" not in cmd:
            return p
    return None


def finish(proc: subprocess.Popen, timeout: float = 400) -> str:
    out, _ = proc.communicate(timeout=timeout)
    return out


def test_worker_killed_mid_trial_reruns_that_trial_once(tmp_path):
    run = tmp_path / "run"
    proc = start(*SEARCH, "--max-trials", "4", "--workers", "2", "--run-dir", str(run))
    ev = wait_for("a trial on tuner1", lambda: first_assign(run, "tuner1"), proc)
    role(run, "tuner1").kill()
    killed_at = time.time()
    out = finish(proc)
    assert proc.returncode == 0, out
    counts = assigned(run)
    assert counts[ev["trial_id"]] == 2, counts  # handed out again once, to the restarted tuner1
    assert sorted(t for t, n in counts.items() if n == 1) == sorted(set(counts) - {ev["trial_id"]})
    assert sorted(rows(run)) == ["0", "1", "2", "3"]
    assert {r["status"] for r in rows(run).values()} == {"completed"}
    assert "worker tuner1 exited with signal SIGKILL; starting it again" in out
    again = [e for e in events(run) if e["event"] == "assign" and e["trial_id"] == ev["trial_id"]]
    print(f"\nSIGKILLed worker: its trial {ev['trial_id']} handed out again after "
          f"{again[1]['t'] - killed_at:.1f} s; trials lost 0, re-run 1")  # fmt: skip
    parallel = json.loads((run / "run.json").read_text())["search"]["parallel"]
    assert parallel["restarts"] == {"tuner1": 1}
    assert parallel["reassigned_trials"] == [ev["trial_id"]]


def test_hung_worker_is_declared_lost_and_its_trial_handed_out_again(tmp_path):
    run = tmp_path / "run"
    proc = start(*SEARCH, "--max-trials", "4", "--workers", "2", "--run-dir", str(run))
    ev = wait_for("a trial on tuner1", lambda: first_assign(run, "tuner1"), proc)
    hung = role(run, "tuner1")
    hung.suspend()  # SIGSTOP: alive, silent
    stopped_at = time.time()
    try:
        out = finish(proc)
    finally:
        if hung.is_running():
            hung.kill()
    assert proc.returncode == 0, out
    lost = [e for e in events(run) if e["event"] == "lost"]
    assert [(e["tuner_id"], e["trial_id"]) for e in lost] == [("tuner1", ev["trial_id"])]
    # Silence counts from the last heartbeat, up to one beat (1 s) before the SIGSTOP.
    assert lost[0]["silent_s"] >= LIMIT_S
    assert LIMIT_S - 1 <= lost[0]["t"] - stopped_at <= LIMIT_S + 6
    assert assigned(run)[ev["trial_id"]] == 2
    assert sorted(rows(run)) == ["0", "1", "2", "3"]
    assert f"worker tuner1 went silent for {lost[0]['silent_s']} s (holding trial" in out
    faults = json.loads((run / "run.json").read_text())["search"]["parallel"]["faults"]
    assert [(f["event"], f["tuner_id"], f["trial_id"]) for f in faults] == [
        ("worker_lost", "tuner1", ev["trial_id"])
    ]
    again = [e for e in events(run) if e["event"] == "assign" and e["trial_id"] == ev["trial_id"]]
    print(f"\nSIGSTOPped worker: declared lost after {lost[0]['t'] - stopped_at:.1f} s, its trial "
          f"handed out again after {again[1]['t'] - stopped_at:.1f} s; lost 0, re-run 1")  # fmt: skip


def test_chief_killed_worker_left_behind_exits_then_resume_finishes(tmp_path):
    trials = 16
    run = tmp_path / "run"
    port = str(workers.free_port())
    # 16 trials (a second each): the worker left behind must reach the chief before the search
    # ends, and on a loaded machine its start-up (importing TensorFlow) outlasted 4 of them.
    argv = [*SEARCH, "--max-trials", str(trials), "--workers", "1", "--oracle-bind", "0.0.0.0",
            "--oracle-port", port, "--run-dir", str(run)]  # fmt: skip
    proc = start(*argv)
    wait_for("the chief", lambda: (run / "workers" / "chief.log").exists(), proc)
    other = start("worker", "--run-dir", str(run), "--oracle", f"127.0.0.1:{port}")
    try:
        done = wait_for("a completed trial", lambda: rows(run), proc)
        wait_for("a trial in flight", lambda: len(assigned(run)) > len(rows(run)), proc)
        # The worker left behind must have reached the chief (on a loaded machine its start-up,
        # importing TensorFlow, can outlast the first trials; before first contact it waits
        # AUTOML_CHIEF_START_TIMEOUT_S, not AUTOML_CHIEF_TIMEOUT_S).
        wait_for(
            "the other worker's contact",
            lambda: any(
                e["event"] == "assign" and str(e.get("tuner_id", "")).startswith("tuner-")
                for e in events(run)
            ),
            proc,
        )
        role(run, "chief").kill()
        killed_at = time.time()
        out = finish(proc)
        other_out = finish(other, timeout=LIMIT_S + 30)
        gone_after = time.time() - killed_at
    finally:
        for p in (proc, other):
            if p.poll() is None:
                p.kill()
    assert proc.returncode == 1 and "the chief exited with signal SIGKILL" in out, out
    assert other.returncode == liveness.CHIEF_LOST_EXIT, other_out
    assert gone_after <= LIMIT_S + 10
    errors = [ln for ln in other_out.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and "lost the chief at 127.0.0.1:" in errors[0], other_out
    assert "Traceback" not in other_out
    before = rows(run)
    assert before and len(before) < trials

    resumed = subprocess.run(cli(*argv, "--resume"), env=ENV, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    after = rows(run)
    assert sorted(after) == [f"{i:02d}" for i in range(trials)]
    assert {r["status"] for r in after.values()} == {"completed"}
    for trial_id, row in before.items():  # completed before the kill: kept, not run again
        assert after[trial_id]["objective"] == row["objective"]
    counts = assigned(run)
    assert all(counts[t] == 1 for t in done)
    assert sum(n - 1 for n in counts.values()) <= 2  # only trials in flight at the kill re-ran
    print(
        f"\nSIGKILLed chief: the worker left behind exited after {gone_after:.1f} s; "
        f"resume re-ran {sum(n - 1 for n in counts.values())} trial(s), lost 0"
    )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_killed_launcher_leaves_no_chief_or_worker(tmp_path, sig):
    run = tmp_path / "run"
    proc = start(*SEARCH, "--max-trials", "50", "--workers", "2", "--run-dir", str(run))
    launcher = psutil.Process(proc.pid)

    def roles():
        kids = []
        for p in launcher.children(recursive=True):
            try:
                if "worker" in p.cmdline() and "-c" not in p.cmdline():
                    kids.append(p)
            except psutil.NoSuchProcess:
                pass
        return kids if len(kids) == 3 else None

    kids = wait_for("the chief and 2 workers", roles, proc)
    proc.send_signal(sig)
    t0 = time.monotonic()
    finish(proc, timeout=60)
    _, alive = psutil.wait_procs(kids, timeout=20)
    gone_after = time.monotonic() - t0
    for p in alive:
        p.kill()
    assert not alive, [p.cmdline() for p in alive]
    print(f"\nlauncher killed by {sig.name}: chief and workers gone after {gone_after:.1f} s")
    if sig != signal.SIGKILL:
        assert proc.returncode == 130
        manifest = json.loads((run / "run.json").read_text())
        assert manifest["status"] == "interrupted", manifest.get("error")
