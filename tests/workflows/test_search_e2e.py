"""End-to-end searches: real KerasTuner runs on tiny data, through a subprocess and the Python API."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from automl_app import workflows
from automl_app.cli import cli
from automl_app.config import DataConfig, SearchConfig, SpaceConfig, TunerConfig
from automl_app.data import datasets

pytestmark = pytest.mark.slow

SERVE_CHECK = textwrap.dedent("""
    import sys, json, numpy as np, tensorflow as tf
    x = np.load(sys.argv[2])
    m = tf.saved_model.load(sys.argv[1])
    p = m.serve(tf.constant(x)).numpy()
    print(json.dumps({"shape": list(p.shape), "dtype": str(p.dtype),
                      "max_sum_err": float(np.abs(p.sum(axis=1) - 1).max())}))
""")


def automl(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "automl_app.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=900,
    )


def serve_in_fresh_process(saved_model: Path, x: np.ndarray, tmp_path: Path) -> dict:
    np.save(tmp_path / "x.npy", x)
    out = subprocess.run(
        [sys.executable, "-c", SERVE_CHECK, str(saved_model), str(tmp_path / "x.npy")],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def check_run_dir(run: Path, n_trials: int) -> dict:
    for rel in (
        "run.json",
        "trials.csv",
        "trials.jsonl",
        "tuner",
        "tensorboard",
        "best/saved_model/saved_model.pb",
        "best/model.keras",
        "best/labels.json",
        "best/model_card.json",
        "report/classification_report.txt",
        "report/classification_report.json",
        "report/confusion_matrix.png",
    ):
        assert (run / rel).exists(), rel
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["status"] == "completed"
    assert 0.0 <= manifest["test"]["accuracy"] <= 1.0 and manifest["test"]["loss"] >= 0
    rows = list(csv.DictReader((run / "trials.csv").open()))
    assert len(rows) == n_trials
    assert {"trial_id", "status", "objective", "seconds"} <= set(rows[0])
    assert any(c.startswith("hp_") for c in rows[0])
    return manifest


def test_cli_search_digits_subprocess_and_reexport(tmp_path):
    run = tmp_path / "run"
    proc = automl(
        "search",
        "image",
        "--space",
        "cnn",
        "--max-trials",
        "2",
        "--epochs",
        "1",
        "--seed",
        "1",
        "--run-dir",
        str(run),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("[completed]") == 2
    assert "test accuracy" in proc.stdout and "oneDNN" not in proc.stderr + proc.stdout
    manifest = check_run_dir(run, 2)
    assert manifest["data"]["dataset"] == "digits"
    x_test, _ = datasets.load("digits").test()
    res = serve_in_fresh_process(run / "best" / "saved_model", x_test[:50], tmp_path)
    assert res["shape"] == [50, 10] and res["dtype"] == "float32" and res["max_sum_err"] < 1e-5

    again = automl("export", str(run), "--out", str(tmp_path / "re"))
    assert again.returncode == 0, again.stderr
    res = serve_in_fresh_process(tmp_path / "re", x_test[:5, :, :, 0], tmp_path)
    assert res["shape"] == [5, 10]


def test_fashion_mnist_acceptance_command(tmp_path, data_dir, tfds_dir):
    run = tmp_path / "r"
    proc = automl(
        "search",
        "image",
        "--dataset",
        "fashion_mnist",
        "--space",
        "fcn",
        "--tuner",
        "random",
        "--max-trials",
        "2",
        "--epochs",
        "1",
        "--max-samples",
        "2000",
        "--seed",
        "1",
        "--run-dir",
        str(run),
        env={"AUTOML_DATA_DIR": str(data_dir), "TFDS_DATA_DIR": str(tfds_dir)},
    )
    assert proc.returncode == 0, proc.stderr
    manifest = check_run_dir(run, 2)
    assert manifest["data"]["train_examples"] == 2000
    report = (run / "report" / "classification_report.txt").read_text()
    assert "t-shirt/top" in report and "ankle boot" in report
    raw = np.frombuffer(
        __import__("gzip").open(data_dir / "fashion_mnist" / "t10k-images-idx3-ubyte.gz").read(),
        np.uint8,
        offset=16,
    )
    x = raw.reshape(-1, 28, 28)[:100]
    res = serve_in_fresh_process(run / "best" / "saved_model", x, tmp_path)
    assert res["shape"] == [100, 10] and res["max_sum_err"] < 1e-5
    assert json.loads((run / "best" / "labels.json").read_text())[9] == "ankle boot"


@pytest.mark.parametrize("tuner", ["random", "grid", "bayesian", "hyperband"])
def test_every_tuner_through_the_python_api(tmp_path, tuner, monkeypatch):
    reads = []
    original = datasets.ImageData.test
    monkeypatch.setattr(datasets.ImageData, "test", lambda self: reads.append(1) or original(self))
    lines: list[str] = []
    cfg = SearchConfig(
        data=DataConfig(dataset="digits", max_samples=400, seed=0),
        space=SpaceConfig(space="fcn", overrides={"num_layers": 2, "layer_size": 512}),
        tuner=TunerConfig(tuner=tuner, max_trials=2, epochs=2, seed=0),
        run_dir=str(tmp_path / "run"),
    )
    summary = workflows.search(cfg, say=lines.append)
    assert summary["status"] == "completed"
    assert reads == [1], "the test split must be read exactly once"
    assert 1 <= summary["trials"]["total"] <= 2
    assert sum("[completed]" in ln for ln in lines) == summary["trials"]["completed"]
    assert any(ln.startswith("test accuracy") for ln in lines)


FAILING = """
import keras


