"""AutoKeras engine: the six task classes and the IO API, one trial and one epoch each on tiny data.

These tests are the compatibility gate for AutoKeras 3.0.0: a Keras or AutoKeras bump that breaks a
task fails here. Each checks trials.csv, the report and that best/saved_model reloads and serves
raw inputs (uint8 images, strings, one named tensor per column).
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from automl_app import runs
from automl_app.errors import ConfigError, DataError, UsageError

OPTS = {"max_trials": 1, "epochs": 1, "seed": 1, "overwrite": True, "batch_size": 16}


def _opts(run_dir: Path):
    from automl_app.engines.autokeras import SearchOptions

    return SearchOptions(directory=run_dir / "tuner", **OPTS)


def _images(n: int, classes: int, seed: int = 0, channels: int | None = None):
    """Bright square in a class-specific corner on noise: learnable, generated in code."""
    rng = np.random.default_rng(seed)
    shape = (n, 16, 16) if channels is None else (n, 16, 16, channels)
    x = rng.integers(0, 60, shape, dtype=np.uint8)
    y = np.arange(n) % classes
    for i, c in enumerate(y):
        r, q = divmod(int(c), 2)
        x[i, r * 8 : r * 8 + 8, q * 8 : q * 8 + 8] = 220
    return x, y


def _serve(run_dir: Path, *args):
    from automl_app.tf_env import tf

    t = tf()
    loaded = t.saved_model.load(str(run_dir / "best" / "saved_model"))
    return loaded.serve(*[t.constant(a) if not isinstance(a, dict) else
                          {k: t.constant(v) for k, v in a.items()} for a in args])  # fmt: skip


def _record(result, run_dir: Path, x_test, y_test, say=print) -> dict:
    """The flow's middle after a task-API search: test once, report, export, trial rows."""
    from automl_app import workflows
    from automl_app.engines import autokeras as akt

    return workflows.complete(run_dir, akt.engine_result(result, lambda: (x_test, y_test)), say)


def _check_trials(run_dir: Path, expect_hp: str) -> list[dict]:
    rows = runs.read_csv(run_dir / "trials.csv")
    assert len(rows) == 1
    row = rows[0]
    assert row["status"] == "completed"
    assert float(row["objective"]) > 0
    assert float(row["seconds"]) > 0
    assert row["params"] and int(row["params"]) > 0
    assert any(k.startswith("hp_") and expect_hp in k for k in row), list(row)
    return rows


@pytest.mark.slow
def test_compat_shim_is_idempotent_and_coerces_numpy_units():
    from automl_app.engines.autokeras import compat as autokeras_compat

    ak = autokeras_compat.apply()
    assert autokeras_compat.apply() is ak
    assert autokeras_compat.is_applied()
    from autokeras import graph
    from autokeras.blocks import heads

    once = graph.Graph.__dict__["set_io_shapes"]
    autokeras_compat.apply()
    assert graph.Graph.__dict__["set_io_shapes"] is once  # not wrapped twice
    head = heads.RegressionHead()
    head.shape = (np.int64(3),)
    assert autokeras_compat._int_shape(head.shape) == (3,)
    assert type(autokeras_compat._int_shape(head.shape)[0]) is int


