"""Faults in a parallel search, driven through the CLI only (subprocesses, files, signals).

Everything here reads what a search leaves on disk: the chief's record RUN/workers/events.jsonl
(`serve`, `join`, `assign`, `end`, `lost`, `given_up` lines, each `assign`/`end` naming the
worker's `instance` "HOST:PID:TAG") and RUN/trials.jsonl. No automl module is imported, so the
helpers hold while the parallel code moves between packages.

`chaos` runs one search over two hosts (support.hosts) and injects faults in a row, waiting on
observable events with deadlines derived from the liveness knobs it sets (LIMIT_S), never on
sleeps tuned to a machine's speed. It returns what tests and bench/chaos.py assert and print.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from support.hosts import HOST1, HOST2, Hosts

SEARCH = ["search", "image", "--space", "fcn", "--set", "num_layers=2", "--set", "layer_size=32",
          "--max-samples", "200", "--epochs", "1", "--seed", "0", "--tuner", "random"]  # fmt: skip
HEARTBEAT_S = 1  # AUTOML_HEARTBEAT_S
LIMIT_S = 8  # AUTOML_WORKER_TIMEOUT_S and AUTOML_CHIEF_TIMEOUT_S: silence before giving up
START_LIMIT_S = 60  # AUTOML_CHIEF_START_TIMEOUT_S: a worker's wait for a chief it never reached
CHIEF_LOST_EXIT = 3  # a worker's exit code when it gave up on its chief (liveness.py)
# A wait for an event the liveness rules promise: the limit, a beat of slack, and time for a
# loaded machine to start a Python process that imports TensorFlow (the only speed-bound part).
EVENT_WAIT_S = LIMIT_S + HEARTBEAT_S + 120


def fast_env(**extra: str) -> dict[str, str]:
    """The environment with the short liveness knobs (every role of a search reads the same)."""
    return {
        **os.environ,
        "AUTOML_HEARTBEAT_S": str(HEARTBEAT_S),
        "AUTOML_WORKER_TIMEOUT_S": str(LIMIT_S),
        "AUTOML_CHIEF_TIMEOUT_S": str(LIMIT_S),
        "AUTOML_CHIEF_START_TIMEOUT_S": str(START_LIMIT_S),
        **extra,
    }


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "automl_app.cli", *args]


def events(run: Path) -> list[dict[str, Any]]:
    """The chief's complete event lines (a line still being written waits for the next read)."""
    try:
        data = (run / "workers" / "events.jsonl").read_bytes()
    except OSError:
        return []
    out = []
    for raw in data[: data.rfind(b"\n") + 1].splitlines():
        with contextlib.suppress(ValueError):
            out.append(json.loads(raw))
    return out


def pid_of(event: dict[str, Any]) -> int | None:
    """The process an `assign`/`end` event names (instance "HOST:PID:TAG")."""
    parts = str(event.get("instance", "")).split(":")
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def assigned(run: Path) -> Counter:
    return Counter(e["trial_id"] for e in events(run) if e["event"] == "assign")


def in_flight(run: Path) -> dict[str, dict[str, Any]]:
    """Trial id -> its latest `assign`, for trials the current chief handed out and that have not
    ended, been lost or failed yet."""
    held: dict[str, dict[str, Any]] = {}
    for e in events(run):
        if e["event"] == "serve":  # a new chief (--resume): what the killed one held is void
            held = {}
        elif e["event"] == "assign":
            held[e["trial_id"]] = e
        elif e["event"] in ("end", "lost", "given_up") and e.get("trial_id") in held:
            del held[e["trial_id"]]
    return held


def joined(run: Path) -> set[str]:
    """Tuner ids that have reached the current chief (`join` events since its `serve`)."""
    ids: set[str] = set()
    for e in events(run):
        if e["event"] == "serve":
            ids = set()
        elif e["event"] == "join":
            ids.add(e["tuner_id"])
    return ids


def rows(run: Path) -> dict[str, dict[str, Any]]:
    path = run / "trials.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return {r["trial_id"]: r for r in map(json.loads, lines)}


