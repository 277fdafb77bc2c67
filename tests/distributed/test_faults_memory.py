"""A trial that exhausts memory is recorded `failed` with "out of memory"; the search goes on.

The configuration is far too large for any machine (a 64 x 4e9 dense kernel, 1 TB): TensorFlow
refuses the allocation (ResourceExhaustedError). When the kernel's OOM killer steps in instead
(SIGKILL), a parallel search re-runs the trial once on a fresh worker, then records it failed
(chief.MAX_RUNS). The resident memory of a long search is measured by bench/memory_50_trials.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest

HUGE = 4_000_000_000
SPACE = f"""
model: fcn
hyperparameters:
  batch_size:    {{type: choice, values: [32]}}
  learning_rate: {{type: float, min: 1.0e-3, max: 1.0e-2, sampling: log}}
  num_layers:    {{type: fixed, value: 2}}
  layer_size:    {{type: choice, values: [32, {HUGE}]}}
"""


def test_oom_message_says_out_of_memory():
    from automl_app.tuning.tuners import _last_line

    tf_error = (
        "Traceback (most recent call last):\n  ...\ntensorflow.python.framework.errors_impl."
        "ResourceExhaustedError: {{function_node __wrapped__}} OOM when allocating tensor with "
        "shape[64,4000000000] and type float on /job:localhost [Op:StatelessRandomUniformV2]"
    )
    assert _last_line(tf_error) == (
        "out of memory: OOM when allocating tensor with shape[64,4000000000] (a configuration "
        "too large for this machine)"
    )
    assert _last_line("Traceback ...\nMemoryError: ").startswith("out of memory: MemoryError")
    assert _last_line("Traceback ...\nValueError: bad") == "ValueError: bad"


@pytest.mark.slow
def test_trial_that_exhausts_memory_is_recorded_failed_and_the_search_goes_on(tmp_path):
    space = tmp_path / "huge.yaml"
    space.write_text(SPACE)
    run = tmp_path / "run"
    argv = [sys.executable, "-m", "automl_app.cli", "search", "image", "--space", str(space),
            "--enqueue", json.dumps({"layer_size": HUGE}), "--max-samples", "200", "--epochs", "1",
            "--max-trials", "3", "--seed", "0", "--run-dir", str(run)]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = [json.loads(line) for line in (run / "trials.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    huge = [r for r in rows if r["hp_layer_size"] == HUGE]
    assert len(huge) == 1 and huge[0]["status"] == "failed"
    assert huge[0]["error"].startswith("out of memory: OOM when allocating tensor")
    assert [r["status"] for r in rows if r is not huge[0]] == ["completed", "completed"]
    assert "[failed]" in out.stdout and "error: out of memory" in out.stdout
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["status"] == "completed" and manifest["search"]["failed"] == 1


KILLER = """
import os, signal, keras

def build(hp):
    units = hp.Choice("units", [8, 9, 12, 16, 24, 32])
    if units == 9 and os.environ.get("KERASTUNER_TUNER_ID", "chief") != "chief":
        os.kill(os.getpid(), signal.SIGKILL)  # what the kernel's OOM killer does
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(units, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
"""


@pytest.mark.slow
@pytest.mark.timing
def test_trial_whose_worker_is_oom_killed_runs_twice_then_is_recorded_failed(tmp_path):
    from automl_app.distributed import chief, liveness

    (tmp_path / "killer.py").write_text(KILLER)
    run = tmp_path / "run"
    argv = [sys.executable, "-m", "automl_app.cli", "search", "image", "--hypermodel",
            f"{tmp_path / 'killer.py'}:build", "--enqueue", '{"units": 9}', "--max-samples",
            "200", "--epochs", "1", "--max-trials", "3", "--workers", "2", "--seed", "0",
            "--run-dir", str(run)]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, env={**os.environ})
    assert out.returncode == 0, out.stdout + out.stderr
    rows = {
        r["trial_id"]: r
        for r in map(json.loads, (run / "trials.jsonl").read_text().split("\n")[:-1])
    }
    killer = [r for r in rows.values() if r["hp_units"] == 9]
    assert len(rows) == 3 and len(killer) == 1 and killer[0]["status"] == "failed"
    assert killer[0]["error"].startswith("the worker running it died each of the 2 times (out of")
    assert sorted(r["status"] for r in rows.values()) == ["completed", "completed", "failed"]
    events = liveness.read_events(run / "workers" / liveness.EVENTS)[0]
    handed = Counter(e["trial_id"] for e in events if e["event"] == "assign")
    assert handed[killer[0]["trial_id"]] == chief.MAX_RUNS  # one re-run, then given up
    assert [e["trial_id"] for e in events if e["event"] == "given_up"] == [killer[0]["trial_id"]]
