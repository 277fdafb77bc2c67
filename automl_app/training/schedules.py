"""Learning-rate schedules for training from scratch: linear warm-up, then one decay.

Large-batch SGD diverges if it starts at full speed, so every schedule ramps up linearly over
`warmup_steps` first; the decay then runs over the remaining steps (DESIGN: training/schedules.py).
"""

from __future__ import annotations

import math

from automl_app.tf_env import tf

tf()  # quiet TensorFlow import before Keras logs anything
import keras  # noqa: E402

SCHEDULES = ("cosine", "step", "exponential", "constant")


def check_schedule(name: str) -> str:
    """Return `name` if it is a known schedule; otherwise a Keras-style ValueError."""
    if name not in SCHEDULES:
        raise ValueError(
            f"`schedule` must be one of {', '.join(SCHEDULES)}. Received: schedule={name!r}"
        )
    return name


@keras.saving.register_keras_serializable(package="automl")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """`base_lr` reached linearly after `warmup_steps`, then `schedule` until `total_steps`.

    cosine: half cosine to `min_fraction`·base; step: ×`step_factor` at each of `step_drops`
    equal intervals; exponential: geometric from base to `min_fraction`·base (0.01 when 0);
    constant: base.
    Serialisable, so a checkpoint restores the optimizer with its schedule.
    """

    def __init__(
        self,
        base_lr: float,
        total_steps: int,
        warmup_steps: int = 0,
        schedule: str = "cosine",
        min_fraction: float = 0.0,
        step_factor: float = 0.1,
        step_drops: int = 3,
    ):
        check_schedule(schedule)
        if base_lr <= 0:
            raise ValueError(f"`base_lr` must be > 0. Received: base_lr={base_lr!r}")
        if total_steps < 1:
            raise ValueError(f"`total_steps` must be >= 1. Received: total_steps={total_steps!r}")
        if not 0 <= warmup_steps <= total_steps:
            raise ValueError(
                "`warmup_steps` must be between 0 and total_steps "
                f"({total_steps}). Received: warmup_steps={warmup_steps!r}"
            )
        self.base_lr = float(base_lr)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.schedule = schedule
        self.min_fraction = float(min_fraction)
        self.step_factor = float(step_factor)
        self.step_drops = int(step_drops)

    def __call__(self, step):
        ops = keras.ops
        step = ops.cast(step, "float32")
        base = self.base_lr
        warm = float(max(self.warmup_steps, 1))
        decay_steps = float(max(self.total_steps - self.warmup_steps, 1))
        progress = ops.clip((step - self.warmup_steps) / decay_steps, 0.0, 1.0)
        floor = self.min_fraction
        if self.schedule == "cosine":
            frac = floor + (1.0 - floor) * 0.5 * (1.0 + ops.cos(math.pi * progress))
        elif self.schedule == "step":
            drops = ops.minimum(ops.floor(progress * self.step_drops), self.step_drops - 1)
            frac = ops.power(self.step_factor, ops.maximum(drops, 0.0))
        elif self.schedule == "exponential":
            frac = ops.power(floor if floor > 0 else 0.01, progress)
        else:
            frac = ops.ones_like(progress)
        decayed = base * frac
        if self.warmup_steps == 0:
            return decayed
        warmup = base * ops.minimum(step + 1.0, warm) / warm
        return ops.where(step < self.warmup_steps, warmup, decayed)

    def get_config(self) -> dict:
        return {
            "base_lr": self.base_lr,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "schedule": self.schedule,
            "min_fraction": self.min_fraction,
            "step_factor": self.step_factor,
            "step_drops": self.step_drops,
        }


def scaled_lr(lr_per_256: float, batch_size: int) -> float:
    """The linear scaling rule: an LR quoted per 256 images, scaled to the real batch size."""
    return lr_per_256 * batch_size / 256.0


class DeadlineCosine(keras.callbacks.Callback):
    """Cosine learning rate over wall-clock time: from the optimizer's rate when fit() starts to
    `floor`× it at `end_at` (a time.time() value), where training stops; or at `max_steps`
    batches when those come first (progress is the larger of the time's and the steps' share).

    A step schedule planned from a predicted epoch time reaches its floor early when the machine
    runs faster than predicted (the rest of the budget idles) and is cut at the deadline before
    it has decayed when it runs slower; this one reaches its floor at `end_at` either way. It
    sets the optimizer's learning-rate variable every `every` batches (the compiled train step
    reads it), so the model must be compiled with a float learning rate, not a schedule.
    `steps` counts the batches trained.
    """

    owns_learning_rate = True  # the hypermodel's fit() must not install a step schedule

    def __init__(
        self, end_at: float, floor: float = 0.0, every: int = 4, max_steps: int | None = None
    ):
        super().__init__()
        self.end_at = float(end_at)
        self.max_steps = max_steps
        self.floor = float(floor)
        self.every = max(int(every), 1)
        self.steps = 0
        self.base: float | None = None
        self.start = 0.0

    def fraction(self, now: float) -> float:
        """The learning rate's fraction of its start value at time `now`."""
        span = max(self.end_at - self.start, 1e-6)
        progress = (now - self.start) / span
        if self.max_steps:
            progress = max(progress, self.steps / self.max_steps)
        progress = min(max(progress, 0.0), 1.0)
        return self.floor + (1.0 - self.floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def on_train_begin(self, logs=None) -> None:
        import time

        self.start = time.time()
        self.base = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_train_batch_begin(self, batch: int, logs=None) -> None:
        import time

        if self.steps % self.every == 0:
            fraction = self.fraction(time.time())
            self.model.optimizer.learning_rate = self.base * fraction
            if fraction <= self.floor:
                self.model.stop_training = True
        self.steps += 1