def wait_for(what: str, check: Callable[[], Any], proc=None, timeout: float = EVENT_WAIT_S):
    """Poll `check()` until it returns something truthy; fail if `proc` ends first or in time."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        found = check()
        if found:
            return found
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"ended before {what}:\n{(proc.stdout.read() or '')[-3000:]}")
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def role(run: Path, tuner: str) -> psutil.Process | None:
    """The process of one role of the search in `run` (`automl worker … --tuner-id TUNER`)."""
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if "worker" in cmd and str(run) in cmd and tuner in cmd and "-c" not in cmd:
            return p
    return None


def worker_pids(run: Path) -> list[int]:
    """Every worker process of the search in `run` now (the chief and helper processes not)."""
    pids = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if "worker" in cmd and str(run) in cmd and "chief" not in cmd and "-c" not in cmd:
            pids.append(p.pid)
    return pids


def leftovers(run: Path) -> list[str]:
    """Command lines of processes still running that name `run` (a chief, a worker, a search)."""
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        cmd = p.info["cmdline"] or []
        if any(str(run) in part for part in cmd) and p.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(" ".join(cmd))
    return found


def kill(proc: subprocess.Popen | psutil.Process | None) -> None:
    with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError, OSError):
        if proc is not None:
            proc.kill()


@dataclass
class Chaos:
    """What one chaotic search did: the faults, the worker processes they hit, the outputs."""

    run: Path
    seed: int
    faults: list[str] = field(default_factory=list)
    hit_pids: set[int] = field(default_factory=set)  # workers a fault interrupted
    outputs: list[str] = field(default_factory=list)
    codes: list[int | None] = field(default_factory=list)
    resumed_rc: int | None = None
    started: float = 0.0
    ended: float = 0.0
    restored_at: float = 0.0  # when the cut link came back up
    resumed_at: float = 0.0  # when `--resume` was started
    resumed_wall: float = 0.0  # how long the resumed command ran

    @property
    def wall(self) -> float:
        return self.ended - self.started

    def reruns(self) -> int:
        return sum(n - 1 for n in assigned(self.run).values())

    def unexplained_reruns(self) -> list[dict[str, Any]]:
        """Every hand-out of a trial that was handed out again later must have gone to a worker
        a fault hit, and such a worker can have lost at most one trial: else this lists them."""
        last: dict[str, dict[str, Any]] = {}
        earlier = []
        for e in events(self.run):
            if e["event"] == "assign":
                if e["trial_id"] in last:
                    earlier.append(last[e["trial_id"]])
                last[e["trial_id"]] = e
        per_pid = Counter(pid_of(e) for e in earlier)
        return [e for e in earlier if pid_of(e) not in self.hit_pids or per_pid[pid_of(e)] > 1]

    def host2_after_restore(self) -> list[str]:
        """Host-2 workers (HOST2) that reached a chief after the link came back up."""
        return [
            e["tuner_id"]
            for e in events(self.run)
            if e["event"] == "join"
            and f":{HOST2}:" in e.get("peer", "")
            and e["t"] > self.restored_at
        ]


class _Search:
    """The search on host 1 (`--workers 2`, the chief bound to HOST1) and its host-2 workers."""

    def __init__(self, hosts: Hosts, run: Path, argv: list[str], port: int):
        self.hosts, self.run, self.argv, self.port = hosts, run, argv, port
        self.main: subprocess.Popen | None = None
        self.remote: list[subprocess.Popen] = []
        self.n_remote = 0

    def start(self, *extra: str) -> subprocess.Popen:
        self.main = self.hosts.run(self.hosts.ns1, cli(*self.argv, *extra), fast_env())
        return self.main

    def add_remote(self) -> subprocess.Popen:
        self.n_remote += 1
        argv = cli("worker", "--run-dir", str(self.run), "--oracle", f"{HOST1}:{self.port}",
                   "--tuner-id", f"remote{self.n_remote}")  # fmt: skip
        proc = self.hosts.run(self.hosts.ns2, argv, fast_env())
        self.remote.append(proc)
        return proc

    def alive_remote(self) -> list[subprocess.Popen]:
        return [p for p in self.remote if p.poll() is None]

    def holding(self, tuners: list[str]) -> dict[str, Any] | None:
        """An in-flight trial held by one of `tuners` (the latest hand-out to that tuner)."""
        held = [e for e in in_flight(self.run).values() if e["tuner_id"] in tuners]
        return held[-1] if held else None

    def stop_all(self) -> None:
        for p in [self.main, *self.remote]:
            kill(p)
            if p is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.communicate(timeout=30)


def chaos(
    hosts: Hosts, run: Path, *, max_trials: int, seed: int, budget: str | None = None,
    port: int = 8471, faults: bool = True,
) -> Chaos:  # fmt: skip
    """One search over two hosts (two local workers, two on host 2), and, when `faults`: a random
    worker SIGKILLed, another SIGSTOPped past LIMIT_S, the link cut until host 2's workers gave up
    and restored, the chief SIGKILLed and the search resumed with `--resume` (two new host-2
    workers, started first, join it). With a `budget` the chief's fault comes first, so the worker faults hit the
    resumed command (its own deadline). Every fault waits for an observable event."""
    rng = random.Random(seed)
    argv = [*SEARCH, "--max-trials", str(max_trials), "--workers", "2", "--oracle-bind", HOST1,
            "--oracle-port", str(port), "--run-dir", str(run)]  # fmt: skip
    if budget:
        argv += ["--time-budget", budget]
    out = Chaos(run=run, seed=seed)
    s = _Search(hosts, run, argv, port)
    out.started = time.time()
    main = s.start()
    try:
        wait_for("run.json", lambda: (run / "run.json").exists(), main)
        s.add_remote()
        s.add_remote()
        if faults:
            _inject(s, out, rng, chief_first=budget is not None)
        else:
            text, _ = main.communicate(timeout=600)
            out.outputs.append(text)
            out.codes.append(main.returncode)
            out.resumed_rc = main.returncode
        out.ended = time.time()
        for p in s.remote:
            with contextlib.suppress(subprocess.TimeoutExpired):
                text, _ = p.communicate(timeout=START_LIMIT_S + LIMIT_S + 30)
                out.outputs.append(text)
    finally:
        s.stop_all()
        for pid in hosts.pids():  # a SIGSTOPped worker the launcher did not get to
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return out


def _inject(s: _Search, out: Chaos, rng: random.Random, chief_first: bool) -> None:
    """The four faults: the chief's last (the search resumes to its end), or first (the faults
    on workers then hit the resumed command, the one a time budget is measured on)."""
    local = ["tuner0", "tuner1"]  # the launcher's workers on host 1
    rng.shuffle(local)
    if chief_first:
        wait_for("a completed trial", lambda: rows(s.run), s.main)
        _kill_chief_and_resume(s, out)
    _kill_worker(s, out, local[0])
    hung = _stop_worker(s, out, local[1])
    _cut_link(s, out, hung, local[1])
    if not chief_first:
        _kill_chief_and_resume(s, out)
    text, _ = s.main.communicate(timeout=900)
    out.outputs.append(text)
    out.codes.append(s.main.returncode)
    out.resumed_rc = s.main.returncode
    out.resumed_wall = time.time() - out.resumed_at


def _kill_worker(s: _Search, out: Chaos, tuner: str) -> None:
    """SIGKILL a local worker while it holds a trial (the launcher starts it again)."""
    ev = wait_for(f"a trial on {tuner}", lambda: s.holding([tuner]), s.main)
    victim = psutil.Process(pid_of(ev))  # the very process the chief handed the trial to
    out.hit_pids.add(victim.pid)
    victim.kill()
    out.faults.append(f"SIGKILL worker {tuner} (trial {ev['trial_id']})")


def _stop_worker(s: _Search, out: Chaos, tuner: str) -> psutil.Process:
    """SIGSTOP a local worker while it holds a trial (the chief declares it lost later)."""
    ev = wait_for(f"a trial on {tuner}", lambda: s.holding([tuner]), s.main)
    hung = psutil.Process(pid_of(ev))
    out.hit_pids.add(hung.pid)
    hung.suspend()
    out.faults.append(f"SIGSTOP worker {tuner} (trial {ev['trial_id']})")
    return hung


def _cut_link(s: _Search, out: Chaos, hung: psutil.Process, hung_tuner: str) -> None:
    """Cut the link while a host-2 worker holds a trial; restore it once the chief declared the
    stopped worker lost and every host-2 worker gave up on the chief (LIMIT_S each)."""
    remote_ids = [f"remote{i}" for i in range(1, s.n_remote + 1)]
    alive = [f"remote{s.remote.index(p) + 1}" for p in s.alive_remote()]
    # A worker that never reached the chief waits START_LIMIT_S, not LIMIT_S: cut after all did.
    wait_for("host 2's workers joining", lambda: set(alive) <= joined(s.run), s.main)
    ev = wait_for("a trial on host 2", lambda: s.holding(remote_ids), s.main)
    cut_off = s.alive_remote()
    out.hit_pids.update(p.pid for p in cut_off)  # `ip netns exec` execs: the worker's own pid
    s.hosts.cut()
    out.faults.append(f"link cut ({len(cut_off)} host-2 workers, trial {ev['trial_id']} there)")
    lost = wait_for(
        f"the chief declaring {hung_tuner} lost",
        lambda: [
            e
            for e in events(s.run)
            if e["event"] == "lost" and e["tuner_id"] == hung_tuner and e["t"] > out.resumed_at
        ],
        s.main,
    )
    assert lost[0]["silent_s"] >= LIMIT_S
    with contextlib.suppress(psutil.NoSuchProcess):
        hung.kill()  # the launcher already started a new tuner; this one must not wake up
    for p in cut_off:  # each gives up after LIMIT_S of silence
        p.wait(timeout=EVENT_WAIT_S)
        assert p.returncode == CHIEF_LOST_EXIT, p.stdout.read()[-2000:]
    s.hosts.restore()
    out.faults[-1] += " and restored"
    out.restored_at = time.time()
    if out.resumed_at == 0.0:  # the chief's fault comes next: host 2 rejoins the resumed search
        return
    s.add_remote()
    rejoined = f"remote{s.n_remote}"
    wait_for(
        f"{rejoined} joining over the restored link", lambda: rejoined in joined(s.run), s.main
    )


def _kill_chief_and_resume(s: _Search, out: Chaos) -> None:
    """SIGKILL the chief while a trial is in flight; once its launcher and host 2's workers have
    ended, `--resume` the same command and start two host-2 workers for it."""
    alive = [f"remote{s.remote.index(p) + 1}" for p in s.alive_remote()]
    wait_for("host 2's workers joining", lambda: set(alive) <= joined(s.run), s.main)
    wait_for("a trial in flight", lambda: in_flight(s.run), s.main)
    chief = role(s.run, "chief")
    out.hit_pids.update(worker_pids(s.run))  # whatever each one holds now, or is handed next
    chief.kill()
    out.faults.append(f"SIGKILL chief ({len(in_flight(s.run))} trial(s) in flight)")
    text, _ = s.main.communicate(timeout=EVENT_WAIT_S)
    out.outputs.append(text)
    out.codes.append(s.main.returncode)
    for p in s.alive_remote():  # the workers left behind give up on their chief
        p.wait(timeout=EVENT_WAIT_S)
    # Host 2's new workers first (as an operator would): they import TensorFlow meanwhile and
    # wait up to START_LIMIT_S for the resumed chief, so they join it at once.
    s.add_remote()
    s.add_remote()
    serves = len([e for e in events(s.run) if e["event"] == "serve"])
    out.resumed_at = time.time()
    resumed = s.start("--resume")
    wait_for(  # until then, what the killed chief handed out would look in flight
        "the resumed chief",
        lambda: len([e for e in events(s.run) if e["event"] == "serve"]) > serves,
        resumed,
    )
