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


def data_source(manifest: Mapping[str, Any]) -> str:
    """What a run read, in words, for every engine: the CSV's file name, the folder's path or
    the named dataset (never the config's default dataset for a run that read something else)."""
    data = manifest.get("data") or {}
    cfg = (manifest.get("config") or {}).get("data")
    cfg = cfg if isinstance(cfg, Mapping) else {}
    folder = data.get("folder") if isinstance(data.get("folder"), Mapping) else {}
    if folder.get("data_dir"):
        return str(folder["data_dir"])
    if data.get("kind") == "csv" and data.get("source"):
        name = Path(str(data["source"])).name
        return f"{name} (spec {Path(str(data['spec'])).name})" if data.get("spec") else name
    if data.get("kind") == "text_folder" and data.get("source"):
        return str(data["source"])
    if data.get("data_dir"):
        return str(data["data_dir"])
    if isinstance(data.get("dataset"), str) and data["dataset"]:
        return data["dataset"]
    if cfg.get("csv"):
        return Path(str(cfg["csv"])).name
    if cfg.get("data_dir"):
        return str(cfg["data_dir"])
    if cfg.get("spec"):
        return Path(str(cfg["spec"])).name
    return str(cfg.get("dataset") or "—")
