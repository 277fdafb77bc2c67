"""AutoKeras engine choices, importable without TensorFlow (the CLI lists them)."""

from __future__ import annotations

from collections.abc import Callable

Say = Callable[[str], None]


TUNERS = ("greedy", "random", "bayesian", "hyperband")


BLOCKS = ("auto", "vanilla", "resnet", "xception", "efficientnet")


TASKS = ("classification", "regression")


INPUT_TYPES = ("image", "text", "structured")


EXPORT_CHECK_EXAMPLES = 64


_OOV = "\x00automl-oov\x00"


_AK_BLOCK = {"vanilla": "vanilla", "resnet": "resnet", "xception": "xception",
             "efficientnet": "efficient"}  # fmt: skip
