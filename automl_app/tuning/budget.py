"""`--time-budget DURATION`: parse it, stop the running trial at the deadline, start no trial that
would not fit, and say why the search stopped.

Three pieces, each usable alone:
- `parse_duration("1h30m") -> 5400.0` and `Deadline` (wall-clock, so a chief and its workers on one
  machine agree on it), both free of heavy imports so the CLI can validate at parse time;
- `deadline_callback(deadline)` (class `DeadlineCallback`), a Keras callback that ends `fit()` at the deadline (built lazily);
- `BudgetOracleMixin`, applied to any KerasTuner oracle class (`with_budget(cls)`) or instance
  (`attach_budget(oracle, deadline)`), which refuses new trials once the median finished trial would
  overrun the deadline and records `stop_reason`: max_trials, time_budget, space_exhausted or
  consecutive_failures. KerasTuner raises on too many consecutive failures, leaving the last trial
  unsaved; the mixin instead ends the search cleanly so the caller can report and export;
- `skip_reason`, which recognises a trial that tuning/guard.py's TrialGuard refused to start
  (predicted not to finish in the time left): it is recorded as skipped, not failed.
"""

from __future__ import annotations

import re
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from automl_app.errors import UsageError

__all__ = [
    "SKIPPED",
    "skip_reason",
    "STOP_REASONS",
    "BudgetOracleMixin",
    "Deadline",
    "attach_budget",
    "deadline_callback",
    "ended_stop_reason",
    "mark_command_start",
    "parse_duration",
    "stop_summary",
    "with_budget",
]

STOP_REASONS = ("max_trials", "time_budget", "space_exhausted", "consecutive_failures")
RETRY_AFTER = (None, "max_trials", "space_exhausted")  # stops that still run a lost trial again
SKIPPED = "skipped:"  # a failed trial's message starting with this was never trained

_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)([dhms]))")


def parse_duration(text: str | int | float) -> float:
    """Seconds in "90s", "10m", "2h", "1h30m", "1.5h" or a bare number of seconds ("45"); a
    well-formed zero or negative duration is told it must be positive."""
    error = UsageError(f"`--time-budget` must look like 90s, 10m or 2h. Received: {str(text)!r}")
    if isinstance(text, bool):
        raise error
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        s = str(text).strip().lower().replace(" ", "")
        sign = -1.0 if s.startswith("-") else 1.0
        s = s.removeprefix("-")
        if re.fullmatch(r"\d+(?:\.\d+)?", s):
            seconds = float(s)
        elif s and _DURATION.sub("", s) == "":
            parts = _DURATION.findall(s)
            units = [u for _, u in parts]
            if len(set(units)) != len(units) or units != sorted(units, key="dhms".index):
                raise error
            seconds = sum(float(n) * _UNITS[u] for n, u in parts)
        else:
            raise error
        seconds *= sign
    if seconds != seconds or abs(seconds) == float("inf"):
        raise error
    if not seconds > 0:
        raise UsageError(f"`--time-budget` must be positive, e.g. 90s or 10m. Received: {text!r}")
    return seconds


_COMMAND_START: float | None = None


def mark_command_start(start: float | None = None) -> None:
    """Note when this command began (the CLI's root group calls it on every invocation, and
    clears it with None when the command ends, so a later in-process call counts from its own
    start)."""
    global _COMMAND_START
    _COMMAND_START = start


