"""`--lr-find`: a learning-rate range test on the space's default configuration.

The learning rate grows exponentially batch by batch (Smith, 2017) until the loss diverges; the
suggestion is the rate at the lowest smoothed loss divided by 10, clipped to the space's range.
The curve is saved as report/lr_find.png and the suggestion is enqueued as the first trial.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from automl_app import runs


def lr_range_test(
    hypermodel,
    train_ds,
    *,
    steps: int = 200,
    min_lr: float = 1e-6,
    max_lr: float = 10.0,
    diverge_factor: float = 4.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Train the default configuration with a growing LR; return lrs, losses and a suggestion."""
    import keras
    import keras_tuner as kt

    from automl_app.models.hypermodel import batches

    hp = kt.HyperParameters()
    model = hypermodel.build(hp)
    batch_size = int(hp.values.get("batch_size", 64))
    ds = batches(train_ds, batch_size, shuffle=True, seed=seed).repeat()
    factor = (max_lr / min_lr) ** (1.0 / max(steps - 1, 1))
    lrs: list[float] = []
    losses: list[float] = []

    class Probe(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            lr = min_lr * factor**batch
            self.model.optimizer.learning_rate.assign(lr)
            lrs.append(lr)

        def on_train_batch_end(self, batch, logs=None):
            loss = float((logs or {}).get("loss", float("nan")))
            losses.append(loss)
            smooth = _smooth(losses)
            if not math.isfinite(loss) or (
                len(smooth) > 10 and smooth[-1] > diverge_factor * min(smooth)
            ):
                self.model.stop_training = True

    model.fit(ds, steps_per_epoch=steps, epochs=1, callbacks=[Probe()], verbose=0)
    n = min(len(lrs), len(losses))
    lrs, losses = lrs[:n], losses[:n]
    smooth = _smooth(losses)
    finite = [i for i, v in enumerate(smooth) if math.isfinite(v)]
    best = min(finite, key=lambda i: smooth[i]) if finite else 0
    return {
        "lrs": lrs,
        "losses": losses,
        "smoothed": smooth,
        "lr_at_min_loss": lrs[best] if lrs else None,
        "suggestion": (lrs[best] / 10.0) if lrs else None,
        "steps_run": n,
        "batch_size": batch_size,
    }


def _smooth(values: list[float], beta: float = 0.9) -> list[float]:
    """Bias-corrected exponential moving average (NaN/inf stay as they are)."""
    out, avg = [], 0.0
    for i, v in enumerate(values, 1):
        if not math.isfinite(v):
            out.append(v)
            continue
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta**i))
    return out


def clip_to_space(lr: float, space) -> float:
    """Keep the suggestion inside the space's learning_rate range (if it has one)."""
    for e in space.entries:
        if e.name == "learning_rate" and e.type in ("float", "int"):
            return float(np.clip(lr, e.args["min"], e.args["max"]))
        if e.name == "learning_rate" and e.type == "choice":
            values = np.asarray(e.args["values"], dtype=float)
            return float(values[np.argmin(np.abs(np.log(values) - np.log(lr)))])
    return float(lr)


def plot(result: dict[str, Any], path: str | Path) -> Path:
    """report/lr_find.png: loss against learning rate (log x), suggestion marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(result["lrs"], result["losses"], alpha=0.3, label="loss")
    ax.plot(result["lrs"], result["smoothed"], label="smoothed")
    if result.get("suggestion"):
        ax.axvline(
            result["suggestion"],
            color="red",
            linestyle="--",
            label=f"suggestion {result['suggestion']:.2g}",
        )
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    finite = [v for v in result["smoothed"] if math.isfinite(v)]
    if finite:
        ax.set_ylim(min(finite) * 0.9, min(max(finite), 4 * min(finite)) * 1.1)
    ax.legend()
    ax.set_title("LR range test (default configuration)")
    fig.tight_layout()
    return runs.atomic_save_figure(fig, path)
