"""`automl reproduce`: retrain the top configurations with several seeds; mean ± std, a 95%
interval and Welch's t-test between the best two (SciPy).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from automl_app import report, runs
from automl_app.analysis.rebuild import (
    load_data,
    probabilities,
    search_manifest,
    serving_spec,
    train_config,
    trial_hyperparameters,
    tuned_epochs,
)
from automl_app.errors import UsageError

Say = Callable[[str], None]


def interval95(scores: Sequence[float]) -> tuple[float, float]:
    """Student-t 95% interval of the mean (SciPy); a point when the scores do not vary."""
    from scipy import stats

    a = np.asarray(scores, dtype=np.float64)
    mean = float(a.mean())
    if len(a) < 2 or float(a.std(ddof=1)) == 0.0:
        return mean, mean
    lo, hi = stats.t.interval(0.95, len(a) - 1, loc=mean, scale=stats.sem(a))
    return float(lo), float(hi)


def compare(
    a_id: str,
    a: Sequence[float],
    b_id: str,
    b: Sequence[float],
    *,
    higher_is_better: bool = True,
    seconds: Mapping[str, float] | None = None,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Welch's t-test (scipy.stats.ttest_ind, equal_var=False) and a verdict in plain words."""
    from scipy import stats

    a_arr, b_arr = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    res = stats.ttest_ind(a_arr, b_arr, equal_var=False)
    p = float(res.pvalue)
    if math.isnan(p):  # no variance on either side
        p = 1.0 if float(a_arr.mean()) == float(b_arr.mean()) else 0.0
    better, worse = (a_id, b_id)
    if (a_arr.mean() < b_arr.mean()) == higher_is_better:
        better, worse = b_id, a_id
    if p < alpha:
        verdict = f"configuration {better} is better than {worse}, p={p:.3g}"
        significant = True
    else:
        verdict = f"the difference is not significant at {alpha:g} (p={p:.2f}) — pick either"
        if seconds and a_id in seconds and b_id in seconds:
            fast = min((a_id, b_id), key=lambda k: seconds[k])
            slow = b_id if fast == a_id else a_id
            if seconds[fast] < seconds[slow]:
                verdict += f"; {fast} is faster"
        significant = False
    return {
        "test": "Welch's t-test (scipy.stats.ttest_ind, equal_var=False)",
        "a": a_id,
        "b": b_id,
        "t": None if math.isnan(float(res.statistic)) else float(res.statistic),
        "p": p,
        "alpha": alpha,
        "significant": significant,
        "better": better if significant else None,
        "verdict": verdict,
    }


def search_score_check(
    manifest: Mapping[str, Any], configs: Sequence[Mapping[str, Any]]
) -> dict[str, Any] | None:
    """The search's own test accuracy (its best trial, tested once) against that trial's
    reproduced 95% interval; a dict with a warning line when it lies outside, else None."""
    best = str((manifest.get("best_trial") or {}).get("trial_id"))
    score = (manifest.get("test") or {}).get("accuracy")
    conf = next((c for c in configs if str(c["trial_id"]) == best), None)
    if conf is None or not isinstance(score, (int, float)):
        return None
    lo, hi = conf["ci95"]
    if lo <= score <= hi:
        return None
    side = "above" if score > hi else "below"
    return {
        "trial_id": best,
        "search_test_accuracy": float(score),
        "ci95": [lo, hi],
        "side": side,
        "line": (
            f"warning: the search's own test accuracy for trial {best}, {score:.4f}, lies {side} "
            f"its reproduced 95% interval {lo:.4f} … {hi:.4f}: the search's number "
            f"{'was a lucky draw' if side == 'above' else 'was an unlucky draw'}; quote the "
            "reproduced mean"
        ),
    }


