"""What every part of the report shares: the Skip signal, file names, number formatting."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from automl_app import runs

Say = Callable[[str], None]
REPORT_DIR = "report"
INDEX = "index.html"
# Every PNG the report knows, in the order index.html shows them.
PLOTS = (
    "history",
    "parallel_coordinates",
    "intermediate_values",
    "importance",
    "epoch_time_vs_batch_size",
    "confusion_matrix",
    "per_class",
    "lr_schedule",
    "reproduce",
)


class Skip(Exception):
    """A plot that cannot be drawn for this run; the message says why (shown in the report)."""


def fmt(v: Any) -> str:
    """A cell for a table: '—' for missing, 4 significant-looking digits for floats."""
    if v is None:
        return "—"
    if isinstance(v, float):
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3g}"
        return f"{v:.4f}".rstrip("0").rstrip(".") if abs(v) < 100 else f"{v:.1f}"
    return str(v)


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON file the run may or may not have written (None when absent or unreadable)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def test_metrics_of(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The run's test metrics: `test` for every engine, `test_metrics` in older scratch runs."""
    return dict(runs.test_metrics(manifest) or {})
