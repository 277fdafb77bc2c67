"""The pieces of a from-scratch training loop: distribution strategy, mixed precision, the
optimizer with its LR schedule, and the per-epoch checkpoint and log callbacks.
"""

from __future__ import annotations

import os
import sys
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


def format_duration(seconds: float) -> str:
    """42s, 3m05s, 1h02m: short enough for a progress line."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def live_bars(say: Callable[[str], None], stream: Any = None) -> bool:
    """A live tqdm bar only on a terminal, not under --quiet (a `say` marked `quiet`) nor
    --verbose (Keras prints its own progress then)."""
    from automl_app.tf_env import is_verbose

    stream = sys.stdout if stream is None else stream
    try:
        tty = bool(stream.isatty())
    except (AttributeError, ValueError):
        tty = False
    return tty and not getattr(say, "quiet", False) and not is_verbose()


def progress_bar(total: int, desc: str, unit: str, stream: Any = None):
    """A live tqdm bar that erases itself when closed, as wide as the terminal (100 columns when
    the terminal does not say, as under `script` or some CI pseudo-terminals)."""
    import shutil

    from tqdm import tqdm

    size = shutil.get_terminal_size((100, 24))  # tqdm hides every bar on a 0-row terminal
    return tqdm(total=total, desc=desc, unit=unit, leave=False, ncols=size.columns or 100,
                nrows=size.lines or 24, file=sys.stdout if stream is None else stream)  # fmt: skip


def _epoch_log(epochs: int, n_images: int, log: Callable[[str], None]):
    """One line per epoch: metrics, learning rate, seconds, images/s and the run's ETA; on a
    terminal also a live bar over the epoch's batches with tqdm's own ETA."""
    import keras

    live = live_bars(log)

    class EpochLog(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.times: list[float] = []
            self.bar = None

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()
            steps = self.params.get("steps")
            if live and steps:
                self.bar = progress_bar(steps, f"epoch {epoch + 1}/{epochs}", "step")

        def on_train_batch_end(self, batch, logs=None):
            if self.bar is not None:
                self.bar.update(1)

        def on_epoch_end(self, epoch, logs=None):
            secs = time.perf_counter() - self.t0
            self.times.append(secs)
            if self.bar is not None:
                self.bar.close()
                self.bar = None
            shown = " ".join(f"{k} {float(v):.4f}" for k, v in (logs or {}).items())
            lr = float(self.model.optimizer.learning_rate)
            eta = sum(self.times) / len(self.times) * max(epochs - epoch - 1, 0)
            log(
                f"epoch {epoch + 1}/{epochs}: {shown} lr {lr:.4g} "
                f"({secs:.1f} s, {n_images / max(secs, 1e-9):.0f} img/s) | "
                f"ETA {format_duration(eta)}"
            )

        def on_train_end(self, logs=None):
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return EpochLog()


def balanced_class_weights(y_train: Any) -> dict[int, float]:
    """scikit-learn's 'balanced' weights, n / (k * count), of the training labels' classes (a
    class with no training example gets none): what fit(class_weight=...) takes."""
    import numpy as np
    from sklearn.utils.class_weight import compute_class_weight

    y = np.asarray(y_train).reshape(-1).astype(int)
    classes = np.unique(y)
    weights = compute_class_weight("balanced", classes=classes, y=y)
    return {int(c): round(float(w), 6) for c, w in zip(classes, weights, strict=True)}


def early_stopping(monitor: str, mode: str, patience: int) -> Any:
    """Keras's EarlyStopping on `monitor`, keeping the best epoch's weights (--early-stopping)."""
    import keras

    return keras.callbacks.EarlyStopping(
        monitor=monitor, mode=mode, patience=int(patience), restore_best_weights=True
    )
