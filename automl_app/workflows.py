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
from automl_app.errors import AutomlError, ConfigError, SearchError, UsageError

Say = Callable[[str], None]
DEFAULT_SPACE = {"image": "cnn"}
EXPORT_CHECK_EXAMPLES = 64


def search(cfg: SearchConfig, say: Say = print) -> dict[str, Any]:
    """Search a model for a named image dataset; evaluate once on test; export the best.

    With cfg.resume an interrupted run continues from KerasTuner's saved project: finished
    trials are kept, the one in flight is re-run, and max_trials may be raised.
    """
    from automl_app.data import datasets
    from automl_app.tf_env import set_verbose

    validate_search(cfg)
    set_verbose(cfg.verbose)
    space = _load_space(cfg)
    if cfg.data.data_dir is None and cfg.data.dataset in datasets.RAW_FILES:
        datasets.precheck_offline(cfg.data.dataset)  # before any directory is written
    run_dir = runs.prepare_run_dir(
        cfg.resolved_run_dir(), overwrite=cfg.overwrite, resume=cfg.resume
    )
    t_start = time.perf_counter()
    previous = runs.load_manifest(run_dir) if cfg.resume else None
    fields = dict(
        engine="kerastuner",
        space=None if space is None else {"model": space.model, "source": space.source},
    )
    if previous is None:
        runs.start(run_dir, "search image", cfg.to_dict(), **fields)
    else:
        runs.update(
            run_dir,
            status="running",
            config=cfg.to_dict(),
            resumed=int(previous.get("resumed", 0)) + 1,
            error=None,
        )
        say(
            f"resuming {run_dir} ({previous.get('status')}, "
            f"{len(_trial_rows(run_dir))} trials recorded)"
        )
    try:
        summary = _search(cfg, space, run_dir, say, t_start, previous)
    except UsageError:
        if previous is not None:  # a refused resume leaves the run as it was
            runs.update(
                run_dir,
                status=previous.get("status"),
                config=previous.get("config"),
                resumed=previous.get("resumed", 0),
            )
        raise
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


def _load_data(cfg: SearchConfig):
    """A named dataset (TFDS or embedded), or the user's image folder (--data-dir)."""
    from automl_app.data import datasets

    if cfg.data.data_dir:
        from automl_app.workflows_autokeras import load_image_folder

        return load_image_folder(
            cfg.data.data_dir,
            seed=cfg.data.seed,
            val_fraction=cfg.data.val_fraction,
            max_samples=cfg.data.max_samples,
        )
    return datasets.load(
        cfg.data.dataset,
        seed=cfg.data.seed,
        val_fraction=cfg.data.val_fraction,
        max_samples=cfg.data.max_samples,
        verbose=cfg.verbose,
    )


def _load_space(cfg: SearchConfig):
    """The validated search space (None for a user hypermodel), with --min-batch-size applied."""
    from automl_app import models, spaces

    if cfg.space.hypermodel is not None:
        if cfg.tuner.lr_find:
            raise UsageError(
                "--lr-find needs a --space (it trains the space's default configuration)"
            )
        return None
    space = spaces.load(
        cfg.space.space or DEFAULT_SPACE[cfg.task],
        known=models.known(),
        overrides=cfg.space.overrides,
    )
    space = spaces.with_min_batch_size(space, cfg.tuner.min_batch_size)
    if cfg.tuner.enqueue:
        from automl_app.tuning.enqueue import check_names

        check_names(list(cfg.tuner.enqueue), set(space.names))
    return space


def worker(run_dir: str | Path, say: Say = print) -> None:
    """One role of a parallel search (chief or worker), configured from RUN_DIR/run.json.

    KERASTUNER_TUNER_ID / _ORACLE_IP / _ORACLE_PORT must be set: the chief serves KerasTuner's
    oracle over gRPC, workers ask it for trials and train them (KerasTuner's distributed mode).
    """
    import os

    from automl_app.config import search_config_from_dict
    from automl_app.tf_env import set_verbose, tf
    from automl_app.tuning.tuners import run_search

    run_dir = Path(run_dir)
    cfg = search_config_from_dict(runs.load_manifest(run_dir)["config"])
    set_verbose(cfg.verbose)
    space = _load_space(cfg)
    data = _load_data(cfg)
    tf()
    import keras

    keras.utils.set_random_seed(cfg.tuner.seed)
    deadline = shared_deadline(cfg, runs.load_manifest(run_dir))
    is_chief = "chief" in os.environ.get("KERASTUNER_TUNER_ID", "")
    tuner, fit_args = _make_tuner(
        cfg, space, data, run_dir, say, deadline, lr_find=is_chief and cfg.tuner.lr_find
    )
    run_search(
        tuner,
        epochs=cfg.tuner.epochs,
        tensorboard_dir=run_dir / "tensorboard",
        prune=cfg.tuner.prune,
        min_epochs=cfg.tuner.min_epochs,
        deadline=deadline,
        **fit_args,
    )


