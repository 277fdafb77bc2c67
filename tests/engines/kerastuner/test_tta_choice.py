"""--tta auto keeps the view (mirror, 1-pixel shifts) that validates best, or none; flip, shift
and none are obeyed; a model that takes no images, or no time left, keeps the plain model (and
says why)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from automl_app.tf_env import tf

tf()
import keras  # noqa: E402
import keras_tuner as kt  # noqa: E402

from automl_app.engines.kerastuner import tta  # noqa: E402
from automl_app.models.tta import PASSES  # noqa: E402
from automl_app.tuning.budget import Deadline  # noqa: E402

H = W = 4
OBJECTIVE = kt.Objective("val_accuracy", "max")


def column_model(column: int, bias: float = 2.2) -> keras.Model:
    """Class 1 when the given column is bright: p1 = sigmoid(3 * column sum - bias)."""
    inputs = keras.Input(shape=(H, W, 1))
    x = keras.layers.Flatten()(inputs)
    dense = keras.layers.Dense(2, activation="softmax")
    out = dense(x)
    kernel = np.zeros((H * W, 2), "float32")
    kernel[[r * W + column for r in range(H)], 1] = 3.0
    dense.set_weights([kernel, np.array([0.0, -bias], "float32")])
    return keras.Model(inputs, out)


def bars(columns: list[int | None], positive=(0, W - 1)) -> tuple[np.ndarray, np.ndarray]:
    """Images with a bright bar in the given column (None: dark), labelled 1 when the bar's
    column is among `positive`."""
    x = np.zeros((len(columns), H, W, 1), "float32")
    for i, c in enumerate(columns):
        if c is not None:
            x[i, :, c, 0] = 1.0
    return x, np.array([int(c in positive) for c in columns])


def choose(mode, model, columns, deadline=None, positive=(0, W - 1)):
    x, y = bars(columns, positive)
    lines: list[str] = []
    chosen, record = tta.choose(
        mode, None, model, {"val": x, "y_val": y}, OBJECTIVE, lines.append, deadline
    )
    return chosen, record, lines


def test_auto_keeps_the_mirror_when_it_validates_better():
    # bars on either edge mean class 1; the model only looks at the left edge: 3/4 right plain,
    # all right with the mirror (the right-edge bar is seen in the mirror image)
    model = column_model(0)
    chosen, record, lines = choose("auto", model, [0, W - 1, None, None] * 5)
    assert record["chosen"] == "flip" and chosen is not model
    # the shifts do not reach the far edge: 0.75 as plain
    assert record["validation"] == {"none": 0.75, "flip": 1.0, "shift": 0.75}
    assert record["passes"] == 2 and record["inference_time_ratio"] > 0
    assert set(record["inference_time_ratios"]) == {"flip", "shift"}
    assert "test-time augmentation: flip" in lines[-1] and "0.7500 without" in lines[-1]
    assert tta.describe(record).startswith("flip: the mean over the image and its mirror")


def test_auto_keeps_the_shifts_where_they_validate_best():
    # bars in columns 0 and 1 mean class 1; the model looks at column 1 only and leans to class 1
    # (p1 = 0.43 on what it does not see): one shifted view of a column-0 bar tips it over 0.5,
    # the mirror does not (it moves that bar to the far edge)
    model = column_model(1, bias=0.3)
    chosen, record, lines = choose("auto", model, [0, 1, None, W - 1] * 5, positive=(0, 1))
    assert record["chosen"] == "shift" and chosen is not model
    assert record["validation"] == {"none": 0.75, "flip": 0.75, "shift": 1.0}
    assert record["passes"] == 5
    assert "test-time augmentation: shift" in lines[-1] and "with the 1-pixel shifts" in lines[-1]
    assert tta.describe(record).startswith("shift: the mean over the image and its four 1-pixel")
    x, _ = bars([0])
    assert chosen.predict(x, verbose=0)[0, 1] > 0.5


def test_auto_declines_it_where_left_and_right_differ():
    # only a left bar is class 1; the mirror turns right bars into false positives: the plain
    # model validates better
    model = column_model(0)
    chosen, record, lines = choose("auto", model, [0, W - 1, None] * 5, positive=(0,))
    assert record["chosen"] == "none" and chosen is model
    assert record["validation"]["none"] > record["validation"]["flip"]
    assert record["validation"]["none"] >= record["validation"]["shift"]
    assert "test-time augmentation: none" in lines[-1]
    assert tta.describe(record) == "none"


def test_flip_shift_and_none_are_obeyed_without_validating():
    model = column_model(0)
    chosen, record, _ = choose("none", model, [0, None])
    assert chosen is model and record == {"mode": "none", "chosen": "none"}
    chosen, record, lines = choose("flip", model, [0, None])
    assert record["chosen"] == "flip" and "validation" not in record
    assert "--tta flip" in lines[-1]
    x, _ = bars([W - 1])
    assert chosen.predict(x, verbose=0)[0, 1] > 0.5  # the mirror sees the right-edge bar
    chosen, record, lines = choose("shift", model, [0, None])
    assert record == {"mode": "shift", "chosen": "shift", "passes": 5, "reason": "--tta shift"}
    assert chosen is not model and "--tta shift" in lines[-1]


def test_a_model_without_images_keeps_its_plain_outputs():
    inputs = keras.Input(shape=(H * W,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    chosen, record = tta.choose("auto", None, model, {}, OBJECTIVE, [].append)
    assert chosen is model and record["chosen"] == "none" and "images" in record["reason"]


@pytest.mark.parametrize("seconds_left", [-1.0, 0.0])
def test_no_time_left_keeps_the_plain_model(seconds_left):
    deadline = Deadline(at=time.time() + seconds_left, seconds=60.0)
    chosen, record, _ = choose("auto", column_model(0), [0, W - 1] * 4, deadline)
    assert record["chosen"] == "none" and "no time left" in record["reason"]


@pytest.mark.parametrize(
    "trained, view",
    [
        ({"augment_flip": True, "augment_shift": 0.05}, "flip"),
        ({"augment_flip": False, "augment_shift": 0.05}, "shift"),
        ({"augment_flip": False, "augment_shift": 0.0}, "none"),
        ({}, "none"),  # a hypermodel without augmentation keys
    ],
)
def test_auto_without_validation_takes_only_a_view_the_model_trained_with(trained, view):
    model = column_model(0)
    lines: list[str] = []
    chosen, record = tta.choose("auto", None, model, {}, OBJECTIVE, lines.append, None, trained)
    assert record["chosen"] == view and record["passes"] == PASSES[view]
    assert "no validation split" in record["reason"] and record["reason"] in lines[-1]
    assert (chosen is model) == (view == "none") and "validation" not in record
