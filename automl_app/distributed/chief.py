"""The chief of a parallel search: KerasTuner's oracle served over gRPC, with liveness.

`serve_oracle` is KerasTuner's `oracle_chief.start_server` with three changes: the servicer
(`make_servicer`) also takes heartbeats, declares a worker silent for `Timeouts.worker` seconds
lost and hands its trial to the next worker (liveness.py says why), and records every trial
handed out, ended or taken back in RUN_DIR/workers/events.jsonl; the end of the search is checked
every 0.5 s instead of every 20 s; and it never ends while a trial waits in the retry queue.
KerasTuner and grpc are imported inside functions.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from pathlib import Path
from typing import Any

from automl_app.distributed.liveness import (
    _HEARTBEAT_KEY,
    _INSTANCE_KEY,
    _TUNER_KEY,
    EVENTS,
    EventLog,
    Timeouts,
)


def serve_oracle(oracle: Any, poll: float = 0.5, timeouts: Timeouts | None = None) -> None:
    """KerasTuner's `oracle_chief.start_server`, with a short poll, liveness and a server that stops.

    Same servicer (plus heartbeats and lost-worker detection, make_servicer), same exit
    test (a worker got STOPPED, no ongoing trial, no tuner id left) and, besides, no trial waiting
    in the retry queue; checked every `poll` s instead of every 20 s. Events go to
    $AUTOML_WORKERS_DIR/events.jsonl (set by `launch`; else next to the tuner project).
    """
    from concurrent import futures

    import grpc

    from automl_app.tuning.compat import oracle_chief, protos

    address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
    folder = os.environ.get("AUTOML_WORKERS_DIR") or Path(oracle._project_dir).parent / "workers"
    events = EventLog(Path(folder) / EVENTS)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = make_servicer(oracle, events, timeouts)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    if server.add_insecure_port(address) == 0:
        raise RuntimeError(f"the chief cannot listen on {address} (port in use?)")
    server.start()
    events.write("serve", address=address, pid=os.getpid())
    try:
        while True:
            servicer.reap()
            if servicer.stop_triggered and oracle._retry_queue:
                for trial in skip_retries(oracle):  # past the time budget: nobody runs them
                    _record_failed(Path(oracle._project_dir).parent, trial, trial.message)
                    events.write("given_up", trial_id=trial.trial_id, error=trial.message)
            if (
                servicer.stop_triggered
                and oracle_chief.exit_chief(oracle)
                and not oracle._retry_queue
            ):
                break
            time.sleep(poll)
    finally:
        server.stop(grace=2).wait()
    events.write("done", trials=len(oracle.trials))


def skip_retries(oracle: Any) -> list[Any]:
    """The budget oracle's `skip_retries` under the oracle lock (none for other oracles)."""
    from keras_tuner import synchronized

    method = getattr(oracle, "skip_retries", None)
    return [] if method is None else synchronized(lambda o: method())(oracle)


MAX_RUNS = 2  # a trial handed out this often without ending (its workers died) is failed


def _record_failed(run_dir: Path, trial: Any, message: str) -> None:
    """The row a worker would have written for a trial that never ended on any worker."""
    from automl_app.runs.trials import load_rows, save_rows, trials_lock

    with trials_lock(run_dir):
        rows = load_rows(run_dir)
        rows[trial.trial_id] = {
            "trial_id": trial.trial_id,
            "status": "failed",
            "objective": None,
            "error": message,
            **{f"hp_{k}": v for k, v in trial.hyperparameters.values.items()},
        }
        save_rows(run_dir, rows)


def make_servicer(oracle: Any, events: EventLog, timeouts: Timeouts | None = None, say=print):
    """KerasTuner's OracleServicer plus heartbeats, lost-worker detection and the event log.

    Returns the servicer; call its `reap()` periodically (serve_oracle does, every poll).
    KerasTuner's class is private and imported late (compat), so the class is put together here.
    """
    from automl_app.tuning.compat import oracle_chief

    cls = type("Servicer", (_LivenessServicer, oracle_chief.OracleServicer), {})
    return cls(oracle, events, timeouts or Timeouts.from_env(), say)


def _synchronized(func, oracle: Any, *args: Any) -> Any:
    """`func(oracle, *args)` under the oracle's lock (KerasTuner's `synchronized`)."""
    from keras_tuner import synchronized

    return synchronized(func)(oracle, *args)


def _requeue(oracle: Any, tuner_id: str, trial_id: str | None) -> str | None:
    """Take `tuner_id` out of the search; its ongoing trial (if still `trial_id`) is retried."""
    oracle.tuner_ids.discard(tuner_id)
    trial = oracle.ongoing_trials.get(tuner_id)
    if trial is None or trial.trial_id != trial_id:
        return None
    oracle.ongoing_trials.pop(tuner_id)
    oracle._retry_queue.append(trial.trial_id)
    oracle.save()
    return trial.trial_id


def _save(oracle: Any) -> None:
    oracle.save()


def _fail(oracle: Any, tuner_id: str, trial_id: str, message: str) -> bool:
    """End `tuner_id`'s ongoing trial as FAILED, with a row in the trial table."""
    trial = oracle.ongoing_trials.get(tuner_id)
    if trial is None or trial.trial_id != trial_id:
        return False
    trial.status, trial.message = "FAILED", message
    oracle.end_trial(trial)
    oracle.save()
    _record_failed(Path(oracle._project_dir).parent, trial, message)
    return True