def _run_parallel(cfg: SearchConfig, run_dir: Path, say: Say) -> None:
    """Start a chief and N workers (KerasTuner's gRPC mode) and wait for them.

    The chief binds cfg.tuner.oracle_bind (127.0.0.1 by default; 0.0.0.0 lets `automl worker`
    on other hosts join through a shared run directory).
    """
    import socket
    import sys

    from automl_app.tuning import workers

    bind = cfg.tuner.oracle_bind
    port = cfg.tuner.oracle_port or workers.free_port(bind)

    def argv(role):
        address = f"{bind}:{port}" if role == "chief" else f"127.0.0.1:{port}"
        return [
            sys.executable,
            "-m",
            "automl_app.cli",
            "worker",
            "--run-dir",
            str(run_dir),
            "--oracle",
            address,
            "--tuner-id",
            workers.tuner_id(role),
        ]

    say(
        f"parallel: chief oracle on {bind}:{port}, {cfg.tuner.workers} local workers "
        f"(logs in {run_dir / 'workers'})"
    )
    if bind != "127.0.0.1":
        say(
            f"other hosts can join: automl worker --run-dir {run_dir.resolve()} "
            f"--oracle {socket.gethostname()}:{port}"
        )
    res = workers.launch(
        argv,
        cfg.tuner.workers,
        run_dir,
        port=port,
        bind_host=bind,
        on_line=say,
        on_log_line=lambda _, line: say(line) if line.startswith(("trial ", "warning: ")) else None,
    )
    if not res.ok:
        raise SearchError(f"parallel search failed: {res.error} (logs in {run_dir / 'workers'})")


def _finish_report(run_dir: Path, cfg: SearchConfig, say: Say) -> None:
    """Regenerate report/ (plots + index.html) and log to MLflow; a plot never fails a run."""
    from automl_app import report

    try:
        info = report.write_report(run_dir, say=lambda _line: None)
        say(f"report: {info['index']}")
    except Exception as exc:  # plotting problems are reported, not fatal
        say(f"warning: report not regenerated ({type(exc).__name__}: {exc})")
    if cfg.mlflow:
        from automl_app import experiments

        experiments.log_mlflow(run_dir, cfg.mlflow, say=say)


def _parallel_stop_summary(tuner, cfg: SearchConfig) -> dict[str, Any]:
    """Why a parallel search ended, read back from the reloaded oracle."""
    from automl_app.tuning import budget

    summary = budget.stop_summary(tuner.oracle)
    if summary["trials"] >= cfg.tuner.max_trials:
        summary["stop_reason"] = "max_trials"
    else:
        summary["stop_reason"] = "time_budget" if cfg.tuner.time_budget else "space_exhausted"
    summary["workers"] = cfg.tuner.workers
    return summary


def _trial_rows(run_dir: Path) -> dict:
    from automl_app.tuning.tuners import load_rows

    return load_rows(run_dir)


def shared_deadline(cfg: SearchConfig, manifest: dict[str, Any]):
    """The search's deadline for one role of a parallel search.

    The launching command writes its deadline (wall-clock) into run.json, so the chief, every
    worker, a restarted worker and `automl worker` on another host all stop at the same instant
    instead of each counting the budget from its own start (hosts need synchronised clocks).
    """
    from automl_app.tuning import budget

    if not cfg.tuner.time_budget:
        return None
    stored = manifest.get("deadline") or {}
    if isinstance(stored.get("at"), int | float):
        return budget.Deadline(at=float(stored["at"]), seconds=float(stored.get("seconds", 0.0)))
    return budget.Deadline.after(cfg.tuner.time_budget)


