"""Search engines: KerasTuner's tuners (tuners.py) and what we add around them.

Only names live here, so the CLI can validate options without importing KerasTuner.
"""

TUNER_NAMES = ("random", "grid", "bayesian", "hyperband", "tpe")
PRUNER_NAMES = ("none", "median", "asha")
