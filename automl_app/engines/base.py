"""The engine interface: a Plan, made by an engine's `plan_*` function before anything is written.

An engine validates its options (exit 2 on bad input, no directory written), then hands the
lifecycle (workflows.run_plan) a Plan. The lifecycle opens the run (runs.open_run: lock, run.json,
resume/interrupt/fail), calls `plan.fit(run, say)`, which trains and returns the fields of
run.json (`data`, `trials`, `best_trial`, `test`, `export`, …), and finishes the run: status,
wall time, the report and MLflow — the same for every engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automl_app.runs import Run

Say = Callable[[str], None]
Fit = Callable[[Run, Say], Mapping[str, Any]]


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
