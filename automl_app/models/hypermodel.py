"""KerasTuner HyperModels: one built from a YAML space, and an adapter for the user's own.

Data arrives once per search as unbatched tf.data datasets of raw uint8 images (decoded and cached
once); fit() batches them per trial with the trial's `batch_size`, scales to [0,1] on the batch and
prefetches, so no trial decodes data again. fit() also applies the trial's learning-rate schedule
(`lr_schedule: cosine` decays to 0 over the epochs this fit() runs, so a refit for more epochs
gets the same schedule stretched) and asks the search's `trial_guard`, when one is set, how many
epochs the time left allows.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt

from automl_app.errors import UsageError
from automl_app.models import KNOWN
from automl_app.models.optimizers import make_optimizer
from automl_app.spaces import Space

VAL_BATCH = 1024
SCHEDULES = ("constant", "cosine")


def _builder(name: str):
    from automl_app.models import cnn, fcn

    return {"fcn": fcn.build, "cnn": cnn.build}[name]


PREFETCH_BATCHES = 2  # without the autotuner (see batches): enough to hide a batch's preparation


def batches(
    ds,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int | None,
    scale: float = 255.0,
    shift: float = 0.0,
    flip: bool = False,
):
    """Batch a cached (uint8 image, label) dataset, scale on the batch, prefetch.

    `shift` (a fraction of the image size) and `flip` augment each training image: zero-padding
    then a random crop back to size (a random translation), and a random left-right flip. Done
    here per example on uint8 data, they cost a fraction of Keras's RandomTranslation layer (an
    interpolating projective transform: about 2× the default CNN's epoch on this CPU).

    Without tf.data's autotuner: it runs a model thread per iterator, and destroying an iterator
    joins that thread. In a 10-minute search here one join took 15.5 s (py-spy: the main thread
    in ~RootDataset::Iterator waiting on its thread, from a garbage collection inside promote);
    the collection before the final refit took 18.9-48 s in four runs: stalls at random
    points of a budgeted run. These pipelines read cached arrays and do little per batch, so
    fixed parallelism (one call per core) and a two-batch prefetch serve them.
    """
    import os

    from automl_app.tf_env import tf

    t = tf()
    calls = max(os.cpu_count() or 1, 1)
    if shuffle:
        n = int(ds.cardinality())
        ds = ds.shuffle(max(n, 1), seed=seed, reshuffle_each_iteration=True)
    if shift > 0 or flip:
        ds = ds.map(_augmenter(shift, flip, seed), num_parallel_calls=calls)
    ds = ds.batch(int(batch_size))
    ds = ds.map(lambda x, y: (t.cast(x, t.float32) / scale, y), num_parallel_calls=calls)
    options = t.data.Options()
    options.autotune.enabled = False
    return ds.prefetch(PREFETCH_BATCHES).with_options(options)


def _augmenter(shift: float, flip: bool, seed: int | None):
    """(image, label) -> (randomly shifted and/or flipped image, label), for Dataset.map.

    The transforms are data/stages' (the one augmentation implementation), in this order.
    """
    from automl_app.data import stages

    def augment(x, y):
        if shift > 0:
            x = stages.shift(x, shift, seed=seed)
        if flip:
            x = stages.flip(x, seed=seed)
        return x, y

    return augment


def make_loss(label_smoothing: float = 0.0) -> Any:
    """Cross-entropy on integer labels, with label smoothing when asked."""
    if not label_smoothing:
        return "sparse_categorical_crossentropy"
    return SparseSmoothedCrossentropy(float(label_smoothing))


@keras.saving.register_keras_serializable(package="automl")
class SparseSmoothedCrossentropy(keras.losses.Loss):
    """Categorical cross-entropy with label smoothing, taking integer labels.

    Keras's SparseCategoricalCrossentropy has no label smoothing; the search's data and every
    command reading a run keep integer labels, so the one-hot happens here.
    """

    def __init__(self, label_smoothing: float = 0.1, name: str = "smoothed_crossentropy", **kw):
        super().__init__(name=name, **kw)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        from keras import ops

        k = ops.shape(y_pred)[-1]
        labels = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), k)
        return keras.losses.categorical_crossentropy(
            labels, y_pred, label_smoothing=self.label_smoothing
        )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def portable(model: Any) -> Any:
    """The model recompiled with stock Keras objects only (plain sparse cross-entropy, no
    schedule, no AUC/F1 wrappers), so `model.keras` loads anywhere without this package."""
    smoothed = isinstance(getattr(model, "loss", None), SparseSmoothedCrossentropy)
    if smoothed or getattr(model, "_automl_extra_metrics", False):
        loss = "sparse_categorical_crossentropy" if smoothed else model.loss
        model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
        model._automl_extra_metrics = False
    return model


def apply_schedule(model: Any, name: str, total_steps: int) -> None:
    """Give the compiled model's optimizer the named learning-rate schedule over `total_steps`."""
    if name not in SCHEDULES:
        raise ValueError(
            f"`lr_schedule` must be one of {', '.join(SCHEDULES)}. Received: lr_schedule={name!r}"
        )
    opt = getattr(model, "optimizer", None)
    if name == "constant" or opt is None:
        return
    lr = opt.learning_rate
    base = float(lr.initial_learning_rate if hasattr(lr, "initial_learning_rate") else lr)
    opt.learning_rate = keras.optimizers.schedules.CosineDecay(base, max(1, int(total_steps)))