def build(hp):
    units = hp.Choice("units", [8, 16])
    raise ValueError(f"cannot build with units={units}: deliberately broken")
"""


def test_failed_trials_show_the_real_error(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text(FAILING)
    res = CliRunner().invoke(
        cli,
        [
            "search",
            "image",
            "--hypermodel",
            f"{path}:build",
            "--max-trials",
            "4",
            "--max-failures",
            "2",
            "--run-dir",
            str(tmp_path / "run"),
        ],
    )
    assert res.exit_code == 1
    assert "deliberately broken" in res.output
    assert "Traceback" not in res.output


USER_HYPERMODEL = """
import keras
from keras import layers


def build_model(hp):
    model = keras.Sequential()
    model.add(layers.Flatten())
    model.add(layers.Dense(units=hp.Int("units", min_value=32, max_value=64, step=32),
                           activation="relu"))
    model.add(layers.Dense(10, activation="softmax"))
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model
"""


def test_user_hypermodel_search_exports_probabilities(tmp_path):
    path = tmp_path / "guide.py"
    path.write_text(USER_HYPERMODEL)
    run = tmp_path / "run"
    res = CliRunner().invoke(
        cli,
        [
            "search",
            "image",
            "--hypermodel",
            f"{path}:build_model",
            "--max-trials",
            "2",
            "--epochs",
            "1",
            "--run-dir",
            str(run),
        ],
    )
    assert res.exit_code == 0, res.output
    manifest = check_run_dir(run, 2)
    assert manifest["test"]["accuracy"] > 0.3


def make_color_folder(root: Path, per_class: int = 30) -> Path:
    """Two classes of 16×16 JPEGs (reddish vs bluish noise), written with PIL."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, channel in (("red", 0), ("blue", 2)):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 90, (16, 16, 3), dtype=np.uint8)
            img[..., channel] = rng.integers(150, 255, (16, 16), dtype=np.uint8)
            Image.fromarray(img).save(root / label / f"{i}.JPG", quality=90)
    return root


def test_kerastuner_search_on_an_image_folder(tmp_path):
    folder = make_color_folder(tmp_path / "photos")
    run = tmp_path / "run"
    res = CliRunner().invoke(
        cli,
        [
            "search",
            "image",
            "--data-dir",
            str(folder),
            "--space",
            "fcn",
            "--set",
            "num_layers=2",
            "--max-trials",
            "1",
            "--epochs",
            "3",
            "--image-size",
            "16",
            "--run-dir",
            str(run),
        ],
    )
    assert res.exit_code == 0, res.output
    manifest = check_run_dir(run, 1)
    assert manifest["data"]["class_names"] == ["blue", "red"]
    assert manifest["data"]["image_shape"] == [16, 16, 3]
    bad = CliRunner().invoke(
        cli,
        [
            "search",
            "image",
            "--data-dir",
            str(folder),
            "--dataset",
            "digits",
            "--run-dir",
            str(tmp_path / "r2"),
        ],
    )
    assert bad.exit_code == 2 and "exclusive" in bad.output
