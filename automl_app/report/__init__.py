"""Plots (PNG) and one self-contained, interactive `report/index.html` for any run directory.

Reads only what the run directory holds (DESIGN.md: run.json, trials.csv, tuner/, tensorboard/,
report/), so it works on every engine's runs and degrades to a note when something is absent.
The trial table is replayed into an in-memory Optuna study: Optuna draws the figures and
computes importances. Heavy modules (matplotlib, Optuna, plotly, TensorBoard) load lazily.

    from automl_app import report
    info = report.write_report("runs/digits-…")   # {"index": …, "plots": {...}, "skipped": {...}}

Modules: trials (reading the run), study (Optuna replay, importances), leaderboard, chance,
plots (PNGs), figures (plotly), html (the page), writer (write_report).
"""

from __future__ import annotations

from automl_app.report.base import (
    INDEX,
    PLOTS,
    REPORT_DIR,
    Say,
    Skip,
    data_source,
    fmt,
    test_metrics_of,
)
from automl_app.report.chance import chance_line
from automl_app.report.figures import FIGURES, interactive_figures
from automl_app.report.leaderboard import format_table, leaderboard, leaderboard_rows, ranked
from automl_app.report.plots import (
    lr_curve,
    plot_epoch_history,
    plot_epoch_time,
    plot_history,
    plot_importance,
    plot_intermediate,
    plot_lr,
    plot_parallel,
    plot_per_class,
    plot_reproduce,
)
from automl_app.report.study import (
    MIN_COMPLETED_FOR_IMPORTANCE,
    build_study,
    importance_gate,
    importances,
)
from automl_app.report.trials import (
    LEADER_METRICS,
    columns,
    convert,
    direction_of,
    is_pruned,
    kerastuner_trials,
    load_trials,
    objective,
    status_counts,
    trial_curves,
)
from automl_app.report.writer import write_report

# The names analysis/ (select, reproduce, runs_table) has always called them by.
_fmt = fmt
_status_counts = status_counts

__all__ = [
    "FIGURES",
    "INDEX",
    "LEADER_METRICS",
    "MIN_COMPLETED_FOR_IMPORTANCE",
    "PLOTS",
    "REPORT_DIR",
    "Say",
    "Skip",
    "build_study",
    "chance_line",
    "columns",
    "convert",
    "direction_of",
    "data_source",
    "fmt",
    "format_table",
    "importance_gate",
    "importances",
    "interactive_figures",
    "is_pruned",
    "kerastuner_trials",
    "leaderboard",
    "leaderboard_rows",
    "load_trials",
    "lr_curve",
    "objective",
    "plot_epoch_history",
    "plot_epoch_time",
    "plot_history",
    "plot_importance",
    "plot_intermediate",
    "plot_lr",
    "plot_parallel",
    "plot_per_class",
    "plot_reproduce",
    "ranked",
    "status_counts",
    "test_metrics_of",
    "trial_curves",
    "write_report",
]
