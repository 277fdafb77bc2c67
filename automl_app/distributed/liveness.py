"""Liveness in a parallel search: workers heartbeat to the chief, and each side gives up on the
other after a stated silence instead of waiting (KerasTuner waits 60 min per call, issue #990, and
its chief waits forever for the trial of a dead worker, issues #915/#990).

* Every worker call carries its tuner id and a per-process instance id as gRPC metadata, and a
  thread of the worker (`ChiefWatch`) calls the chief every `heartbeat` seconds; an answer to
  either (the trial client's calls too) counts as the chief's last word.
* The chief (chief.py) notes when it last heard from each worker. One silent for `worker` seconds
  (SIGSTOP, a cut link, a frozen host) is declared lost: its trial goes back to KerasTuner's retry
  queue, so the next worker that asks runs it, and the lost process's later calls are refused (it
  would otherwise report a trial another worker now runs).
* A worker exits with one line when its chief has been unreachable for `chief` seconds
  (`chief_start` before the first contact: the chief may still be loading data) or refused it.
* The chief appends every assignment, end and loss to RUN_DIR/workers/events.jsonl (the launcher
  reads it: restarts a lost local worker, records the faults in run.json).
* Every process the launcher starts dies with it (`die_with_parent`), and SIGTERM stops the
  launcher like Ctrl-C (`sigterm_interrupts`): no orphan chief or worker holds the port.

Knobs (seconds, environment, so every role of a search reads the same): AUTOML_HEARTBEAT_S (5),
AUTOML_WORKER_TIMEOUT_S (60), AUTOML_CHIEF_TIMEOUT_S (60), AUTOML_CHIEF_START_TIMEOUT_S (600).
grpc and KerasTuner are imported inside functions (the launcher imports this module too).
"""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from automl_app.errors import UsageError

EVENTS = "events.jsonl"
CHIEF_LOST_EXIT = 3  # a worker's exit code when it gave up on its chief
_TUNER_KEY, _INSTANCE_KEY, _HEARTBEAT_KEY = "automl-tuner", "automl-instance", "automl-heartbeat"
_INSTANCE = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Timeouts:
    """How long each side waits for the other, in seconds (module docstring)."""

    heartbeat: float = 5.0
    worker: float = 60.0
    chief: float = 60.0
    chief_start: float = 600.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Timeouts:
        env = os.environ if env is None else env
        values = {}
        for name, var in (
            ("heartbeat", "AUTOML_HEARTBEAT_S"),
            ("worker", "AUTOML_WORKER_TIMEOUT_S"),
            ("chief", "AUTOML_CHIEF_TIMEOUT_S"),
            ("chief_start", "AUTOML_CHIEF_START_TIMEOUT_S"),
        ):
            raw = env.get(var)
            if raw in (None, ""):
                continue
            try:
                values[name] = float(raw)
            except ValueError:
                values[name] = -1.0
            if not values[name] > 0:
                raise UsageError(f"{var} must be a number of seconds > 0. Received: {raw!r}")
        return cls(**values)


def instance_id() -> str:
    """This process's identity in the chief's records: host:pid:random."""
    return _INSTANCE


_last_answer: float | None = None  # monotonic time of the chief's last answer, on any channel


def heard_from_chief() -> None:
    """Note an answer from the chief (the trial client's calls count, not only heartbeats)."""
    global _last_answer
    _last_answer = time.monotonic()


def last_heard_from_chief() -> float | None:
    return _last_answer


def _metadata(tuner_id: str, heartbeat: bool = False) -> tuple[tuple[str, str], ...]:
    md = ((_TUNER_KEY, tuner_id), (_INSTANCE_KEY, _INSTANCE))
    return md + (((_HEARTBEAT_KEY, "1"),) if heartbeat else ())


# ---------------------------------------------------------- the launcher's children and itself


# Run as `python -c _DIE_WITH_PARENT PARENT_PID ARGV...`: the kernel kills the role when the
# launcher dies, even by SIGKILL (set before exec, so it holds for any command; the parent-pid
# check closes the window between fork and prctl).
_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(1)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def die_with_parent(argv: Sequence[str]) -> list[str]:
    """`argv` wrapped so that the process is killed when this process dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return list(argv)
    return [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *argv]


def sigterm_interrupts() -> Callable[[], None]:
    """Until the returned function is called, SIGTERM raises KeyboardInterrupt (main thread
    only), so a `kill` stops the children and leaves the run `interrupted` like Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends us at once
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    old = signal.signal(signal.SIGTERM, interrupt)
    return lambda: signal.signal(signal.SIGTERM, old)


# ------------------------------------------------------------------------------ worker side


def tag_client(oracle_client: Any, timeouts: Timeouts | None = None) -> None:
    """Make a KerasTuner OracleClient send our metadata with every call, and bound its waits.

    KerasTuner's own bound is 60 min per call; here a call waits at most a little longer than the
    watch allows, so the watch (one clear line) always speaks first.
    """
    import grpc

    from automl_app.tuning.compat import oracle_client as oc
    from automl_app.tuning.compat import protos

    t = timeouts or Timeouts.from_env()
    oc.TIMEOUT = max(t.chief, t.chief_start) + 30
    address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
    channel = grpc.intercept_channel(
        channel_to(address), _AddMetadata(_metadata(oracle_client.tuner_id))
    )
    oracle_client.stub = protos.get_service_grpc().OracleStub(channel)


