"""`--workers N`: KerasTuner's distributed mode, launched and looked after by distributed/launcher.py.

The process tests run a tiny search script (written to tmp) as a chief and two workers on
127.0.0.1: every role runs the same script, as KerasTuner's distributed mode expects.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from automl_app.distributed import chief, liveness, workers
from automl_app.distributed.launcher import LaunchResult, LaunchSettings, launch
from automl_app.errors import UsageError
from automl_app.tuning.tuners import forget_ended_retries

ROLE_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time

    directory, kind, max_trials = sys.argv[1], sys.argv[2], int(sys.argv[3])
    from automl_app.distributed import workers  # no TF import; the env is already set by launch
    import keras
    import keras_tuner as kt
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")

    def build(hp):
        model = keras.Sequential([
            keras.Input((4,)),
            keras.layers.Dense(hp.Int("units", 2, 32, step=2), activation="relu"),
            keras.layers.Dense(2, activation="softmax"),
        ])
        lr = hp.Float("lr", 1e-3, 1e-1, sampling="log")
        model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model

    class LogRuns:
        def run_trial(self, trial, *args, **kwargs):
            me = os.environ["KERASTUNER_TUNER_ID"]
            with open(os.path.join(directory, "runs.txt"), "a") as fh:
                fh.write(f"{me} {trial.trial_id}\\n")
            time.sleep(float(os.environ.get("TRIAL_SLEEP", "0")))
            marker = os.path.join(directory, "died")
            if me == os.environ.get("DIE_AS") and not os.path.exists(marker):
                open(marker, "w").close()
                os.kill(os.getpid(), signal.SIGKILL)  # mid-trial, like the OOM killer
            return super().run_trial(trial, *args, **kwargs)

    common = dict(directory=directory, project_name="tuner", overwrite=False)
    if kind == "tpe":
        from automl_app.tuning.tpe import TPEOracle

        class Tuner(LogRuns, kt.Tuner):
            pass

        oracle = TPEOracle(objective="val_accuracy", max_trials=max_trials, seed=1,
                           n_startup_trials=2)
        tuner = Tuner(oracle=oracle, hypermodel=build, **common)
    else:
        class Tuner(LogRuns, kt.RandomSearch):
            pass

        tuner = Tuner(build, objective="val_accuracy", max_trials=max_trials, seed=1, **common)
    workers.search(tuner, x, y, validation_data=(x, y), epochs=1, batch_size=32, verbose=0)
    print("role done", os.environ["KERASTUNER_TUNER_ID"])
    """
)


def run_search(tmp_path: Path, kind: str, n_trials: int = 4, **env) -> LaunchResult:
    script = tmp_path / "role.py"
    script.write_text(ROLE_SCRIPT)
    project = tmp_path / "search"
    project.mkdir()
    repo = str(Path(__file__).resolve().parents[2])
    base = dict(os.environ)
    base.update(
        PYTHONPATH=os.pathsep.join([repo, base.get("PYTHONPATH", "")]),
        KERAS_HOME=base.get("KERAS_HOME", str(tmp_path / "keras_home")),
        TF_CPP_MIN_LOG_LEVEL="3",
        GRPC_VERBOSITY="ERROR",
        **env,
    )
    lines: list[str] = []
    log_lines: list[tuple[str, str]] = []
    result = launch(
        lambda role: [sys.executable, str(script), str(project), kind, str(n_trials)],
        LaunchSettings(
            n_workers=2, run_dir=tmp_path / "run", env_base=base, timeout=150, cpu_count=2, gpus=[]
        ),
        on_line=lines.append,
        on_log_line=lambda name, line: log_lines.append((name, line)),
    )
    result.lines = lines  # type: ignore[attr-defined]
    result.log_lines = log_lines  # type: ignore[attr-defined]
    return result


def trials_on_disk(tmp_path: Path) -> dict[str, str]:
    found = {}
    for path in (tmp_path / "search" / "tuner").glob("trial_*/trial.json"):
        trial = json.loads(path.read_text())
        found[trial["trial_id"]] = trial["status"]
    return found


def runs_per_trial(tmp_path: Path) -> Counter:
    lines = (tmp_path / "search" / "runs.txt").read_text().split("\n")
    return Counter(line.split()[1] for line in lines if line.strip())


def show_logs(result: LaunchResult) -> str:
    return "\n".join(f"--- {n}\n{p.read_text()[-3000:]}" for n, p in result.logs.items())


