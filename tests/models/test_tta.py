"""The test-time augmentation wrappers (flip, shift): exact views, stock Keras only, shared weights."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from automl_app.tf_env import tf

tf()
import keras  # noqa: E402

from automl_app.models.tta import (  # noqa: E402
    FLIP_PASSES,
    SHIFT_PASSES,
    can_augment,
    with_flip_tta,
    with_shift_tta,
    with_tta,
)


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


def shifted(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """x moved dy rows down and dx columns right, zeros coming in (numpy, for reference)."""
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    h, w = x.shape[1:3]
    return padded[:, 1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w]


def test_shift_answers_the_mean_over_the_image_and_its_four_one_pixel_shifts():
    model = small_model()
    x = np.random.default_rng(1).random((6, 5, 7, 2)).astype("float32")
    assert shifted(x, 1, 0)[:, 1:].tolist() == x[:, :-1].tolist()  # the reference moves down
    views = [x] + [shifted(x, dy, dx) for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1))]
    want = sum(model.predict(v, verbose=0) for v in views) / SHIFT_PASSES
    wrapped = with_shift_tta(model)
    np.testing.assert_allclose(wrapped.predict(x, verbose=0), want, atol=1e-6)
    assert len(wrapped.weights) == len(model.weights)  # shared, nothing new
    assert with_tta(model, "none") is model


@pytest.mark.parametrize("kind", ["flip", "shift"])
def test_saves_with_stock_layers_only(tmp_path, kind):
    """model.keras loads anywhere without this package: no `automl>` class in its config."""
    wrapped = with_tta(small_model(), kind)
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
def test_can_augment_only_images_of_a_known_width(shape, ok):
    inputs = keras.Input(shape=shape)
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    assert can_augment(model) is ok
