"""Atomic run records and the checked SavedModel export."""

from __future__ import annotations

import json

import numpy as np
import pytest

from automl_app import export, runs
from automl_app.errors import AutomlError, UsageError


def test_atomic_writes_leave_no_temp_files(tmp_path):
    runs.atomic_write_json(tmp_path / "a.json", {"x": np.float32(1.5), "y": np.arange(2)})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1.5, "y": [0, 1]}
    runs.write_csv(
        tmp_path / "t.csv",
        [{"trial_id": "0", "b": 1}, {"trial_id": "1", "a": 2.0}],
        first=["trial_id"],
    )
    assert (tmp_path / "t.csv").read_text().splitlines()[0] == "trial_id,a,b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "t.csv"]


def test_run_dir_needs_overwrite_or_resume(tmp_path):
    run = tmp_path / "run"
    runs.prepare_run_dir(run, overwrite=False)
    runs.start(run, "search image", {"a": 1})
    with pytest.raises(UsageError, match="--overwrite"):
        runs.prepare_run_dir(run, overwrite=False)
    assert runs.prepare_run_dir(run, overwrite=False, resume=True) == run
    runs.prepare_run_dir(run, overwrite=True)
    assert not (run / "run.json").exists()
    manifest = runs.start(run, "search image", {"a": 1})
    assert manifest["status"] == "running" and "keras" in manifest["versions"]
    assert runs.update(run, status="completed")["status"] == "completed"


def _model(logits: bool):
    import keras

    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation=None if logits else "softmax"),
        ]
    )


@pytest.mark.parametrize("logits", [True, False])
def test_export_serves_probabilities_for_both_image_ranks(tmp_path, logits):
    import tensorflow as tf

    x = np.random.default_rng(0).integers(0, 256, (6, 28, 28), dtype=np.uint8)
    spec = export.fixed_image_spec(28, 28, 1)
    info = export.export_best(
        _model(logits), spec, x, tmp_path / "best", labels=list("abcdefghij"), card={"k": 1}
    )
    assert info["softmax_added"] is logits
    loaded = tf.saved_model.load(str(tmp_path / "best" / "saved_model"))
    p3, p4 = loaded.serve(tf.constant(x)).numpy(), loaded.serve(tf.constant(x[..., None])).numpy()
    assert p3.dtype == np.float32 and p3.shape == (6, 10)
    np.testing.assert_allclose(p3.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(p3, p4)
    assert export.read_labels(tmp_path / "best") == list("abcdefghij")
    card = json.loads((tmp_path / "best" / "model_card.json").read_text())
    assert card["serving"]["endpoint"] == "serve"


def test_export_adds_a_fixed_shape_endpoint_for_tflite_and_onnx(tmp_path):
    """`serve_fixed` is `serve` traced at one shape (what TFLite/ONNX convert); the card says so."""
    import tensorflow as tf

    x = np.random.default_rng(1).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    info = export.export_best(
        _model(True), export.fixed_image_spec(28, 28, 1), x, tmp_path / "best", labels=None, card={}
    )
    assert info["fixed_endpoint"] == export.FIXED_ENDPOINT == "serve_fixed"
    assert info["fixed_input_shape"] == [28, 28, 1]
    loaded = tf.saved_model.load(str(tmp_path / "best" / "saved_model"))
    fixed = loaded.serve_fixed(tf.constant(x[..., None])).numpy()
    np.testing.assert_allclose(fixed, loaded.serve(tf.constant(x)).numpy(), atol=1e-6)
    card = json.loads((tmp_path / "best" / "model_card.json").read_text())
    assert card["serving"]["fixed_input_shape"] == [28, 28, 1]


def test_export_mismatch_fails_and_keeps_previous(tmp_path, monkeypatch):
    import tensorflow as tf

    x = np.zeros((2, 28, 28), dtype=np.uint8)
    spec = export.fixed_image_spec(28, 28, 1)
    out = tmp_path / "saved_model"
    export.export_saved_model(_model(False), spec, x, out)
    before = sorted(p.name for p in out.iterdir())

    class Broken:  # a reload whose outputs differ from the in-memory model
        def __init__(self, path):
            self.serve = lambda inputs: tf.zeros((2, 10))

    monkeypatch.setattr(tf.saved_model, "load", Broken)
    with pytest.raises(AutomlError, match="does not match"):
        export.export_saved_model(_model(False), spec, x, out)
    assert sorted(p.name for p in out.iterdir()) == before
    assert [p.name for p in tmp_path.iterdir()] == ["saved_model"]


def test_quiet_tensorflow_import_from_threads_keeps_stderr(tmp_path):
    """Threads importing TensorFlow at once must not leave fd 2 pointing at /dev/null."""
    import subprocess
    import sys

    code = (
        "import sys; from concurrent.futures import ThreadPoolExecutor\n"
        "from automl_app.tf_env import tf\n"
        "with ThreadPoolExecutor(8) as pool: list(pool.map(lambda _: tf(), range(8)))\n"
        "print('still here', file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "still here" in proc.stderr