@dataclass(frozen=True)
class Deadline:
    """A wall-clock instant (time.time()) after which no trial should run."""

    at: float
    seconds: float = field(default=0.0)

    @classmethod
    def after(cls, seconds: float | str) -> Deadline:
        """The deadline `seconds` (or a duration string) from now."""
        secs = parse_duration(seconds)
        return cls(at=time.time() + secs, seconds=secs)

    @classmethod
    def after_command_start(cls, seconds: float | str) -> Deadline:
        """The deadline `seconds` after the command began (`mark_command_start`, which the CLI
        calls before anything heavy is imported), or from now where nothing marked it: the
        budget then covers importing TensorFlow and loading the data, as the user's clock does."""
        secs = parse_duration(seconds)
        start = _COMMAND_START if _COMMAND_START is not None else time.time()
        return cls(at=start + secs, seconds=secs)

    @classmethod
    def from_record(cls, record: Any) -> Deadline | None:
        """The deadline run.json holds (`record()`'s form), or None where it holds none.

        The launching command writes it, so every role of a parallel search (a restarted worker,
        `automl worker` on another host) stops at the same instant (hosts need synced clocks).
        """
        stored = record if isinstance(record, dict) else {}
        if not isinstance(stored.get("at"), int | float):
            return None
        return cls(at=float(stored["at"]), seconds=float(stored.get("seconds", 0.0)))

    def record(self) -> dict[str, float]:
        """JSON-ready form of the deadline (`from_record` reads it back)."""
        return {"at": self.at, "seconds": self.seconds}

    def remaining(self) -> float:
        return self.at - time.time()

    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def elapsed(self) -> float:
        return self.seconds - self.remaining()


_CALLBACK_CLASS: type | None = None


def _callback_class() -> type:
    """Build the Keras callback class on first use (keeps Keras out of CLI parsing)."""
    global _CALLBACK_CLASS
    if _CALLBACK_CLASS is None:
        from automl_app.tf_env import tf

        tf()
        import keras

        class DeadlineCallback(keras.callbacks.Callback):
            """Stop `fit()` once the deadline has passed (checked after each batch and epoch)."""

            def __init__(self, deadline: Deadline) -> None:
                super().__init__()
                self.deadline = deadline
                self.stopped = False

            def _check(self) -> None:
                if self.deadline.expired():
                    self.stopped = True
                    self.model.stop_training = True

            def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
                self._check()

            def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
                self._check()

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                self._check()

        _CALLBACK_CLASS = DeadlineCallback
    return _CALLBACK_CLASS


def deadline_callback(deadline: Deadline) -> Any:
    """A Keras callback that ends the running trial at `deadline` (pass it to `search()`)."""
    return _callback_class()(deadline)


def __getattr__(name: str) -> Any:
    # `budget.DeadlineCallback` is the class itself, built on first access.
    if name == "DeadlineCallback":
        return _callback_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _synchronized(func: Any) -> Any:
    """KerasTuner's oracle lock, imported lazily (the same lock its own methods take)."""
    import keras_tuner

    return keras_tuner.synchronized(func)


# A later trial costs its epochs and the work around them (build, checkpoint, bookkeeping):
# 0.03-0.38x its epochs' time in 24 Fashion-MNIST explore trials measured here.
TRIAL_OVERHEAD = 1.4


