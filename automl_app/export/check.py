"""Compare a converted model (TFLite, ONNX) with the SavedModel it came from, on the same inputs.

Two numbers a user can judge: top-1 agreement and the largest probability difference. A flip
between two classes whose SavedModel probabilities are within the allowed difference is a near
tie that rounding may break either way; it is counted and reported, but not held against the
conversion.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from automl_app.errors import AutomlError, UsageError

# (largest probability difference, minimum top-1 agreement) by quantization.
DEFAULT_TOLERANCE: dict[str, tuple[float, float]] = {
    "none": (1e-3, 0.99),
    "float16": (1e-2, 0.98),
    "int8": (0.1, 0.95),
}


def tolerance(
    quantize: str, max_prob_diff: float | None, min_agreement: float | None
) -> tuple[float, float]:
    """The thresholds to apply: the caller's, else the default for this quantization."""
    default_diff, default_agreement = DEFAULT_TOLERANCE[quantize]
    diff = default_diff if max_prob_diff is None else float(max_prob_diff)
    agreement = default_agreement if min_agreement is None else float(min_agreement)
    if diff < 0 or not 0 <= agreement <= 1:
        raise UsageError(
            "max_prob_diff must be >= 0 and min_agreement within [0, 1]. "
            f"Received: max_prob_diff={max_prob_diff!r}, min_agreement={min_agreement!r}"
        )
    return diff, agreement


def compare(
    reference: np.ndarray, got: np.ndarray, *, max_prob_diff: float, min_agreement: float
) -> tuple[dict[str, Any], str | None]:
    """Agreement numbers, and a one-line reason when they fall outside the thresholds."""
    reference = np.asarray(reference, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64).reshape(reference.shape)
    n = len(reference)
    diff = float(np.max(np.abs(got - reference))) if reference.size else 0.0
    stats: dict[str, Any] = {"examples": n, "max_prob_diff": diff}
    problems = []
    if reference.ndim == 2 and reference.shape[1] > 1 and n:
        ref_top, got_top = reference.argmax(axis=1), got.argmax(axis=1)
        flips = np.flatnonzero(ref_top != got_top)
        margin = reference[flips, ref_top[flips]] - reference[flips, got_top[flips]]
        near_ties = int(np.sum(margin <= max_prob_diff))
        stats["agreement"] = 1.0 - len(flips) / n
        stats["near_ties"] = near_ties
        kept = 1.0 - (len(flips) - near_ties) / n
        if kept < min_agreement:
            problems.append(
                f"top-1 agreement {stats['agreement']:.4f} ({near_ties} near ties excused: "
                f"{kept:.4f}) < {min_agreement} required"
            )
    else:  # regression or a single output: only the values can be compared
        stats["agreement"] = None
        stats["near_ties"] = 0
    if diff > max_prob_diff:
        problems.append(f"largest probability difference {diff:.4g} > {max_prob_diff} allowed")
    return stats, ("; ".join(problems) or None)


def write_checked(
    out_path: str | Path, write: Callable[[Path], None], verify: Callable[[Path], dict]
) -> dict[str, Any]:
    """write(tmp) then verify(tmp) then os.replace: no partial or unverified file at out_path.

    `verify` raises to refuse the file; a previous file at out_path is left as it was.
    """
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp{out.suffix}")
    try:
        write(tmp)
        result = verify(tmp)
        size = tmp.stat().st_size
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {"path": str(out), "bytes": size, **result}


def refuse(what: str, reason: str, out_path: str | Path) -> AutomlError:
    """The one-line error a failed check raises."""
    return AutomlError(f"{what} disagrees with the SavedModel: {reason}; not written to {out_path}")


def load_endpoint(saved_model_dir: str | Path, input_shape: tuple[int, ...] | None):
    """(loaded SavedModel, endpoint name, input dtype, one example's fixed shape).

    `serve_fixed` when the export has it and no other shape is asked for; otherwise `serve`, with
    `input_shape` (or None, for the caller to take from its check images).
    """
    from automl_app.errors import DataError
    from automl_app.tf_env import tf

    t = tf()
    path = Path(saved_model_dir)
    if not (path / "saved_model.pb").is_file():
        raise DataError(f"no SavedModel at {path} (saved_model.pb missing); export the run first")
    loaded = t.saved_model.load(str(path))
    if not hasattr(loaded, "serve"):
        raise DataError(f"the SavedModel at {path} has no `serve` endpoint")
    name = "serve"
    fixed = getattr(loaded, "serve_fixed", None)
    if fixed is not None:
        spec = fixed.input_signature[0]
        shape = tuple(int(d) for d in spec.shape[1:])
        if input_shape is None or tuple(input_shape) == shape:
            return loaded, "serve_fixed", spec.dtype, shape
    spec = loaded.serve.input_signature[0]
    return loaded, name, spec.dtype, None if input_shape is None else tuple(input_shape)


def as_inputs(images: Any, shape: tuple[int, ...], dtype: Any, what: str) -> np.ndarray:
    """`images` as [N, *shape] of the endpoint's dtype, or a UsageError naming the mismatch."""
    arr = np.asarray(images)
    per = int(np.prod(shape))
    if arr.ndim < 1 or len(arr) == 0 or arr.size != len(arr) * per:
        raise UsageError(
            f"{what} must be a non-empty batch of inputs of shape {list(shape)}. "
            f"Received: an array of shape {list(arr.shape)}"
        )
    return arr.reshape((len(arr), *shape)).astype(dtype.as_numpy_dtype, copy=False)


def reference(loaded: Any, inputs: np.ndarray, batch: int = 256) -> np.ndarray:
    """The SavedModel's `serve` outputs, in batches."""
    from automl_app.tf_env import tf

    t = tf()
    parts = [np.asarray(loaded.serve(t.constant(inputs[i : i + batch])))
             for i in range(0, len(inputs), batch)]  # fmt: skip
    return np.concatenate(parts)
