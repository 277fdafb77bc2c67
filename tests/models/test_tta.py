"""The flip test-time augmentation wrapper: exact mirror, stock Keras only, shared weights."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from automl_app.tf_env import tf

tf()
import keras  # noqa: E402

from automl_app.models.tta import FLIP_PASSES, can_flip, with_flip_tta  # noqa: E402


def small_model(shape=(5, 7, 2)):
    inputs = keras.Input(shape=shape)
    x = keras.layers.Conv2D(3, 3, padding="same")(inputs)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(x))


def test_answers_the_mean_over_the_image_and_its_mirror():
    model = small_model()
    x = np.random.default_rng(0).random((6, 5, 7, 2)).astype("float32")
    want = (model.predict(x, verbose=0) + model.predict(x[:, :, ::-1], verbose=0)) / FLIP_PASSES
    wrapped = with_flip_tta(model)
    np.testing.assert_allclose(wrapped.predict(x, verbose=0), want, atol=1e-6)
    # the inner model is shared: the only new weight is the frozen mirror
    assert len(wrapped.trainable_weights) == len(model.trainable_weights)
    assert len(wrapped.weights) == len(model.weights) + 1


def test_saves_with_stock_layers_only(tmp_path):
    """model.keras loads anywhere without this package: no `automl>` class in its config."""
    wrapped = with_flip_tta(small_model())
    path = tmp_path / "m.keras"
    wrapped.save(path)
    with zipfile.ZipFile(path) as z:
        config = json.loads(z.read("config.json"))
    assert "automl" not in json.dumps(config)
    x = np.ones((2, 5, 7, 2), "float32")
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), wrapped.predict(x, verbose=0), atol=1e-6
    )


@pytest.mark.parametrize(
    "shape, ok", [((5, 7, 2), True), ((12,), False), ((None, None, 3), False), ((4, 1, 1), False)]
)
def test_can_flip_only_images_of_a_known_width(shape, ok):
    inputs = keras.Input(shape=shape)
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    assert can_flip(model) is ok
