"""Experiment analysis over finished runs: list, select, evaluate, reproduce.

Plain functions (the Python API behind `automl runs|select|evaluate|reproduce`); they read the run
directory contract of DESIGN.md and write back into it. TensorFlow is imported inside functions.
"""

from automl_app.analysis.evaluate_run import evaluate_export, regression_metrics
from automl_app.analysis.rebuild import load_trial_model, trial_hyperparameters
from automl_app.analysis.reproduce import compare, interval95, reproduce
from automl_app.analysis.runs_table import find_runs, format_runs, list_runs, run_summary
from automl_app.analysis.select import filter_trials, parse_where, passes, select

__all__ = [
    "compare",
    "evaluate_export",
    "filter_trials",
    "find_runs",
    "format_runs",
    "interval95",
    "list_runs",
    "load_trial_model",
    "parse_where",
    "passes",
    "regression_metrics",
    "reproduce",
    "run_summary",
    "select",
    "trial_hyperparameters",
]
