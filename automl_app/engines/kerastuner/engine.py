"""The KerasTuner engine: a search over a YAML space (or the user's hypermodel) with
KerasTuner's tuners, then one evaluation on the test split and the checked export.

`plan_search(cfg)` validates everything that needs no data and returns a Plan; the lifecycle
(workflows.py) opens the run and calls its `fit`. With cfg.resume an interrupted run continues
from KerasTuner's saved project: finished trials are kept, the one in flight is re-run, and
max_trials may be raised.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from automl_app import runs
from automl_app.config import SearchConfig, validate_search
from automl_app.engines.base import Plan
from automl_app.engines.kerastuner.parallel import (
    parallel_stop_summary,
    reload_search_tuner,
    run_parallel,
)
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

    run_dir = run.dir
    if run.resumed:
        from automl_app.tuning.tuners import load_rows

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
    parallel = cfg.tuner.workers > 1 or cfg.tuner.oracle_bind not in ("127.0.0.1", "localhost")
    if parallel:
        t0 = time.time()
        launched = run_parallel(cfg, run_dir, say)
        tuner, fit_args = reload_search_tuner(cfg, space, data, run_dir, say)
        stop = parallel_stop_summary(tuner, cfg, launched)
        _say_stop(tuner, stop, say)
        phases = [_phase("search", tuner, len(data.x_train), cfg.tuner.epochs, t0)]
        best_trial, best_model, final = *_best(tuner, stop), None
    else:
        tuner, fit_args, stop, phases, final = _explore_and_refit(
            cfg, space, data, run, deadline, say
        )
        best_trial, best_model = _best(tuner, stop, load=final is None)
        if final is not None:
            best_model = final
    run.update(search=stop, phases=phases)
    search_seconds = run.elapsed()
    chance = _chance(
        tuner, best_trial, phases, data, fit_args, best_model if final is not None else None
    )
    if chance["within_noise"]:
        say(chance["line"])

    # The test split is read here, once.
    x_test, y_test = data.test()
    result = _evaluate_and_export(best_model, x_test, y_test, data, run_dir, cfg, best_trial)
    say(f"best trial {best_trial.trial_id}: {tuner.oracle.objective.name}={best_trial.score:.4f}")
    say(
        f"test accuracy {result['test']['accuracy']:.4f}, loss {result['test']['loss']:.4f} "
        f"on {result['test']['examples']} examples"
        + (" (the final refit)" if final is not None else "")
    )
    say(f"model written to {run_dir / 'best' / 'saved_model'} (serve: {result['export']['input']})")
    from automl_app.tuning.tuners import completed_trials

    return {
        "trials": {"total": len(tuner.oracle.trials), "completed": len(completed_trials(tuner))},
        "stop_reason": stop["stop_reason"],
        "best_trial": {
            "trial_id": best_trial.trial_id,
            "score": best_trial.score,
            "hyperparameters": best_trial.hyperparameters.values,
        },
        "exported": "final" if final is not None else "best_trial",
        "chance": {k: v for k, v in chance.items() if k != "line"},
        "test": result["test"],
        "leakage": leakage(data.x_train, x_test, data.x_val),
        "export": result["export"],
        "search_seconds": round(search_seconds, 2),
    }


def _explore_and_refit(cfg: SearchConfig, space, data, run: runs.Run, deadline, say: Say):
    """One process: the search (the explore phase of a budget), then the budget's final refit."""
    from automl_app.engines.kerastuner import schedule as sched
    from automl_app.tuning.guard import TrialGuard
    from automl_app.tuning.tuners import run_search

    plan = sched.plan_schedule(deadline, len(data.x_train)) if deadline is not None else None
    idx = sched.subset_indices(len(data.x_train), plan and plan.subset, cfg.tuner.seed)
    n_explore = len(data.x_train) if idx is None else len(idx)
    phase_deadline = plan.explore if plan is not None else None
    tuner, fit_args = make_search_tuner(
        cfg, space, data, run.dir, say, phase_deadline, n_train=n_explore
    )
    equal_time = plan is not None and cfg.tuner.tuner != "hyperband"  # Hyperband sets epochs
    guard = TrialGuard(phase_deadline, say, tuner.oracle, equal_time=equal_time)
    tuner.hypermodel.trial_guard = guard
    prune = cfg.tuner.prune
    if plan is not None:
        say(plan.describe(cfg.tuner.epochs, prune, equal_time))
    say(
        f"search: {cfg.tuner.tuner} over "
        f"{space.source if space else cfg.space.hypermodel}, max {cfg.tuner.max_trials} "
        f"trials x {cfg.tuner.epochs} epochs, objective {tuner.oracle.objective.name} "
        f"({tuner.oracle.objective.direction})"
        + (f", prune {prune}" if prune != "none" else "")
        + (f", budget {cfg.tuner.time_budget:g}s" if cfg.tuner.time_budget else "")
    )
    t0 = time.time()
    stop = run_search(
        tuner,
        epochs=cfg.tuner.epochs,
        tensorboard_dir=run.dir / "tensorboard",
        prune=prune,
        min_epochs=cfg.tuner.min_epochs,
        deadline=phase_deadline,
        **sched.explore_fit_args(fit_args, data, idx),
    )
    if deadline is not None:  # the whole budget, not the explore phase's share
        stop.update(time_budget_s=deadline.seconds, budget_elapsed_s=round(deadline.elapsed(), 3))
    _say_stop(tuner, stop, say)
    name = "explore" if plan is not None else "search"
    phases = [_phase(name, tuner, n_explore, cfg.tuner.epochs, t0, len(data.x_train), prune)]
    final = None
    if plan is not None:
        best_trial, _ = _best(tuner, stop, load=False)
        final, phase = sched.refit(tuner, best_trial, fit_args, plan, guard.cost, n_explore, say)
        phases.append(phase)
    return tuner, fit_args, stop, phases, final