def _search(
    cfg: SearchConfig, space, run_dir: Path, say: Say, t_start: float, previous: dict | None
) -> dict[str, Any]:
    from automl_app.data.fingerprint import fingerprint, leakage
    from automl_app.tf_env import tf
    from automl_app.tuning import budget

    deadline = budget.Deadline.after(cfg.tuner.time_budget) if cfg.tuner.time_budget else None
    data = _load_data(cfg)
    info = data.info
    say(
        f"data: {info.name} ({info.source}) train={len(data.x_train)} val={len(data.x_val)} "
        f"classes={info.num_classes} image={'x'.join(map(str, info.image_shape))}"
    )
    prints = {
        "train": fingerprint(data.x_train, data.y_train),
        "val": fingerprint(data.x_val, data.y_val),
    }
    if previous is not None and previous.get("data", {}).get("fingerprint") not in (None, prints):
        raise UsageError(
            f"cannot resume {run_dir}: its training/validation data differ from "
            "this command's (same --dataset, --seed, --max-samples and "
            "--val-fraction are needed)"
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
            "fingerprint": prints,
        },
        deadline=None if deadline is None else {"at": deadline.at, "seconds": deadline.seconds},
    )
    tf()
    import keras

    keras.utils.set_random_seed(cfg.tuner.seed)
    from automl_app.tuning.tuners import completed_trials, run_search

    if cfg.tuner.workers > 1:
        _run_parallel(cfg, run_dir, say)
        tuner, _ = _make_tuner(cfg, space, data, run_dir, say, None, lr_find=False)  # reload
        stop = _parallel_stop_summary(tuner, cfg)
    else:
        tuner, fit_args = _make_tuner(cfg, space, data, run_dir, say, deadline)
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
    runs.update(run_dir, search=stop)
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
    search_seconds = time.perf_counter() - t_start

    # The test split is read here, once.
    x_test, y_test = data.test()
    result = _evaluate_and_export(best_model, x_test, y_test, info, run_dir, cfg, best_trial)
    result["leakage"] = leakage(data.x_train, x_test, data.x_val)
    manifest = runs.update(
        run_dir,
        status="completed",
        trials={"total": len(tuner.oracle.trials), "completed": len(done)},
        stop_reason=stop["stop_reason"],
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
    _finish_report(run_dir, cfg, say)
    say(f"best trial {best_trial.trial_id}: {tuner.oracle.objective.name}={best_trial.score:.4f}")
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


def _make_tuner(
    cfg: SearchConfig, space, data, run_dir: Path, say: Say, deadline, lr_find: bool | None = None
):
    from automl_app.models.hypermodel import (
        SpaceHyperModel,
        UserHyperModel,
        load_user_hypermodel,
    )
    from automl_app.tuning.tuners import make_tuner

    info = data.info
    enqueue = list(cfg.tuner.enqueue)
    if space is not None:
        hypermodel = SpaceHyperModel(space, info.image_shape, info.num_classes, seed=cfg.tuner.seed)
        train, val = data.as_datasets()
        fit_args = {"train": train, "val": val}
        if cfg.tuner.lr_find if lr_find is None else lr_find:
            enqueue = [_lr_find(hypermodel, train, space, run_dir, say, cfg.tuner.seed)] + enqueue
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
            direction=cfg.tuner.direction,
            max_trials=cfg.tuner.max_trials,
            epochs=cfg.tuner.epochs,
            seed=cfg.tuner.seed,
            max_failures=cfg.tuner.max_failures,
            on_line=say,
            overwrite=False,
            deadline=deadline,
            enqueue=enqueue,
            keep_checkpoints=cfg.tuner.keep_checkpoints,
            n_train=len(data.x_train),
            executions_per_trial=cfg.tuner.executions_per_trial,
            tpe_startup=cfg.tuner.tpe_startup,
        )
    except AutomlError:
        raise
    except Exception as exc:  # build(hp) failed on the space's defaults: a broken config
        raise ConfigError(
            f"the model does not build from the search space's defaults: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return tuner, fit_args


def _lr_find(hypermodel, train, space, run_dir: Path, say: Say, seed: int) -> dict[str, Any]:
    """Run the LR range test, save report/lr_find.{png,json}, return the config to enqueue."""
    from automl_app.tuning import lr_find

    if "learning_rate" not in space.names:
        raise UsageError(f"--lr-find needs a `learning_rate` entry in {space.source}")
    result = lr_find.lr_range_test(hypermodel, train, seed=seed)
    lr = lr_find.clip_to_space(result["suggestion"], space)
    lr_find.plot(result, run_dir / "report" / "lr_find.png")
    runs.atomic_write_json(
        run_dir / "report" / "lr_find.json",
        {
            k: result[k]
            for k in ("lr_at_min_loss", "suggestion", "steps_run", "batch_size", "lrs", "losses")
        }
        | {"enqueued_learning_rate": lr},
    )
    say(
        f"lr-find: lowest loss at lr={result['lr_at_min_loss']:.3g} after "
        f"{result['steps_run']} steps; first trial uses learning_rate={lr:.3g} "
        f"(report/lr_find.png)"
    )
    return {"learning_rate": lr}


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
