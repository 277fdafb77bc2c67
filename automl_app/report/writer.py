"""write_report: refresh RUN_DIR/report/ (trials.csv, PNGs, importance.json, index.html).

A plot or figure that cannot be drawn (no column, no curves, too few trials) is listed as
skipped with its reason, never an error: the report must not break the run that asked for it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from automl_app import runs
from automl_app.errors import UsageError
from automl_app.report import plots as png
from automl_app.report.base import REPORT_DIR, Say, Skip, read_json
from automl_app.report.chance import chance_line
from automl_app.report.figures import interactive_figures
from automl_app.report.html import write_html
from automl_app.report.leaderboard import leaderboard, ranked
from automl_app.report.study import build_study, importance_gate, importances
from automl_app.report.trials import columns, load_trials, objective

_NOT_A_SEARCH = "no trials.csv (not a search)"
# PNGs other commands write into report/ and the report only shows.
_NOT_OURS = ("confusion_matrix",)


def write_report(run_dir: str | os.PathLike, say: Say = print, top: int = 10) -> dict[str, Any]:
    """Refresh RUN_DIR/report/: trials.csv, every plot that applies, index.html; print the board.

    Returns {"index": path, "plots": {name: path}, "figures": [name], "skipped": {name: reason},
    "leaderboard": str, "importance_note": str | None, "chance": dict | None}.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"run directory {str(run_dir)!r} does not exist")
    manifest = runs.load_manifest(run_dir)
    out = run_dir / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    rows = load_trials(run_dir)
    name, direction = objective(run_dir, manifest)
    chance = chance_line(manifest)
    plots: dict[str, Path] = {}
    skipped: dict[str, str] = {}

    def attempt(plot: str, fn: Callable[[], Path]) -> None:
        try:
            plots[plot] = fn()
        except Skip as exc:
            skipped[plot] = str(exc)
        except Exception as exc:  # a plot must never break the run that asked for the report
            skipped[plot] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"

    imp: dict[str, float] = {}
    note: str | None = None
    study = None
    if rows:
        cols = columns(rows)
        lead = [c for c in ("trial_id", "status") if c in cols]
        runs.write_csv(out / runs.TRIALS_CSV, ranked(rows, direction), first=lead)
        study = build_study(run_dir, rows)
        note = importance_gate(study)
        if note is None:
            try:
                imp = importances(study)
            except Skip as exc:
                note = str(exc)
        attempt("history", lambda: png.plot_history(study, out / "history.png", name, chance))
        attempt(
            "parallel_coordinates",
            lambda: png.plot_parallel(study, out / "parallel_coordinates.png", name, imp),
        )
        attempt(
            "intermediate_values",
            lambda: png.plot_intermediate(study, out / "intermediate_values.png", name),
        )
        if imp:
            runs.atomic_write_json(out / "importance.json", imp)
            attempt("importance", lambda: png.plot_importance(imp, out / "importance.png", name))
        else:
            skipped["importance"] = note or "not computed"
            (out / "importance.json").unlink(missing_ok=True)
        attempt(
            "epoch_time_vs_batch_size",
            lambda: png.plot_epoch_time(rows, out / "epoch_time_vs_batch_size.png"),
        )
    else:
        attempt("history", lambda: png.plot_epoch_history(manifest, out / "history.png", chance))
        for p in ("parallel_coordinates", "intermediate_values", "importance"):
            skipped[p] = _NOT_A_SEARCH
        skipped["epoch_time_vs_batch_size"] = _NOT_A_SEARCH
    cm = out / "confusion_matrix.png"
    if cm.is_file():
        plots["confusion_matrix"] = cm  # written by evaluate.write_classification_report
    else:
        skipped["confusion_matrix"] = "no confusion_matrix.png (the run did not finish evaluation)"
    attempt(
        "per_class",
        lambda: png.plot_per_class(out / "classification_report.json", out / "per_class.png"),
    )
    attempt("lr_schedule", lambda: png.plot_lr(manifest, out / "lr_schedule.png"))
    repro = read_json(out / "reproduce.json")
    if repro:
        attempt("reproduce", lambda: png.plot_reproduce(repro, out / "reproduce.png"))
    else:
        skipped["reproduce"] = "not run (automl reproduce RUN_DIR)"
    for stale in set(skipped) - set(_NOT_OURS):  # a plot from an earlier report is now wrong
        (out / f"{stale}.png").unlink(missing_ok=True)

    figures, fig_skipped = interactive_figures(study, name, imp, chance, manifest)
    shown_skips = dict(skipped)
    for fig_name, reason in fig_skipped.items():
        if shown_skips.get(fig_name) != reason:
            shown_skips[f"{fig_name} (interactive)"] = reason
    board = leaderboard(run_dir, top=top)
    index = write_html(
        run_dir,
        manifest,
        rows,
        direction=direction,
        objective_name=name,
        plots=plots,
        figures=figures,
        skipped=shown_skips,
        imp=imp,
        importance_note=note,
        chance=chance,
        repro=repro,
        top=top,
    )
    say(board)
    if chance and chance.get("within_noise"):
        say(f"warning: test accuracy is within noise of chance ({chance['basis']})")
    say(
        f"report: {index} ({len(plots)} plots, {len(figures)} interactive figures; "
        f"skipped: {', '.join(sorted(skipped)) or 'none'})"
    )
    return {
        "index": str(index),
        "plots": {k: str(v) for k, v in plots.items()},
        "figures": list(figures),
        "skipped": skipped,
        "leaderboard": board,
        "importance_note": note,
        "chance": chance,
    }