def reproduce(
    run_dir: str | os.PathLike,
    top: int = 2,
    seeds: int = 3,
    say: Say = print,
    trials: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Retrain the top `top` configurations with `seeds` seeds each; compare the top two.

    Same splits (checked by fingerprint), same hypermodel, KerasTuner's saved hyperparameters, the
    tuned epoch budget (Hyperband's `tuner/epochs` when present). Every configuration gets the
    same seeds, so a difference comes from the configuration, not the draw. Test accuracy per run;
    mean ± std, 95% interval, Welch's t-test; saved to report/reproduce.json and the report.
    """
    run_dir = Path(run_dir)
    if top < 1:
        raise UsageError(f"--top must be >= 1. Received: {top}")
    if seeds < 2:
        raise UsageError(f"--seeds must be >= 2 (a t-test needs two runs each). Received: {seeds}")
    manifest = search_manifest(run_dir)
    with runs.lock(run_dir).hold():  # it writes report/reproduce.json and the report
        return _reproduce(run_dir, manifest, top, seeds, say, trials)


def _reproduce(
    run_dir: Path, manifest: dict, top: int, seeds: int, say: Say, trials: Sequence[str] | None
) -> dict[str, Any]:
    from automl_app.tf_env import tf

    rows = report.load_trials(run_dir)
    _, direction = report.objective(run_dir, manifest)
    if trials:
        by_id = {str(r["trial_id"]): r for r in rows}
        missing = [t for t in trials if str(t) not in by_id]
        if missing:
            raise UsageError(f"no trial {missing[0]!r} in trials.csv; have {', '.join(by_id)}")
        chosen = [by_id[str(t)] for t in trials]
    else:
        done = [r for r in rows if r.get("status") == "completed" and not report.is_pruned(r)]
        chosen = report.ranked(done, direction)[:top]
    if not chosen:
        raise UsageError(f"{str(run_dir)!r} has no completed trial to reproduce")
    tf()
    import keras

    data = load_data(manifest)
    x_test, y_test = data.test()
    spec = serving_spec(manifest)
    base_seed = int(manifest["config"]["tuner"].get("seed", 0)) + 1000
    seed_list = [base_seed + i for i in range(seeds)]
    configs = []
    for row in chosen:
        tid = str(row["trial_id"])
        hp = trial_hyperparameters(run_dir, tid)
        epochs = tuned_epochs(manifest, hp)
        scores, secs = [], []
        for seed in seed_list:
            model, seconds = train_config(manifest, hp, data, seed, epochs)
            secs.append(seconds)
            probs = probabilities(model, x_test, spec)
            scores.append(float(np.mean(np.argmax(probs, axis=1) == y_test)))
            say(f"trial {tid} seed {seed}: test accuracy {scores[-1]:.4f} ({secs[-1]:.1f}s)")
            keras.backend.clear_session()
        lo, hi = interval95(scores)
        configs.append(
            {
                "trial_id": tid,
                "hyperparameters": {
                    k: v for k, v in hp.values.items() if not k.startswith("tuner/")
                },
                "epochs": epochs,
                "scores": scores,
                "mean": float(np.mean(scores)),
                "std": float(np.std(scores, ddof=1)),
                "ci95": [lo, hi],
                "seconds_per_run": float(np.mean(secs)),
                "tuned_objective": row.get("objective"),
            }
        )
        say(
            f"trial {tid}: test accuracy {configs[-1]['mean']:.4f} ± {configs[-1]['std']:.4f} "
            f"(95% interval {lo:.4f} … {hi:.4f}, {seeds} seeds, {epochs} epochs)"
        )
    result: dict[str, Any] = {
        "metric": "accuracy",
        "split": "test",
        "seeds": seeds,
        "seed_list": seed_list,
        "configurations": configs,
    }
    flag = search_score_check(manifest, configs)
    if flag is not None:
        result["search_test_outside"] = flag
        say(flag["line"])
    if len(configs) >= 2:
        a, b = configs[0], configs[1]
        cmp = compare(
            a["trial_id"],
            a["scores"],
            b["trial_id"],
            b["scores"],
            seconds={c["trial_id"]: c["seconds_per_run"] for c in configs},
        )
        result["comparison"] = cmp
        result["verdict"] = cmp["verdict"]
    else:
        result["verdict"] = "one configuration only: nothing to compare"
    runs.atomic_write_json(run_dir / report.REPORT_DIR / "reproduce.json", result)
    say(result["verdict"])
    report.write_report(run_dir, say=lambda _line: None)
    return result