def test_worker_env_splits_threads_and_gpus():
    chief = workers.worker_env("chief", "127.0.0.1", 8000, 4, 16, ["0", "1"])
    assert chief["KERASTUNER_TUNER_ID"] == "chief"
    assert chief["KERASTUNER_ORACLE_IP"] == "127.0.0.1"
    assert chief["KERASTUNER_ORACLE_PORT"] == "8000"
    assert chief["CUDA_VISIBLE_DEVICES"] == ""
    envs = [workers.worker_env(i, "127.0.0.1", 8000, 4, 16, ["0", "1"]) for i in range(4)]
    assert [e["KERASTUNER_TUNER_ID"] for e in envs] == ["tuner0", "tuner1", "tuner2", "tuner3"]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1", "0", "1"]
    assert all(e["TF_FORCE_GPU_ALLOW_GROWTH"] == "true" for e in envs)  # two workers per GPU
    for e in envs:
        assert e["TF_NUM_INTRAOP_THREADS"] == e["TF_NUM_INTEROP_THREADS"] == "4"
        assert e["OMP_NUM_THREADS"] == "4"
    one_each = workers.worker_env(1, "h", 1, 2, 16, ["0", "1"])
    assert one_each["CUDA_VISIBLE_DEVICES"] == "1" and "TF_FORCE_GPU_ALLOW_GROWTH" not in one_each
    cpu_only = workers.worker_env(0, "127.0.0.1", 8000, 3, 2, [])
    assert "CUDA_VISIBLE_DEVICES" not in cpu_only
    assert cpu_only["OMP_NUM_THREADS"] == "1"  # never zero threads


