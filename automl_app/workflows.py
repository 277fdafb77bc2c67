"""One function per command, and the one lifecycle they share: also the Python API.

    from automl_app import workflows
    from automl_app.config import SearchConfig, TunerConfig
    manifest = workflows.search(SearchConfig(tuner=TunerConfig(max_trials=2, epochs=1)))

Every command that trains goes through `run_plan`: the engine checks its options and returns a
Plan (nothing written yet), then runs.open_run opens RUN_DIR (lock, run.json, --resume /
--overwrite), the engine's `fit` trains, evaluates once on the test split and exports, and the
lifecycle finishes the run (status, wall time), regenerates the report and logs to MLflow — the
same for KerasTuner, AutoKeras and train-scratch. Ctrl-C leaves `status: interrupted` and a run
that `--resume` continues. `say` receives the lines the CLI prints.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from automl_app import runs
from automl_app.config import SearchConfig, TrainConfig
from automl_app.engines.base import Plan
from automl_app.errors import UsageError

Say = Callable[[str], None]


def plan_for(cfg: SearchConfig | TrainConfig) -> Plan:
    """The engine's Plan for a config (options checked; nothing written)."""
    if isinstance(cfg, TrainConfig):
        from automl_app.engines import scratch

        return scratch.plan_train(cfg)
    if cfg.engine == "autokeras":
        from automl_app.engines.autokeras import engine as ak

        plans = {"image": ak.plan_image, "text": ak.plan_text,
                 "structured": ak.plan_structured, "multi": ak.plan_multi}  # fmt: skip
        return plans[cfg.task](cfg)
    if cfg.engine != "kerastuner":
        raise UsageError(f"--engine must be one of kerastuner, autokeras. Received: {cfg.engine!r}")
    if cfg.task != "image":
        raise UsageError(f"search {cfg.task} needs --engine autokeras (KerasTuner searches images)")
    from automl_app.engines.kerastuner.engine import plan_search

    return plan_search(cfg)


def run_plan(plan: Plan, say: Say = print) -> dict[str, Any]:
    """The lifecycle: open the run, fit, finish, report; returns the final run.json."""
    from automl_app.tf_env import set_verbose

    cfg = plan.cfg
    set_verbose(cfg.verbose)
    if cfg.mlflow:
        from automl_app.integrations.mlflow import require_mlflow

        require_mlflow()  # exit 2 before anything is written when the extra is missing
    with runs.open_run(
        plan.run_dir,
        command=plan.command,
        engine=plan.engine,
        config=cfg.to_dict(),
        overwrite=cfg.overwrite,
        resume=cfg.resume,
        say=say,
        **plan.fields,
    ) as run:
        fields = dict(plan.fit(run, say))
        manifest = run.finish(**fields)
        _report(run.dir, say)
        if cfg.mlflow:
            from automl_app.integrations.mlflow import log_mlflow

            log_mlflow(run.dir, cfg.mlflow, say=say)
    say(f"report: {run.dir / 'report'}; wall time {manifest['wall_seconds']:.1f}s")
    return manifest


def _report(run_dir: Path, say: Say) -> None:
    """Regenerate report/ (plots + index.html); a plot never fails a run."""
    from automl_app import report

    try:
        report.write_report(run_dir, say=lambda _line: None)
    except Exception as exc:  # plotting problems are reported, not fatal
        say(f"warning: report not regenerated ({type(exc).__name__}: {exc})")


def search(cfg: SearchConfig, say: Say = print) -> dict[str, Any]:
    """`automl search image|text|structured|multi`: search, evaluate once on test, export."""
    return run_plan(plan_for(cfg), say)


def train_scratch(cfg: TrainConfig, say: Say = print) -> dict[str, Any]:
    """`automl train-scratch MODEL`: one recipe, no search, evaluate once on test, export."""
    return run_plan(plan_for(cfg), say)


def worker(run_dir: str | Path, say: Say = print) -> None:
    """One role (chief or worker) of a parallel KerasTuner search; see engines/kerastuner."""
    from automl_app.engines.kerastuner.parallel import worker as run_worker

    run_worker(run_dir, say=say)


def scan_images(
    data_dir: str | os.PathLike,
    *,
    output: str | os.PathLike | None = None,
    max_pixels: int = 50_000_000,
    cache: str | os.PathLike | None = None,
) -> Any:
    """Scan every file below `data_dir`; write the blacklist to `output` if given.

    Returns the scan.ScanResult (files, bad ones with reasons, duplicate groups, summary()).
    """
    from automl_app.data import scan
    from automl_app.errors import DataError

    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"{str(root)!r} is not a directory; pass the image folder to scan")
    if max_pixels < 1:
        raise UsageError(f"--max-pixels must be a positive integer. Received: {max_pixels!r}")
    result = scan.scan_folder(
        root, max_pixels=max_pixels, cache_path=cache or scan.default_cache_path(root)
    )
    if output is not None:
        scan.write_blacklist(result, output)
    return result


def export_run(run_dir: str | Path, out: str | Path, say: Say = print) -> dict[str, Any]:
    """Re-export a finished run's best model (best/model.keras) to `out`, with the same checks."""
    import numpy as np

    from automl_app import export
    from automl_app.data import source
    from automl_app.tf_env import tf

    run_dir = Path(run_dir)
    manifest = runs.load_manifest(run_dir)
    keras_path = run_dir / "best" / "model.keras"
    if manifest.get("status") != "completed" or not keras_path.is_file():
        raise UsageError(
            f"run {str(run_dir)!r} has no finished best model ({keras_path} missing;"
            f" status {manifest.get('status')!r})"
        )
    if not (manifest.get("data") or {}).get("image_shape"):
        raise UsageError(
            f"run {str(run_dir)!r} is a {manifest.get('command')!r} run; re-export works on image "
            f"runs (its best/saved_model is already the export)"
        )
    tf()
    import keras

    with runs.lock(run_dir).hold():
        model = keras.saving.load_model(keras_path)
        spec = source.spec_from_manifest(manifest)
        h, w, c = manifest["data"]["image_shape"]
        sample = np.random.default_rng(0).integers(0, 256, size=(16, h, w, c), dtype=np.uint8)
        out = Path(out)
        info = export.export_saved_model(model, spec, sample, out)
        if (run_dir / "best" / "labels.json").is_file():
            runs.atomic_write_text(
                out.parent / f"{out.name}.labels.json",
                (run_dir / "best" / "labels.json").read_text(),
            )
    say(f"exported {keras_path} to {out} (serve: {info['input']})")
    return info
