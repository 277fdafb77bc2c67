"""Interactive figures for index.html: Optuna's plotly visualisations, hover, zoom and filter.

Each figure becomes a <div> whose script calls the plotly.js that html.py embeds once in the
page (`plotly_js()`), so the report works offline and stays one file. A figure that does not
apply is skipped with its reason, exactly like the PNGs.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

from automl_app.report.base import Skip
from automl_app.report.plots import axis_labels
from automl_app.report.study import completed, top_params

PARALLEL_HTML_PARAMS = 12  # rotated, abbreviated labels keep twelve axes apart at page width
SLICE_PARAMS = 6
# Titles in the order the page shows them (the keys are the figure names).
FIGURES = {
    "history": "Objective per trial",
    "parallel_coordinates": "Parallel coordinates",
    "intermediate_values": "Learning curves",
    "importance": "Hyperparameter importance",
    "slice": "Objective against each hyperparameter",
}
_CONFIG = {"displaylogo": False, "responsive": True}


def plotly_js() -> str:
    """The plotly.js bundle the Python package ships (no CDN, no network)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def figure_div(fig, div_id: str) -> str:
    """One figure as a <div> plus the script that draws it with the page's plotly.js."""
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=_CONFIG)


def _chance_hline(fig, chance: Mapping[str, Any] | None, objective_name: str) -> None:
    if chance and "accuracy" in objective_name:
        fig.add_hline(
            y=chance["rate"],
            line_dash="dash",
            line_color="gray",
            annotation_text=f"chance ({chance['basis']})",
            annotation_position="bottom right",
        )


def history_figure(study, objective_name: str, chance: Mapping[str, Any] | None = None):
    """Optuna's optimization history with the chance line when the objective is an accuracy."""
    from optuna.visualization import plot_optimization_history

    if not completed(study):
        raise Skip("no completed trial")
    fig = plot_optimization_history(study, target_name=objective_name)
    fig.update_layout(title=f"{objective_name} per trial, best so far")
    _chance_hline(fig, chance, objective_name)
    return fig


def parallel_figure(
    study,
    objective_name: str,
    imp: Mapping[str, float] | None = None,
    limit: int = PARALLEL_HTML_PARAMS,
):
    """Optuna's parallel coordinates over the most important hyperparameters, labels rotated.

    Hover a line for its trial's values; the full names are in the leaderboard's header.
    """
    from optuna.visualization import plot_parallel_coordinate

    done = completed(study)
    if len(done) < 2 or not any(t.params for t in done):
        raise Skip("needs at least 2 completed trials with hyperparameters")
    shown, left_out = top_params(study, imp, limit)
    if not shown:
        raise Skip("no hyperparameter took more than one value")
    fig = plot_parallel_coordinate(study, params=shown, target_name=objective_name)
    labels = axis_labels(objective_name, shown)
    if len(fig.layout.xaxis.ticktext or ()) == len(labels):  # Optuna cuts names at 17 chars
        fig.update_xaxes(ticktext=labels)
    fig.update_xaxes(tickangle=-30)
    by = "importance" if imp else "name"
    more = f"; {len(left_out)} more left out" if left_out else ""
    fig.update_layout(
        title=f"Hyperparameters and {objective_name} (top {len(shown)} by {by}{more})",
        margin={"t": 80, "b": 120},
        height=520,
    )
    return fig


def intermediate_figure(study, objective_name: str):
    """Optuna's per-epoch curves of every trial (pruned ones stop where they were pruned)."""
    from optuna.visualization import plot_intermediate_values

    if not any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        raise Skip("no per-epoch values in tuner/trial_*/trial.json or tensorboard/")
    fig = plot_intermediate_values(study)
    fig.update_layout(
        title=f"{objective_name} per epoch", xaxis_title="epoch", yaxis_title=objective_name
    )
    return fig


def importance_figure(study, imp: Mapping[str, float], objective_name: str):
    """Optuna's importance bars, drawn from the fANOVA values already computed (not twice)."""
    from optuna.importance import BaseImportanceEvaluator
    from optuna.visualization import plot_param_importances

    class Computed(BaseImportanceEvaluator):
        """The importances study.importances() returned, handed to Optuna's own plot."""

        def evaluate(self, study, params=None, *, target=None) -> dict[str, float]:
            return {k: v for k, v in imp.items() if params is None or k in params}

    return plot_param_importances(
        study, evaluator=Computed(), params=list(imp), target_name=objective_name
    )


def slice_figure(study, objective_name: str, imp: Mapping[str, float] | None = None):
    """Optuna's slice plot: the objective against each of the most important hyperparameters."""
    from optuna.visualization import plot_slice

    shown, _ = top_params(study, imp, SLICE_PARAMS)
    if len(completed(study)) < 2 or not shown:
        raise Skip("needs at least 2 completed trials and a hyperparameter that varied")
    fig = plot_slice(study, params=shown, target_name=objective_name)
    fig.update_layout(width=None, height=380)
    return fig


def epoch_history_figure(manifest: Mapping[str, Any], chance: Mapping[str, Any] | None = None):
    """Per-epoch metrics of a single training run (scratch runs have no trials)."""
    import plotly.graph_objects as go

    hist = {
        k: v
        for k, v in (manifest.get("history") or {}).items()
        if k not in ("lr", "learning_rate") and isinstance(v, list)
    }
    if not hist:
        raise Skip("no trials.csv and no per-epoch history in run.json")
    fig = go.Figure()
    for k, v in sorted(hist.items()):
        fig.add_scatter(x=list(range(1, len(v) + 1)), y=v, mode="lines+markers", name=k)
    if any("accuracy" in k for k in hist):
        _chance_hline(fig, chance, "accuracy")
    fig.update_layout(title="Metrics per epoch", xaxis_title="epoch")
    return fig


def interactive_figures(
    study,
    objective_name: str,
    imp: Mapping[str, float],
    chance: Mapping[str, Any] | None,
    manifest: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, str]]:
    """({name: plotly figure}, {name: reason not drawn}) for the page, in FIGURES order."""
    figs: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    if study is None:
        makers: dict[str, Callable[[], Any]] = {
            "history": lambda: epoch_history_figure(manifest, chance)
        }
    else:
        makers = {
            "history": lambda: history_figure(study, objective_name, chance),
            "parallel_coordinates": lambda: parallel_figure(study, objective_name, imp),
            "intermediate_values": lambda: intermediate_figure(study, objective_name),
            "slice": lambda: slice_figure(study, objective_name, imp),
        }
        if imp:
            makers["importance"] = lambda: importance_figure(study, imp, objective_name)
    for name in FIGURES:
        if name not in makers:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna's ExperimentalWarning on every plot
                figs[name] = makers[name]()
        except Skip as exc:
            skipped[name] = str(exc)
        except Exception as exc:  # a figure must never break the report
            skipped[name] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return figs, skipped
