"""Model families that a search space can name (`model: fcn`), and what each one reads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# name -> {hyperparameter: default}; the defaults fill names a space leaves out. Kept here (no
# TensorFlow import) so spaces can be validated while the CLI parses.
COMMON: dict[str, Any] = {
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "momentum": 0.0,
    "batch_size": 64,
    "lr_schedule": "constant",  # or cosine: decays to 0 over the trial's (or the refit's) epochs
    "label_smoothing": 0.0,
}
KNOWN: dict[str, dict[str, Any]] = {
    "fcn": {
        **COMMON,
        "activation": "relu",
        "num_layers": 2,
        "layer_size": 512,
        "dropout_rate": 0.0,
    },
    "cnn": {
        **COMMON,
        "conv_blocks": 2,
        "convs_per_block": 1,
        "filters": 32,
        "kernel_size": 3,
        "batch_norm": True,
        "pooling": "max",
        "dropout_rate": 0.0,
        "dense_units": 128,
        "block": "plain",  # or residual
        "augment_shift": 0.0,  # random translation, as a fraction of height and width
        "augment_flip": False,  # random horizontal flips
    },
}


def known() -> Mapping[str, Mapping[str, Any]]:
    """Model name -> hyperparameters it reads (with defaults)."""
    return KNOWN