@pytest.mark.slow
def test_image_classifier_auto_block_on_cpu(tmp_path, capsys):
    from automl_app.engines import autokeras as akt

    x, y = _images(72, 3)
    said = []
    result = akt.search_image(
        x[:48], y[:48], class_names=["a", "b", "c"], validation_data=(x[48:60], y[48:60]),
        options=_opts(tmp_path), say=said.append,
    )  # fmt: skip
    assert any("vanilla CNN" in s and "ResNet50" in s for s in said)
    assert result.best["hyperparameters"]["image_block_1/block_type"] == "vanilla"
    summary = _record(result, tmp_path, x[60:], y[60:], say=said.append)
    assert summary["autokeras_task"] == "image_classification"
    json.dumps(summary, default=str)
    _check_trials(tmp_path, "image_block_1/block_type")
    report = json.loads((tmp_path / "report" / "classification_report.json").read_text())
    assert {"a", "b", "c"} <= set(report)
    assert json.loads((tmp_path / "best" / "labels.json").read_text()) == ["a", "b", "c"]
    probs = np.asarray(_serve(tmp_path, x[60:]))  # uint8 [N,16,16] in
    assert probs.shape == (12, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    probs4 = np.asarray(_serve(tmp_path, x[60:, :, :, None]))  # [N,H,W,1] works too
    np.testing.assert_allclose(probs, probs4, atol=1e-5)


@pytest.mark.slow
def test_image_regressor_vanilla_block(tmp_path):
    from automl_app.engines import autokeras as akt

    x, c = _images(48, 4, channels=1)
    y = c.astype(np.float32) * 2.5
    result = akt.search_image(x[:36], y[:36], task="regression", block="vanilla",
                              options=_opts(tmp_path), say=lambda s: None)  # fmt: skip
    assert result.notes == []  # a chosen block needs no note
    assert "image_block_1/block_type" not in result.best["hyperparameters"]
    _record(result, tmp_path, x[36:], y[36:], say=lambda s: None)
    _check_trials(tmp_path, "conv_block_1")
    rep = json.loads((tmp_path / "report" / "regression_report.json").read_text())
    assert set(rep) >= {"mae", "rmse", "r2"} and rep["examples"] == 12
    values = np.asarray(_serve(tmp_path, x[36:]))
    assert values.shape == (12, 1)
    assert not (tmp_path / "best" / "labels.json").exists()


def _text_csv(path: Path, n: int = 80) -> Path:
    good = ["great", "fine", "lovely", "superb", "nice"]
    bad = ["awful", "poor", "dull", "broken", "sad"]
    rng = np.random.default_rng(0)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["review", "sentiment", "stars"])
        for i in range(n):
            pos = i % 2 == 0
            words = rng.choice(good if pos else bad, size=4).tolist() + ["movie", f"w{i % 7}"]
            w.writerow([" ".join(words), "pos" if pos else "neg", 4 + (i % 3) * 0.5 if pos else 1])
    return path


@pytest.mark.slow
def test_text_classifier_serves_raw_strings(tmp_path):
    from automl_app.data import text
    from automl_app.engines import autokeras as akt

    data = text.load_text_csv(_text_csv(tmp_path / "reviews.csv"), "review", "sentiment")
    assert data.task == "classification" and data.class_names == ["neg", "pos"]
    x, y = data.texts, data.y
    result = akt.search_text(x[:50], y[:50], class_names=data.class_names,
                             validation_data=(x[50:64], y[50:64]), options=_opts(tmp_path))  # fmt: skip
    _record(result, tmp_path, x[64:], y[64:], say=lambda s: None)
    _check_trials(tmp_path, "text_block_1")
    assert (tmp_path / "report" / "classification_report.txt").is_file()
    probs = np.asarray(_serve(tmp_path, x[64:]))
    assert probs.shape == (16, 2)  # binary sigmoid head → two probabilities
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # Same numbers as AutoKeras's own path: its Python tokenizer, then the model.
    ids = result.pipeline.transform_x(x[64:])
    p1 = np.asarray(result.model(ids, training=False)).reshape(-1)
    np.testing.assert_allclose(probs[:, 1], p1, atol=1e-5)
    card = json.loads((tmp_path / "best" / "model_card.json").read_text())
    assert "raw strings" in card["serving"]["input"]


