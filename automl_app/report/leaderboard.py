"""The leaderboard: trials ranked by the objective, as a terminal table or HTML cells."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from automl_app.report.base import fmt
from automl_app.report.trials import (
    LEADER_METRICS,
    columns,
    is_pruned,
    load_trials,
    objective,
    status_counts,
)


def ranked(rows: Sequence[Mapping[str, Any]], direction: str) -> list[Mapping[str, Any]]:
    """Trials with an objective, best first; the rest (failed, running) after them."""
    scored = [r for r in rows if isinstance(r.get("objective"), (int, float))]
    scored.sort(key=lambda r: r["objective"], reverse=direction == "max")
    rest = [r for r in rows if r not in scored]
    return scored + rest


def leaderboard_rows(
    rows: Sequence[Mapping[str, Any]], direction: str, top: int = 10
) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the leaderboard: metrics present in the table, then every hp."""
    cols = columns(rows)
    metrics = [c for c in LEADER_METRICS if c in cols]
    hps = [c for c in cols if c.startswith("hp_")]
    header = ["rank", "trial", "status", *metrics, *[h[3:] for h in hps]]
    body = []
    for i, r in enumerate(ranked(rows, direction)[:top], start=1):
        status = "pruned" if is_pruned(r) and r.get("status") != "pruned" else r.get("status")
        body.append(
            [str(i), str(r.get("trial_id")), str(status)]
            + [fmt(r.get(c)) for c in metrics]
            + [fmt(r.get(h)) for h in hps]
        )
    return header, body


def format_table(header: Sequence[str], body: Iterable[Sequence[str]]) -> str:
    """Aligned plain-text table."""
    body = [list(map(str, r)) for r in body]
    widths = [max(len(str(h)), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(line.rstrip() for line in lines)


def leaderboard(run_dir: str | os.PathLike, top: int = 10) -> str:
    """The terminal leaderboard: top trials with hyperparameters, objective, time, size, latency."""
    rows = load_trials(run_dir)
    if not rows:
        return "(no trials.csv: this run has no trials)"
    name, direction = objective(run_dir)
    header, body = leaderboard_rows(rows, direction, top)
    summary = ", ".join(f"{n} {k}" for k, n in status_counts(rows).items())
    return (
        f"top {len(body)} of {len(rows)} trials by {name} ({direction}); {summary}\n"
        + format_table(header, body)
    )
