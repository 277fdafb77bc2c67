"""The chance line: what guessing scores, and whether the best model is within noise of it.

run.json's `chance` wins: every engine's run writes it (workflows.complete → evaluate.chance_check:
the better of 1/classes and the evaluated split's majority class). Runs written before that fall
back to 1/num_classes from `data.class_names` (or `data.classes`). "Within noise" means the test accuracy is less than two
binomial standard errors above chance on the test split's size (about a 95% one-sided band);
without a test size only an accuracy at or below chance is flagged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from automl_app.report.base import test_metrics_of

_RATE_KEYS = ("rate", "accuracy", "chance", "value", "majority_rate", "uniform_rate")


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _given_rate(given: Any) -> tuple[float | None, str | None]:
    if _num(given) is not None:
        return _num(given), None
    if isinstance(given, Mapping):
        for key in _RATE_KEYS:
            if _num(given.get(key)) is not None:
                return _num(given[key]), given.get("basis") or given.get("kind")
    return None, None


def _num_classes(manifest: Mapping[str, Any]) -> int | None:
    data = manifest.get("data") or {}
    names = data.get("class_names") or data.get("classes")
    if isinstance(names, list) and len(names) >= 2:
        return len(names)
    k = data.get("num_classes")
    return int(k) if isinstance(k, int) and k >= 2 else None


def chance_line(manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """{'rate', 'basis', 'accuracy', 'examples', 'margin', 'within_noise'} or None (no classes).

    `accuracy` is the test accuracy (None before evaluation); `within_noise` is True when it is
    indistinguishable from guessing, taken from run.json's `chance.within_noise` when given.
    """
    given = manifest.get("chance")
    rate, basis = _given_rate(given)
    if rate is None:
        k = _num_classes(manifest)
        if k is None:
            return None
        rate, basis = 1.0 / k, f"1/{k} classes"
    test = test_metrics_of(manifest)
    acc = _num(test.get("accuracy"))
    n = test.get("examples") or ((manifest.get("data") or {}).get("counts") or {}).get("test")
    n = int(n) if isinstance(n, int) and n > 0 else None
    margin = 2 * math.sqrt(rate * (1 - rate) / n) if n else None
    within = given.get("within_noise") if isinstance(given, Mapping) else None
    if not isinstance(within, bool):
        within = None if acc is None else acc <= rate + (margin or 0.0)
    return {
        "rate": rate,
        "basis": basis or "chance",
        "accuracy": acc,
        "examples": n,
        "margin": margin,
        "within_noise": within,
    }
