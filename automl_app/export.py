"""SavedModel export with preprocessing inside, checked by reloading before it is moved into place.

The `serve` endpoint takes data exactly as users hold it (raw uint8 images) and returns float32
probabilities. A model whose last layer gives logits is wrapped in a softmax, so the export never
returns logits by accident. Callers describe the raw input with a ServingSpec.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from automl_app import runs
from automl_app.errors import AutomlError
from automl_app.tf_env import tf


@dataclass(frozen=True)
class ServingSpec:
    """What `serve` accepts and how it becomes the model's input.

    shape/dtype: the TensorSpec of the raw input (None entries are free; shape=None: any rank).
    preprocess: a TensorFlow function raw -> model input (scaling, reshape, resize...).
    task: 'classification' (probabilities out) or 'regression' (values out).
    """

    shape: tuple[int | None, ...] | None
    dtype: str
    preprocess: Callable[[Any], Any]
    description: str
    task: str = "classification"
    extra: dict[str, Any] = field(default_factory=dict)


def fixed_image_spec(height: int, width: int, channels: int, scale: str = "0_1") -> ServingSpec:
    """Raw uint8 images of one size, as [N,H,W] or [N,H,W,C]; scaled to [0,1] or [-1,1] inside."""
    t = tf()

    def preprocess(x):
        x = t.reshape(t.cast(x, t.float32), [-1, height, width, channels])
        return _scale(x, scale)

    return ServingSpec(
        shape=None,
        dtype="uint8",
        preprocess=preprocess,
        description=(
            f"uint8 images [N,{height},{width}] or [N,{height},{width},{channels}] "
            f"-> float32 probabilities; scaling {scale.replace('_', '..')} inside"
        ),
        extra={"height": height, "width": width, "channels": channels, "scale": scale},
    )


def _scale(x, scale: str):
    if scale == "0_1":
        return x / 255.0
    if scale == "-1_1":
        return x / 127.5 - 1.0
    raise ValueError(f"scale must be one of 0_1, -1_1. Received: scale={scale!r}")


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
    same preprocessed inputs; a mismatch raises and leaves any previous export untouched.
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

    signature = t.TensorSpec(shape=spec.shape, dtype=getattr(t, spec.dtype), name="inputs")
    archive.add_endpoint(name="serve", fn=serve, input_signature=[signature])

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
        runs.atomic_replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {
        "path": str(out_dir),
        "endpoint": "serve",
        "input": spec.description,
        "softmax_added": softmax_added,
        "checked_examples": int(len(sample_raw)),
        "max_abs_diff": float(np.max(np.abs(got - expected))) if len(got) else 0.0,
    }


def export_best(
    model,
    spec: ServingSpec,
    sample_raw: np.ndarray,
    best_dir: str | Path,
    *,
    labels: list[str] | None,
    card: dict[str, Any],
) -> dict[str, Any]:
    """Write best/: saved_model/ (checked), model.keras, labels.json and model_card.json."""
    best_dir = Path(best_dir)
    best_dir.mkdir(parents=True, exist_ok=True)
    info = export_saved_model(model, spec, sample_raw, best_dir / "saved_model")
    tmp_keras = best_dir / ".model.tmp.keras"
    model.save(tmp_keras)
    tmp_keras.replace(best_dir / "model.keras")
    if labels is not None:
        runs.atomic_write_json(best_dir / "labels.json", list(labels))
    card = {**card, "serving": info, "preprocessing": spec.extra}
    runs.atomic_write_json(best_dir / "model_card.json", card)
    return info


def read_labels(best_dir: str | Path) -> list[str] | None:
    """labels.json of an export, if it has one."""
    path = Path(best_dir) / "labels.json"
    return json.loads(path.read_text()) if path.is_file() else None
