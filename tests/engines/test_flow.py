"""The flow's middle, shared by every engine (workflows.complete): one chance rule, one
regression report, the model card's input scaling, and a missing objective as a clear error.
Fast: no training, no TensorFlow."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from automl_app import evaluate
from automl_app.errors import SearchError


def test_chance_is_the_majority_class_of_the_evaluated_split():
    y = np.array([0] * 50 + list(range(1, 10)) * 35)  # the majority class 0: 50 of 365
    c = evaluate.chance_check(0.1337, y, 10, split="test")
    assert c["basis"] == "majority class" and c["rate"] == pytest.approx(50 / 365, abs=1e-6)
    assert c["within_noise"] is True and c["split"] == "test" and c["test_accuracy"] == 0.1337
    c["cause"], c["next_step"] = "the model did not learn", "train longer"
    line = evaluate.chance_warning(c)
    assert line.startswith("warning: the exported model is no better than chance: test accuracy")
    assert "(majority class, ±" in line and "on 365 test examples" in line
    assert "likely cause: the model did not learn; next: train longer" in line
    assert evaluate.chance_check(0.9, y, 10)["within_noise"] is False


def test_one_regression_report_for_one_or_several_heads(tmp_path):
    y = np.array([1.0, 2.0, 3.0, 4.0])
    one = evaluate.final(y + 0.5, y, [{"name": "v", "type": "regression"}], tmp_path / "a")
    assert one == evaluate.regression_metrics(y, y + 0.5)
    assert one["mae"] == pytest.approx(0.5) and one["examples"] == 4
    assert json.loads((tmp_path / "a" / "regression_report.json").read_text()) == one
    heads = [
        {"name": "kind", "type": "classification", "class_names": ["a", "b"]},
        {"name": "price", "type": "regression"},
    ]
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    both = evaluate.final(
        {"kind": probs, "price": y}, {"kind": np.array([0, 1, 1, 1]), "price": y}, heads, tmp_path
    )
    assert both["kind"]["accuracy"] == 0.75 and both["price"]["mae"] == 0.0
    assert (tmp_path / "kind" / "classification_report.json").is_file()
    assert set(json.loads((tmp_path / "regression_report.json").read_text())) == {"price"}
    assert evaluate.metrics_line(both["price"]).startswith("MAE 0, RMSE 0")


def test_model_card_says_how_inputs_are_scaled():
    from automl_app.export import input_scaling

    digits = input_scaling("digits", "0_1")
    assert "uint8 pixels 0..255" in digits and "x / 255" in digits and "0..16" in digits
    assert "0..16" not in input_scaling("fashion_mnist", "-1_1")
    assert "127.5" in input_scaling("fashion_mnist", "-1_1")
    assert "AutoKeras" in input_scaling("digits", "none (raw 0..255)")
    assert input_scaling(None, None) is None  # text and tables: no pixels


class _Oracle:
    def __init__(self, objective: str, metrics: dict):
        self.objective = SimpleNamespace(name=objective)
        self.trials = {"0": SimpleNamespace(metrics=SimpleNamespace(metrics=metrics))}

    def get_best_trials(self, n):
        return []


def test_an_objective_the_model_never_records_is_a_search_error_not_a_key_error():
    from automl_app.engines.kerastuner.engine import _best, _score

    tuner = SimpleNamespace(
        oracle=_Oracle("val_auc", {"val_accuracy": None, "loss": None}),
        first_failure="Traceback …\nKeyError: 'val_auc'\n",
    )
    with pytest.raises(SearchError, match="--objective val_auc is not a metric the model records"):
        _best(tuner, {"stop_reason": "max_trials"}, load=False)
    trial = SimpleNamespace(
        score=None, trial_id="3", metrics=SimpleNamespace(metrics={"val_accuracy": None})
    )
    with pytest.raises(SearchError, match="'val_auc' was not recorded by trial 3.*val_accuracy"):
        _score(trial, "val_auc")
