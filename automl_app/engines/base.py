"""The engine interface: a Plan before anything is written, an EngineResult after training.

An engine validates its options (exit 2 on bad input, no directory written) and hands the flow
(workflows.run_plan) a Plan. The flow opens the run (runs.open_run: lock, run.json,
resume/interrupt/fail) and calls `plan.fit(run, say)`, which loads the data, trains and returns an
EngineResult: the run.json fields it knows (trials summary, best trial, phases, history, …), the
best model with its serving spec (or an `export` callable for multi-input serving models), the
trial rows, and `read_test`, the one function that reads the test split. An engine trains; it does
not evaluate, export or write rows. The flow then, the same for every engine: reads the test split
once (`read_test`), writes the scikit-learn report and checks chance (evaluate.final,
evaluate.chance_check), exports best/ (reload-and-compare before the atomic rename), writes the
trial table and finishes the run (status, wall time, report, MLflow).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automl_app.runs import Run

Say = Callable[[str], None]


@dataclass
class TestPredictions:
    """What reading the test split once gave: the served model's outputs and the true labels.

    predictions/labels: arrays for one head, {head name: array} for several (AutoKeras multi).
    sample: raw inputs the export is checked on (reload-and-compare).
    fields: run.json fields that need the test inputs (e.g. `leakage`).
    """

    predictions: Any
    labels: Any
    sample: Any
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class EngineResult:
    """What an engine's `fit` hands the flow. The flow decides when the test split is read.

    fields: run.json fields the engine knows (`trials`, `best_trial`, `phases`, `history`, …).
    read_test: reads the test split (or the split `split` names) and predicts it through the
      export's preprocessing; the flow calls it exactly once.
    heads: one {"name", "type", "class_names"} per output ("classification"/"regression").
    model, spec: the best model and its export.ServingSpec (export.export_best writes best/),
      or `export(best_dir, sample, card) -> run.json export` for serving models export_best cannot
      write (AutoKeras structured/multi: one named input per column).
    card: model_card.json fields (the flow adds the test metrics and how inputs are scaled).
    trials: trial-table rows for the flow to write; None when the engine recorded them as each
      trial finished (KerasTuner: the dashboard and --resume read them live).
    diagnose: for a model within noise of chance, (likely cause, next step); None: generic.
    best_line: "best trial 3: val_accuracy=0.91" or None; test_note: appended to the test line.
    """

    fields: dict[str, Any]
    read_test: Callable[[], TestPredictions]
    heads: list[dict[str, Any]]
    model: Any = None
    spec: Any = None
    export: Callable[[Path, Any, Mapping[str, Any]], dict[str, Any]] | None = None
    card: dict[str, Any] = field(default_factory=dict)
    trials: list[dict[str, Any]] | None = None
    split: str = "test"
    diagnose: Callable[[dict[str, Any]], tuple[str, str]] | None = None
    best_line: str | None = None
    test_note: str = ""

    @property
    def class_names(self) -> list[str] | None:
        """The single classification head's class names (None for regression or several)."""
        if len(self.heads) == 1 and self.heads[0].get("type") == "classification":
            return list(self.heads[0].get("class_names") or [])
        return None


Fit = Callable[[Run, Say], EngineResult]


@dataclass
class Plan:
    """One command's work: which run it writes, with which engine, and the function that trains."""

    command: str  # "search image", "train-scratch", …: run.json's `command`
    engine: str  # "kerastuner", "autokeras", "scratch"
    cfg: Any  # SearchConfig or TrainConfig (frozen; to_dict() is run.json's `config`)
    fit: Fit
    fields: dict[str, Any] = field(default_factory=dict)  # extra run.json fields at open

    @property
    def run_dir(self) -> Path:
        return self.cfg.resolved_run_dir()
