"""SavedModel export with preprocessing inside, checked by reloading before it is moved into place.

The `serve` endpoint takes data exactly as users hold it (raw uint8 images) and returns float32
probabilities. A model whose last layer gives logits is wrapped in a softmax, so the export never
returns logits by accident. When the spec names a fixed shape, a second endpoint `serve_fixed`
(the same function traced at that shape) is what tflite.py and onnx.py convert.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from automl_app import runs
from automl_app.errors import AutomlError
from automl_app.export.model_card import complete_card, write_card
from automl_app.export.specs import ServingSpec
from automl_app.tf_env import tf

FIXED_ENDPOINT = "serve_fixed"


def _probability_head(model, sample_inputs: np.ndarray, task: str) -> tuple[Callable, bool]:
    """Return fn(model_input)->output, adding a softmax when the model emits logits."""
    t = tf()
    if task != "classification":
        return (lambda x: t.cast(model(x, training=False), t.float32)), False
    out = np.asarray(model(sample_inputs, training=False), dtype=np.float64)
    is_prob = out.ndim == 2 and np.all(out >= -1e-6) and np.allclose(out.sum(axis=1), 1, atol=1e-3)
    if is_prob:
        return (lambda x: t.cast(model(x, training=False), t.float32)), False
    return (lambda x: t.nn.softmax(t.cast(model(x, training=False), t.float32))), True


def _fixed_probe(spec: ServingSpec, sample_raw: np.ndarray) -> np.ndarray:
    """Inputs of the fixed shape to check `serve_fixed` with: the sample if it fits, else noise."""
    shape = tuple(spec.fixed_shape or ())
    if sample_raw.size and sample_raw.size % int(np.prod(shape)) == 0:
        return sample_raw.reshape((-1, *shape))
    return np.random.default_rng(0).integers(0, 256, (2, *shape)).astype(spec.dtype)


def export_saved_model(
    model,
    spec: ServingSpec,
    sample_raw: np.ndarray,
    out_dir: str | Path,
    *,
    atol: float = 1e-4,
) -> dict[str, Any]:
    """Write `out_dir` as a SavedModel with a `serve` endpoint; reload and compare first.

    The comparison runs the reloaded `serve` on `sample_raw` against the in-memory model on the
    same preprocessed inputs (and `serve_fixed` against `serve`); a mismatch raises and leaves
    any previous export untouched.
    """
    import keras

    t = tf()
    out_dir = Path(out_dir)
    sample_raw = np.asarray(sample_raw)
    model_in = np.asarray(spec.preprocess(t.constant(sample_raw)))
    head, softmax_added = _probability_head(model, model_in, spec.task)
    expected = np.asarray(head(t.constant(model_in)))

    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(x):
        return head(spec.preprocess(x))

    dtype = getattr(t, spec.dtype)
    signature = t.TensorSpec(shape=spec.shape, dtype=dtype, name="inputs")
    archive.add_endpoint(name="serve", fn=serve, input_signature=[signature])
    if spec.fixed_shape is not None:
        fixed = t.TensorSpec(shape=(None, *spec.fixed_shape), dtype=dtype, name="inputs")
        archive.add_endpoint(name=FIXED_ENDPOINT, fn=serve, input_signature=[fixed])

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        archive.write_out(str(tmp), verbose=False)
        reloaded = t.saved_model.load(str(tmp))
        got = np.asarray(reloaded.serve(t.constant(sample_raw)))
        if got.shape != expected.shape or not np.allclose(got, expected, atol=atol):
            diff = float(np.max(np.abs(got - expected))) if got.shape == expected.shape else None
            raise AutomlError(
                f"exported SavedModel does not match the in-memory model (shape {got.shape} vs "
                f"{expected.shape}, max abs diff {diff}); export not written to {out_dir}"
            )
        if spec.fixed_shape is not None:
            probe = t.constant(_fixed_probe(spec, sample_raw))
            a = np.asarray(getattr(reloaded, FIXED_ENDPOINT)(probe))
            b = np.asarray(reloaded.serve(probe))
            if a.shape != b.shape or not np.allclose(a, b, atol=atol):
                raise AutomlError(
                    f"exported endpoint {FIXED_ENDPOINT} does not match serve on inputs of shape "
                    f"{tuple(probe.shape)}; export not written to {out_dir}"
                )
        runs.atomic_replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    info = {
        "path": str(out_dir),
        "endpoint": "serve",
        "input": spec.description,
        "softmax_added": softmax_added,
        "checked_examples": int(len(sample_raw)),
        "max_abs_diff": float(np.max(np.abs(got - expected))) if len(got) else 0.0,
    }
    if spec.fixed_shape is not None:
        info["fixed_endpoint"] = FIXED_ENDPOINT
        info["fixed_input_shape"] = list(spec.fixed_shape)
    return info


def export_best(
    model,
    spec: ServingSpec,
    sample_raw: np.ndarray,
    best_dir: str | Path,
    *,
    labels: list[str] | None,
    card: dict[str, Any],
) -> dict[str, Any]:
    """Write best/: saved_model/ (checked), model.keras, labels.json, model_card.json/.md."""
    best_dir = Path(best_dir)
    best_dir.mkdir(parents=True, exist_ok=True)
    info = export_saved_model(model, spec, sample_raw, best_dir / "saved_model")
    tmp_keras = best_dir / ".model.tmp.keras"
    model.save(tmp_keras)
    tmp_keras.replace(best_dir / "model.keras")
    if labels is not None:
        runs.atomic_write_json(best_dir / "labels.json", list(labels))
    card = {**card, "serving": info, "preprocessing": spec.extra}
    if labels is not None:
        card.setdefault("class_names", list(labels))
    # best/ and selected/ sit in their run directory: run.json gives the data and the command
    card = complete_card(card, info=info, spec=spec, run_dir=best_dir.parent)
    write_card(best_dir, card)
    return info


def read_labels(best_dir: str | Path) -> list[str] | None:
    """labels.json of an export, if it has one."""
    path = Path(best_dir) / "labels.json"
    return json.loads(path.read_text()) if path.is_file() else None