def _steps(n: int, batch_size: int) -> int:
    return max(1, -(-int(n) // int(batch_size)))


def _guarded_epochs(guard: Any, model, hp, n_train: int, n_val: int, kwargs: dict) -> None:
    """Let the search's trial guard shrink (or refuse) this fit; add its timing callback."""
    if guard is None:
        return
    epochs = int(kwargs.get("epochs", 1))
    start = int(kwargs.get("initial_epoch", 0))
    kwargs["epochs"] = start + guard.plan(model, hp.values, n_train, n_val, epochs - start)
    kwargs["callbacks"] = [*list(kwargs.get("callbacks") or []), guard.callback(model)]


def _stopping_and_weights(hypermodel: Any, kwargs: dict, has_val: bool) -> None:
    """The search's --early-stopping (a fresh EarlyStopping on the objective, best weights
    restored; only where there is a validation split to watch, so a refit on all training data
    runs its planned steps) and --class-weight (fit's class_weight) for this fit."""
    stopping = getattr(hypermodel, "early_stopping", None)
    if stopping and (has_val or not str(stopping["monitor"]).startswith("val_")):
        callback = keras.callbacks.EarlyStopping(
            monitor=stopping["monitor"],
            mode=stopping["mode"],
            patience=int(stopping["patience"]),
            restore_best_weights=True,
        )
        kwargs["callbacks"] = [*list(kwargs.get("callbacks") or []), callback]
    weights = getattr(hypermodel, "class_weight", None)
    if weights and "class_weight" not in kwargs:
        kwargs["class_weight"] = dict(weights)


class SpaceHyperModel(kt.HyperModel):
    """Builds a models/<name>.py network from a validated Space; fit() reads batch_size.

    `trial_guard` (set by the search, duck-typed: `plan(model, values, n_train, n_val, epochs)`
    → epochs and `callback(model)`) decides how many epochs fit the time left. The search also
    sets `metrics_factory` (a no-argument callable → the compile metrics its objective needs,
    training/metrics.py), `early_stopping` ({monitor, mode, patience}) and `class_weight`
    ({class: weight}); None keeps accuracy only, no stopping, unweighted.
    """

    def __init__(
        self, space: Space, input_shape: tuple[int, ...], num_classes: int, seed: int | None = None
    ):
        super().__init__(name=space.model)
        self.space = space
        self.input_shape = tuple(input_shape)
        self.num_classes = int(num_classes)
        self.seed = seed
        self.trial_guard: Any = None
        self.metrics_factory: Any = None
        self.early_stopping: dict[str, Any] | None = None
        self.class_weight: dict[int, float] | None = None

    def values(self, hp) -> dict[str, Any]:
        """The model family's defaults overlaid with this trial's active values."""
        return {**KNOWN[self.space.model], **self.space.declare(hp)}

    def build(self, hp):
        v = self.values(hp)
        model = _builder(self.space.model)(v, self.input_shape, self.num_classes)
        metrics = self.metrics_factory() if self.metrics_factory else ["accuracy"]
        model.compile(
            optimizer=make_optimizer(v["optimizer"], v["learning_rate"], v.get("momentum", 0.0)),
            loss=make_loss(v.get("label_smoothing", 0.0)),
            metrics=metrics,
        )
        model._automl_extra_metrics = metrics != ["accuracy"]
        return model

    def fit(self, hp, model, x, validation_data=None, **kwargs):
        defaults = KNOWN[self.space.model]
        bs = int(hp.values.get("batch_size", defaults["batch_size"]))
        n_train = int(x.cardinality())
        n_val = int(validation_data.cardinality()) if validation_data is not None else 0
        _guarded_epochs(self.trial_guard, model, hp, n_train, n_val, kwargs)
        _stopping_and_weights(self, kwargs, validation_data is not None)
        runs = int(kwargs.get("epochs", 1)) - int(kwargs.get("initial_epoch", 0))
        per_epoch = kwargs.get("steps_per_epoch") or _steps(n_train, bs)  # partial epochs repeat
        schedule = hp.values.get("lr_schedule", defaults["lr_schedule"])
        if not any(getattr(c, "owns_learning_rate", False) for c in kwargs.get("callbacks") or []):
            apply_schedule(model, schedule, int(per_epoch) * max(runs, 1))  # else: time decides
        shift = float(hp.values.get("augment_shift") or 0.0)
        flip = bool(hp.values.get("augment_flip"))
        train = batches(x, bs, shuffle=True, seed=self.seed, shift=shift, flip=flip)
        if kwargs.get("steps_per_epoch"):
            train = train.repeat()
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
        self.trial_guard: Any = None
        self.early_stopping: dict[str, Any] | None = None  # as SpaceHyperModel's
        self.class_weight: dict[int, float] | None = None

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
        n_val = len(validation_data[0]) if validation_data is not None else 0
        _guarded_epochs(self.trial_guard, model, hp, len(x), n_val, kwargs)
        _stopping_and_weights(self, kwargs, validation_data is not None)
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


def hypermodel_for(
    space: Space | None,
    image_shape: tuple[int, ...],
    num_classes: int,
    *,
    user: str | None = None,
    seed: int | None = None,
) -> Any:
    """The one space → hypermodel step: the search builds its trials with it and `select` /
    `reproduce` rebuild them with it, so a rebuilt trial is the trial that ran."""
    if space is None:
        if not user:
            raise UsageError("a search needs a --space or a --hypermodel")
        return UserHyperModel(load_user_hypermodel(user), num_classes)
    return SpaceHyperModel(space, tuple(image_shape), num_classes, seed=seed)


def servable(model: Any) -> Any:
    """`portable(model)` with a fresh optimizer: a model trained here (a retrained trial) carries
    optimizer slots that a SavedModel cannot track once its schedule replaced them
    ("Unable to save the object ListWrapper([<Variable path=adam/iteration …"); serving needs
    the weights only."""
    loss = getattr(model, "loss", None)
    if loss is None or isinstance(loss, SparseSmoothedCrossentropy):
        loss = "sparse_categorical_crossentropy"
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    return model