def _say_stop(tuner, stop: dict[str, Any], say: Say) -> None:
    """Why the search ended (after checking that some trial finished)."""
    _best(tuner, stop, load=False)
    say(
        f"search stopped: {stop['stop_reason'] or 'done'} after {stop['trials']} trials "
        f"({stop['completed']} completed, {stop['failed']} failed)"
    )
    if stop.get("failure_message"):  # stopped by --max-failures; the best finished trial counts
        say(f"warning: {stop['failure_message']}")


def _phase(name, tuner, n, epochs, t0, n_all=None, prune="none") -> dict[str, Any]:
    """One entry of run.json `phases`."""
    from automl_app.tuning.budget import stop_summary

    summary = stop_summary(tuner.oracle)
    fidelity: dict[str, Any] = {"train_examples": n, "epochs": epochs}
    if n_all:
        fidelity["fraction"] = round(n / n_all, 4)
    if prune != "none":
        fidelity["prune"] = prune
    return {
        "phase": name,
        "trials": summary["trials"],
        "completed": summary["completed"],
        "failed": summary["failed"],
        "fidelity": fidelity,
        "seconds": round(time.time() - t0, 2),
    }


def _best(tuner, stop: dict[str, Any], load: bool = True):
    """The best finished trial (and its model); no finished trial is a failed search."""
    from automl_app.tuning.tuners import completed_trials

    done = completed_trials(tuner)
    if not done:
        first = getattr(tuner, "first_failure", None)
        raise SearchError(
            "no trial completed"
            + (f"; first failure: {first.strip().splitlines()[-1]}" if first else "")
            + (f" (search stopped: {stop['stop_reason']})" if stop.get("stop_reason") else "")
        )
    return done[0], (tuner.get_best_models(1)[0] if load else None)


def _chance(tuner, best_trial, phases, data, fit_args, final_model) -> dict[str, Any]:
    """run.json `chance`: is the exported model's validation accuracy within noise of guessing?

    With the line to print when it is: the likely cause and one next step.
    """
    from automl_app.evaluate import chance_check

    final = phases[-1] if phases and phases[-1].get("phase") == "final" else {}
    if final_model is not None and "val_accuracy" in final:
        acc = float(final["val_accuracy"])
    else:
        acc = _trial_metric(best_trial, "val_accuracy")
    if acc is None:
        return {"within_noise": False, "val_accuracy": None}
    out = chance_check(acc, data.y_val, data.info.num_classes)
    if not out["within_noise"]:
        return out
    trials = list(tuner.oracle.trials.values())
    failed = [t for t in trials if str(t.status) == "FAILED"]
    diverged = [t for t in failed if "diverged" in str(t.message or "")]
    train_acc = _trial_metric(best_trial, "accuracy")
    train_loss = _trial_metric(best_trial, "loss")
    lr = best_trial.hyperparameters.values.get("learning_rate")
    lr_text = f", learning_rate={lr:g}" if isinstance(lr, (int, float)) else ""
    if diverged or len(failed) > len(trials) / 2:
        cause = f"{len(diverged) or len(failed)} of {len(trials)} trials diverged or failed"
        step = "lower the learning rate range of the space (or --set learning_rate=0.001)"
    elif train_loss is not None and train_loss > 1.5 * math.log(data.info.num_classes):
        cause = (
            f"training diverged (training loss {train_loss:.3g}, guessing scores "
            f"{math.log(data.info.num_classes):.2f}{lr_text})"
        )
        step = "lower the learning rate range of the space (or --set learning_rate=0.001)"
    elif train_acc is not None and train_acc > out["rate"] + 0.2:
        cause = f"the model fits the training data ({train_acc:.2f}) but not validation"
        step = "check that train and validation images are labelled and scaled alike"
    else:
        cause = "the models did not learn (learning rate too high or too low, or too few epochs)"
        step = "rerun with more --epochs and the space's defaults (the first trial)"
    out["cause"], out["next_step"] = cause, step
    out["line"] = (
        f"warning: the exported model is no better than chance: val_accuracy {acc:.4f} vs "
        f"{out['rate']:.4f} ({out['basis']}, ±{out['margin']:.4f} on {out['examples']} "
        f"examples); likely cause: {cause}; next: {step}"
    )
    return out


def _trial_metric(trial, name: str) -> float | None:
    if not trial.metrics.exists(name):
        return None
    from automl_app.tuning.tuners import _value_at_best_step

    return _value_at_best_step(trial, name)


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
    from automl_app.models.hypermodel import portable

    info_export = export.export_best(
        portable(model), spec, sample, run_dir / "best", labels=list(info.class_names), card=card
    )
    return {"test": metrics, "export": info_export}
