"""Optimizer by name, shared by every model family."""

from __future__ import annotations

from typing import Any

OPTIMIZERS = ("adam", "adamw", "adamax", "nadam", "rmsprop", "sgd")


def make_optimizer(name: str, learning_rate: float, momentum: float = 0.0) -> Any:
    """A Keras optimizer; `momentum` applies to sgd and rmsprop."""
    import keras

    if name not in OPTIMIZERS:
        raise ValueError(
            f"`optimizer` must be one of {', '.join(OPTIMIZERS)}. Received: optimizer={name!r}"
        )
    lr = float(learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(lr, momentum=float(momentum or 0.0))
    if name == "rmsprop":
        return keras.optimizers.RMSprop(lr, momentum=float(momentum or 0.0))
    cls = {
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "adamax": keras.optimizers.Adamax,
        "nadam": keras.optimizers.Nadam,
    }[name]
    return cls(lr)
