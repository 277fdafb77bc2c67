"""Run directories for tests: `fake_run` writes one by hand the way a search leaves it;
`make_search_run` runs one real digits search per session (the report and analysis tests share it);
`trial_result_id` reads a search's printed output.
"""

from __future__ import annotations

import functools
import json
import re
import tempfile
from pathlib import Path

import numpy as np

from automl_app import evaluate, runs

# The one line a search prints per finished trial ("trial 3 (4/6) [completed] …"); the budget guard's
# notes about a trial ("trial 3: predicted …") also start with "trial " and are not results.
_TRIAL_RESULT = re.compile(r"trial (\S+) \(\d+")


def trial_result_id(line: str) -> str | None:
    """The trial id when `line` is a trial's result line, else None."""
    match = _TRIAL_RESULT.match(line)
    return match[1] if match else None


_ROOT = Path(tempfile.mkdtemp(prefix="automl-experiments-"))

# Twelve hyperparameters as KerasTuner records them: (name, class_name, config).
SPACE = [
    ("learning_rate", "Float", {"min_value": 1e-4, "max_value": 0.1, "sampling": "log"}),
    ("batch_size", "Choice", {"values": [16, 32, 64, 128, 256]}),
    ("num_layers", "Int", {"min_value": 1, "max_value": 4, "step": 1}),
    ("units_layer_0", "Int", {"min_value": 16, "max_value": 512, "step": 16}),
    ("units_layer_1", "Int", {"min_value": 16, "max_value": 512, "step": 16}),
    ("dropout_rate_layer_0", "Float", {"min_value": 0.0, "max_value": 0.5}),
    ("dropout_rate_layer_1", "Float", {"min_value": 0.0, "max_value": 0.5}),
    ("activation_function", "Choice", {"values": ["relu", "tanh", "gelu"]}),
    ("optimizer", "Choice", {"values": ["adam", "sgd", "rmsprop"]}),
    ("weight_decay", "Float", {"min_value": 1e-6, "max_value": 1e-2, "sampling": "log"}),
    ("label_smoothing", "Float", {"min_value": 0.0, "max_value": 0.2}),
    ("use_batch_norm", "Boolean", {}),
]
CLASSES = [f"class_{i}" for i in range(10)]


def _sample(rng: np.random.Generator) -> dict:
    values = {}
    for name, kind, c in SPACE:
        if kind == "Float" and c.get("sampling") == "log":
            lo, hi = np.log10(c["min_value"]), np.log10(c["max_value"])
            values[name] = float(10 ** rng.uniform(lo, hi))
        elif kind == "Float":
            values[name] = float(rng.uniform(c["min_value"], c["max_value"]))
        elif kind == "Int":
            steps = (c["max_value"] - c["min_value"]) // c["step"]
            values[name] = int(c["min_value"] + c["step"] * rng.integers(0, steps + 1))
        elif kind == "Choice":
            values[name] = c["values"][rng.integers(0, len(c["values"]))]
        else:
            values[name] = bool(rng.integers(0, 2))
    return values


def fake_run(
    root: Path,
    trials: int = 14,
    accuracy: float = 0.9,
    test_key: str = "test",
    chance: dict | None = None,
    name: str = "fake-search",
) -> Path:
    """A finished 10-class search of `trials` trials over the twelve-parameter SPACE.

    The objective rises with the learning rate (so fANOVA has something to find); trial 1 failed,
    trial 2 was pruned after 2 epochs, the others ran 4 epochs with per-epoch observations.
    """
    run = root / name
    rng = np.random.default_rng(0)
    rows = []
    for i in range(trials):
        tid = f"{i:02d}"
        hps = _sample(rng)
        score = 0.5 + 0.1 * np.log10(hps["learning_rate"] / 1e-4) + rng.normal(0, 0.01)
        status = "failed" if i == 1 else ("pruned" if i == 2 else "completed")
        epochs = 2 if status == "pruned" else 4
        curve = [score * (0.7 + 0.1 * e) for e in range(epochs)]
        state = {
            "trial_id": tid,
            "status": "COMPLETED" if status != "failed" else "FAILED",
            "hyperparameters": {
                "space": [{"class_name": k, "config": {"name": n, **c}} for n, k, c in SPACE],
                "values": hps,
            },
            "metrics": {
                "metrics": {}
                if status == "failed"
                else {
                    "val_accuracy": {
                        "direction": "max",
                        "observations": [{"value": [v], "step": e} for e, v in enumerate(curve)],
                    }
                }
            },
        }
        (run / "tuner" / f"trial_{tid}").mkdir(parents=True)
        (run / "tuner" / f"trial_{tid}" / "trial.json").write_text(json.dumps(state))
        row = {"trial_id": tid, "status": status}
        if status != "failed":
            row |= {
                "objective": max(curve),
                "val_accuracy": max(curve),
                "val_loss": 1.5 - max(curve),
                "epochs": epochs,
                "seconds": 3.0 * epochs,
                "seconds_per_epoch": 3.0,
                "params": 1000 * hps["units_layer_0"],
            }
        if status == "pruned":
            row["pruned_at"] = 2
        rows.append(row | {f"hp_{k}": v for k, v in hps.items()})
    cols = list(dict.fromkeys(k for r in rows for k in r))
    runs.write_csv(run / "trials.csv", rows, first=cols)
    y = np.repeat(np.arange(10), 30)
    probs = np.full((len(y), 10), 0.01)
    right = rng.random(len(y)) < accuracy
    probs[np.arange(len(y)), np.where(right, y, (y + 1) % 10)] = 0.91
    test = evaluate.write_classification_report(y, probs, CLASSES, run / "report")
    best = max((r for r in rows if "objective" in r), key=lambda r: r["objective"])
    manifest = {
        "schema_version": 2,
        "command": "search",
        "status": "completed",
        "started_at": "2025-01-01T00:00:00+00:00",
        "engine": "kerastuner",
        "config": {"tuner": {"tuner": "random", "objective": "val_accuracy"}},
        "data": {"dataset": "fake", "class_names": CLASSES},
        "best_trial": {"trial_id": best["trial_id"], "score": best["objective"]},
        test_key: test,
        "wall_seconds": 42.0,
    }
    if chance is not None:
        manifest["chance"] = chance
    (run / "run.json").write_text(json.dumps(manifest))
    return run


@functools.cache
def make_search_run() -> Path:
    """One real digits search (fcn space, 4 trials x 2 epochs), shared by the test modules."""
    from automl_app import workflows
    from automl_app.config import DataConfig, SearchConfig, SpaceConfig, TunerConfig

    run = _ROOT / "runs" / "digits-fcn"
    workflows.search(
        SearchConfig(
            data=DataConfig(dataset="digits", max_samples=300, seed=0),
            space=SpaceConfig(space="fcn", overrides={"num_layers": 2}),
            tuner=TunerConfig(tuner="random", max_trials=4, epochs=2, seed=0, keep_checkpoints=4),
            run_dir=str(run),
        ),
        say=lambda _line: None,
    )
    return run