class _LivenessServicer:
    """What make_servicer adds to KerasTuner's OracleServicer (mixed in before it)."""

    def __init__(self, oracle: Any, events: EventLog, timeouts: Timeouts, say) -> None:
        super().__init__(oracle)
        self.events, self.t, self.say = events, timeouts, say
        self.lock = threading.Lock()
        # A worker is (tuner id, instance): a restarted worker keeps its id, not its instance.
        self.last_seen: dict[tuple[str, str], float] = {}  # worker → monotonic time
        self.holder: dict[str, str] = {}  # tuner id → its latest instance
        self.lost: dict[tuple[str, str], str] = {}  # worker → why
        self.faults: list[dict[str, Any]] = []
        self.handed: collections.Counter[str] = collections.Counter()  # trial id → runs

    def _caller(self, context) -> tuple[str | None, str | None, bool]:
        """(tuner id, instance, is a heartbeat) of a call; a lost worker's call is refused."""
        import grpc

        md = dict(context.invocation_metadata() or ())
        inst, tid = md.get(_INSTANCE_KEY), md.get(_TUNER_KEY)
        if inst is None:  # a plain KerasTuner client: served, not watched
            return None, None, False
        with self.lock:
            if (tid, inst) in self.lost:
                why = self.lost[tid, inst]
            else:
                why = None
                if (tid, inst) not in self.last_seen:
                    self.events.write("join", tuner_id=tid, instance=inst, peer=context.peer())
                self.last_seen[tid, inst] = time.monotonic()
                self.holder[tid] = inst
        if why is not None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, why)
        return tid, inst, md.get(_HEARTBEAT_KEY) == "1"

    def GetSpace(self, request, context):
        from automl_app.tuning.compat import protos

        if self._caller(context)[2]:  # a heartbeat: no oracle lock, no payload
            return protos.get_service().GetSpaceResponse()
        return super().GetSpace(request, context)

    def UpdateSpace(self, request, context):
        self._caller(context)
        return super().UpdateSpace(request, context)

    def CreateTrial(self, request, context):
        """KerasTuner's CreateTrial; a trial handed out MAX_RUNS times without ending is failed
        (its workers died running it) and the next one is handed out instead."""
        from automl_app.tuning.compat import protos

        proto = protos.get_proto()
        tid, inst, _ = self._caller(context)
        while True:
            response = super().CreateTrial(request, context)
            trial_id = response.trial.trial_id
            if response.trial.status != proto.TrialStatus.RUNNING:
                return response
            with self.lock:
                self.handed[trial_id] += 1
                runs = self.handed[trial_id]
            if runs <= MAX_RUNS:
                self.events.write(
                    "assign",
                    trial_id=trial_id,
                    tuner_id=request.tuner_id,
                    instance=inst,
                    peer=context.peer(),
                )
                return response
            self._give_up(request.tuner_id, trial_id)

    def _give_up(self, tuner_id: str, trial_id: str) -> None:
        """Fail a trial handed out MAX_RUNS times and never ended: its workers died running it."""
        message = (
            f"the worker running it died each of the {MAX_RUNS} times (out of memory? "
            "the kernel's OOM killer sends SIGKILL; see RUN_DIR/workers/*.log)"
        )
        if _synchronized(_fail, self.oracle, tuner_id, trial_id, message):
            record = self.events.write("given_up", trial_id=trial_id, error=message)
            self.faults.append(record)
            self.say(f"chief: trial {trial_id} failed: {message}")

    def UpdateTrial(self, request, context):
        self._caller(context)
        return super().UpdateTrial(request, context)

    def EndTrial(self, request, context):
        from automl_app.tuning.compat import protos

        tid, inst, _ = self._caller(context)
        response = super().EndTrial(request, context)
        _synchronized(_save, self.oracle)  # KerasTuner saved before dropping the trial
        status = protos.get_proto().TrialStatus.Name(request.trial.status)
        self.events.write(
            "end", trial_id=request.trial.trial_id, status=status, tuner_id=tid, instance=inst
        )
        return response

    def GetTrial(self, request, context):
        self._caller(context)
        return super().GetTrial(request, context)

    def GetBestTrials(self, request, context):
        self._caller(context)
        return super().GetBestTrials(request, context)

    def reap(self) -> list[dict[str, Any]]:
        """Declare lost every watched tuner silent for `worker` s; requeue its trial."""
        now = time.monotonic()
        found = []
        ongoing = {k: v.trial_id for k, v in list(self.oracle.ongoing_trials.items())}
        for tid in set(ongoing) | set(self.oracle.tuner_ids):
            with self.lock:
                inst = self.holder.get(tid)
                if inst is None or (tid, inst) in self.lost:
                    continue
                silent = now - self.last_seen[tid, inst]
                if silent <= self.t.worker:
                    continue
                self.lost[tid, inst] = (
                    f"the chief declared worker {tid} lost after {silent:.0f} s without a "
                    f"heartbeat (limit {self.t.worker:g} s) and gave its trial to another worker"
                )
            found.append(self._declare_lost(tid, inst, ongoing.get(tid), silent))
        return found

    def _declare_lost(self, tid: str, inst: str, trial_id: str | None, silent: float):
        """Requeue the lost worker's trial (if it still holds it); record and say so."""
        trial_id = _synchronized(_requeue, self.oracle, tid, trial_id)
        record = self.events.write(
            "lost", tuner_id=tid, instance=inst, trial_id=trial_id, silent_s=round(silent, 1)
        )
        self.faults.append(record)
        self.say(
            f"chief: worker {tid} silent for {silent:.0f} s (limit {self.t.worker:g} s); "
            + (f"trial {trial_id} goes to the next worker" if trial_id else "it held no trial")
        )
        return record