def test_small_helpers(monkeypatch):
    port = workers.free_port()
    assert 0 < port < 65536
    assert workers.parse_oracle("127.0.0.1:8123") == ("127.0.0.1", 8123)
    with pytest.raises(UsageError, match="HOST:PORT"):
        workers.parse_oracle("8123")
    with pytest.raises(ValueError):
        workers.tuner_id(-1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert workers.detect_gpus() == ["2", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert workers.detect_gpus() == []


@pytest.mark.timing
def test_launch_stops_everything_on_timeout(tmp_path):
    script = "import time; time.sleep(60)"
    result = launch(
        lambda role: [sys.executable, "-c", script],
        LaunchSettings(n_workers=2, run_dir=tmp_path, timeout=1, gpus=[]),
        on_line=lambda line: None,
    )
    assert not result.ok and "1 s" in result.error
    assert all(rc is not None for rc in result.returncodes.values())  # nobody left running
    assert sorted(p.name for p in (tmp_path / "workers").iterdir()) == [
        "chief.log",
        "tuner0.log",
        "tuner1.log",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["random", "tpe"])
def test_two_workers_run_four_distinct_trials_once_each(tmp_path, kind):
    result = run_search(tmp_path, kind, TRIAL_SLEEP="0.5")
    assert result.ok, show_logs(result)
    assert result.returncodes == {"chief": 0, "tuner0": 0, "tuner1": 0}, show_logs(result)
    assert trials_on_disk(tmp_path) == {str(i): "COMPLETED" for i in range(4)}
    runs = runs_per_trial(tmp_path)
    assert sorted(runs) == ["0", "1", "2", "3"] and set(runs.values()) == {1}
    done = {line for _, line in result.log_lines if line.startswith("role done")}
    assert done == {"role done chief", "role done tuner0", "role done tuner1"}


@pytest.mark.slow
@pytest.mark.timing
def test_killed_worker_is_replaced_and_its_trial_rerun(tmp_path):
    result = run_search(tmp_path, "random", TRIAL_SLEEP="1", DIE_AS="tuner1")
    assert result.ok, show_logs(result)
    assert result.restarts["tuner1"] == 1 and result.restarts["tuner0"] == 0
    assert any("SIGKILL" in line and "tuner1" in line for line in result.lines)
    assert trials_on_disk(tmp_path) == {str(i): "COMPLETED" for i in range(4)}
    runs = runs_per_trial(tmp_path)
    assert sorted(runs) == ["0", "1", "2", "3"]
    assert sorted(runs.values()) == [1, 1, 1, 2]  # only the killed trial ran again


# ------------------------------------------------------------------ liveness (liveness.py)


def test_timeouts_from_env():
    t = liveness.Timeouts.from_env({"AUTOML_HEARTBEAT_S": "0.5", "AUTOML_WORKER_TIMEOUT_S": "9"})
    assert (t.heartbeat, t.worker, t.chief, t.chief_start) == (0.5, 9.0, 60.0, 600.0)
    with pytest.raises(UsageError, match="AUTOML_CHIEF_TIMEOUT_S must be a number of seconds > 0"):
        liveness.Timeouts.from_env({"AUTOML_CHIEF_TIMEOUT_S": "soon"})


def test_read_events_waits_for_complete_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    log = liveness.EventLog(path)
    log.write("assign", trial_id="0")
    with open(path, "a") as fh:
        fh.write('{"event": "end", "tri')  # still being written
    events, offset = liveness.read_events(path)
    assert [e["event"] for e in events] == ["assign"]
    with open(path, "a") as fh:
        fh.write('al_id": "0"}\n')
    events, _ = liveness.read_events(path, offset)
    assert events == [{"event": "end", "trial_id": "0"}]
    assert liveness.read_events(tmp_path / "missing.jsonl") == ([], 0)


@pytest.mark.timing
def test_watch_gives_up_on_a_chief_that_never_answers():
    import keras_tuner  # noqa: F401  (imported here, not timed in the watch's thread)

    said, codes = [], []
    watch = liveness.ChiefWatch(
        f"127.0.0.1:{workers.free_port()}",
        "tuner0",
        liveness.Timeouts(heartbeat=0.2, chief_start=1.0),
        say=said.append,
        exit=codes.append,
    )
    t0 = time.monotonic()
    watch.start()._thread.join(timeout=20)
    assert codes == [liveness.CHIEF_LOST_EXIT] and 1.0 <= time.monotonic() - t0 < 10
    assert len(said) == 1 and said[0].startswith("Error: worker tuner0 stops: never reached")


@pytest.mark.timing
def test_watch_counts_the_trial_clients_answers_as_contact(monkeypatch):
    """A worker handed a trial before its first heartbeat got through (the chief had just
    started) and then cut off waits the `chief` limit, not the start limit (CI, two hosts)."""
    import keras_tuner  # noqa: F401

    said, codes = [], []
    monkeypatch.setattr(liveness, "_last_answer", None)
    liveness.heard_from_chief()  # as the trial client's interceptor does on an answer
    watch = liveness.ChiefWatch(
        f"127.0.0.1:{workers.free_port()}",
        "tuner0",
        liveness.Timeouts(heartbeat=0.2, chief=1.0, chief_start=600.0),
        say=said.append,
        exit=codes.append,
    )
    t0 = time.monotonic()
    watch.start()._thread.join(timeout=20)
    assert codes == [liveness.CHIEF_LOST_EXIT] and time.monotonic() - t0 < 10
    assert len(said) == 1 and "lost the chief" in said[0] and "limit 1 s" in said[0]


CHILD_OF = textwrap.dedent(
    """
    import subprocess, sys, time
    from automl_app.distributed.liveness import die_with_parent
    child = subprocess.Popen(die_with_parent([sys.executable, "-c", "import time; time.sleep(60)"]))
    print(child.pid, flush=True)
    time.sleep(60)
    """
)


def test_children_die_with_a_sigkilled_launcher():
    import psutil

    parent = subprocess.Popen([sys.executable, "-c", CHILD_OF], stdout=subprocess.PIPE)
    child = psutil.Process(int(parent.stdout.readline()))
    time.sleep(0.5)  # past the exec: the child runs `time.sleep(60)` itself
    assert "time.sleep(60)" in " ".join(child.cmdline())
    parent.kill()
    parent.wait()
    child.wait(timeout=10)  # killed by the kernel (PR_SET_PDEATHSIG), not orphaned


def _oracle(directory: Path):
    import keras_tuner as kt

    oracle = kt.oracles.RandomSearchOracle(objective=kt.Objective("score", "max"), max_trials=4)
    oracle._set_project_dir(str(directory), "p")
    hp = kt.HyperParameters()
    hp.Int("units", 1, 64)
    oracle.update_space(hp)
    return oracle


def test_a_completed_trial_is_not_rerun_after_a_kill_between_end_and_save(tmp_path):
    oracle = _oracle(tmp_path)
    trial = oracle.create_trial("tuner0")
    oracle.update_trial(trial.trial_id, {"score": 1.0})
    trial.status = "COMPLETED"
    oracle.end_trial(trial)  # saved oracle.json still lists it as ongoing (KerasTuner's order)
    reloaded = _oracle(tmp_path)
    reloaded.reload()
    assert reloaded._retry_queue == [trial.trial_id]  # KerasTuner would run it again
    assert forget_ended_retries(reloaded) == [trial.trial_id]
    assert reloaded._retry_queue == [] and reloaded.create_trial("tuner0").trial_id != "0"


@pytest.mark.timing
def test_chief_declares_a_silent_worker_lost_and_hands_its_trial_to_the_next(tmp_path, monkeypatch):
    from concurrent import futures

    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_client

    oracle = _oracle(tmp_path)
    events = liveness.EventLog(tmp_path / "events.jsonl")
    servicer = chief.make_servicer(
        oracle, events, liveness.Timeouts(worker=0.5), say=lambda _: None
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
        monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(port))
        clients = {}
        for name in ("tuner0", "tuner1"):
            monkeypatch.setenv("KERASTUNER_TUNER_ID", name)
            clients[name] = oracle_client.OracleClient(oracle)
            liveness.tag_client(clients[name])
        held = clients["tuner0"].create_trial("tuner0")
        time.sleep(0.7)
        clients["tuner1"].get_space()  # tuner1 is alive: not lost
        lost = servicer.reap()
        assert [(e["tuner_id"], e["trial_id"]) for e in lost] == [("tuner0", held.trial_id)]
        assert clients["tuner1"].create_trial("tuner1").trial_id == held.trial_id
        with pytest.raises(grpc.RpcError) as refused:  # a lost worker that wakes up is refused
            clients["tuner0"].get_trial(held.trial_id)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "declared worker tuner0 lost" in refused.value.details()
        kinds = [e["event"] for e in liveness.read_events(tmp_path / "events.jsonl")[0]]
        assert kinds == ["join", "assign", "join", "lost", "assign"]
    finally:
        server.stop(None)
