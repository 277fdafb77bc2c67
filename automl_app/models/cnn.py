"""A convolutional network: VGG- or ResNet-style blocks with doubling filters, then a dense head.

Each block is `convs_per_block` × (conv → batch norm → ReLU) then pooling; with `block: residual`
the block's input is added back before the last ReLU (a 1×1 projection when the width changes).
Augmentation (`augment_shift`, `augment_flip`) happens in the training data pipeline
(models/hypermodel.py), so the network and its export see plain images. Pooling stops once the
feature map is 2 pixels wide, so deep spaces still fit 8×8 inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _conv_bn(x, filters: int, kernel: int, batch_norm: bool, name: str):
    import keras

    x = keras.layers.Conv2D(
        filters, kernel, padding="same", use_bias=not batch_norm, name=f"{name}_conv"
    )(x)
    if batch_norm:
        # momentum 0.9: searches train few steps; 0.99 leaves the moving statistics unusable
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return x


def _block(x, v: Mapping[str, Any], filters: int, index: int):
    import keras

    residual = v.get("block", "plain") == "residual"
    kernel, bn = int(v["kernel_size"]), bool(v["batch_norm"])
    shortcut = x
    convs = int(v["convs_per_block"])
    for i in range(convs):
        x = _conv_bn(x, filters, kernel, bn, f"block{index}_{i}")
        if not (residual and i == convs - 1):
            x = keras.layers.Activation("relu")(x)
    if residual:
        if shortcut.shape[-1] != filters:
            shortcut = _conv_bn(shortcut, filters, 1, bn, f"block{index}_proj")
        x = keras.layers.Activation("relu")(keras.layers.Add()([x, shortcut]))
    return x


def build(v: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int):
    """A Keras model from resolved hyperparameter values `v` (see models.KNOWN['cnn'])."""
    import keras

    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    size = min(input_shape[0], input_shape[1])
    pool = keras.layers.MaxPooling2D if v["pooling"] == "max" else keras.layers.AveragePooling2D
    for block in range(int(v["conv_blocks"])):
        x = _block(x, v, int(v["filters"]) * 2**block, block)
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
