"""`--tuner grid` that resumes: KerasTuner's GridSearch with its walk state rebuilt on reload.

KerasTuner's `GridSearchOracle` walks the grid with two in-memory structures, `_ordered_ids` (trial
ids sorted by their values) and `_populate_next` (ended trials whose successor is still to be
proposed). Neither is part of `get_state()`, so a reloaded oracle has `start_order` non-empty (no
"first trial" path) and an empty queue: `populate_space` finds nothing and returns STOPPED. A
resumed or extended grid search therefore runs no new trials (only a trial left RUNNING is re-run,
from the base class's retry queue).

`ResumableGridSearchOracle` rebuilds both structures from the trials themselves (KerasTuner's own
`trial_*/trial.json` files) whenever the oracle is reloaded, so there is no second source of truth:
trials are ordered as the grid orders them and all of them are queued; walking the queue skips every
successor that was already tried and continues where the search stopped, in the order an
uninterrupted run would have taken.

Imports KerasTuner at module level: import lazily (inside the search workflow).
"""

from __future__ import annotations

from typing import Any

from automl_app.tf_env import tf as _tf

_tf()  # TensorFlow first, quietly, before KerasTuner imports it loudly.

import keras_tuner  # noqa: E402
from keras_tuner.engine import tuner as tuner_module  # noqa: E402
from keras_tuner.engine.trial import TrialStatus  # noqa: E402
from keras_tuner.oracles import GridSearchOracle  # noqa: E402

from automl_app.tuning.compat import LinkedList  # noqa: E402

__all__ = ["ResumableGridSearchOracle", "ResumableGridSearch", "make_grid_tuner"]


class ResumableGridSearchOracle(GridSearchOracle):
    """`GridSearchOracle` whose reload continues the grid instead of stopping."""

    def reload(self) -> None:
        super().reload()  # trials, start_order, …; ongoing trials moved to the retry queue
        self._requeue_orphans()
        self._rebuild_walk()

    def _requeue_orphans(self) -> None:
        """Re-run trials saved RUNNING but absent from oracle.json (killed between the two writes).

        KerasTuner writes trial.json before oracle.json in `create_trial`; a kill in between leaves
        a RUNNING trial that no queue knows about.
        """
        for tid, trial in self.trials.items():
            if trial.status == TrialStatus.RUNNING and tid not in self._retry_queue:
                if tid not in self.start_order:
                    self.start_order.append(tid)
                self._retry_queue.append(tid)

    def _rebuild_walk(self) -> None:
        """`_ordered_ids` and `_populate_next` from the trials, sorted in grid order."""
        ids = sorted(self.trials, key=lambda tid: self._grid_key(self.trials[tid]))
        self._ordered_ids = LinkedList()
        for tid in ids:
            self._ordered_ids.insert(tid)
        # Every trial is queued: successors already tried are skipped by `populate_space`, so the
        # walk resumes after the last contiguous trial (and fills any gap left by a parallel run).
        self._populate_next = list(ids)

    def _grid_key(self, trial: Any) -> tuple[int, ...]:
        """Sort key consistent with `GridSearchOracle._compare` (default value first)."""
        values = trial.hyperparameters.values
        key = []
        for hp in self.get_space().space:
            if hp.name not in values:
                key.append(-1)
                continue
            ordered = list(hp.values)
            if hp.default in ordered:
                ordered.remove(hp.default)
            ordered.insert(0, hp.default)
            try:
                key.append(ordered.index(values[hp.name]))
            except ValueError:  # a value outside today's space sorts last
                key.append(len(ordered))
        return tuple(key)


class ResumableGridSearch(keras_tuner.GridSearch):
    """`keras_tuner.GridSearch` with `ResumableGridSearchOracle` (same arguments).

    Still an instance of `keras_tuner.GridSearch`; only the oracle differs.
    """

    def __init__(
        self,
        hypermodel: Any = None,
        objective: Any = None,
        max_trials: int | None = None,
        seed: int | None = None,
        hyperparameters: keras_tuner.HyperParameters | None = None,
        tune_new_entries: bool = True,
        allow_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
        **kwargs: Any,
    ) -> None:
        self.seed = seed
        oracle = ResumableGridSearchOracle(
            objective=objective,
            max_trials=max_trials,
            seed=seed,
            hyperparameters=hyperparameters,
            tune_new_entries=tune_new_entries,
            allow_new_entries=allow_new_entries,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        # Skip GridSearch.__init__ (it would build the plain oracle); the Tuner reloads here.
        tuner_module.Tuner.__init__(self, oracle, hypermodel, **kwargs)


def make_grid_tuner(hypermodel: Any, **kwargs: Any) -> ResumableGridSearch:
    """A resumable grid search tuner; `kwargs` as for `keras_tuner.GridSearch`."""
    return ResumableGridSearch(hypermodel, **kwargs)
