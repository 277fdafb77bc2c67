"""Warm-up then decay: values at known steps, Keras-style errors, serialisation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from automl_app.training import schedules


def _lr(schedule, step: int) -> float:
    return float(np.asarray(schedule(step)))


def test_warmup_is_linear_then_cosine_decays_to_zero():
    s = schedules.WarmupDecay(0.1, total_steps=110, warmup_steps=10, schedule="cosine")
    assert _lr(s, 0) == pytest.approx(0.01)
    assert _lr(s, 4) == pytest.approx(0.05)
    assert _lr(s, 10) == pytest.approx(0.1)
    assert _lr(s, 60) == pytest.approx(0.05, rel=1e-4)
    assert _lr(s, 110) == pytest.approx(0.0, abs=1e-7)
    assert _lr(s, 500) == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize(
    "name, at_half, at_end",
    [
        ("constant", 0.1, 0.1),
        ("step", 0.1 * 0.1, 0.1 * 0.01),
        ("exponential", 0.1 * math.sqrt(0.01), 0.1 * 0.01),
    ],
)
def test_other_decays(name, at_half, at_end):
    s = schedules.WarmupDecay(0.1, total_steps=100, warmup_steps=0, schedule=name)
    assert _lr(s, 0) == pytest.approx(0.1)
    assert _lr(s, 50) == pytest.approx(at_half, rel=1e-4)
    assert _lr(s, 99) == pytest.approx(at_end, rel=0.06)


def test_unknown_schedule_message_is_keras_style():
    with pytest.raises(ValueError) as err:
        schedules.WarmupDecay(0.1, total_steps=10, schedule="cosin")
    assert str(err.value) == (
        "`schedule` must be one of cosine, step, exponential, constant. Received: schedule='cosin'"
    )
    with pytest.raises(ValueError, match="`warmup_steps` must be between 0 and total_steps"):
        schedules.WarmupDecay(0.1, total_steps=10, warmup_steps=11)


def test_round_trips_through_keras_serialization_and_an_optimizer():
    import keras

    s = schedules.WarmupDecay(0.2, total_steps=50, warmup_steps=5, schedule="step")
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(s))
    assert again.get_config() == s.get_config()
    opt = keras.optimizers.SGD(learning_rate=s, momentum=0.9, nesterov=True)
    assert float(opt.learning_rate) == pytest.approx(0.04)


def test_lr_is_scaled_linearly_with_batch_size():
    assert schedules.scaled_lr(0.045, 192) == pytest.approx(0.03375)
    assert schedules.scaled_lr(0.045, 512) == pytest.approx(0.09)
