"""ONNX export through Keras's own exporter (`model.export(format="onnx")`, tf2onnx inside).

The SavedModel's fixed-shape endpoint is wrapped in `keras.layers.TFSMLayer`, so the ONNX file
holds the same preprocessing and softmax as `serve`: raw uint8 [N,H,W,C] → float32
probabilities, any batch size. Verified with onnxruntime against the SavedModel before the
file is moved into place. Needs the optional packages tf2onnx, onnx and onnxruntime.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from automl_app.errors import UsageError
from automl_app.export import check
from automl_app.tf_env import quiet_native_stderr, tf

NEEDS = ("tf2onnx", "onnx", "onnxruntime")


def onnx_available() -> bool:
    """Whether the optional ONNX packages are installed."""
    return all(importlib.util.find_spec(name) is not None for name in NEEDS)


def export_onnx(
    saved_model_dir: str | Path,
    out_path: str | Path,
    *,
    check_images: np.ndarray,
    input_shape: tuple[int, ...] | None = None,
    max_prob_diff: float | None = None,
    min_agreement: float | None = None,
    opset: int | None = None,
) -> dict[str, Any]:
    """Write `out_path` (.onnx) only if onnxruntime's outputs agree with the SavedModel.

    input_shape: one example's shape (the ONNX input is [N, *input_shape]); default: the
    export's `serve_fixed` shape, else check_images.shape[1:]. Thresholds as for an
    unquantized TFLite file. Returns path, bytes, input_shape, agreement, max_prob_diff, ...
    """
    missing = [name for name in NEEDS if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(
            f"ONNX export needs the packages {', '.join(NEEDS)}; missing: {', '.join(missing)} "
            f"(pip install 'automl-app[onnx]')"
        )
    import keras

    t = tf()
    diff_allowed, agreement_needed = check.tolerance("none", max_prob_diff, min_agreement)
    loaded, endpoint, dtype, shape = check.load_endpoint(saved_model_dir, input_shape)
    if shape is None:
        shape = tuple(np.asarray(check_images).shape[1:])
    inputs = check.as_inputs(check_images, shape, dtype, "check_images")
    expected = check.reference(loaded, inputs)

    layer = keras.layers.TFSMLayer(str(saved_model_dir), call_endpoint=endpoint)
    image = keras.Input(shape, dtype=dtype.name, name="images")
    wrapper = keras.Model(image, layer(image))
    wrapper(inputs[:1])  # Keras exports only a model that has been called
    signature = [t.TensorSpec([None, *shape], dtype, name="images")]

    def write(tmp: Path) -> None:
        with quiet_native_stderr():
            wrapper.export(
                str(tmp), format="onnx", verbose=False, input_signature=signature,
                opset_version=opset,
            )  # fmt: skip

    def verify(tmp: Path) -> dict[str, Any]:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        got = np.concatenate(
            [session.run(None, {name: inputs[i : i + 256]})[0] for i in range(0, len(inputs), 256)]
        )
        stats, problem = check.compare(
            expected, got, max_prob_diff=diff_allowed, min_agreement=agreement_needed
        )
        if problem:
            raise check.refuse("the ONNX model", problem, out_path)
        return stats

    info = check.write_checked(out_path, write, verify)
    return {
        "path": info["path"],
        "bytes": info["bytes"],
        "format": "onnx",
        "quantize": "none",
        "input_shape": [None, *shape],
        "input_dtype": dtype.name,
        "endpoint": endpoint,
        "agreement": info["agreement"],
        "near_ties": info["near_ties"],
        "max_prob_diff": info["max_prob_diff"],
        "examples": info["examples"],
        "thresholds": {"max_prob_diff": diff_allowed, "min_agreement": agreement_needed},
    }
