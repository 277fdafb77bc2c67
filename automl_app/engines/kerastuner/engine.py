"""The KerasTuner engine: a search over a YAML space (or the user's hypermodel) with
KerasTuner's tuners; it hands the flow the best model (or the budget's final refit).

`plan_search(cfg)` validates everything that needs no data and returns a Plan; the flow
(workflows.py) opens the run and calls its `fit`, which searches and returns an EngineResult: the
flow reads the test split once, evaluates, checks chance and exports. Trial rows are written by
the tuner as each trial finishes (the dashboard and --resume read them). With cfg.resume an
interrupted run continues
from KerasTuner's saved project: finished trials are kept, the one in flight is re-run, and
max_trials may be raised.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from automl_app import runs
from automl_app.config import SPACE_OBJECTIVES, SearchConfig, validate_search
from automl_app.distributed.parallel import parallel_stop_summary, run_parallel
from automl_app.engines.base import EngineResult, Plan, TestPredictions
from automl_app.engines.kerastuner.parallel import reload_search_tuner
from automl_app.engines.kerastuner.setup import class_weights, load_space, make_search_tuner
from automl_app.errors import SearchError

Say = Callable[[str], None]
EXPORT_CHECK_EXAMPLES = 64


def plan_search(cfg: SearchConfig) -> Plan:
    """Check the options and the space (exit 2 before anything is written); the Plan to run."""
    from automl_app.data import source

    validate_search(cfg)
    space = load_space(cfg)
    source.precheck(cfg.data)  # offline files / folder present, before any directory is written

    def fit(run: runs.Run, say: Say) -> EngineResult:
        return _search(cfg, space, run, say)

    fields = {"space": None if space is None else {"model": space.model, "source": space.source}}
    return Plan("search image", "kerastuner", cfg, fit, fields)


def _search(cfg: SearchConfig, space, run: runs.Run, say: Say) -> EngineResult:
    from automl_app.data import source
    from automl_app.engines.kerastuner import schedule as sched
    from automl_app.tf_env import tf
    from automl_app.tuning import budget

    run_dir = run.dir
    if run.resumed:
        from automl_app.tuning.tuners import load_rows

        say(f"{len(load_rows(run_dir))} trials recorded so far")
    deadline = (
        budget.Deadline.after_command_start(cfg.tuner.time_budget)
        if cfg.tuner.time_budget
        else None
    )
    data = source.load_image_data(cfg.data, verbose=cfg.verbose)
    for line in source.describe(data):
        say(line)
    record = source.data_record(data)
    run.check_same_data(
        record["fingerprint"],
        "same --dataset/--data-dir, --image-size, --seed, --max-samples and --val-fraction",
    )
    parallel = cfg.tuner.workers > 1 or cfg.tuner.oracle_bind not in ("127.0.0.1", "localhost")
    run.update(
        data=record,
        deadline=None if deadline is None else deadline.record(),
        # Every role of a parallel search stops its trials here (distributed.parallel reads it),
        # leaving the reserve to this command's evaluation and export.
        trials_deadline=None
        if deadline is None or not parallel
        else sched.trials_deadline(deadline).record(),
    )
    if cfg.tuner.class_weight != "none":
        weights = class_weights(cfg.tuner.class_weight, data.y_train)
        run.update(class_weights={str(k): v for k, v in (weights or {}).items()})
    tf()
    import keras

    keras.utils.set_random_seed(cfg.tuner.seed)
    if parallel:
        t0 = time.time()
        launched = run_parallel(cfg, run_dir, say)
        tuner, fit_args = reload_search_tuner(cfg, space, data, run_dir, say)
        stop = parallel_stop_summary(tuner, cfg, launched)
        _say_stop(tuner, stop, say)
        phases = [_phase("search", tuner, len(data.x_train), cfg.tuner.epochs, t0)]
        best_trial, best_model, final = *_best(tuner, stop), None
    else:
        tuner, fit_args, stop, phases, final, chosen = _explore_and_refit(
            cfg, space, data, run, deadline, say
        )
        best_trial, best_model = _best(tuner, stop, load=final is None)
        if final is not None:  # the exported model is the chosen configuration's refit
            best_trial, best_model = chosen, final
    from automl_app.engines.kerastuner import tta
    from automl_app.models.hypermodel import portable

    best_model = portable(best_model)  # stock compile before wrapping: model.keras loads anywhere
    best_model, tta_record = tta.choose(
        cfg.tuner.tta, tuner.hypermodel, best_model, fit_args, tuner.oracle.objective, say,
        deadline, trained=best_trial.hyperparameters.values,
    )  # fmt: skip
    run.update(search=stop, phases=phases)
    search_seconds = run.elapsed()
    objective = tuner.oracle.objective.name
    score = _score(best_trial, objective)

    def read_test() -> TestPredictions:
        from automl_app import evaluate
        from automl_app.data.fingerprint import leakage

        x_test, y_test = data.test()
        probs = evaluate.probabilities(best_model, x_test, spec)
        return TestPredictions(probs, y_test, x_test[:EXPORT_CHECK_EXAMPLES],
                               {"leakage": leakage(data.x_train, x_test, data.x_val)})  # fmt: skip

    from automl_app.export.runspec import serving_spec
    from automl_app.tuning.tuners import completed_trials

    spec = serving_spec(data)
    info = data.info
    return EngineResult(
        fields={
            "trials": {
                "total": len(tuner.oracle.trials),
                "completed": len(completed_trials(tuner)),
            },
            "stop_reason": stop["stop_reason"],
            "best_trial": {
                "trial_id": best_trial.trial_id,
                "score": score,
                "hyperparameters": best_trial.hyperparameters.values,
            },
            "exported": "final" if final is not None else "best_trial",
            "tta": tta_record,
            "search_seconds": round(search_seconds, 2),
        },
        read_test=read_test,
        heads=[{"name": "output", "type": "classification", "class_names": list(info.class_names)}],
        model=portable(best_model),
        spec=spec,
        card={
            "dataset": info.name,
            "class_names": list(info.class_names),
            "image_shape": list(info.image_shape),
            "best_trial": best_trial.trial_id,
            "hyperparameters": best_trial.hyperparameters.values,
            "test_time_augmentation": tta.describe(tta_record),
            "config": cfg.to_dict(),
        },
        diagnose=lambda chance: _diagnose(tuner, best_trial, phases, data, final, chance),
        best_line=f"best trial {best_trial.trial_id}: {objective}={score:.4f}",
        test_note=_test_note(final is not None, tta_record["chosen"]),
    )


def _test_note(refit: bool, tta: str) -> str:
    parts = ["the final refit"] * refit + [f"{tta} test-time augmentation"] * (tta != "none")
    return f" ({', '.join(parts)})" if parts else ""


def _score(trial, objective: str) -> float:
    """The trial's objective value; a trial without it is a SearchError naming the metrics that
    were recorded (never a KeyError after training)."""
    score = trial.score
    if isinstance(score, (int, float)) and not isinstance(score, bool):
        return float(score)
    names = sorted(trial.metrics.metrics) if hasattr(trial.metrics, "metrics") else []
    raise SearchError(
        f"the objective {objective!r} was not recorded by trial {trial.trial_id}; its metrics are "
        f"{', '.join(names) or 'none'}. Pick --objective among them (e.g. val_accuracy)"
    )


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
    if plan is not None:  # where too few trials fit, the first one gets the rest of the budget
        tuner.oracle.min_trials = min(sched.MIN_EXPLORE_TRIALS, cfg.tuner.max_trials)
        tuner.oracle.trial_fit_seconds = guard.cost.trial_seconds
    t0 = time.time()
    explore_args = sched.explore_fit_args(fit_args, data, idx)
    stop = run_search(
        tuner,
        epochs=cfg.tuner.epochs,
        tensorboard_dir=run.dir / "tensorboard",
        prune=prune,
        min_epochs=cfg.tuner.min_epochs,
        deadline=phase_deadline,
        **explore_args,
    )
    if deadline is not None:  # the whole budget, not the explore phase's share
        stop.update(time_budget_s=deadline.seconds, budget_elapsed_s=round(deadline.elapsed(), 3))
    _say_stop(tuner, stop, say)
    name = "explore" if plan is not None else "search"
    phases = [_phase(name, tuner, n_explore, cfg.tuner.epochs, t0, len(data.x_train), prune)]
    final = chosen = None
    if plan is not None:
        from automl_app.engines.kerastuner.promote import continue_trial, promote

        chosen, _ = _best(tuner, stop, load=False)
        if stop["completed"] == 1 and "y_train" not in fit_args:
            # one trial (too few fit, or the phase ran out): nothing to promote, and its model
            # goes on training rather than starting again
            promoted, promote_phase = continue_trial(tuner, chosen, explore_args, say), None
            if stop["stop_reason"] == "time_budget" and stop.get("stop_message"):
                phases[0]["ended"] = stop["stop_message"]
        else:
            promoted, promote_phase = promote(
                tuner, fit_args, explore_args, plan, guard.cost, say, tta=cfg.tuner.tta
            )
        if promote_phase is not None:
            chosen = promoted.trial
            phases.append(promote_phase)
        gc_s = sched.collect_garbage()
        final, phase = sched.refit(
            tuner, chosen, fit_args, plan, guard.cost, n_explore, say, start=promoted
        )
        phases.append({**phase, "gc_seconds_before": gc_s})
    return tuner, fit_args, stop, phases, final, chosen


def _say_stop(tuner, stop: dict[str, Any], say: Say) -> None:
    """Why the search ended (after checking that some trial finished)."""
    _best(tuner, stop, load=False)
    say(
        f"search stopped: {stop['stop_reason'] or 'done'} after {stop['trials']} trials "
        f"({stop['completed']} completed, {stop['failed']} failed)"
    )
    if stop.get("failure_message"):  # stopped by --max-failures; the best finished trial counts
        say(f"warning: {stop['failure_message']}")
    elif stop["stop_reason"] == "time_budget" and stop.get("stop_message"):
        say(
            f"search: {stop['stop_message']}, so this machine cannot search in this budget: the "
            "first trial goes on training for the rest of it (a longer --time-budget searches)"
        )


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
        objective = tuner.oracle.objective.name
        if first and f"KeyError: '{objective}'" in first:
            recorded = sorted(
                {n for t in tuner.oracle.trials.values() for n in t.metrics.metrics} - {objective}
            )
            raise SearchError(
                f"--objective {objective} is not a metric the model records"
                + (f" (it records {', '.join(recorded)})" if recorded else "")
                + f"; use one of {', '.join(SPACE_OBJECTIVES)}"
            )
        raise SearchError(
            "no trial completed"
            + (f"; first failure: {first.strip().splitlines()[-1]}" if first else "")
            + (f" (search stopped: {stop['stop_reason']})" if stop.get("stop_reason") else "")
        )
    return done[0], (tuner.get_best_models(1)[0] if load else None)


def _diagnose(tuner, best_trial, phases, data, final_model, chance) -> tuple[str, str]:
    """For a model within noise of chance (evaluate.chance_check on the test split): the likely
    cause, read from the trials, and one next step."""
    trials = list(tuner.oracle.trials.values())
    failed = [t for t in trials if str(t.status) == "FAILED"]
    diverged = [t for t in failed if "diverged" in str(t.message or "")]
    final = phases[-1] if phases and phases[-1].get("phase") == "final" else {}
    train_acc = final.get("accuracy") if final_model is not None else None
    if not isinstance(train_acc, (int, float)):
        train_acc = _trial_metric(best_trial, "accuracy")
    train_loss = _trial_metric(best_trial, "loss")
    k = data.info.num_classes
    lr = best_trial.hyperparameters.values.get("learning_rate")
    lr_text = f", learning_rate={lr:g}" if isinstance(lr, (int, float)) else ""
    lower = "lower the learning rate range of the space (or --set learning_rate=0.001)"
    if diverged or len(failed) > len(trials) / 2:
        return f"{len(diverged) or len(failed)} of {len(trials)} trials diverged or failed", lower
    if train_loss is not None and (math.isnan(train_loss) or train_loss > 1.5 * math.log(k)):
        return (
            f"training diverged (training loss {train_loss:.3g}, guessing scores "
            f"{math.log(k):.2f}{lr_text})",
            lower,
        )
    if train_acc is not None and train_acc > chance["rate"] + 0.2:
        return (
            f"the model fits the training data ({train_acc:.2f}) but not the test split",
            "check that train and test images are labelled and scaled alike",
        )
    return (
        "the models did not learn (learning rate too high or too low, or too few epochs)",
        "rerun with more --epochs and the space's defaults (the first trial)",
    )


def _trial_metric(trial, name: str) -> float | None:
    if not trial.metrics.exists(name):
        return None
    from automl_app.tuning.tuners import _value_at_best_step

    return _value_at_best_step(trial, name)
