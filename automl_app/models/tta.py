"""Flip test-time augmentation: the model's probabilities averaged over the image and its mirror.

Built from stock Keras layers only (Permute, a frozen Dense holding the anti-identity, Average),
so `model.keras` still loads anywhere without this package, the SavedModel export and the
TFLite/ONNX converters see ordinary ops (transpose, matmul, add), and the wrapped model is a
plain Keras model every command that reads a run already handles. Keras has no deterministic
flip layer, and a Lambda layer would not load without `safe_mode=False`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

FLIP_PASSES = 2  # forward passes per image: the image and its mirror


def can_flip(model: Any) -> bool:
    """True for a model taking (batch, height, width, channels) images of a known width."""
    shape = getattr(model, "input_shape", None)
    if not isinstance(shape, tuple) or len(shape) != 4:
        return False
    return isinstance(shape[2], int) and shape[2] > 1


def flip_layers(width: int, name: str = "mirror") -> list[Any]:
    """Layers mirroring an (h, w, c) image left-right, exactly (each output is one input × 1)."""
    import keras

    mirror = keras.layers.Dense(width, use_bias=False, trainable=False, name=f"{name}_width")
    mirror.build((None, width))
    mirror.set_weights([np.eye(width, dtype="float32")[::-1]])
    return [
        keras.layers.Permute((1, 3, 2), name=f"{name}_to_width_last"),  # (h, c, w)
        mirror,
        keras.layers.Permute((1, 3, 2), name=f"{name}_back"),  # (h, w, c)
    ]


def with_flip_tta(model: Any) -> Any:
    """A model answering the mean of `model`'s outputs on the image and its mirror (the inner
    model is shared, not copied: no new weights but the frozen mirror)."""
    import keras

    inputs = keras.Input(shape=model.input_shape[1:], name="image")
    mirrored = inputs
    for layer in flip_layers(int(model.input_shape[2])):
        mirrored = layer(mirrored)
    outputs = keras.layers.Average(name="flip_tta")([model(inputs), model(mirrored)])
    wrapped = keras.Model(inputs, outputs, name=f"{model.name}_flip_tta")
    wrapped.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return wrapped
