"""A small convolutional network: conv blocks with doubling filters, then a dense head."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def build(v: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int):
    """A Keras model from resolved hyperparameter values `v` (see models.KNOWN['cnn']).

    Pooling stops once the feature map is 2 pixels wide, so deep spaces still fit 8×8 inputs.
    """
    import keras

    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    size = min(input_shape[0], input_shape[1])
    pool = keras.layers.MaxPooling2D if v["pooling"] == "max" else keras.layers.AveragePooling2D
    for block in range(int(v["conv_blocks"])):
        filters = int(v["filters"]) * 2**block
        for _ in range(int(v["convs_per_block"])):
            x = keras.layers.Conv2D(
                filters, int(v["kernel_size"]), padding="same", use_bias=not v["batch_norm"]
            )(x)
            if v["batch_norm"]:
                # momentum 0.9: searches train few steps; 0.99 leaves the moving statistics unusable
                x = keras.layers.BatchNormalization(momentum=0.9)(x)
            x = keras.layers.Activation("relu")(x)
        if size >= 4:
            x = pool(pool_size=2)(x)
            size //= 2
    x = keras.layers.GlobalAveragePooling2D()(x) if size > 7 else keras.layers.Flatten()(x)
    if v["dropout_rate"]:
        x = keras.layers.Dropout(float(v["dropout_rate"]))(x)
    x = keras.layers.Dense(int(v["dense_units"]), activation="relu")(x)
    if v["dropout_rate"]:
        x = keras.layers.Dropout(float(v["dropout_rate"]))(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="cnn")
