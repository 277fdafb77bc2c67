"""What a search says while it works: per epoch of the running trial a line with the trial's
ETA, and between trials the search's elapsed time against its budget and the best so far.

On a terminal the epoch lines are one live tqdm bar per trial (over its batches, tqdm's ETA,
the last epoch's metrics beside it); elsewhere (a pipe, a log file, CliRunner) plain lines.
`--quiet` (a `say` marked `quiet`) shows neither; the trial line RecordingMixin prints and the
between-trials line go through `say`, which the quiet filter drops.

RecordingMixin owns one SearchProgress: `callback(...)` joins every trial's fit, and
`between_trials(...)` follows every recorded trial. The callback also keeps the trial's
per-epoch objective (`curve_of`), which the trial table carries to the Optuna journal.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from automl_app.training.loop import format_duration, live_bars, progress_bar

Say = Callable[[str], None]

__all__ = ["SearchProgress", "curve_of", "format_duration", "short_names", "trial_line"]


def curve_of(store: Mapping[str, Any]) -> list[list[float]] | None:
    """[[epoch (1-based), objective], ...] of one trial, averaged over its executions."""
    per_epoch = store.get("curve") or {}
    if not per_epoch:
        return None
    return [[int(e), sum(v) / len(v)] for e, v in sorted(per_epoch.items())]


def short_names(values: Mapping[str, Any]) -> dict[str, Any]:
    """AutoKeras's `image_block_1/conv_block_1/kernel_size` → `kernel_size` where that is unique
    (else the last two parts, else the whole name): trial lines stay one readable line."""
    out: dict[str, Any] = {}
    for name, v in values.items():
        parts = str(name).split("/")
        for n in range(1, len(parts) + 1):
            short = "/".join(parts[-n:])
            clash = [k for k in values if k != name and "/".join(str(k).split("/")[-n:]) == short]
            if not clash or n == len(parts):
                out[short] = v
                break
    return out


def trial_line(
    trial_id: Any,
    done: int,
    total: int | None,
    status: str,
    hps: str,
    objective: str,
    score: float | None,
    seconds: float,
    best: float | None,
    error: str | None = None,
) -> str:
    """`trial 3 (4/10) [completed] lr=0.001 … | val_accuracy=0.9012 | 12.3s | best 0.9100`: the
    line each finished trial prints, the same for every engine."""
    shown = "—" if score is None else f"{score:.4f}"
    best_txt = "—" if best is None else f"{best:.4f}"
    line = (
        f"trial {trial_id} ({done}{f'/{total}' if total else ''}) [{status}] "
        f"{hps} | {objective}={shown} | {seconds:.1f}s | best {best_txt}"
    )
    return line + (f" | error: {error}" if error else "")


class SearchProgress:
    """The progress lines (or bars) of one search process."""

    def __init__(
        self, say: Say, total: int | None, live: bool | None = None, stream: Any = None
    ) -> None:
        self.say = say
        self.total = total
        self.stream = sys.stdout if stream is None else stream
        self.live = live_bars(say, self.stream) if live is None else live
        self.started = time.perf_counter()
        self.bar: Any = None  # the running trial's live bar, if any

    def callback(self, trial_id: str, store: dict[str, Any], objective: str) -> Any:
        """The Keras callback for one trial's fit (KerasTuner deep-copies it per execution)."""
        return _callback_class()(self, trial_id, store, objective)

    def between_trials(
        self, rows: Mapping[str, Mapping[str, Any]], objective: Any, deadline: Any = None
    ) -> str:
        """Say (and return) the search's elapsed / budget, its ETA and the best trial so far.

        `objective` is KerasTuner's Objective (name, direction); `deadline` a budget.Deadline.
        """
        if self.bar is not None:  # a trial that failed mid-epoch never reached on_train_end
            self.bar.close()
            self.bar = None
        elapsed = time.perf_counter() - self.started
        done = len(rows)
        parts = [f"search: {done}{f'/{self.total}' if self.total else ''} trials"]
        if deadline is not None and getattr(deadline, "seconds", 0):
            left = max(deadline.remaining(), 0.0)
            parts.append(
                f"{format_duration(elapsed)} elapsed of {format_duration(deadline.seconds)} "
                f"budget ({format_duration(left)} left)"
            )
        else:
            left = None
            parts.append(f"{format_duration(elapsed)} elapsed, no time budget")
        times = [float(r["seconds"]) for r in rows.values() if _number(r.get("seconds"))]
        if self.total and done < self.total and times:
            eta = statistics.median(times) * (self.total - done)
            eta = eta if left is None else min(eta, left)
            parts.append(f"search ETA {format_duration(eta)}")
        parts.append(_best_text(rows, objective))
        line = ", ".join(parts)
        self.say(line)
        return line


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _best_text(rows: Mapping[str, Mapping[str, Any]], objective: Any) -> str:
    name = getattr(objective, "name", str(objective))
    scored = [
        (float(r["objective"]), str(r.get("trial_id")))
        for r in rows.values()
        if r.get("status") in ("completed", "pruned") and _number(r.get("objective"))
    ]
    if not scored:
        return "best so far: none yet"
    pick = max if getattr(objective, "direction", "max") == "max" else min
    score, tid = pick(scored, key=lambda s: s[0])
    return f"best so far {name}={score:.4f} (trial {tid})"


