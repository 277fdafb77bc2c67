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


def _kind(m: Mapping[str, Any]) -> dict[str, Any]:
    """engine (kerastuner, autokeras, train-scratch) and task (image, text, structured, …)."""
    command = str(m.get("command") or "")
    engine = m.get("engine") or ("scratch" if command == "train-scratch" else "kerastuner")
    if engine == "scratch" or command == "train-scratch":
        model = (m.get("config") or {}).get("model") or (m.get("recipe") or {}).get("name")
        return {"engine": "train-scratch", "task": "image_classification", "model": model}
    task = m.get("autokeras_task") or (m.get("autokeras") or {}).get("task")
    words = command.split()
    data_kind = words[1] if len(words) > 1 and words[0] == "search" else None
    if engine == "autokeras" and m.get("autokeras_task"):
        return {"engine": "autokeras", "task": m["autokeras_task"]}
    if data_kind and task in ("classification", "regression"):
        return {"engine": engine, "task": f"{data_kind}_{task}"}
    return {"engine": engine, "task": f"{data_kind}_classification" if data_kind else None}


def _finished_at(m: Mapping[str, Any]) -> str | None:
    """started_at + wall_seconds for a run that ended (run.json keeps no end time)."""
    import datetime as dt

    if m.get("finished_at"):
        return str(m["finished_at"])
    started, wall = m.get("started_at"), m.get("wall_seconds")
    if not started or not isinstance(wall, (int, float)) or m.get("status") == "running":
        return None
    try:
        t0 = dt.datetime.strptime(str(started), "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return None
    return (t0 + dt.timedelta(seconds=float(wall))).strftime("%Y-%m-%dT%H:%M:%S%z")


def _clean(v: Any) -> Any:
    """Strict JSON: NaN/inf → null, numpy scalars → numbers, anything else odd → its text."""
    import math

    if isinstance(v, Mapping):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if v is None or isinstance(v, (str, int, bool)):
        return v
    if hasattr(v, "item"):
        return _clean(v.item())
    return str(v)


def _trial_counts(run_dir: Path) -> dict[str, int] | None:
    rows = report.load_trials(run_dir)
    if not rows:
        return None
    counts = report._status_counts(rows)
    return {k: int(counts.get(k, 0)) for k in ("completed", "pruned", "failed")}


def run_record(run_dir: str | os.PathLike, root: str | os.PathLike | None = None) -> dict:
    """One run for scripts (`automl runs --json`): kind, data, status, best objective, test
    metrics, path and times; every value JSON-serialisable (NaN → null)."""
    run_dir = Path(run_dir)
    m = runs.load_manifest(run_dir)
    line = run_summary(run_dir, root)
    cfg = m.get("config") or {}
    tuner = cfg.get("tuner") if isinstance(cfg.get("tuner"), Mapping) else {}
    objective = (m.get("best_trial") or {}).get("objective") or m.get("objective")
    objective = objective or tuner.get("objective") or "val_accuracy"
    best_trial = (m.get("best_trial") or {}).get("trial_id")
    value = line["best"]
    curve = (
        (m.get("history") or {}).get(objective) if isinstance(m.get("history"), Mapping) else None
    )
    if value is None and curve:  # train-scratch: no trials, its history's best epoch
        pick = min if report.direction_of(objective) == "min" else max
        value = pick(float(v) for v in curve)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = float(value)
    return _clean(
        {
            "name": line["name"],
            "path": str(run_dir.resolve()),
            "command": m.get("command"),
            "kind": _kind(m),
            "data": report.data_source(m),
            "status": m.get("status"),
            "error": m.get("error"),
            "best": {"objective": objective, "value": value, "trial_id": best_trial},
            "test": dict(runs.test_metrics(m) or {}),
            "trials": _trial_counts(run_dir),
            "created_at": m.get("started_at"),
            "finished_at": _finished_at(m),
            "wall_seconds": m.get("wall_seconds"),
        }
    )


def list_run_records(root: str | os.PathLike = "runs") -> list[dict[str, Any]]:
    """`automl runs ROOT --json`: every run as a run_record, oldest first; an unreadable run
    is an entry with status "unreadable" and the reason, never a crash."""
    out = []
    for d in find_runs(root):
        try:
            out.append(run_record(d, root))
        except (AutomlError, json.JSONDecodeError, OSError) as exc:
            out.append({"name": d.name, "path": str(d.resolve()), "status": "unreadable",
                        "error": str(exc)})  # fmt: skip
    return sorted(out, key=lambda r: (str(r.get("created_at") or ""), r["name"]))
