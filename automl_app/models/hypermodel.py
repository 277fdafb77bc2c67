"""KerasTuner HyperModels: one built from a YAML space, and an adapter for the user's own.

Data arrives once per search as unbatched tf.data datasets of raw uint8 images (decoded and cached
once); fit() batches them per trial with the trial's `batch_size`, scales to [0,1] on the batch and
prefetches, so no trial decodes data again.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras_tuner as kt

from automl_app.errors import UsageError
from automl_app.models import KNOWN
from automl_app.models.optimizers import make_optimizer
from automl_app.spaces import Space

VAL_BATCH = 1024


def _builder(name: str):
    from automl_app.models import cnn, fcn

    return {"fcn": fcn.build, "cnn": cnn.build}[name]


def batches(ds, batch_size: int, *, shuffle: bool, seed: int | None, scale: float = 255.0):
    """Batch a cached (uint8 image, label) dataset, scale on the batch, prefetch."""
    from automl_app.tf_env import tf

    t = tf()
    if shuffle:
        n = int(ds.cardinality())
        ds = ds.shuffle(max(n, 1), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(int(batch_size))
    ds = ds.map(lambda x, y: (t.cast(x, t.float32) / scale, y), num_parallel_calls=t.data.AUTOTUNE)
    return ds.prefetch(t.data.AUTOTUNE)


class SpaceHyperModel(kt.HyperModel):
    """Builds a models/<name>.py network from a validated Space; fit() reads batch_size."""

    def __init__(
        self, space: Space, input_shape: tuple[int, ...], num_classes: int, seed: int | None = None
    ):
        super().__init__(name=space.model)
        self.space = space
        self.input_shape = tuple(input_shape)
        self.num_classes = int(num_classes)
        self.seed = seed

    def values(self, hp) -> dict[str, Any]:
        """The model family's defaults overlaid with this trial's active values."""
        return {**KNOWN[self.space.model], **self.space.declare(hp)}

    def build(self, hp):
        v = self.values(hp)
        model = _builder(self.space.model)(v, self.input_shape, self.num_classes)
        model.compile(
            optimizer=make_optimizer(v["optimizer"], v["learning_rate"], v.get("momentum", 0.0)),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    def fit(self, hp, model, x, validation_data=None, **kwargs):
        bs = int(hp.values.get("batch_size", KNOWN[self.space.model]["batch_size"]))
        train = batches(x, bs, shuffle=True, seed=self.seed)
        val = None
        if validation_data is not None:
            val = batches(validation_data, VAL_BATCH, shuffle=False, seed=None)
        return model.fit(train, validation_data=val, **kwargs)


class UserHyperModel(kt.HyperModel):
    """Wraps a user's `build(hp)` function or HyperModel exactly as keras.io's guide writes them.

    They receive numpy arrays (x scaled to [0,1], y as integer labels, or one-hot when the compiled
    loss is categorical cross-entropy, as in the guide).
    """

    def __init__(self, inner: Any, num_classes: int):
        super().__init__(name=getattr(inner, "name", None) or "user")
        self.inner = inner
        self.num_classes = num_classes

    def build(self, hp):
        if isinstance(self.inner, kt.HyperModel):
            return self.inner.build(hp)
        return self.inner(hp)

    def _maybe_one_hot(self, model, y):
        import numpy as np

        loss = getattr(model, "loss", None)
        name = loss if isinstance(loss, str) else type(loss).__name__
        if name and "categorical" in str(name).lower() and "sparse" not in str(name).lower():
            return np.eye(self.num_classes, dtype="float32")[np.asarray(y).astype(int)]
        return y

    def fit(self, hp, model, x, y=None, validation_data=None, **kwargs):
        y = self._maybe_one_hot(model, y)
        if validation_data is not None:
            vx, vy = validation_data
            validation_data = (vx, self._maybe_one_hot(model, vy))
        if isinstance(self.inner, kt.HyperModel):
            return self.inner.fit(hp, model, x, y, validation_data=validation_data, **kwargs)
        if "batch_size" in hp.values and "batch_size" not in kwargs:
            kwargs["batch_size"] = int(hp.values["batch_size"])
        return model.fit(x, y, validation_data=validation_data, **kwargs)


def load_user_hypermodel(ref: str) -> Any:
    """`path/to/file.py:build` → the build function or HyperModel (class or instance) it names."""
    path_str, sep, attr = ref.rpartition(":")
    if not sep or not path_str or not attr:
        raise UsageError(f"--hypermodel must look like path/to/file.py:build. Received: {ref!r}")
    path = Path(path_str).expanduser()
    if not path.is_file():
        raise UsageError(f"--hypermodel file not found: {str(path)!r}")
    spec = importlib.util.spec_from_file_location(f"automl_user_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    if not hasattr(module, attr):
        names = [n for n in dir(module) if not n.startswith("_")]
        raise UsageError(
            f"--hypermodel {ref!r}: {path.name} defines no {attr!r} "
            f"(it defines {', '.join(names[:12])})"
        )
    obj = getattr(module, attr)
    if isinstance(obj, type) and issubclass(obj, kt.HyperModel):
        obj = obj()
    if not (callable(obj) or isinstance(obj, kt.HyperModel)):
        raise UsageError(f"--hypermodel {ref!r} must be a build(hp) function or a HyperModel")
    return obj


def describe(values: Mapping[str, Any]) -> str:
    """Compact `name=value` text for one trial's hyperparameters."""
    parts = []
    for k, v in values.items():
        if isinstance(v, float):
            v = f"{v:.3g}"
        parts.append(f"{k}={v}")
    return " ".join(parts)
