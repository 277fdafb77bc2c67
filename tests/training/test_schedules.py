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


def test_deadline_cosine_is_half_at_mid_time_and_zero_at_the_end():
    cb = schedules.DeadlineCosine(end_at=100.0)
    cb.start = 0.0
    assert cb.fraction(0.0) == pytest.approx(1.0)
    assert cb.fraction(50.0) == pytest.approx(0.5)
    assert cb.fraction(100.0) == pytest.approx(0.0, abs=1e-12)
    assert cb.fraction(250.0) == pytest.approx(0.0, abs=1e-12)  # past the end it stays there
    assert schedules.DeadlineCosine(end_at=10.0, floor=0.1).fraction(10.0) == pytest.approx(0.1)
    capped = schedules.DeadlineCosine(end_at=100.0, max_steps=10)
    capped.steps = 5  # half the steps in a tenth of the time: the steps decide
    assert capped.fraction(10.0) == pytest.approx(0.5)
    capped.steps = 10
    assert capped.fraction(10.0) == pytest.approx(0.0, abs=1e-12)


def test_deadline_cosine_decays_the_rate_and_stops_fit_at_its_time():
    """A fit asked for far more epochs than fit in 1.5 s ends near 1.5 s, its rate decayed to
    about 0 (it reads the wall clock, not a step count)."""
    import time

    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    seen: list[float] = []

    class Rates(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    limit = 1.5
    cb = schedules.DeadlineCosine(end_at=time.time() + limit, every=1)
    t0 = time.time()
    model.fit(x, y, batch_size=8, epochs=100_000, verbose=0, callbacks=[cb, Rates()])
    took = time.time() - t0
    assert limit - 0.05 <= took < limit + 10  # stops at its time, not after 100,000 epochs
    assert cb.steps == len(seen) and cb.steps > 2
    assert seen[0] == pytest.approx(0.5, rel=0.2)
    assert seen[-1] < 0.05 * 0.5 and all(
        a >= b - 1e-9 for a, b in zip(seen, seen[1:], strict=False)
    )
    assert not math.isnan(seen[-1])
