"""Promote judges distinct configurations: a near twin of a leader does not take a slot."""

from __future__ import annotations

import keras_tuner as kt

from automl_app.engines.kerastuner.promote import distinct


def _trial(trial_id: str, score: float | None, **values) -> kt.engine.trial.Trial:
    hps = kt.HyperParameters()
    hps.Choice("block", ["plain", "residual"], default="plain")
    hps.Float("learning_rate", 3e-4, 3e-3, sampling="log", default=1e-3)
    hps.Float("dropout_rate", 0.0, 0.5, step=0.1, default=0.3)
    hps.Int("conv_blocks", 2, 3, default=2)
    for name, value in values.items():
        hps.values[name] = value
    trial = kt.engine.trial.Trial(hps, trial_id=trial_id, status="COMPLETED")
    trial.score = score
    return trial


def test_a_near_twin_gives_its_slot_to_the_next_configuration_and_is_named():
    leaders = [
        _trial("002", 0.91, block="residual", learning_rate=0.0028, dropout_rate=0.2),
        _trial("001", 0.90, block="residual", learning_rate=0.003, dropout_rate=0.2),
        _trial("000", 0.89),
        _trial("003", 0.88, conv_blocks=3),
    ]
    said: list[str] = []
    picked = distinct(leaders, 3, said.append)
    assert [t.trial_id for t in picked] == ["002", "000", "003"]
    assert said == [
        "promote: trial 001 is trial 002 but for learning_rate 0.003 vs 0.0028: judged once"
    ]


def test_values_a_range_apart_or_of_another_kind_stay_distinct():
    leaders = [
        _trial("000", 0.9),
        _trial("001", 0.9, learning_rate=0.0013),  # 11% of the log range away
        _trial("002", 0.9, dropout_rate=0.2),  # one step of 0.1 is 20% of the range
        _trial("003", 0.9, conv_blocks=3),  # an Int is never near
        _trial("004", None, block="residual"),  # not scored: never judged
        _trial("005", 0.8),  # the same values as 000: skipped without a line
    ]
    said: list[str] = []
    assert [t.trial_id for t in distinct(leaders, 5, said.append)] == ["000", "001", "002", "003"]
    assert said == []


def test_the_better_half_is_promoted_two_to_promote_k():
    from automl_app.engines.kerastuner.promote import PROMOTE_K, promote_count

    assert [promote_count(n) for n in (1, 2, 3, 4, 5, 6, 7, 20)] == [2, 2, 2, 2, 2, 3, 3, 3]
    assert PROMOTE_K == 3 and promote_count(20, k=5) == 5


def test_a_leader_too_dear_to_judge_gives_its_place_to_the_next():
    # promote judges the first `count` leaders that fit 2 epochs in their share: the explore
    # phase's winner, 10x dearer, is passed over (at 5 minutes on a photo folder it was, and the
    # phase was skipped when the leaders were cut to 2 before this check)
    import numpy as np

    from automl_app.engines.kerastuner.promote import MIN_EPOCHS, _fitting
    from automl_app.engines.kerastuner.schedule import BudgetSchedule
    from automl_app.tuning.budget import Deadline

    class Cost:
        def epoch_seconds(self, macs, batch, n, n_val, key=None):
            return 20.0 if key == "003" else 2.0

        def val_seconds(self, macs, n):
            return 0.01

    class Hypermodel:
        def build(self, hp):
            import keras

            inputs = keras.Input((4,))
            return keras.Model(inputs, keras.layers.Dense(2)(inputs))

    leaders = [_trial("003", 0.40), _trial("002", 0.35, conv_blocks=3), _trial("000", 0.34)]
    schedule = BudgetSchedule(
        deadline=Deadline.after(300), explore=Deadline.after(1), reserve_s=20, subset=None,
        n_train=100, promote_s=30,
    )  # fmt: skip
    fit_args = {"val": np.zeros((10, 4)), "y_val": np.zeros(10)}
    share = 30 / 3  # 2 epochs of 003 take 40 s
    fit = _fitting(Hypermodel(), leaders, 2, share, schedule, Cost(), fit_args, 100, "none")
    assert [f[0].trial_id for f in fit] == ["002", "000"]
    assert all(f[3] >= MIN_EPOCHS for f in fit)