@pytest.mark.slow
def test_text_regressor(tmp_path):
    from automl_app.data import text
    from automl_app.engines import autokeras as akt

    data = text.load_text_csv(_text_csv(tmp_path / "r.csv", 48), "review", "stars",
                              task="regression")  # fmt: skip
    # No validation data: AutoKeras retrains the best model after the search (its final fit),
    # here with our deadline callback too (the compat shim fixes how AutoKeras copies it).
    opts = dataclasses.replace(_opts(tmp_path), time_budget="10m")
    result = akt.search_text(data.texts[:36], data.y[:36], task="regression", options=opts)
    assert result.stop["stop_reason"] == "max_trials" and result.stop["time_budget_s"] == 600
    _record(result, tmp_path, data.texts[36:], data.y[36:], say=lambda s: None)
    _check_trials(tmp_path, "text_block_1")
    assert (
        json.loads((tmp_path / "report" / "regression_report.json").read_text())["examples"] == 12
    )
    assert np.asarray(_serve(tmp_path, data.texts[36:])).shape == (12, 1)


def _iris_csv(path: Path) -> Path:
    from sklearn.datasets import load_iris

    iris = load_iris()
    rng = np.random.default_rng(0)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*(n.replace(" (cm)", "").replace(" ", "_") for n in iris.feature_names),
                    "site", "species"])  # fmt: skip
        for row, t in zip(iris.data, iris.target, strict=True):
            site = rng.choice(["north", "south", "east"])
            cells = [f"{v:.1f}" for v in row]
            if rng.random() < 0.05:
                cells[0] = ""  # missing value
            w.writerow([*cells, site, iris.target_names[t]])
    return path


@pytest.mark.slow
def test_structured_classifier_named_inputs(tmp_path):
    from automl_app.data import tabular
    from automl_app.engines import autokeras as akt

    data = tabular.load_csv(_iris_csv(tmp_path / "iris.csv"), "species", seed=0)
    assert data.column_types["site"] == "categorical"
    assert data.column_types["sepal_length"] == "numerical"
    order = np.random.default_rng(0).permutation(len(data.y))
    tr, va, te = order[:100], order[100:125], order[125:]
    result = akt.search_structured(
        data.x[tr], data.y[tr], column_names=data.column_names, column_types=data.column_types,
        class_names=data.class_names, validation_data=(data.x[va], data.y[va]),
        options=_opts(tmp_path),
    )  # fmt: skip
    _record(result, tmp_path, data.x[te], data.y[te], say=lambda s: None)
    _check_trials(tmp_path, "structured_data_block_1")
    report = json.loads((tmp_path / "report" / "classification_report.json").read_text())
    assert "setosa" in report
    feed = akt.raw_feed(result, data.x[te])
    assert set(feed) == set(data.column_names)
    assert feed["site"].dtype.kind == "U" and feed["petal_width"].dtype == np.float32
    probs = np.asarray(_serve(tmp_path, feed))
    assert probs.shape == (25, 3)
    # Same as AutoKeras's own path (its Python encoder, then the model); unseen category works.
    expected = np.asarray(result.model(result.pipeline.transform_x(data.x[te]), training=False))
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    feed["site"][:] = "nowhere"
    assert np.isfinite(np.asarray(_serve(tmp_path, feed))).all()


@pytest.mark.slow
def test_structured_regressor(tmp_path):
    from sklearn.datasets import load_diabetes

    from automl_app.data import tabular
    from automl_app.engines import autokeras as akt

    d = load_diabetes()
    path = tmp_path / "diabetes.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*d.feature_names, "progression"])
        for row, t in zip(d.data[:120], d.target[:120], strict=True):
            w.writerow([*(f"{v:.5f}" for v in row), f"{t:.1f}"])
    data = tabular.load_csv(path, "progression", column_types={"sex": "categorical"})
    assert data.task == "regression" and data.column_types["sex"] == "categorical"
    result = akt.search_structured(data.x[:96], data.y[:96], column_names=data.column_names,
                                   column_types=data.column_types, task="regression",
                                   options=_opts(tmp_path))  # fmt: skip
    _record(result, tmp_path, data.x[96:], data.y[96:], say=lambda s: None)
    _check_trials(tmp_path, "structured_data_block_1")
    rep = json.loads((tmp_path / "report" / "regression_report.json").read_text())
    assert rep["examples"] == 24 and rep["rmse"] >= rep["mae"] > 0
    values = np.asarray(_serve(tmp_path, akt.raw_feed(result, data.x[96:])))
    assert values.shape == (24, 1)


