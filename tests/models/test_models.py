"""Each hypermodel builds from its space's defaults and trains; user hypermodels work unchanged."""

from __future__ import annotations

import textwrap

import keras_tuner as kt
import numpy as np
import pytest

from automl_app import models, spaces
from automl_app.models.hypermodel import SpaceHyperModel, UserHyperModel, load_user_hypermodel


@pytest.mark.parametrize("name", ["fcn", "cnn"])
@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1), (32, 32, 3)])
def test_builds_from_space_defaults(name, shape):
    space = spaces.load(name, known=models.known())
    hm = SpaceHyperModel(space, shape, 10, seed=0)
    model = hm.build(kt.HyperParameters())
    out = model(np.zeros((2, *shape), dtype="float32"))
    assert tuple(out.shape) == (2, 10)
    np.testing.assert_allclose(np.asarray(out).sum(axis=1), 1.0, atol=1e-5)


def test_fit_batches_uint8_datasets_with_trial_batch_size():
    import tensorflow as tf

    space = spaces.load("cnn", known=models.known(), overrides={"batch_size": 16})
    hm = SpaceHyperModel(space, (8, 8, 1), 3, seed=0)
    hp = kt.HyperParameters()
    model = hm.build(hp)
    x = np.random.default_rng(0).integers(0, 255, (40, 8, 8, 1), dtype=np.uint8)
    y = np.arange(40) % 3
    ds = tf.data.Dataset.from_tensor_slices((x, y)).cache()
    hist = hm.fit(hp, model, ds, validation_data=ds, epochs=1, verbose=0)
    assert hist.params["steps"] == 3  # 40 examples / batch 16
    assert "val_accuracy" in hist.history


def test_sgd_momentum_condition_builds():
    space = spaces.load("cnn", known=models.known(), overrides={"optimizer": "sgd"})
    model = SpaceHyperModel(space, (8, 8, 1), 10).build(kt.HyperParameters())
    assert type(model.optimizer).__name__ == "SGD"
    assert float(model.optimizer.momentum) == pytest.approx(0.9)


GUIDE = """
import keras
from keras import layers
import keras_tuner


def build_model(hp):
    model = keras.Sequential()
    model.add(layers.Flatten())
    model.add(layers.Dense(units=hp.Int("units", min_value=32, max_value=512, step=32),
                           activation=hp.Choice("activation", ["relu", "tanh"])))
    if hp.Boolean("dropout"):
        model.add(layers.Dropout(rate=0.25))
    model.add(layers.Dense(10, activation="softmax"))
    learning_rate = hp.Float("lr", min_value=1e-4, max_value=1e-2, sampling="log")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    return model


class MyHyperModel(keras_tuner.HyperModel):
    def build(self, hp):
        model = keras.Sequential([layers.Flatten(), layers.Dense(10, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model

    def fit(self, hp, model, *args, **kwargs):
        return model.fit(*args, batch_size=hp.Choice("batch_size", [16, 32]), **kwargs)
"""


@pytest.mark.parametrize("attr", ["build_model", "MyHyperModel"])
def test_user_hypermodel_from_the_keras_io_guide(tmp_path, attr):
    path = tmp_path / "mine.py"
    path.write_text(textwrap.dedent(GUIDE))
    inner = load_user_hypermodel(f"{path}:{attr}")
    hm = UserHyperModel(inner, num_classes=10)
    hp = kt.HyperParameters()
    model = hm.build(hp)
    x = np.random.default_rng(0).random((32, 8, 8)).astype("float32")
    y = np.arange(32) % 10
    hist = hm.fit(hp, model, x, y, validation_data=(x, y), epochs=1, verbose=0)
    assert "val_accuracy" in hist.history


def test_user_hypermodel_reference_errors(tmp_path):
    from automl_app.errors import UsageError

    path = tmp_path / "mine.py"
    path.write_text("def build(hp):\n    return None\n")
    with pytest.raises(UsageError, match="path/to/file.py:build"):
        load_user_hypermodel(str(path))
    with pytest.raises(UsageError, match="defines no 'nope'"):
        load_user_hypermodel(f"{path}:nope")
    with pytest.raises(UsageError, match="not found"):
        load_user_hypermodel(f"{tmp_path / 'missing.py'}:build")


