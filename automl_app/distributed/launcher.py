"""The launcher of a parallel search: start a chief and N workers, look after them, stop them.

* A worker that dies (SIGKILL, OOM killer) leaves its trial in the chief's `ongoing_trials[tuner_id]`
  and its id in `tuner_ids`, and the chief never stops. `launch` starts a replacement with the same
  tuner id; its first `create_trial(tuner_id)` returns that very trial, so KerasTuner re-runs it
  (its own resume path). Restarts per worker are bounded (`max_restarts`).
* A worker that hangs (SIGSTOP), or another host's worker cut off or gone, stops heartbeating: the
  chief declares it lost and retries its trial elsewhere (liveness.py); `launch` kills a lost local
  worker and starts it again, and starts a local worker again when a trial waits and none is left.
* Workers exit by themselves when their chief is gone (liveness.ChiefWatch), and every process
  `launch` starts dies with it (PR_SET_PDEATHSIG, set before exec): no orphan holds the port.
* A worker still starting when the chief has finished holds no trial (the chief ends only with no
  ongoing trial); it is stopped instead of waiting on the gone chief.

No TensorFlow or KerasTuner import: the launcher runs in the CLI's process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automl_app.distributed import liveness
from automl_app.distributed.workers import CHIEF, Role, detect_gpus, free_port, tuner_id, worker_env
from automl_app.errors import UsageError

__all__ = ["LaunchResult", "LaunchSettings", "launch"]

# what _Supervisor.step tells the loop: stop, look again at once, or sleep `poll` first
_STOP, _AGAIN, _WAIT = "stop", "again", "wait"


@dataclass(frozen=True)
class LaunchSettings:
    """How `launch` runs one search: `n_workers` worker processes plus a chief, in RUN_DIR.

    env_base: the roles' environment (default: this process's), to which `worker_env` adds each
    role's. The chief binds `bind_host` (default `host`; 0.0.0.0 for workers on other hosts) on
    `port` (default: a free one); local workers dial `host`. `timeout`: seconds before the launch
    gives up (None: never). cpu_count / gpus: what worker_env shares out (default: this machine's).
    A worker that exits non-zero or is declared lost is started again at most `max_restarts`
    times. chief_grace: how long the chief may wait once every worker has ended; worker_grace:
    how long workers may run on once the chief has ended. poll: seconds between looks.
    """

    n_workers: int
    run_dir: str | os.PathLike
    env_base: Mapping[str, str] | None = None
    host: str = "127.0.0.1"
    port: int | None = None
    timeout: float | None = None
    bind_host: str | None = None
    cpu_count: int | None = None
    gpus: Sequence[str] | None = None
    max_restarts: int = 2
    chief_grace: float = 30.0
    worker_grace: float = 10.0
    poll: float = 0.2


@dataclass
class LaunchResult:
    """What `launch` saw: per tuner id, the last exit code, wall seconds and restarts."""

    port: int
    returncodes: dict[str, int | None] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    stopped: list[str] = field(default_factory=list)  # idle workers stopped after the chief ended
    events: list[dict[str, Any]] = field(default_factory=list)  # the chief's, this launch only
    faults: list[dict[str, Any]] = field(default_factory=list)  # exits, losses and restarts
    error: str | None = None

    @property
    def ok(self) -> bool:
        """The chief ended the search by itself (every trial ended) and nothing timed out."""
        return self.error is None and self.returncodes.get(CHIEF) == 0


class _Role:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path):
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.proc: subprocess.Popen | None = None
        self.t0 = time.monotonic()
        self.t1: float | None = None
        self.attempts = 0
        self.done = False
        self._offset = 0
        self._partial = b""

    def follow(self, on_log_line: Callable[[str, str], None] | None) -> None:
        """Pass the log's new complete lines (launcher markers excluded) to `on_log_line`."""
        if on_log_line is None:
            return
        try:
            with open(self.log, "rb") as fh:
                fh.seek(self._offset)
                chunk = fh.read()
        except OSError:
            return
        self._offset += len(chunk)
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", errors="replace").rstrip("\r")
            if line and not line.startswith("== "):
                on_log_line(self.name, line)

    def start(self) -> None:
        self.attempts += 1
        with open(self.log, "ab") as fh:
            fh.write(f"== {self.name}: start {self.attempts} ==\n".encode())
            fh.flush()
            # A session of its own: Ctrl-C reaches only the launcher, which stops the group.
            self.proc = subprocess.Popen(
                liveness.die_with_parent(self.argv),
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def poll(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def finish(self) -> None:
        self.done = True
        self.t1 = time.monotonic()

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the role's process group (SIGCONT too: a stopped one must wake to die),
        SIGKILL after `grace` seconds."""
        p = self.proc
        if p is None or p.poll() is not None:
            return
        for sigs, wait in (((signal.SIGTERM, signal.SIGCONT), grace), ((signal.SIGKILL,), 5.0)):
            try:
                for sig in sigs:
                    os.killpg(p.pid, sig)
            except (ProcessLookupError, PermissionError):
                return
            try:
                p.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def last_line(self) -> str:
        try:
            lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        lines = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("== ")]
        return lines[-1][:300] if lines else ""


def launch(
    argv_for_role: Callable[[Role], list[str]],
    settings: LaunchSettings,
    on_line: Callable[[str], None] = print,
    on_log_line: Callable[[str, str], None] | None = None,
) -> LaunchResult:
    """Run one search as a chief process plus `settings.n_workers` worker processes; wait for
    the end.

    `argv_for_role(role)` is the command of a role (`"chief"` or worker index): every role runs
    the same search script, told apart only by the environment (`worker_env`) added to
    `settings.env_base`. Output goes to RUN_DIR/workers/<tuner id>.log; `on_line` gets only the
    launcher's own events (restarts, losses, failures); `on_log_line(tuner_id, line)`, if given,
    gets every new line of the logs as it appears. A worker that exits non-zero, or that the
    chief declares lost (RUN_DIR/workers/events.jsonl), is started again with the same tuner id
    (at most `max_restarts` times) so its trial is re-run.

    Returns a `LaunchResult`; `result.ok` is False (and `result.error` says why) after `timeout`
    seconds, when the chief fails, or when workers gave up while holding a trial. All children
    are stopped before returning or re-raising (KeyboardInterrupt, and SIGTERM raised as one,
    included); a SIGKILLed launcher takes them with it (`die_with_parent`). Call it from the
    main thread: the children die with the thread that started them.
    """
    if settings.n_workers < 1:
        raise UsageError(f"--workers must be >= 1. Received: {settings.n_workers!r}")
    return _Supervisor(argv_for_role, settings, on_line, on_log_line).run()


class _Supervisor:
    """One launch: the roles, what happened to them, and the loop that looks after them."""

    def __init__(self, argv_for_role, settings: LaunchSettings, on_line, on_log_line):
        s = settings
        self.s, self.on_line, self.on_log_line = s, on_line, on_log_line
        port = free_port(s.bind_host or s.host) if s.port is None else int(s.port)
        cpu_count = s.cpu_count or os.cpu_count() or 1
        gpus = detect_gpus() if s.gpus is None else list(s.gpus)
        self.log_dir = Path(s.run_dir) / "workers"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.events_path = self.log_dir / liveness.EVENTS
        self.events_at = self.events_path.stat().st_size if self.events_path.exists() else 0
        base = dict(os.environ if s.env_base is None else s.env_base)
        base["AUTOML_WORKERS_DIR"] = str(self.log_dir)
        base["PYTHONUNBUFFERED"] = "1"  # a killed role's last lines reach its log

        self.roles: dict[str, _Role] = {}
        for role in [CHIEF, *range(s.n_workers)]:
            name = tuner_id(role)
            addr = (s.bind_host or s.host) if role == CHIEF else s.host
            env = {**base, **worker_env(role, addr, port, s.n_workers, cpu_count, gpus)}
            log = self.log_dir / f"{name}.log"
            self.roles[name] = _Role(name, list(argv_for_role(role)), env, log)
        self.chief = self.roles[CHIEF]
        self.workers = [r for n, r in self.roles.items() if n != CHIEF]
        self.result = LaunchResult(port=port, logs={n: r.log for n, r in self.roles.items()})
        self.deadline = None if s.timeout is None else time.monotonic() + s.timeout
        self.chief_ended_at: float | None = None
        self.workers_ended_at: float | None = None
        self.orphaned: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def run(self) -> LaunchResult:
        """Start every role, look after them until the end, stop them all, say what happened."""
        restore_sigterm = liveness.sigterm_interrupts()
        try:
            for r in self.roles.values():
                r.start()
            while True:
                step = self.step(time.monotonic())
                if step == _STOP:
                    break
                if step == _WAIT:
                    time.sleep(self.s.poll)
        finally:
            restore_sigterm()
            for r in [*self.workers, self.chief]:  # workers first: the chief may still serve them
                r.stop()
                if not r.done:
                    r.finish()
                r.follow(self.on_log_line)
        return self.collect()

    def step(self, now: float) -> str:
        """One look at the logs, the chief's events and the processes: _STOP, _AGAIN or _WAIT."""
        for r in self.roles.values():
            r.follow(self.on_log_line)
        new, self.events_at = liveness.read_events(self.events_path, self.events_at)
        self.result.events += new
        for ev in new:
            if ev.get("event") == "lost" and not self.chief.done:
                self.on_lost(ev)
        self.check_workers()
        if self.check_chief(now):
            return _STOP
        if all(w.done for w in self.workers):
            step = self.workers_ended(now)
            if step is not None:
                return step
        else:
            self.workers_ended_at = None
            if self.chief_ended_at is not None and now - self.chief_ended_at > self.s.worker_grace:
                for w in self.workers:
                    if not w.done:
                        w.stop()
                        w.finish()
                        self.result.stopped.append(w.name)
                return _STOP
        if self.deadline is not None and now > self.deadline:
            self.result.error = f"the workers did not finish within {self.s.timeout:g} s"
            return _STOP
        return _WAIT

    def again(self, w: _Role, why: str, fault: dict[str, Any]) -> None:
        """Start `w` again if it has restarts left, else leave it finished; record the fault."""
        w.stop(grace=0.5)
        fault["restarted"] = w.attempts <= self.s.max_restarts
        self.result.faults.append(fault)
        if fault["restarted"]:
            self.on_line(f"{why}; starting it again as {w.name}")
            w.done = False
            w.start()
        else:
            w.finish()
            self.on_line(f"{why}; giving up on it ({self.s.max_restarts} restarts used)")

    def on_lost(self, ev: dict[str, Any]) -> None:
        """The chief declared a worker lost: restart it here, or let a local worker take over."""
        held = f"holding trial {ev['trial_id']}" if ev.get("trial_id") else "idle"
        fault = {"event": "worker_lost", **{k: ev.get(k) for k in _LOST_FIELDS}}
        lost = self.roles.get(str(ev.get("tuner_id")))
        if lost is not None and not _is_current(lost, ev.get("instance")):
            self.result.faults.append({**fault, "restarted": False})  # an earlier process
        elif lost is not None and lost is not self.chief:
            why = f"worker {lost.name} went silent for {ev.get('silent_s')} s ({held})"
            self.again(lost, why, fault)
        elif ev.get("trial_id") and all(w.done for w in self.workers):
            spare = min(self.workers, key=lambda w: w.attempts)
            why = (
                f"worker {ev.get('tuner_id')} (not started here) went silent for "
                f"{ev.get('silent_s')} s ({held}) and no local worker is left; worker "
                f"{spare.name} runs it"
            )
            self.again(spare, why, fault)
        else:
            self.result.faults.append({**fault, "restarted": False})
            if ev.get("trial_id"):  # re-handed to a local worker; if they all end first,
                self.orphaned.append((ev, fault))  # one of them is started again
            silent = f"worker {ev.get('tuner_id')} went silent for {ev.get('silent_s')} s"
            self.on_line(f"{silent} ({held}); the chief hands its trial to the next worker")

    def check_workers(self) -> None:
        """A worker that ended: finished (exit 0, or the chief is done), else started again."""
        for w in self.workers:
            rc = w.poll()
            if w.done or rc is None:
                continue
            if rc == 0 or self.chief.done:
                w.finish()
            else:
                why = f"worker {w.name} exited with {_describe_rc(rc)}"
                self.again(w, why, {"event": "worker_exit", "tuner_id": w.name, "why": why})

    def check_chief(self, now: float) -> bool:
        """Note the chief's end; True when it failed (the launch stops)."""
        rc = self.chief.poll()
        if rc is None or self.chief.done:
            return False
        self.chief.finish()
        self.chief_ended_at = now
        if rc == 0:
            return False
        self.result.error = f"the chief exited with {_describe_rc(rc)}: {self.chief.last_line()}"
        return True

    def workers_ended(self, now: float) -> str | None:
        """Every worker has ended: stop if the chief has too; rerun an orphaned trial here; give
        up once the chief has waited `chief_grace` s for nothing. None: go on as usual."""
        if self.chief.done:
            return _STOP
        if self.orphaned:  # a lost remote worker's trial nobody here picked up: run it here
            ev, fault = self.orphaned.pop(0)
            spare = min(self.workers, key=lambda w: w.attempts)
            why = (
                f"trial {ev.get('trial_id')} of lost worker {ev.get('tuner_id')} is still "
                f"open and every local worker has ended; worker {spare.name} runs it"
            )
            self.again(spare, why, {**fault, "event": "orphaned_trial"})
            self.workers_ended_at = None
            return _AGAIN
        self.workers_ended_at = self.workers_ended_at or now
        if now - self.workers_ended_at > self.s.chief_grace:
            failed = [w for w in self.workers if w.poll() not in (0, None)]
            why = "; ".join(f"{w.name}: {w.last_line()}" for w in failed)
            self.result.error = "every worker ended but the chief still waits for a trial" + (
                f" ({why})" if why else ""
            )
            return _STOP
        return None

    def collect(self) -> LaunchResult:
        """The result, once every role has stopped: last events, exit codes, times, restarts."""
        result = self.result
        new, _ = liveness.read_events(self.events_path, self.events_at)
        result.events += new
        for name, r in self.roles.items():
            result.returncodes[name] = r.poll()
            result.durations[name] = round((r.t1 or time.monotonic()) - r.t0, 3)
            result.restarts[name] = max(0, r.attempts - 1)
        if result.error:
            self.on_line(f"workers: {result.error} (logs in {self.log_dir})")
        return result


_LOST_FIELDS = ("tuner_id", "trial_id", "silent_s", "t")


def _is_current(role: _Role, instance: str | None) -> bool:
    """Is `instance` (liveness.instance_id: host:pid:random) the role's running process?"""
    try:
        pid = int(str(instance).rsplit(":", 2)[1])
    except (IndexError, ValueError):
        return True
    return role.proc is not None and role.proc.pid == pid and role.poll() is None


def _describe_rc(rc: int) -> str:
    if rc < 0:
        try:
            return f"signal {signal.Signals(-rc).name}"
        except ValueError:
            return f"signal {-rc}"
    return f"exit code {rc}"
