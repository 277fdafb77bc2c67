"""One plain function per command: the data flow of DESIGN.md, also the Python API.

    from automl_app import workflows
    from automl_app.config import SearchConfig, TunerConfig
    summary = workflows.search(SearchConfig(tuner=TunerConfig(max_trials=2, epochs=1)))

Each function takes a config, writes one run directory and returns a JSON-able summary; `say`
receives the lines the CLI prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from automl_app import runs
from automl_app.config import SearchConfig, validate_search
from automl_app.errors import AutomlError, ConfigError, SearchError

Say = Callable[[str], None]
DEFAULT_SPACE = {"image": "cnn"}
EXPORT_CHECK_EXAMPLES = 64


def search(cfg: SearchConfig, say: Say = print) -> dict[str, Any]:
    """Search a model for a named image dataset; evaluate once on test; export the best."""
    from automl_app import models, spaces
    from automl_app.tf_env import set_verbose

    validate_search(cfg)
    set_verbose(cfg.verbose)
    space = None
    if cfg.space.hypermodel is None:
        space = spaces.load(
            cfg.space.space or DEFAULT_SPACE[cfg.task],
            known=models.known(),
            overrides=cfg.space.overrides,
        )
    from automl_app.data import datasets

    if cfg.data.dataset in datasets.RAW_FILES:
        datasets.precheck_offline(cfg.data.dataset)  # before any directory is written
    run_dir = runs.prepare_run_dir(cfg.resolved_run_dir(), overwrite=cfg.overwrite)
    t_start = time.perf_counter()
    runs.start(
        run_dir,
        "search image",
        cfg.to_dict(),
        engine="kerastuner",
        space=None if space is None else {"model": space.model, "source": space.source},
    )
    try:
        summary = _search(cfg, space, run_dir, say, t_start)
    except BaseException as exc:
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        runs.update(
            run_dir,
            status=status,
            error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            wall_seconds=round(time.perf_counter() - t_start, 2),
        )
        raise
    return summary


def _search(cfg: SearchConfig, space, run_dir: Path, say: Say, t_start: float) -> dict[str, Any]:
    from automl_app.data import datasets
    from automl_app.data.fingerprint import fingerprint, leakage
    from automl_app.tf_env import tf

    data = datasets.load(
        cfg.data.dataset,
        seed=cfg.data.seed,
        val_fraction=cfg.data.val_fraction,
        max_samples=cfg.data.max_samples,
        verbose=cfg.verbose,
    )
    info = data.info
    say(
        f"data: {info.name} ({info.source}) train={len(data.x_train)} val={len(data.x_val)} "
        f"classes={info.num_classes} image={'x'.join(map(str, info.image_shape))}"
    )
    runs.update(
        run_dir,
        data={
            "dataset": info.name,
            "source": info.source,
            "image_shape": list(info.image_shape),
            "class_names": list(info.class_names),
            "scale": info.scale,
            "train_examples": len(data.x_train),
            "val_examples": len(data.x_val),
            "fingerprint": {
                "train": fingerprint(data.x_train, data.y_train),
                "val": fingerprint(data.x_val, data.y_val),
            },
        },
    )
    tf()
    import keras

    keras.utils.set_random_seed(cfg.tuner.seed)
    tuner, fit_args = _make_tuner(cfg, space, data, run_dir, say)
    say(
        f"search: {cfg.tuner.tuner} over "
        f"{space.source if space else cfg.space.hypermodel}, max {cfg.tuner.max_trials} trials x "
        f"{cfg.tuner.epochs} epochs, objective {cfg.tuner.objective}"
    )
    from automl_app.tuning.tuners import completed_trials, run_search

    run_search(tuner, epochs=cfg.tuner.epochs, tensorboard_dir=run_dir / "tensorboard", **fit_args)
    done = completed_trials(tuner)
    if not done:
        first = getattr(tuner, "first_failure", None)
        raise SearchError(
            "no trial completed"
            + (f"; first failure: {first.strip().splitlines()[-1]}" if first else "")
        )
    best_trial = done[0]
    best_model = tuner.get_best_models(1)[0]
    search_seconds = time.perf_counter() - t_start

    # The test split is read here, once.
    x_test, y_test = data.test()
    result = _evaluate_and_export(best_model, x_test, y_test, info, run_dir, cfg, best_trial)
    result["leakage"] = leakage(data.x_train, x_test, data.x_val)
    manifest = runs.update(
        run_dir,
        status="completed",
        trials={"total": len(tuner.oracle.trials), "completed": len(done)},
        best_trial={
            "trial_id": best_trial.trial_id,
            "score": best_trial.score,
            "hyperparameters": best_trial.hyperparameters.values,
        },
        test=result["test"],
        leakage=result["leakage"],
        export=result["export"],
        search_seconds=round(search_seconds, 2),
        wall_seconds=round(time.perf_counter() - t_start, 2),
    )
    say(f"best trial {best_trial.trial_id}: {cfg.tuner.objective}={best_trial.score:.4f}")
    say(
        f"test accuracy {result['test']['accuracy']:.4f}, loss {result['test']['loss']:.4f} "
        f"on {result['test']['examples']} examples"
    )
    say(f"model written to {run_dir / 'best' / 'saved_model'} (serve: {result['export']['input']})")
    say(
        f"report: {run_dir / 'report' / 'classification_report.txt'}; "
        f"wall time {manifest['wall_seconds']:.1f}s"
    )
    return manifest


def _make_tuner(cfg: SearchConfig, space, data, run_dir: Path, say: Say):
    from automl_app.models.hypermodel import (
        SpaceHyperModel,
        UserHyperModel,
        load_user_hypermodel,
    )
    from automl_app.tuning.tuners import make_tuner

    info = data.info
    if space is not None:
        hypermodel = SpaceHyperModel(space, info.image_shape, info.num_classes, seed=cfg.tuner.seed)
        train, val = data.as_datasets()
        fit_args = {"train": train, "val": val}
    else:
        hypermodel = UserHyperModel(load_user_hypermodel(cfg.space.hypermodel), info.num_classes)
        fit_args = {
            "train": data.x_train.astype("float32") / 255.0,
            "y_train": data.y_train,
            "val": data.x_val.astype("float32") / 255.0,
            "y_val": data.y_val,
        }
    try:
        tuner = make_tuner(
            cfg.tuner.tuner,
            hypermodel,
            run_dir=run_dir,
            objective=cfg.tuner.objective,
            max_trials=cfg.tuner.max_trials,
            epochs=cfg.tuner.epochs,
            seed=cfg.tuner.seed,
            max_failures=cfg.tuner.max_failures,
            on_line=say,
        )
    except AutomlError:
        raise
    except Exception as exc:  # build(hp) failed on the space's defaults: a broken config
        raise ConfigError(
            f"the model does not build from the search space's defaults: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return tuner, fit_args


def _evaluate_and_export(
    model, x_test, y_test, info, run_dir: Path, cfg: SearchConfig, best_trial
) -> dict[str, Any]:
    from automl_app import evaluate, export

    spec = export.fixed_image_spec(*info.image_shape, scale=info.scale)
    probs = export_probabilities(model, x_test, spec)
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


def export_probabilities(model, x_raw: np.ndarray, spec) -> np.ndarray:
    """The in-memory model's probabilities on raw inputs, through the export's preprocessing."""
    from automl_app.tf_env import tf

    t = tf()
    outs = []
    for i in range(0, len(x_raw), 1024):
        x = spec.preprocess(t.constant(x_raw[i : i + 1024]))
        p = np.asarray(model(x, training=False), dtype=np.float64)
        outs.append(p)
    probs = np.concatenate(outs) if outs else np.zeros((0, 0))
    if not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3) or (probs < -1e-6).any():
        e = np.exp(probs - probs.max(axis=1, keepdims=True))
        probs = e / e.sum(axis=1, keepdims=True)
    return probs


def export_run(run_dir: str | Path, out: str | Path, say: Say = print) -> dict[str, Any]:
    """Re-export a finished run's best model (best/model.keras) to `out`, with the same checks."""
    from automl_app import export
    from automl_app.errors import UsageError
    from automl_app.tf_env import tf

    run_dir = Path(run_dir)
    manifest = runs.load_manifest(run_dir)
    keras_path = run_dir / "best" / "model.keras"
    if manifest.get("status") != "completed" or not keras_path.is_file():
        raise UsageError(
            f"run {str(run_dir)!r} has no finished best model ({keras_path} missing;"
            f" status {manifest.get('status')!r})"
        )
    tf()
    import keras

    model = keras.saving.load_model(keras_path)
    data = manifest["data"]
    spec = export.fixed_image_spec(*data["image_shape"], scale=data.get("scale", "0_1"))
    h, w, c = data["image_shape"]
    sample = np.random.default_rng(0).integers(0, 256, size=(16, h, w, c), dtype=np.uint8)
    out = Path(out)
    info = export.export_saved_model(model, spec, sample, out)
    if (run_dir / "best" / "labels.json").is_file():
        runs.atomic_write_text(
            out.parent / f"{out.name}.labels.json", (run_dir / "best" / "labels.json").read_text()
        )
    say(f"exported {keras_path} to {out} (serve: {info['input']})")
    return info
