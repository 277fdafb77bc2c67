"""--objective val_auc, --early-stopping and --class-weight end to end on tiny searches, and the
fit wiring they share (models/hypermodel.py, engines/kerastuner/setup.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from automl_app.cli import cli

TINY = ["search", "image", "--space", "fcn", "--set", "num_layers=1", "--set", "layer_size=256",
        "--max-samples", "200", "--seed", "0"]  # fmt: skip


def _rows(run: Path) -> list[dict]:
    with open(run / "trials.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def auc_run(tmp_path_factory) -> tuple[object, Path]:
    run = tmp_path_factory.mktemp("auc") / "run"
    args = [*TINY, "--run-dir", str(run), "--max-trials", "2", "--epochs", "6",
            "--objective", "val_auc", "--early-stopping", "2"]  # fmt: skip
    return CliRunner().invoke(cli, args, prog_name="automl"), run


@pytest.mark.slow
def test_val_auc_objective_with_early_stopping(auc_run):
    res, run = auc_run
    assert res.exit_code == 0, res.output
    assert "objective val_auc (max)" in res.output
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["config"]["tuner"]["early_stopping"] == 2
    assert manifest["config"]["tuner"]["objective"] == "val_auc"
    rows = _rows(run)
    assert len(rows) == 2
    for row in rows:
        assert 0.5 < float(row["objective"]) <= 1.0
        assert 1 <= int(row["epochs"]) <= 6  # the epochs that ran (fewer when stopped early)
    assert 0.5 < manifest["best_trial"]["score"] <= 1.0


def test_early_stopping_stops_and_restores(tmp_path):
    """A model that cannot improve (learning rate 0) stops after 1 + PATIENCE epochs."""
    import keras

    from automl_app.models.hypermodel import _stopping_and_weights

    class Stub:
        early_stopping = {"monitor": "val_loss", "mode": "min", "patience": 2}
        class_weight = {0: 1.0, 1: 3.0}

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 3)).astype("float32"), np.array([0] * 12 + [1] * 4)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    kwargs: dict = {"epochs": 10, "verbose": 0}
    _stopping_and_weights(Stub(), kwargs, has_val=True)
    assert kwargs["class_weight"] == {0: 1.0, 1: 3.0}
    history = model.fit(x, y, validation_data=(x, y), **kwargs)
    assert len(history.history["loss"]) == 3
    no_val: dict = {}
    _stopping_and_weights(Stub(), no_val, has_val=False)  # a refit on all data: no val to watch
    assert "callbacks" not in no_val


def test_balanced_class_weights_match_sklearn():
    from automl_app.engines.kerastuner.setup import class_weights

    y = np.array([0] * 6 + [1] * 2 + [2] * 4)
    assert class_weights("none", y) is None
    w = class_weights("balanced", y)
    assert w == pytest.approx({0: 12 / 18, 1: 12 / 6, 2: 12 / 12})


@pytest.mark.slow
def test_class_weight_balanced_on_unbalanced_folder(tmp_path):
    from support.images import make_folder

    root = tmp_path / "folder"
    make_folder(root, per_class=9, bad=False)
    for path in sorted((root / "blue").iterdir())[3:]:  # blue: 3 images, green and red: 9
        path.unlink()
    run = tmp_path / "run"
    args = ["search", "image", "--data-dir", str(root), "--image-size", "16", "--space", "fcn",
            "--set", "num_layers=1", "--set", "layer_size=256", "--max-trials", "1",
            "--epochs", "1", "--class-weight", "balanced", "--run-dir", str(run)]  # fmt: skip
    res = CliRunner().invoke(cli, args, prog_name="automl")
    assert res.exit_code == 0, res.output
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["config"]["tuner"]["class_weight"] == "balanced"
    weights = manifest["class_weights"]
    assert set(weights) == {"0", "1", "2"}
    assert weights["0"] > weights["1"]  # blue (class 0) is the rare class: weighted up


@pytest.mark.slow
def test_train_scratch_early_stopping_and_class_weight(tmp_path):
    run = tmp_path / "run"
    args = ["train-scratch", "mobilenetv2", "--max-samples", "60", "--epochs", "2",
            "--early-stopping", "1", "--class-weight", "balanced", "--run-dir", str(run)]  # fmt: skip
    res = CliRunner().invoke(cli, args, prog_name="automl")
    assert res.exit_code == 0, res.output
    assert "early stopping: val_accuracy, patience 1" in res.output
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["config"]["early_stopping"] == 1
    assert manifest["config"]["class_weight"] == "balanced"
    assert len(manifest["class_weights"]) == 10
    assert 1 <= int(_rows(run)[0]["epochs"]) <= 2
