"""Search machinery around KerasTuner's tuners (tuners.py): TPE, pruning, budgets, grids,
enqueued configurations, the LR range test and the chief/worker launcher.

Only names live here, so the CLI can validate options without importing KerasTuner.
"""

from automl_app.config import PRUNER_NAMES, TUNER_NAMES

__all__ = ["PRUNER_NAMES", "TUNER_NAMES"]