_CALLBACK: type | None = None


def _callback_class() -> type:
    """Build the Keras callback class on first use (no Keras import while the CLI parses)."""
    global _CALLBACK
    if _CALLBACK is not None:
        return _CALLBACK
    from automl_app.tf_env import tf

    tf()
    import keras

    class TrialProgress(keras.callbacks.Callback):
        """Per epoch: the trial's metrics and ETA (a line, or a live bar on a terminal)."""

        def __init__(self, progress: SearchProgress, trial_id: str, store, objective: str):
            super().__init__()
            self.progress, self.trial_id = progress, trial_id
            self.store, self.objective = store, objective
            self.bar = None

        def __deepcopy__(self, memo):
            return TrialProgress(self.progress, self.trial_id, self.store, self.objective)

        def on_train_begin(self, logs=None):
            self.times: list[float] = []
            self.epochs = int(self.params.get("epochs") or 1)
            self.steps = self.params.get("steps")
            if self.progress.live:
                self.bar = self.progress.bar = progress_bar(
                    self.epochs * self.steps if self.steps else self.epochs,
                    f"trial {self.trial_id}",
                    "step" if self.steps else "epoch",
                    self.progress.stream,
                )

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()
            if self.bar is not None and self.steps:
                self.bar.n = epoch * self.steps  # hyperband resumes at initial_epoch
                self.bar.refresh()

        def on_train_batch_end(self, batch, logs=None):
            if self.bar is not None and self.steps:
                self.bar.update(1)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            secs = time.perf_counter() - self.t0
            self.times.append(secs)
            value = logs.get(self.objective)
            if value is not None:
                curve = self.store.setdefault("curve", {})
                curve.setdefault(epoch + 1, []).append(float(value))
            eta = sum(self.times) / len(self.times) * max(self.epochs - epoch - 1, 0)
            shown = " ".join(f"{k} {float(v):.4f}" for k, v in logs.items() if _number_like(v))
            if self.bar is not None:
                if not self.steps:
                    self.bar.update(1)
                short = f" {self.objective} {float(value):.4f}" if value is not None else ""
                self.bar.set_postfix_str(f"epoch {epoch + 1}/{self.epochs}{short}")
            else:
                self.progress.say(
                    f"  trial {self.trial_id} epoch {epoch + 1}/{self.epochs}: {shown} "
                    f"({secs:.1f}s) | trial ETA {format_duration(eta)}"
                )

        def on_train_end(self, logs=None):
            if self.bar is not None:
                self.bar.close()
                self.bar = self.progress.bar = None

    _CALLBACK = TrialProgress
    return _CALLBACK


def _number_like(v: Any) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True
