"""`--enqueue` and defaults-first: configurations that run first, inside any KerasTuner oracle.

The queue lives on the oracle (a mixin attached at run time, like the budget); on resume, queued
configurations that an existing trial already ran are skipped, so nothing runs twice. An empty
mapping (`DEFAULTS`) is the space's defaults: every search runs it first unless
`--no-defaults-first`, so by validation a search is never worse than its defaults.

Random, Bayesian and TPE oracles are served the queue in `populate_space`. Hyperband decides each
trial's epochs itself, so there the queue replaces the random draws of its brackets'
first rounds (`_random_values`): the defaults enter the first bracket and are promoted like any
other configuration.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from automl_app.errors import UsageError


def parse_enqueue(items: list[str] | tuple[str, ...]) -> list[dict[str, Any]]:
    """Each item is inline JSON/YAML (a mapping or a list of mappings) or a .json/.yaml file."""
    out: list[dict[str, Any]] = []
    for item in items:
        text = item
        path = Path(item).expanduser()
        if path.suffix in (".json", ".yaml", ".yml") and path.is_file():
            text = path.read_text(encoding="utf-8")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            try:
                value = yaml.safe_load(text)
            except yaml.YAMLError:
                value = None
        configs = value if isinstance(value, list) else [value]
        for cfg in configs:
            if not isinstance(cfg, Mapping) or not cfg:
                raise UsageError(
                    "--enqueue takes a JSON/YAML mapping like "
                    f"'{{\"learning_rate\": 0.003}}' or a file of them. Received: {item!r}"
                )
            out.append(dict(cfg))
    return out


def check_names(configs: list[dict[str, Any]], names: set[str]) -> None:
    """Every enqueued name must be a hyperparameter of the space (exit 2 otherwise)."""
    for cfg in configs:
        unknown = sorted(set(cfg) - names)
        if unknown:
            raise UsageError(
                f"--enqueue names {unknown[0]!r}, which is not in the search space "
                f"(it has {', '.join(sorted(names))})"
            )


DEFAULTS: dict[str, Any] = {}  # the empty configuration: every value at its default


def completed_with_defaults(hps: Any, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """`cfg` with every other active hyperparameter of `hps` at its default (parents first)."""
    values: dict[str, Any] = {}
    for p in hps.space:  # declaration order: parents come first
        if all(cond.is_active(values) for cond in p.conditions):
            values[p.name] = cfg.get(p.name, p.default)
    return values


class EnqueueOracleMixin:
    """Oracle mixin: serve queued configurations (completed with defaults) before searching."""

    queue: list[dict[str, Any]] = []

    def _already_ran(self, values: Mapping[str, Any]) -> bool:
        for trial in self.trials.values():
            ran = trial.hyperparameters.values
            if all(ran.get(k) == v for k, v in values.items()):
                return True
        return False

    def _next_queued(self) -> dict[str, Any] | None:
        """The next queued configuration no trial has run yet, completed with defaults."""
        while self.queue:
            values = completed_with_defaults(self.hyperparameters, self.queue.pop(0))
            if not self._already_ran(values):
                return values
        return None

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        import keras_tuner

        if not isinstance(self, keras_tuner.oracles.HyperbandOracle):
            values = self._next_queued()
            if values is not None:
                return {"status": "RUNNING", "values": values}
        return super().populate_space(trial_id)

    def _random_values(self) -> dict[str, Any] | None:
        values = self._next_queued()  # Hyperband: the queue goes into the brackets' first rounds
        return values if values is not None else super()._random_values()


_CLASSES: dict[type, type] = {}


def with_defaults_first(
    configs: list[dict[str, Any]], defaults_first: bool
) -> list[dict[str, Any]]:
    """The queue of a search: the defaults first (unless turned off: `--no-defaults-first`), then
    `configs` (--enqueue, --lr-find's suggestion), then the tuner's own proposals. The defaults'
    measured epochs are also what the budget guard predicts every later trial's cost from.

    A configuration given with `--lr-find` or `--enqueue` that the defaults already cover runs once.
    """
    return [DEFAULTS, *configs] if defaults_first else list(configs)


def attach_queue(oracle: Any, configs: list[dict[str, Any]]) -> Any:
    """Give an oracle the queue (no-op for an empty one or a gRPC client)."""
    import keras_tuner

    if not configs or not isinstance(oracle, keras_tuner.Oracle):
        return oracle
    cls = type(oracle)
    if cls not in _CLASSES:
        _CLASSES[cls] = type(
            f"Queued{cls.__name__}", (EnqueueOracleMixin, cls), {"__module__": __name__}
        )
    oracle.__class__ = _CLASSES[cls]
    oracle.queue = [dict(c) for c in configs]
    return oracle