class BudgetOracleMixin:
    """Oracle mixin: no new trial past the budget, and a recorded reason for every stop.

    Attributes read by the caller: `stop_reason` (None while the search may go on),
    `stop_message` (first failed trial's message for consecutive_failures), `deadline`.
    State is created lazily so the mixin can be attached to an already-built oracle.
    """

    deadline: Deadline | None = None
    stop_reason: str | None = None
    stop_message: str | None = None
    min_trial_seconds: float | None = None
    # With a deadline: after the first finished trial, stop when fewer than this many trials
    # would fit before it (None: no such check). Set by the budget's explore phase.
    min_trials: int | None = None
    # Seconds each finished trial spent in its epochs, keyed by trial id (the trial guard's cost
    # model measures them; None: not measured). Both rules above judge later trials by them:
    # the first trial's wall time also holds one-off work (data caching, a stall), once 31 s
    # beside 17 s of epochs, which made a 10-minute search give up on a comparison it could fit.
    trial_fit_seconds: dict[str, float] | None = None

    def _budget_durations(self) -> dict[str, float]:
        if "_budget_seconds" not in self.__dict__:
            self._budget_seconds: dict[str, float] = {}
            self._budget_started: dict[str, float] = {}
        return self._budget_seconds

    def _estimate(self, trial_id: str, wall: float) -> float:
        """What a trial like this one costs again: its epochs' time × TRIAL_OVERHEAD where they
        were measured (its wall time also holds one-off work), at most its wall time."""
        trained = (self.trial_fit_seconds or {}).get(trial_id)
        return min(wall, TRIAL_OVERHEAD * trained) if trained else wall

    def expected_trial_seconds(self) -> float | None:
        """Median cost of the trials finished so far (None before the first one)."""
        durations = [self._estimate(t, s) for t, s in self._budget_durations().items()]
        return statistics.median(durations) if durations else None

    def _over_budget(self) -> bool:
        if self.deadline is None:
            return False
        remaining = self.deadline.remaining()
        expected = self.expected_trial_seconds() or self.min_trial_seconds or 0.0
        return remaining <= 0.0 or expected > remaining

    def _too_few_fit(self) -> str | None:
        """After the first finished trial and before any other: why the trials that fit the time
        left are fewer than `min_trials` (None when enough fit or nothing asks)."""
        durations = self._budget_durations()
        if not self.min_trials or self.deadline is None or len(self.trials) != 1:
            return None
        if len(durations) != 1:
            return None
        ((trial_id, first),) = durations.items()
        trained = (self.trial_fit_seconds or {}).get(trial_id)
        per_trial = self._estimate(trial_id, first)
        remaining = max(self.deadline.remaining(), 0.0)
        fit = 1 + int(remaining // max(per_trial, 1e-6))
        if fit >= self.min_trials:
            return None
        of_it = f" ({trained:.0f}s of it in its epochs)" if trained else ""
        return (
            f"the first trial took {first:.0f}s{of_it} and {remaining:.0f}s are left: about {fit} "
            f"trial{'s' * (fit > 1)} would fit, fewer than the {self.min_trials} a comparison needs"
        )

    def create_trial(self, tuner_id: str) -> Any:
        from keras_tuner.engine.trial import Trial, TrialStatus

        ongoing = self.ongoing_trials.get(tuner_id)
        if ongoing is not None:  # a multi-worker replica asking for the trial it already runs
            return super().create_trial(tuner_id)
        if self.stop_reason is None and (few := self._too_few_fit()):
            self.stop_reason, self.stop_message = "time_budget", few
        if self.stop_reason is None and self._over_budget():
            self.stop_reason = "time_budget"
        # A trial taken back from a lost worker (the retry queue) still runs after the last new
        # trial was handed out (max_trials, space_exhausted); past the time budget it does not
        # (`skip_retries` ends it).
        retry = bool(self._retry_queue) and self.stop_reason in RETRY_AFTER
        if self.stop_reason is not None and not retry:
            self.tuner_ids.discard(tuner_id)
            return Trial(self.get_space(), status=TrialStatus.STOPPED)
        trial = super().create_trial(tuner_id)
        if trial.status == TrialStatus.STOPPED and self.stop_reason is None:
            full = self.max_trials and len(self.trials) >= self.max_trials
            self.stop_reason = "max_trials" if full else "space_exhausted"
        elif trial.status == TrialStatus.RUNNING:
            self._budget_durations()
            self._budget_started[trial.trial_id] = time.time()
        return trial

    def skip_retries(self) -> list[Any]:
        """End as skipped every trial waiting in the retry queue that the stop reason forbids
        to run again (time budget, failures); returns them. The chief calls it so that the
        search can end (it never ends while a trial waits for a retry)."""
        from keras_tuner.engine.trial import TrialStatus

        if self.stop_reason is None or self.stop_reason in RETRY_AFTER:
            return []
        skipped = []
        while self._retry_queue:
            trial = self.trials[self._retry_queue.pop()]
            trial.status = TrialStatus.FAILED
            trial.message = (
                f"{SKIPPED} its worker was lost and the search stopped ({self.stop_reason}) "
                "before another worker could run it again"
            )
            self.end_trial(trial)
            skipped.append(trial)
        return skipped

    def end_trial(self, trial: Any) -> None:
        started = self.__dict__.get("_budget_started", {}).pop(trial.trial_id, None)
        super().end_trial(trial)
        if started is not None:
            self._budget_durations()[trial.trial_id] = time.time() - started

    def _check_consecutive_failures(self) -> None:
        from keras_tuner.engine.trial import TrialStatus

        streak: list[str] = []
        for trial_id in self.end_order:
            trial = self.trials[trial_id]
            if _skipped(trial):
                continue  # skipped for the budget, never trained: not a failure of the space
            failed = trial.status == TrialStatus.FAILED
            streak = streak + [trial_id] if failed else []
            if self.max_consecutive_failed_trials and len(streak) >= (
                self.max_consecutive_failed_trials
            ):
                self.stop_reason = "consecutive_failures"
                self.stop_message = self.trials[streak[0]].message
                return

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state["budget"] = {
            "trial_seconds": self._budget_durations(),
            "stop_reason": self.stop_reason,
        }
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        # Durations of earlier sessions still estimate trial length; the stop reason does not
        # carry over (a resumed run may have more trials or a new budget).
        self._budget_durations().update(state.get("budget", {}).get("trial_seconds", {}))


_BUDGETED: dict[type, type] = {}


def with_budget(oracle_cls: type) -> type:
    """`oracle_cls` with BudgetOracleMixin in front (cached, so pickling and reuse agree)."""
    if issubclass(oracle_cls, BudgetOracleMixin):
        return oracle_cls
    if oracle_cls not in _BUDGETED:
        namespace = {
            "create_trial": _synchronized(BudgetOracleMixin.create_trial),
            "end_trial": _synchronized(BudgetOracleMixin.end_trial),
            "__module__": __name__,
            "__doc__": f"{oracle_cls.__name__} that honours a time budget and records why it stopped.",
        }
        _BUDGETED[oracle_cls] = type(
            f"Budgeted{oracle_cls.__name__}", (BudgetOracleMixin, oracle_cls), namespace
        )
    return _BUDGETED[oracle_cls]


def attach_budget(
    oracle: Any, deadline: Deadline | None = None, *, min_trial_seconds: float | None = None
) -> Any:
    """Give an existing oracle (e.g. `tuner.oracle` of any KerasTuner tuner) the budget mixin.

    On a worker, `tuner.oracle` is a gRPC client: it is returned unchanged, since the chief's
    oracle enforces the budget. `min_trial_seconds` is the duration assumed before any trial has
    finished (default: start the first trial whatever the budget).
    """
    import keras_tuner

    if not isinstance(oracle, keras_tuner.Oracle):
        return oracle
    oracle.__class__ = with_budget(type(oracle))
    oracle.deadline = deadline
    oracle.min_trial_seconds = min_trial_seconds
    oracle.stop_reason = None
    oracle.stop_message = None
    return oracle


def skip_reason(message: str | None) -> str | None:
    """The "skipped: …" line of a failed trial's message (a traceback) when the budget refused
    it, else None."""
    lines = [ln.strip() for ln in str(message or "").strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    return last[last.index(SKIPPED) :] if SKIPPED in last else None


def _skipped(trial: Any) -> bool:
    return skip_reason(getattr(trial, "message", None)) is not None


def ended_stop_reason(trials: int, max_trials: int, time_budget: float | None) -> str:
    """Why a search that has ended stopped, from its count alone (a parallel search's chief
    ran the budget oracle, and the reloaded oracle no longer knows its stop reason)."""
    if trials >= max_trials:
        return "max_trials"
    return "time_budget" if time_budget else "space_exhausted"


def stop_summary(oracle: Any) -> dict[str, Any]:
    """What run.json should say about how the search ended (JSON-ready)."""
    from keras_tuner.engine.trial import TrialStatus

    trials = list(getattr(oracle, "trials", {}).values())
    deadline = getattr(oracle, "deadline", None)
    return {
        "stop_reason": getattr(oracle, "stop_reason", None),
        "stop_message": getattr(oracle, "stop_message", None),
        "trials": len(trials),
        "completed": sum(t.status == TrialStatus.COMPLETED for t in trials),
        "failed": sum(t.status == TrialStatus.FAILED and not _skipped(t) for t in trials),
        "skipped": sum(t.status == TrialStatus.FAILED and _skipped(t) for t in trials),
        "time_budget_s": deadline.seconds if deadline else None,
        "budget_elapsed_s": round(deadline.elapsed(), 3) if deadline else None,
    }
