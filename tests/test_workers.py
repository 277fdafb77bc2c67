"""`--workers N`: KerasTuner's distributed mode, launched and looked after by tuning/workers.py.

The process tests run a tiny search script (written to tmp) as a chief and two workers on
127.0.0.1: every role runs the same script, as KerasTuner's distributed mode expects.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from automl_app.errors import UsageError
from automl_app.tuning import workers

ROLE_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time

    directory, kind, max_trials = sys.argv[1], sys.argv[2], int(sys.argv[3])
    from automl_app.tuning import workers  # no TF import; the env is already set by launch
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


def run_search(tmp_path: Path, kind: str, n_trials: int = 4, **env) -> workers.LaunchResult:
    script = tmp_path / "role.py"
    script.write_text(ROLE_SCRIPT)
    project = tmp_path / "search"
    project.mkdir()
    repo = str(Path(__file__).resolve().parents[1])
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
    result = workers.launch(
        lambda role: [sys.executable, str(script), str(project), kind, str(n_trials)],
        n_workers=2,
        run_dir=tmp_path / "run",
        env_base=base,
        on_line=lines.append,
        timeout=150,
        cpu_count=2,
        gpus=[],
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


def show_logs(result: workers.LaunchResult) -> str:
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


def test_launch_stops_everything_on_timeout(tmp_path):
    script = "import time; time.sleep(60)"
    result = workers.launch(
        lambda role: [sys.executable, "-c", script],
        n_workers=2,
        run_dir=tmp_path,
        on_line=lambda line: None,
        timeout=1,
        gpus=[],
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
def test_killed_worker_is_replaced_and_its_trial_rerun(tmp_path):
    result = run_search(tmp_path, "random", TRIAL_SLEEP="1", DIE_AS="tuner1")
    assert result.ok, show_logs(result)
    assert result.restarts["tuner1"] == 1 and result.restarts["tuner0"] == 0
    assert any("SIGKILL" in line and "tuner1" in line for line in result.lines)
    assert trials_on_disk(tmp_path) == {str(i): "COMPLETED" for i in range(4)}
    runs = runs_per_trial(tmp_path)
    assert sorted(runs) == ["0", "1", "2", "3"]
    assert sorted(runs.values()) == [1, 1, 1, 2]  # only the killed trial ran again