def test_cnn_space_keeps_cost_in_view():
    """The dearest configuration of the default image space is at most ~7x the defaults' MACs."""
    from automl_app.models.cost import forward_macs

    space = spaces.load("cnn", known=models.known())
    hm = SpaceHyperModel(space, (28, 28, 1), 10)
    defaults = forward_macs(hm.build(kt.HyperParameters()))
    hp = kt.HyperParameters()
    hp.values.update({"conv_blocks": 3, "convs_per_block": 2, "filters": 32, "block": "residual"})
    dearest = forward_macs(hm.build(hp))
    assert 6 < dearest / defaults < 7.5


def test_residual_blocks_smoothing_and_cosine_schedule_train():
    import tensorflow as tf

    from automl_app.models.hypermodel import SparseSmoothedCrossentropy, portable

    fixed = {"block": "residual", "convs_per_block": 2, "label_smoothing": 0.1,
             "lr_schedule": "cosine", "augment_shift": 0.1, "augment_flip": True,
             "batch_size": 16}  # fmt: skip
    space = spaces.load("cnn", known=models.known(), overrides=fixed)
    hm = SpaceHyperModel(space, (8, 8, 1), 3, seed=0)
    hp = kt.HyperParameters()
    model = hm.build(hp)
    assert any(type(layer).__name__ == "Add" for layer in model.layers)
    assert isinstance(model.loss, SparseSmoothedCrossentropy)
    x = np.random.default_rng(0).integers(0, 255, (48, 8, 8, 1), dtype=np.uint8)
    y = np.arange(48) % 3
    ds = tf.data.Dataset.from_tensor_slices((x, y)).cache()
    hist = hm.fit(hp, model, ds, validation_data=ds, epochs=2, verbose=0)
    assert np.isfinite(hist.history["loss"]).all()
    schedule = model.optimizer._learning_rate
    assert type(schedule).__name__ == "CosineDecay" and schedule.decay_steps == 2 * 3
    assert float(model.optimizer.learning_rate) < 1e-3  # decayed over the 6 steps
    portable(model)
    assert model.loss == "sparse_categorical_crossentropy"  # model.keras loads without us


def test_augmentation_shifts_and_flips_in_the_pipeline():
    import tensorflow as tf

    from automl_app.models.hypermodel import batches

    x = np.zeros((4, 8, 8, 1), dtype=np.uint8)
    x[:, :, :4] = 255  # left half white
    ds = tf.data.Dataset.from_tensor_slices((x, np.zeros(4, dtype=np.int64)))
    plain = next(iter(batches(ds, 4, shuffle=False, seed=0)))[0].numpy()
    moved = [next(iter(batches(ds, 4, shuffle=False, seed=s, shift=0.25, flip=True)))[0].numpy()
             for s in range(4)]  # fmt: skip
    assert all(m.shape == plain.shape and m.dtype == np.float32 for m in moved)
    assert any(not np.array_equal(m, plain) for m in moved)
    assert all(0.0 <= m.min() and m.max() <= 1.0 for m in moved)


@pytest.mark.parametrize("augment", [False, True])
def test_the_pipeline_runs_no_autotuner_thread_to_join(augment):
    # tf.data's autotuner thread made destroying a used iterator wait 15.5 s in a 10-minute
    # search (py-spy: ~RootDataset::Iterator joining it inside a garbage collection), so the
    # space's pipelines turn it off and fix their parallelism; they still yield every batch
    import tensorflow as tf

    from automl_app.models.hypermodel import batches

    x = np.arange(10 * 4 * 4, dtype=np.uint8).reshape(10, 4, 4, 1)
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(10, dtype=np.int64))).cache()
    kw = {"shift": 0.25, "flip": True} if augment else {}
    out = batches(ds, 4, shuffle=True, seed=0, **kw)
    assert out.options().autotune.enabled is False
    labels = np.concatenate([y.numpy() for _, y in out])
    assert sorted(labels.tolist()) == list(range(10))  # each example once an epoch
