"""`--mlflow URI`: log a finished run's trials, test metrics and exported model to MLflow."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from automl_app import report, runs
from automl_app.errors import UsageError

Say = Callable[[str], None]


def require_mlflow() -> Any:
    """The mlflow module, or a UsageError naming the extra to install (check before training)."""
    try:
        import mlflow
    except ImportError:
        raise UsageError(
            "--mlflow needs MLflow, which is not installed: pip install 'automl-app[mlflow]'"
        ) from None
    return mlflow


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flat(v, f"{key}."))
        else:
            out[key] = v
    return out


def log_mlflow(
    run_dir: str | os.PathLike,
    uri: str,
    experiment: str | None = None,
    say: Say = print,
) -> str:
    """Log a finished run to MLflow: one parent run, one nested run per trial, the export.

    Trials carry their hyperparameters as params, status as a tag, and per-epoch metrics (from
    KerasTuner's trial.json or TensorBoard logs); the parent carries the config, test metrics,
    report/ and best/ as artifacts. Returns the parent run's id.
    """
    import logging

    mlflow = require_mlflow()
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    run_dir = Path(run_dir)
    manifest = runs.load_manifest(run_dir)
    rows = report.load_trials(run_dir)
    if uri.startswith("file:") or "://" not in uri:
        # MLflow 3 keeps the file store behind an opt-in; a local folder is what was asked for.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(uri)
    name = experiment or f"automl-{(manifest.get('data') or {}).get('dataset') or run_dir.name}"
    if mlflow.get_experiment_by_name(name) is None:
        location = None
        if uri.startswith("sqlite:///"):  # artifacts beside the database, not in the cwd
            location = (Path(uri[len("sqlite:///") :]).parent / "mlartifacts").resolve().as_uri()
        mlflow.create_experiment(name, artifact_location=location)
    mlflow.set_experiment(name)
    curves: dict[str, dict[str, list]] = {}
    for metric in ("loss", "accuracy", "val_loss", "val_accuracy"):
        for tid, pts in report.trial_curves(run_dir, metric).items():
            curves.setdefault(tid, {})[metric] = pts
    with mlflow.start_run(run_name=run_dir.name) as parent:
        params = {k: v for k, v in _flat(manifest.get("config") or {}).items() if v is not None}
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.set_tags(
            {
                "command": manifest.get("command"),
                "status": manifest.get("status"),
                "run_dir": str(run_dir),
            }
        )
        test = manifest.get("test") or manifest.get("test_metrics") or {}
        mlflow.log_metrics(
            {f"test_{k}": float(v) for k, v in test.items() if isinstance(v, (int, float))}
        )
        for row in rows:
            tid = str(row.get("trial_id"))
            with mlflow.start_run(run_name=f"trial {tid}", nested=True):
                mlflow.log_params(
                    {k[3:]: v for k, v in row.items() if k.startswith("hp_") and v is not None}
                )
                status = "pruned" if report.is_pruned(row) else str(row.get("status"))
                mlflow.set_tags({"status": status, "trial_id": tid})
                if row.get("error"):
                    mlflow.set_tag("error", str(row["error"])[:500])
                for metric, pts in curves.get(tid, {}).items():
                    for epoch, value in pts:
                        if math.isfinite(value):
                            mlflow.log_metric(metric, value, step=int(epoch))
                final = {
                    k: float(row[k])
                    for k in report.LEADER_METRICS
                    if isinstance(row.get(k), (int, float)) and math.isfinite(float(row[k]))
                }
                if final:
                    mlflow.log_metrics({f"final_{k}": v for k, v in final.items()})
        for sub, dest in (("report", "report"), ("best", "best")):
            if (run_dir / sub).is_dir():
                mlflow.log_artifacts(str(run_dir / sub), artifact_path=dest)
        run_id = parent.info.run_id
    say(f"mlflow: logged {len(rows)} trials to {uri} (experiment {name!r}, run {run_id})")
    return run_id
