"""TensorFlow Lite export with a fixed input shape, verified against the SavedModel.

The SavedModel's `serve` accepts any rank, which TFLite cannot allocate; the converter gets the
`serve_fixed` endpoint (or `serve` traced at one shape) with a batch of 1, so the phone gets
exactly `uint8 [1,H,W,C]` → float32 probabilities, preprocessing inside. int8 is calibrated on
training images through `representative_dataset`; the raw uint8 input stays the input.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from automl_app.errors import AutomlError, UsageError
from automl_app.export import check
from automl_app.export.saved_model import FIXED_ENDPOINT
from automl_app.tf_env import quiet_native_stderr, tf

QUANTIZE = ("none", "float16", "int8")


def export_tflite(
    saved_model_dir: str | Path,
    out_path: str | Path,
    *,
    check_images: np.ndarray,
    quantize: str = "none",
    calibration_images: np.ndarray | None = None,
    input_shape: tuple[int, ...] | None = None,
    max_prob_diff: float | None = None,
    min_agreement: float | None = None,
    calibration_steps: int = 100,
) -> dict[str, Any]:
    """Write `out_path` (.tflite) only if its outputs agree with the SavedModel on check_images.

    input_shape: one example's shape (the interpreter's input is [1, *input_shape]); default: the
    export's `serve_fixed` shape, else check_images.shape[1:]. Thresholds default by quantization
    (check.DEFAULT_TOLERANCE). A disagreement raises AutomlError and writes nothing.
    Returns path, bytes, quantize, input_shape, agreement, near_ties, max_prob_diff, examples.
    """
    if quantize not in QUANTIZE:
        raise UsageError(
            f"`quantize` must be one of {', '.join(QUANTIZE)}. Received: quantize={quantize!r}"
        )
    diff_allowed, agreement_needed = check.tolerance(quantize, max_prob_diff, min_agreement)
    t = tf()
    loaded, endpoint, dtype, shape = check.load_endpoint(saved_model_dir, input_shape)
    if shape is None:
        shape = tuple(np.asarray(check_images).shape[1:])
    inputs = check.as_inputs(check_images, shape, dtype, "check_images")
    calibration = None
    if quantize == "int8":
        if calibration_images is None:
            raise UsageError("quantize='int8' needs calibration_images (training images)")
        calibration = check.as_inputs(calibration_images, shape, dtype, "calibration_images")
        calibration = calibration[: max(1, calibration_steps)]
    expected = check.reference(loaded, inputs)

    fn = getattr(loaded, endpoint)
    concrete = t.function(lambda images: fn(images)).get_concrete_function(
        t.TensorSpec([1, *shape], dtype, name="images")
    )
    where = f"{saved_model_dir} {endpoint}"
    content, select_ops = _convert(concrete, loaded, quantize, calibration, where)

    def verify(tmp: Path) -> dict[str, Any]:
        got = _run_interpreter(tmp, inputs, select_ops)
        stats, problem = check.compare(
            expected, got, max_prob_diff=diff_allowed, min_agreement=agreement_needed
        )
        if problem:
            raise check.refuse(f"the {quantize} TFLite model", problem, out_path)
        return stats

    info = check.write_checked(out_path, lambda tmp: tmp.write_bytes(content), verify)
    return {
        "path": info["path"],
        "bytes": info["bytes"],
        "format": "tflite",
        "quantize": quantize,
        "input_shape": [1, *shape],
        "input_dtype": dtype.name,
        "endpoint": endpoint,
        "select_tf_ops": select_ops,
        "agreement": info["agreement"],
        "near_ties": info["near_ties"],
        "max_prob_diff": info["max_prob_diff"],
        "examples": info["examples"],
        "thresholds": {"max_prob_diff": diff_allowed, "min_agreement": agreement_needed},
    }


def _converter(concrete, loaded, quantize: str, calibration: np.ndarray | None):
    t = tf()
    conv = t.lite.TFLiteConverter.from_concrete_functions([concrete], loaded)
    if quantize == "float16":
        conv.optimizations = [t.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [t.float16]
    elif quantize == "int8":
        conv.optimizations = [t.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([x[None]] for x in calibration)
    return conv


def _convert(concrete, loaded, quantize: str, calibration, where: str) -> tuple[bytes, bool]:
    """TFLite builtin ops only; else TF Select ops (the interpreter then needs the Flex library).

    An export without `serve_fixed` (made before it existed) resizes every input with an
    antialiased resize, an op TFLite has neither as builtin nor as Select op: say to re-export.
    """
    t = tf()
    with quiet_native_stderr():
        try:
            return _converter(concrete, loaded, quantize, calibration).convert(), False
        except Exception:  # ConverterError: an op TFLite has no builtin for
            conv = _converter(concrete, loaded, quantize, calibration)
            conv.target_spec.supported_ops = [
                t.lite.OpsSet.TFLITE_BUILTINS,
                t.lite.OpsSet.SELECT_TF_OPS,
            ]
            try:
                return conv.convert(), True
            except Exception as error:
                ops = sorted(set(re.findall(r"'tf\.(\w+)' op is neither", str(error))))
                hint = (
                    f"; re-export the run to add the fixed-shape endpoint {FIXED_ENDPOINT}"
                    if where.endswith(" serve") else ""
                )  # fmt: skip
                raise AutomlError(
                    f"TFLite cannot convert {where}: "
                    + (f"ops TFLite lacks: {', '.join(ops)}" if ops else type(error).__name__)
                    + hint
                ) from error


def _interpreter(path: Path, select_ops: bool):
    """LiteRT's interpreter when installed (tf.lite.Interpreter is deprecated), else TF's."""
    if not select_ops:  # LiteRT's pip wheel has no TF Select (Flex) ops
        try:
            from ai_edge_litert.interpreter import Interpreter

            return Interpreter(model_path=str(path))
        except ImportError:
            pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation notice, every time
        return tf().lite.Interpreter(model_path=str(path))


def _run_interpreter(path: Path, inputs: np.ndarray, select_ops: bool) -> np.ndarray:
    """The .tflite file's outputs, one example at a time (its batch is 1)."""
    with quiet_native_stderr():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
        interp = _interpreter(path, select_ops)
        interp.allocate_tensors()
    src, dst = interp.get_input_details()[0], interp.get_output_details()[0]
    scale, zero = dst.get("quantization", (0.0, 0))
    outs = []
    for x in inputs:
        interp.set_tensor(src["index"], x[None].astype(src["dtype"], copy=False))
        interp.invoke()
        y = interp.get_tensor(dst["index"])[0]
        if np.issubdtype(y.dtype, np.integer) and scale:  # a quantized output
            y = (y.astype(np.float32) - zero) * scale
        outs.append(np.asarray(y, dtype=np.float32))
    return np.stack(outs)