SPEC = """\
# two inputs, two heads: an image column and tabular columns in, a class and a number out
inputs:
  - {type: image, column: picture, channels: 1}
  - {type: structured, columns: [size, colour]}
outputs:
  - {type: classification, column: kind}
  - {type: regression, column: weight}
csv: items.csv
"""


@pytest.mark.slow
def test_auto_model_two_inputs_two_heads(tmp_path):
    from PIL import Image

    from automl_app.engines import autokeras as akt

    x, c = _images(60, 2)
    rng = np.random.default_rng(3)
    (tmp_path / "img").mkdir()
    with open(tmp_path / "items.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["picture", "size", "colour", "kind", "weight"])
        for i in range(60):
            Image.fromarray(x[i]).save(tmp_path / "img" / f"{i}.png")
            size = float(rng.normal(5 + 3 * c[i]))
            w.writerow([f"img/{i}.png", f"{size:.3f}", rng.choice(["red", "blue"]),
                        ["cat", "dog"][c[i]], f"{2 * size + 1:.3f}"])  # fmt: skip
    (tmp_path / "spec.yaml").write_text(SPEC)
    spec = akt.load_spec(tmp_path / "spec.yaml")
    data = akt.load_multi_csv(spec)
    assert data.inputs["picture"].shape == (60, 16, 16, 1)
    assert data.class_names == {"kind": ["cat", "dog"]}

    def part(sl):
        return ({k: v[sl] for k, v in data.inputs.items()},
                {k: v[sl] for k, v in data.targets.items()})  # fmt: skip

    run = tmp_path / "run"
    said = []
    result = akt.search_multi(spec, *part(slice(0, 40)), class_names=data.class_names,
                              column_types=data.column_types, validation_data=part(slice(40, 50)),
                              options=_opts(run), say=said.append)  # fmt: skip
    assert said and "vanilla CNN" in said[0]
    summary = _record(result, run, *part(slice(50, 60)), say=lambda s: None)
    assert set(summary["test"]) == {"kind", "weight"}
    _check_trials(run, "image_block_1")
    assert (run / "report" / "kind" / "classification_report.json").is_file()
    assert "weight" in json.loads((run / "report" / "regression_report.json").read_text())
    feed = akt.raw_feed(result, part(slice(50, 60))[0])
    assert set(feed) == {"picture", "size", "colour"}
    out = _serve(run, feed)
    assert np.asarray(out["kind"]).shape == (10, 2)
    assert np.asarray(out["weight"]).shape == (10, 1)
    assert json.loads((run / "best" / "labels.json").read_text()) == {"kind": ["cat", "dog"]}


def test_spec_errors_name_file_and_key(tmp_path):
    from automl_app.engines import autokeras as akt

    bad = tmp_path / "bad.yaml"
    bad.write_text("inputs: [{type: audio, column: a}]\noutputs: [{type: regression, column: y}]\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: inputs\[0\].type must be one of image"):
        akt.load_spec(bad)
    with pytest.raises(ConfigError, match="unknown key"):
        akt.load_spec({"inputs": [{"type": "text", "column": "t"}], "outputs": [], "x": 1})
    with pytest.raises(ConfigError, match="outputs"):
        akt.load_spec({"inputs": [{"type": "text", "column": "t"}], "outputs": []})


def test_options_and_memory_errors():
    from automl_app.engines import autokeras as akt

    with pytest.raises(
        UsageError, match="tuner must be one of greedy, random, bayesian, hyperband"
    ):
        akt.SearchOptions(tuner="grid").check()
    with pytest.raises(UsageError, match="max_trials=0"):
        akt.SearchOptions(max_trials=0).check()
    with pytest.raises(DataError, match=r"needs about .*--max-samples"):
        from automl_app.data.tabular import check_memory

        check_memory(akt.estimate_image_bytes(10**9, (28, 28, 1)), "fashion", available=10**9)
