"""The classic dense network: Flatten → N × (Dense → Dropout) → softmax."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def build(v: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int):
    """A Keras model from resolved hyperparameter values `v` (see models.KNOWN['fcn'])."""
    import keras

    act = v["activation"]
    init = "lecun_normal" if act == "selu" else "glorot_uniform"
    inputs = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Flatten()(inputs)
    for i in range(int(v["num_layers"])):
        x = keras.layers.Dense(
            int(v["layer_size"]), activation=act, kernel_initializer=init, name=f"dense_{i}"
        )(x)
        if v["dropout_rate"]:
            x = keras.layers.Dropout(float(v["dropout_rate"]))(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="fcn")
