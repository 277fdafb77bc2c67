"""`--enqueue`: configurations that run first, inside any KerasTuner oracle.

The queue lives on the oracle (a mixin attached at run time, like the budget); on resume, queued
configurations that an existing trial already ran are skipped, so nothing runs twice.
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


class EnqueueOracleMixin:
    """Oracle mixin: serve queued configurations (completed with defaults) before searching."""

    queue: list[dict[str, Any]] = []

    def _already_ran(self, cfg: Mapping[str, Any]) -> bool:
        for trial in self.trials.values():
            values = trial.hyperparameters.values
            if all(values.get(k) == v for k, v in cfg.items()):
                return True
        return False

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        while self.queue:
            cfg = self.queue.pop(0)
            if self._already_ran(cfg):
                continue
            values: dict[str, Any] = {}
            for p in self.hyperparameters.space:  # declaration order: parents come first
                if all(cond.is_active(values) for cond in p.conditions):
                    values[p.name] = cfg.get(p.name, p.default)
            return {"status": "RUNNING", "values": values}
        return super().populate_space(trial_id)


_CLASSES: dict[type, type] = {}


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
