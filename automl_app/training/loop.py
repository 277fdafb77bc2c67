"""The pieces of a from-scratch training loop: distribution strategy, mixed precision, the
optimizer with its LR schedule, and the per-epoch checkpoint and log callbacks.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from automl_app import runs
from automl_app.training.recipes import ScratchConfig


def _strategy(cfg: ScratchConfig, t: Any) -> tuple[Any, str]:
    gpus = t.config.list_physical_devices("GPU")
    if cfg.distribute == "mirrored" or (cfg.distribute == "auto" and len(gpus) > 1):
        return t.distribute.MirroredStrategy(), "mirrored"
    return t.distribute.get_strategy(), "none"


def _use_mixed_precision(cfg: ScratchConfig, t: Any) -> bool:
    if cfg.mixed_precision == "auto":
        return bool(t.config.list_physical_devices("GPU"))
    return cfg.mixed_precision == "on"


def _make_optimizer(cfg: ScratchConfig, schedule: Any):
    import keras

    common = {"learning_rate": schedule, "weight_decay": cfg.weight_decay or None}
    if cfg.optimizer == "sgd":
        opt = keras.optimizers.SGD(momentum=cfg.momentum, nesterov=cfg.nesterov, **common)
    elif cfg.optimizer == "rmsprop":
        opt = keras.optimizers.RMSprop(momentum=cfg.momentum, **common)
    else:
        opt = keras.optimizers.Adam(**common)
    if cfg.weight_decay:
        opt.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return opt


def _schedule(cfg: ScratchConfig, steps_per_epoch: int):
    from automl_app.training.schedules import WarmupDecay

    total = max(cfg.epochs * steps_per_epoch, 1)
    warmup = min(int(round(cfg.warmup_epochs * steps_per_epoch)), total)
    return WarmupDecay(cfg.lr, total_steps=total, warmup_steps=warmup, schedule=cfg.schedule)


def _epoch_checkpoint(ckpt_dir: Path):
    """Save the whole model (optimizer included) after every epoch, atomically, for --resume."""
    import keras

    class EpochCheckpoint(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            tmp = ckpt_dir / ".last.tmp.keras"
            self.model.save(tmp)
            os.replace(tmp, ckpt_dir / "last.keras")
            runs.atomic_write_json(ckpt_dir / "state.json", {"epoch": epoch + 1})

    return EpochCheckpoint()


def _epoch_log(epochs: int, n_images: int, log: Callable[[str], None]):
    """One line per epoch: metrics, learning rate, seconds and images/s."""
    import keras

    class EpochLog(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            secs = time.perf_counter() - self.t0
            shown = " ".join(f"{k} {float(v):.4f}" for k, v in (logs or {}).items())
            lr = float(self.model.optimizer.learning_rate)
            log(
                f"epoch {epoch + 1}/{epochs}: {shown} lr {lr:.4g} "
                f"({secs:.1f} s, {n_images / max(secs, 1e-9):.0f} img/s)"
            )

    return EpochLog()
