"""TFLite (and ONNX) export: fixed input shape, runs in the interpreter, verified or refused.

A tiny Keras model trained for a second on random images, exported as the app does (export_best
with fixed_image_spec; export_saved_model with folder_image_spec), then converted.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from automl_app import export
from automl_app.errors import AutomlError, UsageError

S = 12  # training size of the folder model


def _train(shape: tuple[int, ...], seed: int = 0):
    import keras

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (96, *shape), dtype=np.uint8)
    y = (x.reshape(len(x), -1)[:, : x[0].size // 2].mean(axis=1) > 127).astype("int64")
    model = keras.Sequential(
        [
            keras.Input(shape),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2),  # logits: the export adds the softmax
        ]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x / 255.0, y, epochs=2, batch_size=32, verbose=0)
    return model, x


@pytest.fixture(scope="module")
def fixed_export(tmp_path_factory):
    """A grayscale model served as [N,8,8] or [N,8,8,1], as for Fashion-MNIST."""
    model, x = _train((8, 8, 1))
    best = tmp_path_factory.mktemp("fixed") / "best"
    raw = x[..., 0]  # users hold [N,H,W]
    export.export_best(
        model, export.fixed_image_spec(8, 8, 1), raw[:8], best, labels=["a", "b"], card={}
    )
    return best / "saved_model", raw


@pytest.fixture(scope="module")
def folder_export(tmp_path_factory):
    """An RGB model whose SavedModel takes images of any size (an image-folder run)."""
    model, x = _train((S, S, 3), seed=1)
    out = tmp_path_factory.mktemp("folder") / "saved_model"
    export.export_saved_model(model, export.folder_image_spec(S, 3, "0_1"), x[:8], out)
    return out, x, model


def _interpret(path, images):
    import warnings

    from automl_app.tf_env import tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interp = tf().lite.Interpreter(model_path=str(path))
    interp.allocate_tensors()
    src, dst = interp.get_input_details()[0], interp.get_output_details()[0]
    outs = []
    for image in images:
        interp.set_tensor(src["index"], image[None])
        interp.invoke()
        outs.append(interp.get_tensor(dst["index"])[0])
    return src, np.stack(outs)


def _serve(saved_model, images):
    from automl_app.tf_env import tf

    t = tf()
    loaded = t.saved_model.load(str(saved_model))  # keep it alive while serve runs
    return loaded.serve(t.constant(images)).numpy()


@pytest.mark.parametrize("quantize", ["none", "float16", "int8"])
def test_fixed_size_export_runs_in_the_interpreter(fixed_export, tmp_path, quantize):
    saved_model, raw = fixed_export
    out = tmp_path / f"model_{quantize}.tflite"
    info = export.export_tflite(
        saved_model, out, check_images=raw[48:], quantize=quantize, calibration_images=raw[:48]
    )
    assert info["path"] == str(out) and info["bytes"] == out.stat().st_size > 0
    assert info["input_shape"] == [1, 8, 8, 1] and info["input_dtype"] == "uint8"
    assert info["quantize"] == quantize and info["examples"] == 48
    assert info["agreement"] >= info["thresholds"]["min_agreement"]
    assert info["max_prob_diff"] <= info["thresholds"]["max_prob_diff"]
    assert not info["select_tf_ops"]  # builtin ops only: what a phone runs
    src, got = _interpret(out, raw[48:56].reshape(8, 8, 8, 1))
    assert list(src["shape"]) == [1, 8, 8, 1] and src["dtype"] == np.uint8
    want = _serve(saved_model, raw[48:56])
    np.testing.assert_allclose(got, want, atol=info["thresholds"]["max_prob_diff"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_any_size_export_gets_the_training_size(folder_export, tmp_path):
    saved_model, x, model = folder_export
    out = tmp_path / "folder.tflite"
    info = export.export_tflite(
        saved_model, out, check_images=x[64:], quantize="int8", calibration_images=x[:64]
    )
    assert info["input_shape"] == [1, S, S, 3] and info["endpoint"] == export.FIXED_ENDPOINT
    assert not info["select_tf_ops"]
    src, got = _interpret(out, x[64:72])
    assert list(src["shape"]) == [1, S, S, 3]
    np.testing.assert_allclose(got, _serve(saved_model, x[64:72]), atol=0.1)


def test_folder_spec_serves_any_size_like_training(folder_export):
    """Same-size images skip the resize; that equals training's resize_with_pad at that size."""
    from automl_app.data import stages
    from automl_app.tf_env import tf

    t = tf()
    saved_model, x, model = folder_export
    trained_view = stages.resize_with_pad(stages.scale(t.constant(x[:4]), "0_1"), S)
    want = t.nn.softmax(model(trained_view)).numpy()
    np.testing.assert_allclose(_serve(saved_model, x[:4]), want, atol=1e-5)
    rng = np.random.default_rng(3)
    for h, w in [(S, S), (5, 37), (37, 5), (40, 3), (1, 1)]:
        images = rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)
        probs = _serve(saved_model, images)
        assert probs.shape == (2, 2)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_failed_check_is_one_line_and_leaves_no_file(fixed_export, tmp_path):
    saved_model, raw = fixed_export
    out = tmp_path / "model.tflite"
    with pytest.raises(AutomlError, match="disagrees with the SavedModel") as caught:
        export.export_tflite(
            saved_model,
            out,
            check_images=raw[48:],
            quantize="int8",
            calibration_images=raw[:48],
            max_prob_diff=0.0,
        )
    message = str(caught.value)
    assert "\n" not in message and "largest probability difference" in message
    assert str(out) in message
    assert list(tmp_path.iterdir()) == []
    # A file already there stays as it was.
    out.write_bytes(b"previous")
    with pytest.raises(AutomlError):
        export.export_tflite(
            saved_model, out, check_images=raw[48:], quantize="int8",
            calibration_images=raw[:48], max_prob_diff=0.0,
        )  # fmt: skip
    assert out.read_bytes() == b"previous" and [p.name for p in tmp_path.iterdir()] == [out.name]


