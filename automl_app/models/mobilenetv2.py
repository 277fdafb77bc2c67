"""MobileNetV2 from keras.applications, untrained (weights=None), with a float32 softmax head.

The head is added here rather than by `include_top=True` so that under mixed precision the
probabilities stay float32, and so dropout before the classifier and the BatchNorm momentum are
recipe values.
"""

from __future__ import annotations

from automl_app.tf_env import tf


def build(
    num_classes: int,
    image_size: int,
    *,
    alpha: float = 1.0,
    dropout: float = 0.2,
    bn_momentum: float = 0.999,
    name: str = "mobilenetv2",
):
    """A Keras model: float images [N,S,S,3] in the pipeline's value range → probabilities."""
    tf()
    import keras

    if num_classes < 2:
        raise ValueError(f"`num_classes` must be >= 2. Received: num_classes={num_classes!r}")
    if image_size < 32:
        raise ValueError(f"`image_size` must be >= 32. Received: image_size={image_size!r}")
    inputs = keras.Input((image_size, image_size, 3), name="image")
    backbone = keras.applications.MobileNetV2(
        input_shape=(image_size, image_size, 3),
        alpha=alpha,
        include_top=False,
        weights=None,
        pooling="avg",
    )
    # keras.applications fixes BatchNorm momentum at 0.999: right for ImageNet-length runs, but
    # after a few hundred steps the moving statistics are still near their initial values and
    # inference-mode predictions are constant. Short runs on small folders want e.g. 0.9.
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = bn_momentum
    x = backbone(inputs)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", dtype="float32", name="predictions"
    )(x)
    return keras.Model(inputs, outputs, name=name)
