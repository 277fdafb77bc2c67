"""Predict what a trial costs before it starts, and start none that cannot finish in time.

`CostModel` predicts a fit's seconds from the model's multiply-accumulates per example
(models/cost.py), its batch size and the epochs measured so far on this machine:

    seconds = start-up + epochs × (steps × (a + b × MACs × batch) + validation)

Every fit measured feeds it, each epoch split into its first step (tracing, start-up) and the
steady steps after it, so even one-epoch trials calibrate both terms. `a` (per-step overhead) and
`b` (seconds per multiply-accumulate) are fitted by least squares once two different models were
measured; before that `a` is taken as half the cheapest measured step. `TrialGuard` is what the
hypermodel asks before each fit (see models/hypermodel.py): it returns the epochs that fit before
the phase's deadline, shrinking the trial with one line, or refuses it with KerasTuner's
FailedTrialError("skipped: …"), which the trial table records as skipped (budget.skip_reason).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from automl_app.tuning.budget import SKIPPED, Deadline

SLOW_TRIAL_FACTOR = 4.0  # a trial predicted this many times the median one gets a line first
DEFAULT_BATCH = 32  # Keras's fit() default, for hypermodels without a batch_size
SAFETY = 1.2  # predictions are stretched by this much before a deadline: a busy machine varies
EQUAL_TIME_SLACK = 1.5  # with equal_time, a trial may take this much longer than the first one


class CostModel:
    """Seconds of a fit, from model size and batch size, calibrated on measured epochs."""

    def __init__(self) -> None:
        self.steps: dict[str, tuple[float, float]] = {}  # key -> (MACs × batch, s per step)
        self.val_rates: list[float] = []  # validation seconds per (MAC × example)
        self.startups: list[float] = []
        self.between: list[float] = []  # seconds between one fit's end and the next one's start
        self.epoch_extra: list[float] = []  # per epoch, beyond its steps and validation
        self.trial_seconds: dict[str, float] = {}

    def observe(
        self, key: str, macs: int, batch: int, n_val: int, record: dict[str, list[float]]
    ) -> None:
        """Record one fit: per epoch, its seconds per steady step, start-up and validation."""
        if record.get("step"):
            self.steps[key] = (float(macs) * batch, statistics.median(record["step"]))
        if record.get("val") and n_val and macs:
            self.val_rates.append(statistics.median(record["val"]) / (float(macs) * n_val))
        if record.get("startup"):
            self.startups.append(record["startup"][0])
        if record.get("extra"):
            self.epoch_extra.append(statistics.median(record["extra"]))
        self.trial_seconds[key] = self.trial_seconds.get(key, 0.0) + sum(record.get("epoch", []))

    def known(self) -> bool:
        return bool(self.steps)

    def _coefficients(self) -> tuple[float, float]:
        """(a, b) of seconds per step = a + b × MACs × batch."""
        points = list(self.steps.values())
        xs = [x for x, _ in points]
        if len(set(xs)) >= 2:  # least squares in relative error, both terms non-negative
            w = [1.0 / max(y, 1e-9) ** 2 for _, y in points]
            sw, sx, sy = (
                sum(w),
                sum(wi * x for wi, (x, _) in zip(w, points, strict=True)),
                sum(wi * y for wi, (_, y) in zip(w, points, strict=True)),
            )
            sxx = sum(wi * x * x for wi, (x, _) in zip(w, points, strict=True))
            sxy = sum(wi * x * y for wi, (x, y) in zip(w, points, strict=True))
            det = sw * sxx - sx * sx
            if det > 0:
                b = (sw * sxy - sx * sy) / det
                a = (sy - b * sx) / sw
                if a >= 0 and b > 0:
                    return a, b
        a = 0.5 * min(y for _, y in points)
        b = statistics.median(max(y - a, 0.0) / max(x, 1.0) for x, y in points)
        return a, b

    def step_seconds(self, macs: int, batch: int, key: str | None = None) -> float | None:
        if key is not None and key in self.steps:
            return self.steps[key][1]
        if not self.steps:
            return None
        a, b = self._coefficients()
        return a + b * float(macs) * batch

    def val_seconds(self, macs: int, n_val: int) -> float:
        if not self.val_rates or not n_val:
            return 0.0
        return statistics.median(self.val_rates) * float(macs) * n_val

    def startup(self) -> float:
        """Per fit: tracing in the first step, plus the work around it (build, checkpoint, …)."""
        traced = statistics.median(self.startups) if self.startups else 0.0
        return traced + (statistics.median(self.between) if self.between else 0.0)

    def epoch_seconds(
        self, macs: int, batch: int, n_train: int, n_val: int = 0, key: str | None = None
    ) -> float | None:
        step = self.step_seconds(macs, batch, key)
        if step is None:
            return None
        steps = -(-int(n_train) // max(int(batch), 1))
        extra = statistics.median(self.epoch_extra) if self.epoch_extra else 0.0
        return steps * step + self.val_seconds(macs, n_val) + extra

    def fit_seconds(
        self, macs: int, batch: int, n_train: int, n_val: int, epochs: int, key: str | None = None
    ) -> float | None:
        """Predicted seconds of a fit of `epochs` epochs (None before any measurement)."""
        per_epoch = self.epoch_seconds(macs, batch, n_train, n_val, key)
        return None if per_epoch is None else self.startup() + epochs * per_epoch

    def median_trial(self) -> float | None:
        done = list(self.trial_seconds.values())
        return statistics.median(done) if done else None


class TrialGuard:
    """Asked by the hypermodel before each fit: how many epochs fit before the deadline.

    All of them when the prediction fits the time left; fewer when only some do (one line); none
    when not even one does: KerasTuner's FailedTrialError("skipped: …") (one line). Before any
    epoch is measured every trial starts (the deadline callback still stops it at the deadline).
    Without a deadline it only announces a trial predicted to cost SLOW_TRIAL_FACTOR× the median.
    With `equal_time` (the explore phase of a time budget) a trial dearer than the first one gets
    fewer epochs, so configurations are compared at the time the final refit will pay for them.
    """

    def __init__(
        self,
        deadline: Deadline | None,
        say: Any = print,
        oracle: Any = None,
        equal_time: bool = False,
    ) -> None:
        self.deadline = deadline
        self.equal_time = equal_time
        self.say = say
        self.oracle = oracle
        self.cost = CostModel()
        self.lines: list[str] = []
        self._fit: dict[str, Any] = {}
        self._ended: float | None = None  # perf_counter() at the end of the last fit

    def _label(self) -> str:
        ongoing = list((getattr(self.oracle, "ongoing_trials", None) or {}).values())
        return f"trial {ongoing[0].trial_id}" if len(ongoing) == 1 else "next trial"

    def _say(self, line: str) -> None:
        self.lines.append(line)
        self.say(line)

    def plan(self, model: Any, values: dict, n_train: int, n_val: int, epochs: int) -> int:
        """The epochs this fit may train (raises FailedTrialError "skipped: …" for none)."""
        from automl_app.models.cost import forward_macs

        label = self._label()
        if self._ended is not None:
            self.cost.between.append(time.perf_counter() - self._ended)
        macs = forward_macs(model)
        batch = int(values.get("batch_size") or DEFAULT_BATCH)
        self._fit = {"key": label.removeprefix("trial "), "macs": macs, "batch": batch,
                     "n_val": n_val}  # fmt: skip
        predicted = self.cost.fit_seconds(macs, batch, n_train, n_val, epochs)
        if predicted is None:
            return epochs
        per_epoch = self.cost.epoch_seconds(macs, batch, n_train, n_val) or 0.0
        wanted, note, why = epochs, "", ""
        if self.equal_time and self.cost.trial_seconds and epochs > 1 and per_epoch > 0:
            reference = next(iter(self.cost.trial_seconds.values()))
            if per_epoch * epochs > EQUAL_TIME_SLACK * reference:
                epochs = max(1, min(epochs, int(EQUAL_TIME_SLACK * reference // per_epoch)))
                note = (
                    f"{wanted} epochs would take about {per_epoch * wanted:.0f}s, "
                    f"{per_epoch * wanted / reference:.1f}x the first trial"
                )
                why = ", so trials compare at equal time"
        if self.deadline is not None:
            left = self.deadline.remaining()
            fit = int((left - self.cost.startup()) // (SAFETY * per_epoch)) if per_epoch else epochs
            if fit < 1:
                reason = (
                    f"predicted {per_epoch + self.cost.startup():.0f}s for one epoch, "
                    f"{max(left, 0):.0f}s left in this phase"
                )
                self._say(f"{label}: not started, {reason}")
                import keras_tuner

                raise keras_tuner.errors.FailedTrialError(f"{SKIPPED} {reason}")
            if fit < epochs:
                epochs, why = fit, ""
                note = (
                    f"{wanted} epochs would take about {SAFETY * predicted:.0f}s, "
                    f"{max(left, 0):.0f}s left in this phase"
                )
        if epochs < wanted:
            self._say(f"{label}: {note}: shrunk to {epochs} epoch{'s' * (epochs > 1)}{why}")
            return epochs
        median = self.cost.median_trial()
        if median and predicted > SLOW_TRIAL_FACTOR * median:
            self._say(
                f"{label}: predicted {predicted:.0f}s, {predicted / median:.1f}x the median "
                f"trial ({median:.0f}s): {model.count_params():,} parameters, batch {batch}"
            )
        return epochs

    def callback(self, model: Any) -> Any:
        """A Keras callback that feeds this fit's timings back into the cost model."""
        return _timer_class()(self, dict(self._fit))