def channel_to(address: str):
    """An insecure gRPC channel that retries a lost connection every <= 2 s (gRPC's default
    backoff grows to 120 s, which would hide a chief that is back, or just started)."""
    import grpc

    return grpc.insecure_channel(address, options=[("grpc.max_reconnect_backoff_ms", 2000)])


def _details_class():
    import grpc

    fields = ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")

    class _Details(collections.namedtuple("_Details", fields), grpc.ClientCallDetails):
        pass

    return _Details


class _AddMetadata:
    """A unary-unary client interceptor adding fixed metadata (grpc base class mixed in lazily)."""

    def __new__(cls, pairs):
        import grpc

        class _Interceptor(grpc.UnaryUnaryClientInterceptor):
            details = _details_class()

            def intercept_unary_unary(self, continuation, call_details, request):
                md = list(call_details.metadata or []) + list(pairs)
                outcome = continuation(
                    self.details(
                        call_details.method,
                        call_details.timeout,
                        md,
                        call_details.credentials,
                        call_details.wait_for_ready,
                        call_details.compression,
                    ),
                    request,
                )
                # A trial handed out is contact too: the heartbeat thread may not have got its
                # first answer yet (it beats every few seconds) when the link goes.
                outcome.add_done_callback(
                    lambda done: done.exception() is None and heard_from_chief()
                )
                return outcome

        return _Interceptor()


class ChiefWatch:
    """A daemon thread that heartbeats to the chief and ends this process when it is gone."""

    def __init__(
        self,
        address: str,
        tuner_id: str,
        timeouts: Timeouts | None = None,
        say: Callable[[str], None] | None = None,
        exit: Callable[[int], Any] = os._exit,
    ):
        self.address, self.tuner_id = address, tuner_id
        self.t = timeouts or Timeouts.from_env()
        self.say = say or _say_stderr
        self.exit = exit
        self.contacted = False
        self.reason: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="automl-chief-watch", daemon=True)

    def start(self) -> ChiefWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        import grpc

        from automl_app.tuning.compat import protos

        stub = protos.get_service_grpc().OracleStub(channel_to(self.address))
        request = protos.get_service().GetSpaceRequest()
        md = _metadata(self.tuner_id, heartbeat=True)
        last_ok = time.monotonic()
        while not self._stop.is_set():
            try:
                stub.GetSpace(request, timeout=self.t.heartbeat, metadata=md, wait_for_ready=True)
                last_ok, self.contacted = time.monotonic(), True
            except grpc.RpcError as exc:
                if self._stop.is_set():
                    return
                if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                    return self.give_up(exc.details())
                answered = last_heard_from_chief()  # by the trial client's calls
                if answered is not None:
                    last_ok, self.contacted = max(last_ok, answered), True
                limit = self.t.chief if self.contacted else self.t.chief_start
                silent = time.monotonic() - last_ok
                if silent > limit:
                    what = "lost the chief" if self.contacted else "never reached the chief"
                    return self.give_up(
                        f"{what} at {self.address} for {silent:.0f} s (limit {limit:g} s, "
                        f"{exc.code().name}): it has ended, died or is cut off"
                    )
            self._stop.wait(self.t.heartbeat)

    def give_up(self, reason: str) -> None:
        """Say why in one line and end the process (exit code CHIEF_LOST_EXIT)."""
        self.reason = reason
        self.say(
            f"Error: worker {self.tuner_id} stops: {reason}; its trial is handed out again "
            "(by the chief, or by `automl search … --resume`)"
        )
        self.exit(CHIEF_LOST_EXIT)


def _say_stderr(line: str) -> None:
    sys.stdout.flush()
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


_watch: ChiefWatch | None = None


def watch_chief(timeouts: Timeouts | None = None) -> ChiefWatch:
    """Start this worker's ChiefWatch once (from KERASTUNER_* variables); return it."""
    global _watch
    if _watch is None:
        address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
        _watch = ChiefWatch(address, os.environ["KERASTUNER_TUNER_ID"], timeouts).start()
    return _watch


# ------------------------------------------------------------------------ the chief's record


class EventLog:
    """RUN_DIR/workers/events.jsonl: one JSON object per line, appended by the chief."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = None if path is None else Path(path)
        self._lock = threading.Lock()

    def write(self, event: str, **fields: Any) -> dict[str, Any]:
        record = {"t": round(time.time(), 3), "event": event, **fields}
        if self.path is not None:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(record) + "\n")
        return record


def read_events(path: str | os.PathLike, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Complete events after byte `offset`, and the offset to read from next time."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            chunk = fh.read()
    except OSError:
        return [], offset
    end = chunk.rfind(b"\n") + 1  # a line still being written waits for the next call
    events = []
    for raw in chunk[:end].splitlines():
        try:
            events.append(json.loads(raw))
        except ValueError:
            continue
    return events, offset + end