def test_bad_arguments_are_usage_errors(fixed_export, tmp_path):
    saved_model, raw = fixed_export
    out = tmp_path / "m.tflite"
    with pytest.raises(UsageError, match="`quantize` must be one of none, float16, int8"):
        export.export_tflite(saved_model, out, check_images=raw, quantize="int4")
    with pytest.raises(UsageError, match="calibration_images"):
        export.export_tflite(saved_model, out, check_images=raw, quantize="int8")
    with pytest.raises(UsageError, match=r"check_images must be .* shape \[8, 8, 1\]"):
        export.export_tflite(saved_model, out, check_images=np.zeros((2, 9, 9), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_export_without_fixed_endpoint_says_to_re_export(tmp_path):
    """Older folder exports (stages.serving_preprocess, no `serve_fixed`) resize every input with
    an op TFLite lacks: one line naming it and the way out, and no file."""
    from automl_app.data import stages

    model, x = _train((S, S, 3), seed=2)
    spec = export.ServingSpec(
        shape=(None, None, None, 3),
        dtype="uint8",
        preprocess=stages.serving_preprocess(S, "0_1"),
        description="any size",
    )
    saved_model = tmp_path / "saved_model"
    export.export_saved_model(model, spec, x[:4], saved_model)
    with pytest.raises(AutomlError, match="ScaleAndTranslate.*re-export.*serve_fixed") as caught:
        export.export_tflite(saved_model, tmp_path / "m.tflite", check_images=x[:16])
    assert "\n" not in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved_model"]


def test_onnx_export_matches_the_saved_model(fixed_export, folder_export, tmp_path):
    pytest.importorskip("tf2onnx")
    ort = pytest.importorskip("onnxruntime")
    for name, (saved_model, images) in {
        "fixed": fixed_export,
        "folder": folder_export[:2],
    }.items():
        out = tmp_path / f"{name}.onnx"
        info = export.export_onnx(saved_model, out, check_images=images[:32])
        assert info["bytes"] == out.stat().st_size and info["agreement"] == 1.0
        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        batch = images[:5].reshape((5, *info["input_shape"][1:]))
        got = session.run(None, {session.get_inputs()[0].name: batch})[0]
        np.testing.assert_allclose(got, _serve(saved_model, images[:5]), atol=1e-4)


def test_a_flip_between_near_tied_classes_is_excused_a_real_one_is_not():
    from automl_app.export import check

    ref = np.array([[0.34, 0.33, 0.33], [0.9, 0.05, 0.05]])
    tie = np.array([[0.33, 0.34, 0.33], [0.9, 0.05, 0.05]])  # first row flips by 0.01
    stats, problem = check.compare(ref, tie, max_prob_diff=0.1, min_agreement=0.95)
    assert problem is None and stats["agreement"] == 0.5 and stats["near_ties"] == 1
    real = np.array([[0.34, 0.33, 0.33], [0.05, 0.9, 0.05]])
    stats, problem = check.compare(ref, real, max_prob_diff=0.1, min_agreement=0.95)
    assert stats["near_ties"] == 0 and "top-1 agreement 0.5000" in problem


@pytest.mark.parametrize("kind", ["flip", "shift"])
def test_a_test_time_augmented_model_exports_to_phones_and_onnx(tmp_path, kind):
    """The views are stock layers: the SavedModel, TFLite (builtin ops only) and ONNX all hold
    them and agree with the Keras model."""
    from automl_app.models.tta import with_tta

    model, x = _train((8, 8, 1), seed=2)
    wrapped, raw = with_tta(model, kind), x[..., 0]
    best = tmp_path / "best"
    export.export_best(
        wrapped, export.fixed_image_spec(8, 8, 1), raw[:8], best, labels=["a", "b"], card={}
    )
    saved = best / "saved_model"
    want = wrapped.predict(x[:5] / 255.0, verbose=0)
    want = np.exp(want) / np.exp(want).sum(axis=1, keepdims=True)  # the export's softmax
    np.testing.assert_allclose(_serve(saved, raw[:5]), want, atol=1e-5)
    info = export.export_tflite(saved, tmp_path / "m.tflite", check_images=raw[48:])
    assert not info["select_tf_ops"] and info["agreement"] == 1.0
    if importlib.util.find_spec("tf2onnx") and importlib.util.find_spec("onnxruntime"):
        info = export.export_onnx(saved, tmp_path / "m.onnx", check_images=raw[:32])
        assert info["agreement"] == 1.0
