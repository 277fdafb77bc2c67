"""The KerasTuner engine: a search over a YAML space (or the user's hypermodel) with
KerasTuner's tuners, then one evaluation on the test split and the checked export.

`plan_search(cfg)` validates everything that needs no data and returns a Plan; the lifecycle
(workflows.py) opens the run and calls its `fit`. With cfg.resume an interrupted run continues
from KerasTuner's saved project: finished trials are kept, the one in flight is re-run, and
max_trials may be raised.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from automl_app import runs
from automl_app.config import SearchConfig, validate_search
from automl_app.engines.base import Plan
from automl_app.engines.kerastuner.parallel import parallel_stop_summary, run_parallel
from automl_app.engines.kerastuner.setup import load_space, make_search_tuner
from automl_app.errors import SearchError

Say = Callable[[str], None]
EXPORT_CHECK_EXAMPLES = 64


def plan_search(cfg: SearchConfig) -> Plan:
    """Check the options and the space (exit 2 before anything is written); the Plan to run."""
    from automl_app.data import source

    validate_search(cfg)
    space = load_space(cfg)
    source.precheck(cfg.data)  # offline files / folder present, before any directory is written

    def fit(run: runs.Run, say: Say) -> dict[str, Any]:
        return _search(cfg, space, run, say)

    fields = {"space": None if space is None else {"model": space.model, "source": space.source}}
    return Plan("search image", "kerastuner", cfg, fit, fields)


def _search(cfg: SearchConfig, space, run: runs.Run, say: Say) -> dict[str, Any]:
    from automl_app.data import source
    from automl_app.data.fingerprint import leakage
    from automl_app.tf_env import tf
    from automl_app.tuning import budget
    from automl_app.tuning.tuners import completed_trials, load_rows, run_search

    run_dir = run.dir
    if run.resumed:
        say(f"{len(load_rows(run_dir))} trials recorded so far")
    deadline = budget.Deadline.after(cfg.tuner.time_budget) if cfg.tuner.time_budget else None
    data = source.load_image_data(cfg.data, verbose=cfg.verbose)
    for line in source.describe(data):
        say(line)
    record = source.data_record(data)
    run.check_same_data(
        record["fingerprint"],
        "same --dataset/--data-dir, --image-size, --seed, --max-samples and --val-fraction",
    )
    run.update(
        data=record,
        deadline=None if deadline is None else {"at": deadline.at, "seconds": deadline.seconds},
    )
    tf()
    import keras

    keras.utils.set_random_seed(cfg.tuner.seed)
    if cfg.tuner.workers > 1 or cfg.tuner.oracle_bind not in ("127.0.0.1", "localhost"):
        launched = run_parallel(cfg, run_dir, say)
        tuner, _ = make_search_tuner(cfg, space, data, run_dir, say, None, lr_find=False)
        stop = parallel_stop_summary(tuner, cfg, launched)
    else:
        tuner, fit_args = make_search_tuner(cfg, space, data, run_dir, say, deadline)
        say(
            f"search: {cfg.tuner.tuner} over "
            f"{space.source if space else cfg.space.hypermodel}, max {cfg.tuner.max_trials} "
            f"trials x {cfg.tuner.epochs} epochs, objective {tuner.oracle.objective.name} "
            f"({tuner.oracle.objective.direction})"
            + (f", prune {cfg.tuner.prune}" if cfg.tuner.prune != "none" else "")
            + (f", budget {cfg.tuner.time_budget:g}s" if cfg.tuner.time_budget else "")
        )
        stop = run_search(
            tuner,
            epochs=cfg.tuner.epochs,
            tensorboard_dir=run_dir / "tensorboard",
            prune=cfg.tuner.prune,
            min_epochs=cfg.tuner.min_epochs,
            deadline=deadline,
            **fit_args,
        )
    run.update(search=stop)
    done = completed_trials(tuner)
    if not done:
        first = getattr(tuner, "first_failure", None)
        raise SearchError(
            "no trial completed"
            + (f"; first failure: {first.strip().splitlines()[-1]}" if first else "")
            + (f" (search stopped: {stop['stop_reason']})" if stop.get("stop_reason") else "")
        )
    say(
        f"search stopped: {stop['stop_reason'] or 'done'} after {stop['trials']} trials "
        f"({stop['completed']} completed, {stop['failed']} failed)"
    )
    if stop.get("failure_message"):  # stopped by --max-failures; the best finished trial counts
        say(f"warning: {stop['failure_message']}")
    best_trial = done[0]
    best_model = tuner.get_best_models(1)[0]
    search_seconds = run.elapsed()

    # The test split is read here, once.
    x_test, y_test = data.test()
    result = _evaluate_and_export(best_model, x_test, y_test, data, run_dir, cfg, best_trial)
    say(f"best trial {best_trial.trial_id}: {tuner.oracle.objective.name}={best_trial.score:.4f}")
    say(
        f"test accuracy {result['test']['accuracy']:.4f}, loss {result['test']['loss']:.4f} "
        f"on {result['test']['examples']} examples"
    )
    say(f"model written to {run_dir / 'best' / 'saved_model'} (serve: {result['export']['input']})")
    return {
        "trials": {"total": len(tuner.oracle.trials), "completed": len(done)},
        "stop_reason": stop["stop_reason"],
        "best_trial": {
            "trial_id": best_trial.trial_id,
            "score": best_trial.score,
            "hyperparameters": best_trial.hyperparameters.values,
        },
        "test": result["test"],
        "leakage": leakage(data.x_train, x_test, data.x_val),
        "export": result["export"],
        "search_seconds": round(search_seconds, 2),
    }


def _evaluate_and_export(
    model, x_test, y_test, data, run_dir: Path, cfg: SearchConfig, best_trial
) -> dict[str, Any]:
    from automl_app import evaluate, export
    from automl_app.export.runspec import serving_spec

    info = data.info
    spec = serving_spec(data)
    probs = evaluate.probabilities(model, x_test, spec)
    metrics = evaluate.write_classification_report(
        y_test, probs, info.class_names, run_dir / "report"
    )
    card = {
        "dataset": info.name,
        "class_names": list(info.class_names),
        "image_shape": list(info.image_shape),
        "best_trial": best_trial.trial_id,
        "hyperparameters": best_trial.hyperparameters.values,
        "test": metrics,
        "config": cfg.to_dict(),
    }
    sample = x_test[:EXPORT_CHECK_EXAMPLES]
    info_export = export.export_best(
        model, spec, sample, run_dir / "best", labels=list(info.class_names), card=card
    )
    return {"test": metrics, "export": info_export}
