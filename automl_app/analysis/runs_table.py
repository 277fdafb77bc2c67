"""`automl runs`: every run under a folder, one line each (kind, data, trials, best, test)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from automl_app import report, runs
from automl_app.errors import AutomlError, UsageError

Say = Callable[[str], None]


def find_runs(root: str | os.PathLike = "runs") -> list[Path]:
    """Run directories (those holding run.json) at or up to two levels below `root`."""
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"{str(root)!r} is not a directory; pass the folder holding your runs")
    found = [root] if (root / runs.MANIFEST).is_file() else []
    for pattern in (f"*/{runs.MANIFEST}", f"*/*/{runs.MANIFEST}"):
        found += [p.parent for p in sorted(root.glob(pattern))]
    return found


def run_summary(run_dir: str | os.PathLike, root: str | os.PathLike | None = None) -> dict:
    """One line of `automl runs`: what ran, on what, how it went."""
    run_dir = Path(run_dir)
    m = runs.load_manifest(run_dir)
    cfg = m.get("config") or {}
    rows = report.load_trials(run_dir)
    counts = report._status_counts(rows) if rows else {}
    best = (m.get("best_trial") or {}).get("score")
    if best is None and rows:
        _, direction = report.objective(run_dir, m)
        ranked = report.ranked(rows, direction)
        best = ranked[0].get("objective") if ranked else None
    test = m.get("test") or m.get("test_metrics") or {}
    tuner = (cfg.get("tuner") or {}).get("tuner") if isinstance(cfg.get("tuner"), dict) else None
    dataset = report.data_source(m)
    return {
        "name": str(run_dir.relative_to(root)) if root and run_dir != Path(root) else run_dir.name,
        "path": str(run_dir),
        "command": m.get("command"),
        "dataset": dataset,
        "engine": "/".join(str(x) for x in (m.get("engine"), tuner) if x) or "—",
        "trials": (
            f"{counts.get('completed', 0)}/{counts.get('pruned', 0)}/{counts.get('failed', 0)}"
            if rows
            else "—"
        ),
        "best": best,
        "test_accuracy": test.get("accuracy"),
        "wall_seconds": m.get("wall_seconds"),
        "status": m.get("status"),
        "started_at": m.get("started_at"),
    }


def list_runs(root: str | os.PathLike = "runs") -> list[dict[str, Any]]:
    """Summaries of every run under `root`, oldest first."""
    out = []
    for d in find_runs(root):
        try:
            out.append(run_summary(d, root))
        except (AutomlError, json.JSONDecodeError, OSError) as exc:
            out.append({"name": d.name, "path": str(d), "status": f"unreadable: {exc}"})
    return sorted(out, key=lambda r: (str(r.get("started_at") or ""), r["name"]))


def format_runs(rows: Sequence[Mapping[str, Any]]) -> str:
    """The `automl runs` table (trials = completed/pruned/failed)."""
    header = [
        "name",
        "command",
        "dataset",
        "engine",
        "trials c/p/f",
        "best",
        "test acc",
        "wall s",
        "status",
    ]
    keys = [
        "name",
        "command",
        "dataset",
        "engine",
        "trials",
        "best",
        "test_accuracy",
        "wall_seconds",
        "status",
    ]
    body = [[report._fmt(r.get(k)) for k in keys] for r in rows]
    return report.format_table(header, body)