_TIMER: type | None = None


def _timer_class() -> type:
    """The timing callback class, built on first use (keeps Keras out of CLI parsing)."""
    global _TIMER
    if _TIMER is None:
        import keras

        class FitTimer(keras.callbacks.Callback):
            """Per epoch: the first step (tracing), the steady steps and the validation pass."""

            def __init__(self, guard: TrialGuard, fit: dict[str, Any]) -> None:
                super().__init__()
                self.guard, self.cost, self.fit = guard, guard.cost, fit
                self.record: dict[str, list[float]] = {"step": [], "val": [], "startup": [],
                                                       "epoch": [], "extra": []}  # fmt: skip

            def __deepcopy__(self, memo: dict) -> Any:  # KerasTuner copies callbacks per trial
                return self

            def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
                self._t0 = self._t_batch = time.perf_counter()
                self._batches, self._first, self._val = 0, None, 0.0

            def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
                self._batches += 1
                self._t_batch = time.perf_counter()
                if self._first is None:
                    self._first = self._t_batch - self._t0

            def on_test_begin(self, logs: Any = None) -> None:
                self._tv = time.perf_counter()

            def on_test_end(self, logs: Any = None) -> None:
                self._val = time.perf_counter() - self._tv

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                total = time.perf_counter() - self._t0
                self.record["epoch"].append(total)
                if self._batches >= 2:
                    steady = (self._t_batch - self._t0 - self._first) / (self._batches - 1)
                    self.record["step"].append(steady)
                    if epoch == 0:  # tracing happens in the first step of the first epoch
                        self.record["startup"].append(max(0.0, self._first - steady))
                    else:  # iterator start, callbacks: what an epoch costs beyond its steps
                        rest = total - self._batches * steady - self._val
                        self.record["extra"].append(max(0.0, rest))
                if self._val:
                    self.record["val"].append(self._val)

            def on_train_end(self, logs: Any = None) -> None:
                self.guard._ended = time.perf_counter()
                f = self.fit
                if f.get("macs"):
                    self.cost.observe(f["key"], f["macs"], f["batch"], f["n_val"], self.record)

        _TIMER = FitTimer
    return _TIMER
