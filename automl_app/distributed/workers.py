"""`--workers N`: parallel trials with KerasTuner's own distributed mode, on one or more hosts.

KerasTuner already runs one search across processes: every process runs the same script; the one
whose `KERASTUNER_TUNER_ID` is `chief` serves the oracle over gRPC (`KERASTUNER_ORACLE_IP:PORT`) and
the others ask it for trials, train them and report back. This module only starts those processes
(`launch`), gives each its environment (`worker_env`: ids, address, CPU threads, one GPU each) and
looks after them:

* A worker that dies (SIGKILL, OOM killer) leaves its trial in the chief's `ongoing_trials[tuner_id]`
  and its id in `tuner_ids`, and the chief never stops. `launch` starts a replacement with the same
  tuner id; its first `create_trial(tuner_id)` returns that very trial, so KerasTuner re-runs it
  (its own resume path). Restarts per worker are bounded (`max_restarts`).
* A worker that hangs (SIGSTOP), or another host's worker cut off or gone, stops heartbeating: the
  chief declares it lost and retries its trial elsewhere (liveness.py); `launch` kills a lost local
  worker and starts it again, and starts a local worker again when a trial waits and none is left.
* Workers exit by themselves when their chief is gone (liveness.ChiefWatch), and every process
  `launch` starts dies with it (PR_SET_PDEATHSIG, set before exec): no orphan holds the port.
* KerasTuner's chief polls every 20 s for the end of the search once a worker got STOPPED;
  `search()` below serves the same `OracleServicer` with the same exit test, polling every 0.5 s.
* A worker still starting when the chief has finished holds no trial (the chief ends only with no
  ongoing trial); it is stopped instead of waiting on the gone chief.

No TensorFlow or KerasTuner import at module level: the launcher runs in the CLI's process.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automl_app.distributed import liveness
from automl_app.errors import UsageError

__all__ = [
    "CHIEF",
    "LaunchResult",
    "detect_gpus",
    "free_port",
    "launch",
    "parse_oracle",
    "search",
    "tuner_id",
    "worker_env",
]

CHIEF = "chief"
Role = str | int  # "chief" or a worker index 0..N-1
THREAD_VARS = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")


def tuner_id(role: Role) -> str:
    """KerasTuner's id for a role: `chief` or `tuner<i>`."""
    if role == CHIEF:
        return CHIEF
    if isinstance(role, bool) or not isinstance(role, int) or role < 0:
        raise ValueError(f"`role` must be 'chief' or a worker index >= 0. Received: {role!r}")
    return f"tuner{role}"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` right now (the OS picks it; a tiny race is accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def join_addresses(bind: str) -> list[str]:
    """Addresses another host can dial for a chief bound to `bind`: the address itself, or for
    0.0.0.0 every non-loopback IPv4 address of this machine (not its hostname, which the other
    host may not resolve)."""
    if bind not in ("0.0.0.0", "::", ""):
        return [bind]
    found: list[str] = []
    try:
        import psutil

        for addrs in psutil.net_if_addrs().values():
            for a in addrs:
                if a.family == socket.AF_INET and not a.address.startswith("127."):
                    found.append(a.address)
    except Exception:  # psutil missing or no permission: fall back to the resolver
        pass
    return sorted(set(found)) or [socket.gethostname()]


def parse_oracle(address: str) -> tuple[str, int]:
    """`HOST:PORT` (the `--oracle` option) → (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--oracle must be HOST:PORT, e.g. 127.0.0.1:8000. Received: {address!r}")
    return host, int(port)


def detect_gpus() -> list[str]:
    """GPU ids to hand out: `CUDA_VISIBLE_DEVICES` if set, else `nvidia-smi -L`; no TF import."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    gpus = []
    for line in out.stdout.splitlines():  # "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-…)"
        head = line.split(":", 1)[0].split()
        if len(head) == 2 and head[0] == "GPU" and head[1].isdigit():
            gpus.append(head[1])
    return gpus


def worker_env(
    role: Role,
    oracle_host: str,
    port: int,
    n_workers: int,
    cpu_count: int,
    gpus: Sequence[str],
) -> dict[str, str]:
    """Environment of one role: KerasTuner's three variables, a CPU thread share, a GPU.

    Workers split the CPU threads evenly (TensorFlow would otherwise give every process all cores
    and they would fight); worker i gets GPU `gpus[i % len(gpus)]` (memory growth on when GPUs are
    shared); the chief only serves gRPC: one thread, no GPU.
    """
    if n_workers < 1:
        raise ValueError(f"`n_workers` must be >= 1. Received: {n_workers!r}")
    env = {
        "KERASTUNER_TUNER_ID": tuner_id(role),
        "KERASTUNER_ORACLE_IP": str(oracle_host),
        "KERASTUNER_ORACLE_PORT": str(int(port)),
    }
    threads = 1 if role == CHIEF else max(1, int(cpu_count) // n_workers)
    env.update({name: str(threads) for name in THREAD_VARS})
    if role == CHIEF:
        env["CUDA_VISIBLE_DEVICES"] = ""
    elif gpus:
        env["CUDA_VISIBLE_DEVICES"] = str(gpus[int(role) % len(gpus)])
        if n_workers > len(gpus):
            env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
    return env


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
    n_workers: int,
    run_dir: str | os.PathLike,
    env_base: Mapping[str, str] | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    on_line: Callable[[str], None] = print,
    timeout: float | None = None,
    *,
    bind_host: str | None = None,
    cpu_count: int | None = None,
    gpus: Sequence[str] | None = None,
    max_restarts: int = 2,
    chief_grace: float = 30.0,
    worker_grace: float = 10.0,
    poll: float = 0.2,
    on_log_line: Callable[[str, str], None] | None = None,
) -> LaunchResult:
    """Run one search as a chief process plus `n_workers` worker processes; wait for the end.

    `argv_for_role(role)` is the command of a role (`"chief"` or worker index): every role runs
    the same search script, told apart only by the environment (`worker_env`) added to `env_base`
    (default: this process's environment). Output goes to RUN_DIR/workers/<tuner id>.log; `on_line`
    gets only the launcher's own events (restarts, losses, failures); `on_log_line(tuner_id,
    line)`, if given, gets every new line of the logs as it appears. A worker that exits non-zero,
    or that the chief declares lost (RUN_DIR/workers/events.jsonl), is started again with the same
    tuner id (at most `max_restarts` times) so its trial is re-run. The chief binds `bind_host`
    (default `host`; use 0.0.0.0 for workers on other hosts).

    Returns a `LaunchResult`; `result.ok` is False (and `result.error` says why) after `timeout`
    seconds, when the chief fails, or when workers gave up while holding a trial. All children
    are stopped before returning or re-raising (KeyboardInterrupt, and SIGTERM raised as one,
    included); a SIGKILLed launcher takes them with it (`die_with_parent`). Call it from the
    main thread: the children die with the thread that started them.
    """
    if n_workers < 1:
        raise UsageError(f"--workers must be >= 1. Received: {n_workers!r}")
    port = free_port(bind_host or host) if port is None else int(port)
    cpu_count = cpu_count or os.cpu_count() or 1
    gpus = detect_gpus() if gpus is None else list(gpus)
    log_dir = Path(run_dir) / "workers"
    log_dir.mkdir(parents=True, exist_ok=True)
    events_path = log_dir / liveness.EVENTS
    events_at = events_path.stat().st_size if events_path.exists() else 0
    base = dict(os.environ if env_base is None else env_base)
    base["AUTOML_WORKERS_DIR"] = str(log_dir)
    base["PYTHONUNBUFFERED"] = "1"  # a killed role's last lines reach its log

    roles: dict[str, _Role] = {}
    for role in [CHIEF, *range(n_workers)]:
        name = tuner_id(role)
        addr = (bind_host or host) if role == CHIEF else host
        env = {**base, **worker_env(role, addr, port, n_workers, cpu_count, gpus)}
        roles[name] = _Role(name, list(argv_for_role(role)), env, log_dir / f"{name}.log")
    chief = roles[CHIEF]
    workers = [r for n, r in roles.items() if n != CHIEF]
    result = LaunchResult(port=port, logs={n: r.log for n, r in roles.items()})
    deadline = None if timeout is None else time.monotonic() + timeout
    chief_ended_at: float | None = None
    workers_ended_at: float | None = None
    orphaned: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def again(w: _Role, why: str, fault: dict[str, Any]) -> None:
        """Start `w` again if it has restarts left, else leave it finished; record the fault."""
        w.stop(grace=0.5)
        fault["restarted"] = w.attempts <= max_restarts
        result.faults.append(fault)
        if fault["restarted"]:
            on_line(f"{why}; starting it again as {w.name}")
            w.done = False
            w.start()
        else:
            w.finish()
            on_line(f"{why}; giving up on it ({max_restarts} restarts used)")

    restore_sigterm = liveness.sigterm_interrupts()
    try:
        for r in roles.values():
            r.start()
        while True:
            now = time.monotonic()
            for r in roles.values():
                r.follow(on_log_line)
            new, events_at = liveness.read_events(events_path, events_at)
            result.events += new
            for ev in new:
                if ev.get("event") != "lost" or chief.done:
                    continue
                held = f"holding trial {ev['trial_id']}" if ev.get("trial_id") else "idle"
                fault = {"event": "worker_lost", **{k: ev.get(k) for k in _LOST_FIELDS}}
                lost = roles.get(str(ev.get("tuner_id")))
                if lost is not None and not _is_current(lost, ev.get("instance")):
                    result.faults.append({**fault, "restarted": False})  # an earlier process
                elif lost is not None and lost is not chief:
                    why = f"worker {lost.name} went silent for {ev.get('silent_s')} s ({held})"
                    again(lost, why, fault)
                elif ev.get("trial_id") and all(w.done for w in workers):
                    spare = min(workers, key=lambda w: w.attempts)
                    why = (
                        f"worker {ev.get('tuner_id')} (not started here) went silent for "
                        f"{ev.get('silent_s')} s ({held}) and no local worker is left; worker "
                        f"{spare.name} runs it"
                    )
                    again(spare, why, fault)
                else:
                    result.faults.append({**fault, "restarted": False})
                    if ev.get("trial_id"):  # re-handed to a local worker; if they all end first,
                        orphaned.append((ev, fault))  # one of them is started again below
                    silent = f"worker {ev.get('tuner_id')} went silent for {ev.get('silent_s')} s"
                    on_line(f"{silent} ({held}); the chief hands its trial to the next worker")
            for w in workers:
                rc = w.poll()
                if w.done or rc is None:
                    continue
                if rc == 0 or chief.done:
                    w.finish()
                else:
                    why = f"worker {w.name} exited with {_describe_rc(rc)}"
                    again(w, why, {"event": "worker_exit", "tuner_id": w.name, "why": why})
            rc = chief.poll()
            if rc is not None and not chief.done:
                chief.finish()
                chief_ended_at = now
                if rc != 0:
                    result.error = f"the chief exited with {_describe_rc(rc)}: {chief.last_line()}"
                    break
            if all(w.done for w in workers):
                if chief.done:
                    break
                if orphaned:  # a lost remote worker's trial nobody here picked up: run it here
                    ev, fault = orphaned.pop(0)
                    spare = min(workers, key=lambda w: w.attempts)
                    why = (
                        f"trial {ev.get('trial_id')} of lost worker {ev.get('tuner_id')} is still "
                        f"open and every local worker has ended; worker {spare.name} runs it"
                    )
                    again(spare, why, {**fault, "event": "orphaned_trial"})
                    workers_ended_at = None
                    continue
                workers_ended_at = workers_ended_at or now
                if now - workers_ended_at > chief_grace:
                    failed = [w for w in workers if w.poll() not in (0, None)]
                    why = "; ".join(f"{w.name}: {w.last_line()}" for w in failed)
                    result.error = "every worker ended but the chief still waits for a trial" + (
                        f" ({why})" if why else ""
                    )
                    break
            else:
                workers_ended_at = None
                if chief_ended_at is not None and now - chief_ended_at > worker_grace:
                    for w in workers:
                        if not w.done:
                            w.stop()
                            w.finish()
                            result.stopped.append(w.name)
                    break
            if deadline is not None and now > deadline:
                result.error = f"the workers did not finish within {timeout:g} s"
                break
            time.sleep(poll)
    finally:
        restore_sigterm()
        for r in [*workers, chief]:  # workers first: the chief may still be serving them
            r.stop()
            if not r.done:
                r.finish()
            r.follow(on_log_line)
    new, _ = liveness.read_events(events_path, events_at)
    result.events += new
    for name, r in roles.items():
        result.returncodes[name] = r.poll()
        result.durations[name] = round((r.t1 or time.monotonic()) - r.t0, 3)
        result.restarts[name] = max(0, r.attempts - 1)
    if result.error:
        on_line(f"workers: {result.error} (logs in {log_dir})")
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


def search(tuner: Any, *fit_args: Any, poll: float = 0.5, **fit_kwargs: Any) -> None:
    """`tuner.search(...)` for every role of a distributed (or plain) search.

    Single-process runs call `tuner.search` unchanged. Workers call it with liveness on: a
    heartbeat to the chief, our metadata on every call, bounded waits (liveness.py). The chief
    saves the tuner and serves the oracle like KerasTuner's own chief (`BaseTuner.search`), but
    returns within `poll` seconds of the last trial's end instead of up to 20 s later.
    """
    from automl_app.distributed import chief
    from automl_app.tuning.compat import dist_utils
    from automl_app.tuning.tuners import forget_ended_retries, plain_search

    if not dist_utils.has_chief_oracle():
        plain_search(tuner, *fit_args, **fit_kwargs)
        return
    if not dist_utils.is_chief_oracle():
        import grpc

        watch = liveness.watch_chief()
        liveness.tag_client(tuner.oracle)
        try:
            tuner.search(*fit_args, **fit_kwargs)
        except grpc.RpcError as exc:  # the chief went away during a call
            watch.give_up(
                f"lost the chief at {watch.address} during a call ({exc.code().name}: "
                f"{exc.details()})"
            )
        watch.stop()
        return
    if "verbose" in fit_kwargs:
        tuner.oracle.verbose = fit_kwargs["verbose"]
    forget_ended_retries(tuner.oracle)
    tuner.save()
    chief.serve_oracle(tuner.oracle, poll=poll)
