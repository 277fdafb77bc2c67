"""The AUC and macro-F1 wrappers agree with scikit-learn on a fixed example (integer labels)."""

from __future__ import annotations

import numpy as np
import pytest

Y = np.array([0, 1, 2, 2, 1, 0, 2, 1, 0, 1])
P = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.3, 0.4, 0.3],
        [0.1, 0.2, 0.7],
        [0.4, 0.1, 0.5],
        [0.5, 0.3, 0.2],
        [0.2, 0.5, 0.3],
        [0.3, 0.3, 0.4],
        [0.1, 0.8, 0.1],
        [0.6, 0.1, 0.3],
        [0.2, 0.2, 0.6],
    ],
    dtype="float32",
)


@pytest.mark.parametrize("labels", [Y, Y.reshape(-1, 1), np.eye(3, dtype="float32")[Y]])
def test_auc_matches_sklearn(labels):
    from sklearn.metrics import roc_auc_score

    from automl_app.training.metrics import SparseAUC

    m = SparseAUC(3)
    m.update_state(labels, P)
    expected = roc_auc_score(Y, P, multi_class="ovr", average="macro")
    assert m.name == "auc"
    assert float(m.result()) == pytest.approx(expected, abs=2e-3)


def test_binary_auc_matches_sklearn():
    from sklearn.metrics import roc_auc_score

    from automl_app.training.metrics import SparseAUC

    y = np.array([0, 1, 1, 0, 1, 0, 1, 1])
    p1 = np.array([0.2, 0.8, 0.4, 0.5, 0.9, 0.1, 0.3, 0.7], dtype="float32")
    m = SparseAUC(2)
    m.update_state(y, np.stack([1 - p1, p1], axis=1))
    assert float(m.result()) == pytest.approx(roc_auc_score(y, p1), abs=2e-3)


@pytest.mark.parametrize("labels", [Y, Y.reshape(-1, 1), np.eye(3, dtype="float32")[Y]])
def test_macro_f1_matches_sklearn(labels):
    from sklearn.metrics import f1_score

    from automl_app.training.metrics import SparseMacroF1

    m = SparseMacroF1(3)
    m.update_state(labels, P)
    expected = f1_score(Y, P.argmax(axis=1), average="macro")
    assert m.name == "macro_f1"
    assert float(m.result()) == pytest.approx(expected, abs=1e-5)


def test_compile_metrics_per_objective():
    from automl_app.training.metrics import compile_metrics

    names = lambda objective: [  # noqa: E731
        m if isinstance(m, str) else m.name for m in compile_metrics(objective, 3)
    ]
    assert names("val_accuracy") == ["accuracy"]
    assert names("val_auc") == ["accuracy", "auc"]
    assert names("macro_f1") == ["accuracy", "macro_f1"]


def test_metrics_in_fit_record_val_names():
    """Compiled into a model fed integer labels, fit() records val_auc and val_macro_f1."""
    import keras

    from automl_app.training.metrics import SparseAUC, SparseMacroF1

    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = rng.integers(0, 3, size=32)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(
        "adam", "sparse_categorical_crossentropy", metrics=[SparseAUC(3), SparseMacroF1(3)]
    )
    history = model.fit(x, y, validation_data=(x, y), epochs=1, verbose=0)
    assert {"val_auc", "val_macro_f1", "auc", "macro_f1"} <= set(history.history)


def test_configure_hypermodel_and_portable(tmp_path):
    """configure_hypermodel sets what compile and fit read; portable() drops the wrappers so
    model.keras names stock Keras objects only."""
    from automl_app import models, spaces
    from automl_app.models.hypermodel import hypermodel_for, portable
    from automl_app.training.metrics import configure_hypermodel

    space = spaces.load("fcn", known=models.known(), overrides={"num_layers": 1})
    hm = hypermodel_for(space, (8, 8, 1), 3)
    configure_hypermodel(hm, objective="val_auc", direction="max", num_classes=3, patience=2,
                         class_weight={0: 2.0, 1: 1.0, 2: 0.5})  # fmt: skip
    assert hm.early_stopping == {"monitor": "val_auc", "mode": "max", "patience": 2}
    assert hm.class_weight == {0: 2.0, 1: 1.0, 2: 0.5}
    import keras_tuner as kt

    model = hm.build(kt.HyperParameters())
    x = np.zeros((6, 8, 8, 1), "uint8")
    model.evaluate(x, np.array([0, 1, 2, 0, 1, 2]), verbose=0)
    import zipfile

    def saved_config(name: str) -> str:
        model.save(tmp_path / name)
        return zipfile.ZipFile(tmp_path / name).read("config.json").decode()

    assert "SparseAUC" in saved_config("before.keras")
    portable(model)
    assert "SparseAUC" not in saved_config("model.keras")


def test_the_refit_judges_val_auc_and_val_macro_f1_as_the_trials_did():
    """A --time-budget refit is compared with its best trial under the objective: its val_auc
    and val_macro_f1 (scikit-learn, on the validation split) agree with the trials' metrics."""
    from automl_app.engines.kerastuner.schedule import _ranking_metrics
    from automl_app.training.metrics import SparseAUC, SparseMacroF1

    refit = _ranking_metrics(Y, P)
    auc, f1 = SparseAUC(3), SparseMacroF1(3)
    auc.update_state(Y, P)
    f1.update_state(Y, P)
    assert refit["val_auc"] == pytest.approx(float(auc.result()), abs=0.01)
    assert refit["val_macro_f1"] == pytest.approx(float(f1.result()), abs=1e-5)
    one_class = _ranking_metrics(np.zeros(4, dtype=int), P[:4])
    assert "val_auc" not in one_class and 0 <= one_class["val_macro_f1"] <= 1
