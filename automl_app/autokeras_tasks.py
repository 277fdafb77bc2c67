"""AutoKeras's task APIs and IO API behind our run directory (DESIGN.md, `--engine autokeras`).

AutoKeras 3.0.0 takes numpy arrays only, starts image searches with a ResNet50 from scratch, keeps
part of its preprocessing (text tokenizer, categorical encoding, label encoding) outside the Keras
model, and exports a text model that wants token ids. This module makes it fit our contract:

    result = autokeras_tasks.search_image(x, y, class_names=names, block="auto",
                                          directory=run_dir / "tuner", max_trials=1, epochs=1)
    summary = autokeras_tasks.record(result, run_dir, x_test, y_test)   # trials.csv, report/, best/

`search_image`, `search_text`, `search_structured` and `search_multi` each return an
`AutoKerasResult`; `record` writes RUN_DIR/trials.csv, RUN_DIR/report/ and RUN_DIR/best/ (a checked
SavedModel whose `serve` takes raw inputs) and returns the fields for run.json. TensorFlow and
AutoKeras are imported inside functions only.
"""

from __future__ import annotations

import functools
import math
import re
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from automl_app import runs
from automl_app.data.tabular import COPIES, check_memory
from automl_app.errors import ConfigError, DataError, SearchError, UsageError

Say = Callable[[str], None]

TUNERS = ("greedy", "random", "bayesian", "hyperband")
BLOCKS = ("auto", "vanilla", "resnet", "xception", "efficientnet")
TASKS = ("classification", "regression")
INPUT_TYPES = ("image", "text", "structured")
EXPORT_CHECK_EXAMPLES = 64
# A token that never comes out of str.split(): StringLookup's out-of-vocabulary slot.
_OOV = "\x00automl-oov\x00"
_AK_BLOCK = {"vanilla": "vanilla", "resnet": "resnet", "xception": "xception",
             "efficientnet": "efficient"}  # fmt: skip


@dataclass
class AutoKerasResult:
    """What one AutoKeras search produced, ready for `record`."""

    kind: str  # image | text | structured | multi
    task: str  # classification | regression | multi
    automodel: Any
    model: Any  # best Keras model as AutoKeras exports it (wants preprocessed inputs)
    pipeline: Any  # AutoKeras's fitted preprocessing pipeline (outside the model)
    trials: list[dict[str, Any]]
    best: dict[str, Any]
    objective: str
    class_names: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    search_seconds: float = 0.0
    inputs: list[dict[str, Any]] = field(default_factory=list)  # one per raw input
    heads: list[dict[str, Any]] = field(default_factory=list)  # one per output
    stop: dict[str, Any] = field(default_factory=dict)  # how the search ended (tuning.budget)

    def summary(self) -> dict[str, Any]:
        """JSON-able fields for run.json."""
        done = [t for t in self.trials if t["status"] == "completed"]
        return {
            "engine": "autokeras",
            "autokeras_task": f"{self.kind}_{self.task}" if self.kind != "multi" else "auto_model",
            "trials": {"total": len(self.trials), "completed": len(done)},
            "best_trial": self.best,
            "objective": self.objective,
            "notes": list(self.notes),
            "search_seconds": round(self.search_seconds, 2),
            "inputs": self.inputs,
            "heads": self.heads,
            "stop": self.stop,
        }


# ---------------------------------------------------------------------------------------------
# validation (no TensorFlow needed)


def _check_choice(name: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise UsageError(f"{name} must be one of {', '.join(allowed)}. Received: {name}={value!r}")
    return value


def estimate_image_bytes(n: int, shape: Sequence[int], itemsize: int = 1) -> int:
    """Bytes to hold n images of `shape` (uint8 by default) the way AutoKeras copies them."""
    return int(n) * int(np.prod(shape)) * int(itemsize) * COPIES


def check_image_memory(n: int, shape: Sequence[int], what: str, itemsize: int = 1) -> None:
    """Call before materialising images as numpy: DataError with the bytes and --max-samples."""
    dims = "x".join(str(d) for d in shape)
    check_memory(estimate_image_bytes(n, shape, itemsize), f"{what} ({n} images of {dims})")


def _take(arrays: Sequence[np.ndarray], max_samples: int | None, seed: int) -> list[np.ndarray]:
    """First-axis seeded subset of several aligned arrays (max_samples applies to training)."""
    n = len(arrays[0])
    if max_samples is None or max_samples >= n:
        return list(arrays)
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(n, size=max_samples, replace=False))
    return [a[idx] for a in arrays]


def _check_classes(y: np.ndarray, class_names: Sequence[str] | None, what: str) -> list[str]:
    """Class ids must be 0..K-1 with every class in the training data (AutoKeras infers K)."""
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{what}: classification labels must be integer class ids; got {y.dtype}")
    k = len(class_names) if class_names is not None else int(y.max()) + 1
    present = set(np.unique(y).tolist())
    missing = sorted(set(range(k)) - present)
    if missing or min(present) < 0 or max(present) >= k:
        names = [class_names[i] if class_names else str(i) for i in missing]
        raise DataError(
            f"{what}: every class needs training examples for AutoKeras; no examples of "
            f"{', '.join(names) or 'ids outside 0..' + str(k - 1)}. Use more data "
            "(a larger --max-samples) or drop those classes"
        )
    return list(class_names) if class_names is not None else [str(i) for i in range(k)]


# ---------------------------------------------------------------------------------------------
# AutoKeras plumbing


def _ak():
    from automl_app import autokeras_compat

    return autokeras_compat.apply()


def has_gpu() -> bool:
    """Whether TensorFlow sees a GPU (decides the image default)."""
    from automl_app.tf_env import tf

    return bool(tf().config.list_physical_devices("GPU"))


_CLASSES: dict[str, Any] = {}


def _classes() -> dict[str, Any]:
    """Keras layers and AutoKeras subclasses, defined once after TensorFlow is imported."""
    if _CLASSES:
        return _CLASSES
    ak = _ak()
    import keras
    from autokeras.blocks import basic, preprocessing, wrapper

    from automl_app.tf_env import tf

    t = tf()

    @keras.saving.register_keras_serializable(package="automl")
    class ScratchImageBlock(wrapper.ImageBlock):
        """AutoKeras's ImageBlock, never with ImageNet weights; `order` sets the default block."""

        order = ("resnet", "xception", "vanilla", "efficient")

        def _build_block(self, hp, output_node, block_type):
            if block_type == "resnet":
                return basic.ResNetBlock(pretrained=False).build(hp, output_node)
            if block_type == "xception":
                return basic.XceptionBlock(pretrained=False).build(hp, output_node)
            if block_type == "efficient":
                return basic.EfficientNetBlock(pretrained=False).build(hp, output_node)
            return basic.ConvBlock().build(hp, output_node)

        def build(self, hp, inputs=None):
            if self.block_type is not None:
                return super().build(hp, inputs)
            # As ImageBlock.build, but the Choice lists `order` first: its default is order[0].
            node = ak_flatten(inputs)[0]
            if self.normalize is None and hp.Boolean("normalize"):
                with hp.conditional_scope("normalize", [True]):
                    node = preprocessing.Normalization().build(hp, node)
            elif self.normalize:
                node = preprocessing.Normalization().build(hp, node)
            if self.augment is None and hp.Boolean("augment"):
                with hp.conditional_scope("augment", [True]):
                    node = preprocessing.ImageAugmentation().build(hp, node)
            elif self.augment:
                node = preprocessing.ImageAugmentation().build(hp, node)
            block_type = hp.Choice("block_type", list(self.order))
            with hp.conditional_scope("block_type", [block_type]):
                return self._build_block(hp, node, block_type)

    @keras.saving.register_keras_serializable(package="automl")
    class BinaryToTwoClass(keras.layers.Layer):
        """A sigmoid head's p(class 1) [N,1] → probabilities [N,2], as every export promises."""

        def call(self, p):
            p = keras.ops.cast(p, "float32")
            return keras.ops.concatenate([1.0 - p, p], axis=-1)

    @keras.saving.register_keras_serializable(package="automl")
    class TextTokenizer(keras.layers.Layer):
        """AutoKeras's TextTokenizer (str.split, vocabulary ids from 1, 0 = unknown/padding).

        Inside the SavedModel so `serve` takes raw strings.
        """

        def __init__(self, vocabulary, max_len, **kwargs):
            super().__init__(**kwargs)
            self.vocabulary = list(vocabulary)
            self.max_len = int(max_len)
            self.lookup = keras.layers.StringLookup(
                vocabulary=self.vocabulary or ["\x00empty\x00"],
                num_oov_indices=1,
                oov_token=_OOV,
                mask_token=None,
            )

        def call(self, x):
            x = t.reshape(t.cast(x, t.string), [-1])
            tokens = t.strings.split(x)
            ids = tokens.with_flat_values(self.lookup(tokens.flat_values))
            ids = ids.to_tensor(default_value=0, shape=[None, self.max_len])
            return t.cast(ids, t.int32)

        def compute_output_shape(self, input_shape):
            return (input_shape[0], self.max_len)

        def get_config(self):
            return {**super().get_config(), "vocabulary": self.vocabulary, "max_len": self.max_len}

    @keras.saving.register_keras_serializable(package="automl")
    class CategoryEncoder(keras.layers.Layer):
        """AutoKeras's LabelEncoder for one categorical column: label i → i, unknown → len."""

        def __init__(self, labels, **kwargs):
            super().__init__(**kwargs)
            self.labels = [str(v) for v in labels]
            self.lookup = keras.layers.StringLookup(
                vocabulary=self.labels, num_oov_indices=1, oov_token=_OOV, mask_token=None
            )

        def call(self, x):
            x = t.reshape(t.strings.strip(t.cast(x, t.string)), [-1])
            idx = t.cast(self.lookup(x), t.int64)
            idx = t.where(idx == 0, t.cast(len(self.labels), t.int64), idx - 1)
            return t.reshape(t.cast(idx, t.float32), [-1, 1])

        def compute_output_shape(self, input_shape):
            return (input_shape[0], 1)

        def get_config(self):
            return {**super().get_config(), "labels": self.labels}

    @keras.saving.register_keras_serializable(package="automl")
    class NumericColumn(keras.layers.Layer):
        """A numerical column as AutoKeras reads it: float32, NaN → 0."""

        def call(self, x):
            x = t.reshape(t.cast(x, t.float32), [-1, 1])
            return t.where(t.math.is_nan(x), t.zeros_like(x), x)

        def compute_output_shape(self, input_shape):
            return (input_shape[0], 1)

    def ak_flatten(x):
        import tree

        return tree.flatten(x)

    _CLASSES.update(
        ak=ak,
        ScratchImageBlock=ScratchImageBlock,
        BinaryToTwoClass=BinaryToTwoClass,
        TextTokenizer=TextTokenizer,
        CategoryEncoder=CategoryEncoder,
        NumericColumn=NumericColumn,
    )
    return _CLASSES


def _timed(base: type) -> type:
    """A tuner class that records each trial's wall time (KerasTuner keeps none)."""

    class Timed(base):
        def on_trial_begin(self, trial):
            self._automl_t0 = time.perf_counter()
            return super().on_trial_begin(trial)

        def on_trial_end(self, trial):
            seconds = getattr(self, "_automl_seconds", {})
            seconds[trial.trial_id] = time.perf_counter() - getattr(self, "_automl_t0", 0.0)
            self._automl_seconds = seconds
            return super().on_trial_end(trial)

    Timed.__name__ = Timed.__qualname__ = f"Timed{base.__name__}"
    return Timed


def tuner_factory(name: str, *, initial_hps: list[dict] | None = None, epochs: int | None = None):
    """What AutoModel(tuner=...) accepts: an AutoKeras tuner class (timed), with our defaults."""
    _check_choice("tuner", name, TUNERS)
    from autokeras import tuners

    base = {"greedy": tuners.Greedy, "random": tuners.RandomSearch,
            "bayesian": tuners.BayesianOptimization, "hyperband": tuners.Hyperband}[name]  # fmt: skip
    cls = _timed(base)
    if name == "greedy" and initial_hps:
        return functools.partial(cls, initial_hps=initial_hps)
    if name == "hyperband":
        return functools.partial(cls, max_epochs=max(2, epochs or 100))
    return cls


def image_initial_hps(block: str, gpu: bool, head: str = "classification_head_1") -> list[dict]:
    """AutoKeras's three starting image models, made safe: no ImageNet weights, and on a CPU
    vanilla CNN first, then small-input EfficientNetB0 and ResNet (no 224x224 upscaling)."""
    from autokeras.tuners import task_specific

    out = []
    for hps in task_specific.IMAGE_CLASSIFIER:
        hps = {k: v for k, v in hps.items() if not k.endswith(("/pretrained", "/trainable"))}
        kind = hps["image_block_1/block_type"]
        if not gpu:
            hps = {k: (False if k.endswith("/imagenet_size") else v) for k, v in hps.items()}
        if kind == "efficient":
            hps["learning_rate"] = 1e-3  # AutoKeras's 2e-5 is for fine-tuning ImageNet weights
            if not gpu:
                hps["image_block_1/efficient_net_block_1/version"] = "b0"
        if head != "classification_head_1":  # other heads have other hp names
            hps = {k: v for k, v in hps.items() if not k.startswith("classification_head_1/")}
        if block != "auto":
            if _AK_BLOCK[block] != kind:
                continue
            hps.pop("image_block_1/block_type")
        out.append(hps)
    if block == "auto" and not gpu:
        order = {"vanilla": 0, "efficient": 1, "resnet": 2}
        out.sort(key=lambda h: order.get(h["image_block_1/block_type"], 9))
    return out


def _configure_image_blocks(automodel, block: str, gpu: bool) -> int:
    """Swap AutoKeras's ImageBlocks for ScratchImageBlock with the chosen block (in place).

    Done after construction so block names (image_block_1, ...) and so hp names stay AutoKeras's.
    """
    c = _classes()
    from autokeras.blocks import wrapper

    n = 0
    for blk in automodel.tuner.hypermodel.blocks:
        if isinstance(blk, wrapper.ImageBlock):
            blk.__class__ = c["ScratchImageBlock"]
            blk.block_type = None if block == "auto" else _AK_BLOCK[block]
            if block == "auto" and not gpu:
                blk.order = ("vanilla", "xception", "efficient", "resnet")
            n += 1
    return n


def image_block_note(block: str, gpu: bool) -> str | None:
    """The line printed when --block auto avoids a ResNet50-from-scratch first trial."""
    if block == "auto" and not gpu:
        return (
            "no GPU found: --block auto starts with the vanilla CNN instead of AutoKeras's "
            "ResNet50 from scratch (minutes per trial on a CPU); ImageNet weights are never used; "
            "pass --block resnet|xception|efficientnet to search one family"
        )
    return None


def _fit(automodel, x, y, validation_data, opts: SearchOptions) -> float:
    """AutoModel.fit with our defaults; returns the wall seconds.

    An explicit EarlyStopping stops AutoKeras from retraining the best model from scratch after
    the search when validation data is given (it reloads the best trial's checkpoint instead).
    """
    import keras

    keras.utils.set_random_seed(opts.seed)
    callbacks = [keras.callbacks.EarlyStopping(patience=10, min_delta=1e-4)]
    if opts.time_budget is not None:
        from automl_app.tuning import budget

        deadline = budget.Deadline.after(opts.time_budget)
        budget.attach_budget(automodel.tuner.oracle, deadline)
        callbacks.append(budget.deadline_callback(deadline))
    kwargs: dict[str, Any] = {"validation_data": validation_data}
    if validation_data is None:
        kwargs = {"validation_split": 0.2}
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        if not opts.verbose:
            warnings.simplefilter("ignore")
        automodel.fit(
            x=x,
            y=y,
            epochs=opts.epochs,
            batch_size=opts.batch_size,
            callbacks=callbacks,
            verbose=1 if opts.verbose else 0,
            **kwargs,
        )
    return time.perf_counter() - t0


def _finish(automodel, kind: str, task: str, seconds: float, **fields: Any) -> AutoKerasResult:
    """Collect the best model, pipeline and trial rows after fit()."""
    tuner = automodel.tuner
    rows = trial_rows(tuner)
    done = [r for r in rows if r["status"] == "completed"]
    if not done:
        first = next((r.get("error") for r in rows if r.get("error")), None)
        raise SearchError(
            "no AutoKeras trial completed" + (f"; first failure: {first}" if first else "")
        )
    best_trial = tuner.oracle.get_best_trials(1)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = tuner.get_best_model()
    pipeline = tuner.get_best_pipeline()
    best = {
        "trial_id": best_trial.trial_id,
        "score": None if best_trial.score is None else float(best_trial.score),
        "hyperparameters": dict(best_trial.hyperparameters.values),
    }
    objective = getattr(tuner.oracle.objective, "name", str(tuner.oracle.objective))
    from automl_app.tuning.budget import stop_summary

    stop = stop_summary(tuner.oracle)
    if stop["stop_reason"] is None and len(rows) >= tuner.oracle.max_trials:
        stop["stop_reason"] = "max_trials"
    return AutoKerasResult(
        kind=kind,
        task=task,
        automodel=automodel,
        model=model,
        pipeline=pipeline,
        trials=rows,
        best=best,
        objective=objective,
        search_seconds=seconds,
        stop=stop,
        **fields,
    )


def trial_rows(tuner) -> list[dict[str, Any]]:
    """One row per trial: id, status, objective, epochs, seconds, metrics, hp_<name> per hp."""
    seconds = getattr(tuner, "_automl_seconds", {})
    rows = []
    for trial in tuner.oracle.trials.values():
        status = {"COMPLETED": "completed", "FAILED": "failed", "INVALID": "failed"}.get(
            str(trial.status), str(trial.status).lower()
        )
        epochs = None
        metrics: dict[str, Any] = {}
        for name in trial.metrics.metrics:
            hist = trial.metrics.get_history(name)
            if hist:
                epochs = max(epochs or 0, len(hist))
                best_step = trial.best_step if trial.best_step is not None else hist[-1].step
                value = next((o.value for o in hist if o.step == best_step), hist[-1].value)
                metrics[name] = float(np.mean(value))
        secs = seconds.get(trial.trial_id)
        row: dict[str, Any] = {
            "trial_id": trial.trial_id,
            "status": status,
            "objective": None if trial.score is None else float(trial.score),
            "epochs": epochs,
            "seconds": None if secs is None else round(secs, 3),
            "seconds_per_epoch": round(secs / epochs, 3) if secs and epochs else None,
            "params": None,
            "error": _last_line(trial.message) if status == "failed" else None,
            **metrics,
        }
        row.update({f"hp_{k}": v for k, v in trial.hyperparameters.values.items()})
        rows.append(row)
    return rows


def _last_line(message: str | None) -> str | None:
    lines = [ln for ln in (message or "").strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else None


def write_trials(result: AutoKerasResult, run_dir: str | Path) -> Path:
    """RUN_DIR/trials.csv (and the best trial's params) in the KerasTuner engine's layout."""
    rows = [dict(r) for r in result.trials]
    params = int(result.model.count_params())
    for r in rows:
        if r["trial_id"] == result.best["trial_id"]:
            r["params"] = params
    from automl_app.tuning.tuners import FIRST_COLUMNS  # same leading columns as KerasTuner's

    return runs.write_csv(Path(run_dir) / runs.TRIALS_CSV, rows, first=list(FIRST_COLUMNS))


# ---------------------------------------------------------------------------------------------
# the task APIs


@dataclass(frozen=True)
class SearchOptions:
    """Options shared by every AutoKeras search; same meaning as the KerasTuner engine's flags.

    epochs=None lets AutoKeras train up to 1000 epochs with early stopping (patience 10).
    directory is AutoKeras's project folder: RUN_DIR/tuner.
    """

    tuner: str = "greedy"
    max_trials: int = 1
    epochs: int | None = None
    seed: int = 0
    max_samples: int | None = None
    directory: str | Path = "tuner"
    overwrite: bool = False
    batch_size: int = 32
    verbose: bool = False
    time_budget: float | str | None = None  # seconds or "10m": no new trial past it

    def check(self) -> SearchOptions:
        """Keras-style errors naming the bad value and what is allowed (exit 2)."""
        _check_choice("tuner", self.tuner, TUNERS)
        if self.max_trials < 1:
            raise UsageError(f"max_trials must be >= 1. Received: max_trials={self.max_trials}")
        if self.epochs is not None and self.epochs < 1:
            raise UsageError(
                f"epochs must be >= 1 (or None: early stopping). Received: epochs={self.epochs}"
            )
        if self.max_samples is not None and self.max_samples < 1:
            raise UsageError(f"max_samples must be >= 1. Received: max_samples={self.max_samples}")
        if self.time_budget is not None:
            from automl_app.tuning.budget import parse_duration

            parse_duration(self.time_budget)
        return self

    def automodel_kwargs(self, factory) -> dict[str, Any]:
        return {"max_trials": self.max_trials, "directory": str(self.directory),
                "project_name": "autokeras", "tuner": factory, "overwrite": self.overwrite,
                "seed": self.seed}  # fmt: skip


def _single_task_data(x, y, task, class_names, validation_data, opts, what, as_x):
    """Shared checks for the single-input tasks: subsample, class ids or float targets."""
    _check_choice("task", task, TASKS)
    opts.check()
    x, y = _take([as_x(x), np.asarray(y)], opts.max_samples, opts.seed)
    if task == "classification":
        class_names = _check_classes(y, class_names, what)
    else:
        y = y.astype(np.float32)
    val = None
    if validation_data is not None:
        yv = np.asarray(validation_data[1])
        val = (as_x(validation_data[0]), yv.astype(np.float32) if task == "regression" else yv)
    return x, y, (list(class_names) if class_names else None), val


def _head_name(task: str) -> str:
    return "classification_head_1" if task == "classification" else "regression_head_1"


def search_image(
    x: np.ndarray,
    y: np.ndarray,
    *,
    task: str = "classification",
    class_names: Sequence[str] | None = None,
    block: str = "auto",
    validation_data: tuple[np.ndarray, np.ndarray] | None = None,
    options: SearchOptions = SearchOptions(),
    say: Say = print,
) -> AutoKerasResult:
    """ImageClassifier / ImageRegressor on uint8 images [N,H,W] or [N,H,W,C].

    `block` picks the image family (auto searches all; without a GPU it starts with a vanilla CNN
    and says so). ImageNet weights are never used: searches stay offline and reproducible.
    """
    _check_choice("block", block, BLOCKS)
    x, y, class_names, val = _single_task_data(
        x, y, task, class_names, validation_data, options, f"image {task}", np.asarray
    )
    if x.ndim not in (3, 4):
        raise DataError(f"images must be [N,H,W] or [N,H,W,C]; got shape {x.shape}")
    check_image_memory(len(x), x.shape[1:], "AutoKeras image search", x.dtype.itemsize)
    ak = _classes()["ak"]
    gpu = has_gpu()
    head = _head_name(task)
    initial = image_initial_hps(block, gpu, head)
    factory = tuner_factory(options.tuner, initial_hps=initial, epochs=options.epochs)
    cls = ak.ImageClassifier if task == "classification" else ak.ImageRegressor
    automodel = cls(**options.automodel_kwargs(factory))
    _configure_image_blocks(automodel, block, gpu)
    notes = [n for n in [image_block_note(block, gpu)] if n]
    for n in notes:
        say(n)
    seconds = _fit(automodel, x, y, val, options)
    image = {"name": "image", "type": "image", "shape": list(x.shape[1:]), "dtype": str(x.dtype),
             "block": block}  # fmt: skip
    return _finish(automodel, "image", task, seconds, class_names=class_names, notes=notes,
                   inputs=[image], heads=[{"name": head, "type": task, "class_names": class_names}])  # fmt: skip


def _as_text(x) -> np.ndarray:
    return np.asarray(x, dtype=str).reshape(-1)


def search_text(
    texts: np.ndarray,
    y: np.ndarray,
    *,
    task: str = "classification",
    class_names: Sequence[str] | None = None,
    validation_data: tuple[np.ndarray, np.ndarray] | None = None,
    options: SearchOptions = SearchOptions(),
    say: Say = print,
) -> AutoKerasResult:
    """TextClassifier / TextRegressor on a numpy array of strings [N]."""
    texts, y, class_names, val = _single_task_data(
        texts, y, task, class_names, validation_data, options, f"text {task}", _as_text
    )
    ak = _classes()["ak"]
    from autokeras.tuners import task_specific

    initial = task_specific.TEXT_CLASSIFIER if task == "classification" else None
    factory = tuner_factory(options.tuner, initial_hps=initial, epochs=options.epochs)
    cls = ak.TextClassifier if task == "classification" else ak.TextRegressor
    automodel = cls(**options.automodel_kwargs(factory))
    seconds = _fit(automodel, texts, y, val, options)
    return _finish(automodel, "text", task, seconds, class_names=class_names,
                   inputs=[{"name": "text", "type": "text"}],
                   heads=[{"name": _head_name(task), "type": task, "class_names": class_names}])  # fmt: skip


def _as_table(x) -> np.ndarray:
    return np.asarray(x).astype(str)


def search_structured(
    x: np.ndarray,
    y: np.ndarray,
    *,
    column_names: Sequence[str],
    column_types: Mapping[str, str] | None = None,
    task: str = "classification",
    class_names: Sequence[str] | None = None,
    validation_data: tuple[np.ndarray, np.ndarray] | None = None,
    options: SearchOptions = SearchOptions(),
    say: Say = print,
) -> AutoKerasResult:
    """StructuredDataClassifier / Regressor on a string array [N, C] (data/tabular.py builds it).

    column_types: the final types (data.tabular infers them with AutoKeras's rule; users override).
    """
    x, y, class_names, val = _single_task_data(
        x, y, task, class_names, validation_data, options, f"structured {task}", _as_table
    )
    if x.ndim != 2 or x.shape[1] != len(column_names):
        raise DataError(
            f"structured data must be [N, {len(column_names)}] (one column per name); "
            f"got shape {x.shape}"
        )
    ak = _classes()["ak"]
    from autokeras.tuners import task_specific

    initial = (task_specific.STRUCTURED_DATA_CLASSIFIER if task == "classification"
               else task_specific.STRUCTURED_DATA_REGRESSOR)  # fmt: skip
    factory = tuner_factory(options.tuner, initial_hps=initial, epochs=options.epochs)
    cls = ak.StructuredDataClassifier if task == "classification" else ak.StructuredDataRegressor
    automodel = cls(column_names=list(column_names),
                    column_types=dict(column_types) if column_types else None,
                    **options.automodel_kwargs(factory))  # fmt: skip
    seconds = _fit(automodel, x, y, val, options)
    node = automodel.inputs[0]
    table = {"name": "structured", "type": "structured", "columns": list(node.column_names),
             "column_types": dict(node.column_types)}  # fmt: skip
    return _finish(automodel, "structured", task, seconds, class_names=class_names,
                   inputs=[table],
                   heads=[{"name": _head_name(task), "type": task, "class_names": class_names}])  # fmt: skip


# ---------------------------------------------------------------------------------------------
# the IO API: a YAML spec of inputs and heads


@dataclass(frozen=True)
class InputSpec:
    name: str
    type: str  # image | text | structured
    column: str | None = None  # image (file paths) and text
    columns: tuple[str, ...] = ()  # structured
    column_types: Mapping[str, str] = field(default_factory=dict)
    size: tuple[int, int] | None = None  # image: resize to (H, W)
    channels: int = 1  # image: 1 (grayscale) or 3 (RGB)


@dataclass(frozen=True)
class HeadSpec:
    name: str
    type: str  # classification | regression
    column: str


@dataclass(frozen=True)
class MultiSpec:
    inputs: tuple[InputSpec, ...]
    heads: tuple[HeadSpec, ...]
    source: str = "<spec>"
    csv: str | None = None


_NAME_RE = re.compile(r"[^A-Za-z0-9_]")


def safe_name(name: str) -> str:
    """A column name as a Keras/TensorFlow input name ([A-Za-z0-9_], not starting with _)."""
    out = _NAME_RE.sub("_", str(name)).strip("_") or "input"
    return out if out[0].isalpha() else f"c_{out}"


def load_spec(spec: str | Path | Mapping[str, Any]) -> MultiSpec:
    """Read and validate the `automl search multi --spec FILE` YAML (errors name file and key).

    inputs:
      - {type: image, column: image_path, size: [16, 16], channels: 1}
      - {type: text, column: review}
      - {type: structured, columns: [age, income], column_types: {age: numerical}}
    outputs:
      - {type: classification, column: label}
      - {type: regression, column: price}
    csv: data.csv   # optional; --csv overrides; relative to the spec file
    """
    source = "<spec>"
    base = Path(".")
    if not isinstance(spec, Mapping):
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(f"spec file {str(path)!r} does not exist")
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        source, base = str(path), path.parent
        spec = data
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{source}: the spec must be a mapping with 'inputs' and 'outputs'")
    unknown = set(spec) - {"inputs", "outputs", "csv"}
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(sorted(unknown))}; allowed: inputs, outputs, csv"
        )
    ins, outs = spec.get("inputs"), spec.get("outputs")
    if not isinstance(ins, list) or not ins:
        raise ConfigError(f"{source}: 'inputs' must be a non-empty list")
    if not isinstance(outs, list) or not outs:
        raise ConfigError(f"{source}: 'outputs' must be a non-empty list")
    inputs = tuple(_input_spec(i, item, source) for i, item in enumerate(ins))
    heads = tuple(_head_spec(i, item, source) for i, item in enumerate(outs))
    names = [s.name for s in inputs] + [h.name for h in heads]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"{source}: names must be unique; repeated: {', '.join(dup)}")
    csv = spec.get("csv")
    if csv is not None:
        csv = str(base / str(csv)) if not Path(str(csv)).is_absolute() else str(csv)
    return MultiSpec(inputs=inputs, heads=heads, source=source, csv=csv)


def _input_spec(i: int, item: Any, source: str) -> InputSpec:
    where = f"{source}: inputs[{i}]"
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where} must be a mapping with 'type'")
    allowed = {"type", "name", "column", "columns", "column_types", "size", "channels"}
    unknown = set(item) - allowed
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; allowed: "
            f"{', '.join(sorted(allowed))}"
        )
    kind = item.get("type")
    if kind not in INPUT_TYPES:
        raise ConfigError(
            f"{where}.type must be one of {', '.join(INPUT_TYPES)}. Received: type={kind!r}"
        )
    if kind == "structured":
        cols = item.get("columns")
        if not isinstance(cols, list) or not cols:
            raise ConfigError(f"{where}.columns must be a non-empty list of column names")
        ctypes = item.get("column_types") or {}
        for k, v in ctypes.items():
            if v not in ("numerical", "categorical") or k not in cols:
                raise ConfigError(
                    f"{where}.column_types: each entry must name a listed column and be "
                    f"numerical or categorical. Received: {k}={v!r}"
                )
        name = item.get("name") or "structured"
        return InputSpec(name=safe_name(name), type=kind, columns=tuple(map(str, cols)),
                         column_types=dict(ctypes))  # fmt: skip
    col = item.get("column")
    if not isinstance(col, str) or not col:
        raise ConfigError(f"{where}.column must name the CSV column that holds the {kind}")
    size = item.get("size")
    if size is not None:
        if not (isinstance(size, list) and len(size) == 2 and all(
            isinstance(s, int) and s > 0 for s in size)):  # fmt: skip
            raise ConfigError(f"{where}.size must be [height, width]. Received: {size!r}")
        size = (int(size[0]), int(size[1]))
    channels = item.get("channels", 1)
    if channels not in (1, 3):
        raise ConfigError(f"{where}.channels must be 1 or 3. Received: {channels!r}")
    return InputSpec(name=safe_name(item.get("name") or col), type=kind, column=col, size=size,
                     channels=channels)  # fmt: skip


def _head_spec(i: int, item: Any, source: str) -> HeadSpec:
    where = f"{source}: outputs[{i}]"
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where} must be a mapping with 'type' and 'column'")
    unknown = set(item) - {"type", "name", "column"}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
                          "allowed: column, name, type")  # fmt: skip
    kind = item.get("type")
    if kind not in TASKS:
        raise ConfigError(
            f"{where}.type must be one of {', '.join(TASKS)}. Received: type={kind!r}"
        )
    col = item.get("column")
    if not isinstance(col, str) or not col:
        raise ConfigError(f"{where}.column must name the target column")
    return HeadSpec(name=safe_name(item.get("name") or col), type=kind, column=col)


@dataclass
class MultiData:
    """Materialised inputs and targets for search_multi, keyed by spec names."""

    inputs: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]
    class_names: dict[str, list[str]]
    column_types: dict[str, dict[str, str]]


def load_multi_csv(
    spec: MultiSpec,
    csv_path: str | Path | None = None,
    *,
    max_samples: int | None = None,
    seed: int = 0,
) -> MultiData:
    """Read the spec's columns from a CSV: image paths (relative to the CSV) become uint8 arrays."""
    from automl_app.data import tabular

    csv_path = csv_path or spec.csv
    if not csv_path:
        raise UsageError("search multi needs a CSV: pass --csv FILE or set 'csv:' in the spec")
    table = tabular.read_csv(csv_path)
    rows = tabular.subsample(len(table.rows), max_samples, seed)
    inputs: dict[str, np.ndarray] = {}
    ctypes: dict[str, dict[str, str]] = {}
    for s in spec.inputs:
        if s.type == "structured":
            x, types = tabular.feature_matrix(table, s.columns, s.column_types, rows)
            inputs[s.name], ctypes[s.name] = x, types
        elif s.type == "text":
            j = table.index(s.column)
            inputs[s.name] = np.asarray([table.rows[i][j] for i in rows], dtype=str)
        else:
            j = table.index(s.column)
            paths = [table.path.parent / table.rows[i][j] for i in rows]
            inputs[s.name] = _load_images(paths, s.size, s.channels)
    targets: dict[str, np.ndarray] = {}
    names: dict[str, list[str]] = {}
    for h in spec.heads:
        j = table.index(h.column)
        _, y, cn = tabular.encode_target([table.rows[i][j] for i in rows], h.type, h.column,
                                         str(table.path))  # fmt: skip
        targets[h.name] = y
        if cn:
            names[h.name] = cn
    return MultiData(inputs=inputs, targets=targets, class_names=names, column_types=ctypes)


def _load_images(paths: Sequence[Path], size: tuple[int, int] | None, channels: int) -> np.ndarray:
    """Image files → uint8 [N,H,W,C]; size defaults to the first image's; memory checked first."""
    from PIL import Image

    if not paths:
        return np.zeros((0, 1, 1, channels), np.uint8)
    for p in paths:
        if not Path(p).is_file():
            raise DataError(f"image file {str(p)!r} (from the spec's image column) does not exist")
    if size is None:
        with Image.open(paths[0]) as im:
            size = (im.height, im.width)
    check_image_memory(len(paths), (size[0], size[1], channels), "images for search multi")
    out = np.zeros((len(paths), size[0], size[1], channels), np.uint8)
    mode = "L" if channels == 1 else "RGB"
    for i, p in enumerate(paths):
        with Image.open(p) as im:
            im = im.convert(mode)
            if (im.height, im.width) != size:
                im = im.resize((size[1], size[0]))
            out[i] = np.asarray(im).reshape(size[0], size[1], channels)
    return out


_AS_INPUT = {"image": np.asarray, "text": _as_text, "structured": _as_table}


def search_multi(
    spec: MultiSpec | str | Path | Mapping[str, Any],
    inputs: Mapping[str, np.ndarray],
    targets: Mapping[str, np.ndarray],
    *,
    class_names: Mapping[str, Sequence[str]] | None = None,
    column_types: Mapping[str, Mapping[str, str]] | None = None,
    validation_data: tuple[Mapping[str, np.ndarray], Mapping[str, np.ndarray]] | None = None,
    block: str = "auto",
    options: SearchOptions = SearchOptions(),
    say: Say = print,
) -> AutoKerasResult:
    """ak.AutoModel with the spec's inputs and heads (the IO API), on arrays keyed by spec name."""
    spec = spec if isinstance(spec, MultiSpec) else load_spec(spec)
    _check_choice("block", block, BLOCKS)
    options.check()
    class_names = dict(class_names or {})
    column_types = dict(column_types or {})
    for s in spec.inputs:
        if s.name not in inputs:
            raise DataError(f"no data for input {s.name!r} of {spec.source}")
    for h in spec.heads:
        if h.name not in targets:
            raise DataError(f"no data for output {h.name!r} of {spec.source}")
    order_in = [s.name for s in spec.inputs]
    order_out = [h.name for h in spec.heads]
    arrays = [np.asarray(inputs[n]) for n in order_in] + [np.asarray(targets[n]) for n in order_out]
    arrays = _take(arrays, options.max_samples, options.seed)
    xs, ys = arrays[: len(order_in)], arrays[len(order_in) :]
    c = _classes()
    ak = c["ak"]
    nodes = []
    infos = []
    for s, x in zip(spec.inputs, xs, strict=True):
        if s.type == "image":
            if x.ndim not in (3, 4):
                raise DataError(
                    f"input {s.name!r}: images must be [N,H,W] or [N,H,W,C]; got {x.shape}"
                )
            check_image_memory(len(x), x.shape[1:], f"input {s.name!r}", x.dtype.itemsize)
            nodes.append(ak.ImageInput(name=s.name))
            infos.append({"name": s.name, "type": "image", "shape": list(x.shape[1:]),
                          "dtype": str(x.dtype), "block": block})  # fmt: skip
        elif s.type == "text":
            nodes.append(ak.TextInput(name=s.name))
            infos.append({"name": s.name, "type": "text"})
        else:
            cols = list(s.columns)
            types = dict(column_types.get(s.name) or s.column_types or {}) or None
            nodes.append(ak.StructuredDataInput(column_names=cols, column_types=types, name=s.name))
            infos.append({"name": s.name, "type": "structured", "columns": cols})
    xs = [_AS_INPUT[s.type](x) for s, x in zip(spec.inputs, xs, strict=True)]
    heads, head_infos = [], []
    for h, y in zip(spec.heads, ys, strict=True):
        if h.type == "classification":
            names = _check_classes(y, class_names.get(h.name), f"output {h.name!r}")
            heads.append(ak.ClassificationHead(name=h.name))
            head_infos.append({"name": h.name, "type": "classification", "class_names": names})
        else:
            heads.append(ak.RegressionHead(name=h.name))
            head_infos.append({"name": h.name, "type": "regression", "class_names": None})
    ys = [
        y.astype(np.float32) if h.type == "regression" else y
        for h, y in zip(spec.heads, ys, strict=True)
    ]
    gpu = has_gpu()
    initial = None
    if [s.type for s in spec.inputs].count("image") == 1:  # its block is image_block_1
        initial = image_initial_hps(block, gpu, head="")
    factory = tuner_factory(options.tuner, initial_hps=initial, epochs=options.epochs)
    automodel = ak.AutoModel(inputs=nodes, outputs=heads, **options.automodel_kwargs(factory))
    notes = []
    if _configure_image_blocks(automodel, block, gpu):
        notes = [n for n in [image_block_note(block, gpu)] if n]
    for n in notes:
        say(n)
    val = None
    if validation_data is not None:
        vx, vy = validation_data
        val = ([_AS_INPUT[s.type](vx[s.name]) for s in spec.inputs],
               [np.asarray(vy[h.name], np.float32) if h.type == "regression" else
                np.asarray(vy[h.name]) for h in spec.heads])  # fmt: skip
    seconds = _fit(automodel, xs, ys, val, options)
    for node, info in zip(automodel.inputs, infos, strict=True):
        if info["type"] == "structured":
            info["column_types"] = dict(node.column_types)
    return _finish(automodel, "multi", "multi", seconds, notes=notes, inputs=infos,
                   heads=head_infos)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# serving model: AutoKeras's outside-the-model preprocessing moved inside, probabilities out


def serving_model(result: AutoKerasResult):
    """A Keras model taking raw inputs (uint8 images, strings, one tensor per column) that
    returns probabilities [N, classes] per classification head and values per regression head.

    AutoKeras keeps its text tokenizer, categorical encoders and label encoders in a separate
    pipeline; this rebuilds them as layers so the export needs nothing else.
    """
    import keras

    c = _classes()
    model = result.model
    pipe_inputs = result.pipeline.inputs  # one list of preprocessors per input
    raw_inputs = []
    model_inputs = []
    for info, pre in zip(result.inputs, pipe_inputs, strict=True):
        kind = info["type"]
        if kind == "image":
            raw = keras.Input(shape=tuple(info["shape"]), dtype=info["dtype"], name=info["name"])
            raw_inputs.append(raw)
            model_inputs.append(raw)
        elif kind == "text":
            tok = next(p for p in pre if type(p).__name__ == "TextTokenizer")
            vocab = [w for w, _ in sorted(tok.vocab.items(), key=lambda kv: kv[1])]
            raw = keras.Input(shape=(), dtype="string", name=info["name"])
            raw_inputs.append(raw)
            model_inputs.append(c["TextTokenizer"](vocab, tok.max_len)(raw))
        else:
            enc = next(p for p in pre if type(p).__name__ == "CategoricalToNumerical")
            cols = []
            for j, (col, kind_j) in enumerate(zip(enc.column_names, enc.encoding, strict=True)):
                if kind_j == "none":
                    raw = keras.Input(shape=(), dtype="float32", name=safe_name(col))
                    cols.append(c["NumericColumn"]()(raw))
                else:
                    raw = keras.Input(shape=(), dtype="string", name=safe_name(col))
                    cols.append(c["CategoryEncoder"](enc.encoders[j].labels)(raw))
                raw_inputs.append(raw)
            model_inputs.append(keras.layers.Concatenate()(cols) if len(cols) > 1 else cols[0])
    outs = model(model_inputs if len(model_inputs) > 1 else model_inputs[0])
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    if isinstance(outs, dict):  # pragma: no cover - AutoKeras returns lists
        outs = list(outs.values())
    final = {}
    for head, out in zip(result.heads, outs, strict=True):
        if head["type"] == "classification" and out.shape[-1] == 1:
            out = c["BinaryToTwoClass"](name=f"{head['name']}_probabilities")(out)
        else:
            out = keras.layers.Identity(name=f"{head['name']}_out")(out)
        final[head["name"]] = out
    outputs = final if len(final) > 1 else next(iter(final.values()))
    return keras.Model(raw_inputs if len(raw_inputs) > 1 else raw_inputs[0], outputs,
                       name="automl_autokeras_serving")  # fmt: skip


def raw_input_names(serving) -> list[str]:
    """Names of the serving model's raw inputs, in order."""
    return [t.name.split(":")[0] for t in serving.inputs]


def structured_inputs(x: np.ndarray, column_names: Sequence[str], numeric: Sequence[bool]) -> dict:
    """A string matrix [N, C] → {column: array} as the structured export takes it."""
    out = {}
    for j, (col, is_num) in enumerate(zip(column_names, numeric, strict=True)):
        cells = np.asarray(x)[:, j]
        out[safe_name(col)] = (
            np.asarray([_to_float(v) for v in cells], np.float32) if is_num else cells.astype(str)
        )
    return out


def _to_float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def raw_feed(result: AutoKerasResult, x: Any) -> dict[str, np.ndarray]:
    """Test inputs (as given to search_*) → {raw input name: array} for the serving model."""
    out: dict[str, np.ndarray] = {}
    xs = x if result.kind == "multi" else {result.inputs[0]["name"]: x}
    for info, pre in zip(result.inputs, result.pipeline.inputs, strict=True):
        arr = np.asarray(xs[info["name"]])
        if info["type"] == "image":
            out[info["name"]] = arr.astype(info["dtype"])
        elif info["type"] == "text":
            out[info["name"]] = arr.astype(str).reshape(-1)
        else:
            enc = next(p for p in pre if type(p).__name__ == "CategoricalToNumerical")
            numeric = [e == "none" for e in enc.encoding]
            out.update(structured_inputs(arr.astype(str), enc.column_names, numeric))
    return out


def predict_raw(serving, feed: Mapping[str, np.ndarray], batch: int = 512) -> dict[str, np.ndarray]:
    """Run the serving model on raw inputs in batches; {head name: array}."""
    from automl_app.tf_env import tf

    t = tf()
    names = raw_input_names(serving)
    n = len(next(iter(feed.values())))
    chunks: dict[str, list[np.ndarray]] = {}
    for i in range(0, n, batch):
        args = [t.constant(feed[k][i : i + batch]) for k in names]
        res = serving(args if len(args) > 1 else args[0], training=False)
        for k, v in (res if isinstance(res, dict) else {"output": res}).items():
            chunks.setdefault(k, []).append(np.asarray(v))
    return {k: np.concatenate(v) for k, v in chunks.items()}


# ---------------------------------------------------------------------------------------------
# reports and export


def write_regression_report(
    y_true: np.ndarray, y_pred: np.ndarray, report_dir: str | Path, *, name: str | None = None
) -> dict[str, float]:
    """MAE, RMSE and R² (scikit-learn) into report/regression_report.json; returns them."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    y_true = np.asarray(y_true, np.float64).reshape(len(y_true), -1)
    y_pred = np.asarray(y_pred, np.float64).reshape(len(y_pred), -1)
    metrics = {
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "rmse": float(math.sqrt(mean_squared_error(y_true, y_pred))),
        "r2": float(r2_score(y_true, y_pred)) if len(y_true) > 1 else float("nan"),
        "examples": int(len(y_true)),
    }
    path = Path(report_dir) / "regression_report.json"
    existing = {}
    if name is not None and path.is_file():
        import json

        existing = json.loads(path.read_text())
    runs.atomic_write_json(path, {**existing, name: metrics} if name else metrics)
    return metrics


def _export_named(serving, sample: Mapping[str, np.ndarray], out_dir: Path, atol: float = 1e-4):
    """SavedModel whose `serve` takes one named tensor per raw input (a dict); reload-compare
    before the atomic move, as export.export_saved_model does for single-input models."""
    import shutil
    import tempfile

    import keras

    from automl_app.errors import AutomlError
    from automl_app.tf_env import tf

    t = tf()
    names = raw_input_names(serving)
    specs = {}
    for name, inp in zip(names, serving.inputs, strict=True):
        specs[name] = t.TensorSpec(shape=(None, *inp.shape[1:]), dtype=inp.dtype, name=name)

    def call(inputs):
        args = [inputs[n] for n in names]
        out = serving(args if len(args) > 1 else args[0], training=False)
        if isinstance(out, dict):
            return {k: t.cast(v, t.float32) for k, v in out.items()}
        return t.cast(out, t.float32)

    feed = {n: t.constant(np.asarray(sample[n])) for n in names}
    expected = call(feed)
    archive = keras.export.ExportArchive()
    archive.track(serving)
    archive.add_endpoint(name="serve", fn=call, input_signature=[specs])
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        archive.write_out(str(tmp), verbose=False)
        reloaded = t.saved_model.load(str(tmp))
        got = reloaded.serve(feed)
        exp_d = expected if isinstance(expected, dict) else {"output": expected}
        got_d = got if isinstance(got, dict) else {"output": got}
        diff = 0.0
        for k, e in exp_d.items():
            e, g = np.asarray(e), np.asarray(got_d[k])
            if e.shape != g.shape or not np.allclose(e, g, atol=atol, equal_nan=True):
                raise AutomlError(
                    f"exported SavedModel output {k!r} does not match the in-memory model "
                    f"(shape {g.shape} vs {e.shape}); export not written to {out_dir}"
                )
            if e.size:
                diff = max(diff, float(np.nanmax(np.abs(e - g))))
        runs.atomic_replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    inputs_desc = ", ".join(f"{n}: {s.dtype.name}{list(s.shape)}" for n, s in specs.items())
    return {
        "path": str(out_dir),
        "endpoint": "serve",
        "input": f"dict of named tensors {{{inputs_desc}}} -> float32 outputs",
        "input_names": names,
        "softmax_added": False,
        "checked_examples": int(len(next(iter(sample.values())))),
        "max_abs_diff": diff,
    }


def _spec_for(result: AutoKerasResult):
    """export.ServingSpec for single-input image/text results (None: needs named inputs)."""
    from automl_app.export import ServingSpec
    from automl_app.tf_env import tf

    t = tf()
    info = result.inputs[0]
    task = result.task
    if result.kind == "image":
        shape, dtype = list(info["shape"]), info["dtype"]
        h, w = shape[0], shape[1]
        ch = shape[2] if len(shape) == 3 else None

        def preprocess(x):
            return t.cast(t.reshape(x, [-1, *shape]), dtype)

        dims = f"{h},{w}" + (f"] or [N,{h},{w},{ch}" if ch else "")
        out = "probabilities" if task == "classification" else "values"
        return ServingSpec(
            shape=None,
            dtype="uint8",
            preprocess=preprocess,
            description=f"uint8 images [N,{dims}] -> float32 {out}; normalisation inside",
            task=task,
            extra={"height": h, "width": w, "channels": ch or 1, "scale": "none (raw 0..255)",
                   "block": info.get("block")},
        )  # fmt: skip
    if result.kind == "text":
        out = "probabilities" if task == "classification" else "values"
        return ServingSpec(
            shape=(None,),
            dtype="string",
            preprocess=lambda x: t.reshape(x, [-1]),
            description=f"raw strings [N] -> float32 {out}; tokenisation inside",
            task=task,
            extra={"tokenizer": "whitespace split, AutoKeras vocabulary, max_len inside"},
        )
    return None


def export(
    result: AutoKerasResult,
    best_dir: str | Path,
    sample_raw: Any,
    *,
    card: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write RUN_DIR/best: saved_model/ (serve takes raw inputs; checked), model.keras,
    labels.json (classifiers), model_card.json. Image and text go through export.export_best;
    structured and multi use named inputs (one per column / per input)."""
    from automl_app import export as export_mod

    best_dir = Path(best_dir)
    serving = serving_model(result)
    card = {
        "engine": "autokeras",
        "autokeras_task": result.summary()["autokeras_task"],
        "best_trial": result.best["trial_id"],
        "hyperparameters": result.best["hyperparameters"],
        "inputs": result.inputs,
        "heads": result.heads,
        **dict(card or {}),
    }
    spec = _spec_for(result)
    if spec is not None:
        feed = raw_feed(result, sample_raw)
        raw = next(iter(feed.values()))[:EXPORT_CHECK_EXAMPLES]
        return export_mod.export_best(serving, spec, raw, best_dir, labels=result.class_names,
                                      card={**card, "class_names": result.class_names})  # fmt: skip
    feed = {k: v[:EXPORT_CHECK_EXAMPLES] for k, v in raw_feed(result, sample_raw).items()}
    best_dir.mkdir(parents=True, exist_ok=True)
    info = _export_named(serving, feed, best_dir / "saved_model")
    tmp_keras = best_dir / ".model.tmp.keras"
    serving.save(tmp_keras)
    tmp_keras.replace(best_dir / "model.keras")
    labels: Any = None
    if result.kind == "multi":
        labels = {h["name"]: h["class_names"] for h in result.heads if h["class_names"]}
    elif result.class_names:
        labels = list(result.class_names)
    if labels:
        runs.atomic_write_json(best_dir / "labels.json", labels)
    runs.atomic_write_json(best_dir / "model_card.json", {**card, "serving": info})
    return info


def evaluate(
    result: AutoKerasResult, x_test: Any, y_test: Any, report_dir: str | Path
) -> dict[str, Any]:
    """Test metrics through the serving model (what the export computes), written to report/."""
    from automl_app import evaluate as evaluate_mod

    report_dir = Path(report_dir)
    serving = serving_model(result)
    preds = predict_raw(serving, raw_feed(result, x_test))
    ys = y_test if result.kind == "multi" else {result.heads[0]["name"]: y_test}
    out: dict[str, Any] = {}
    single = len(result.heads) == 1
    for head in result.heads:
        pred = preds[head["name"]] if head["name"] in preds else next(iter(preds.values()))
        y = np.asarray(ys[head["name"]])
        where = report_dir if single else report_dir / head["name"]
        if head["type"] == "classification":
            out[head["name"]] = evaluate_mod.write_classification_report(
                y, pred, head["class_names"], where
            )
        else:
            out[head["name"]] = write_regression_report(y, pred, report_dir,
                                                        name=None if single else head["name"])  # fmt: skip
    return out[result.heads[0]["name"]] if single else out


def record(
    result: AutoKerasResult,
    run_dir: str | Path,
    x_test: Any,
    y_test: Any,
    *,
    card: Mapping[str, Any] | None = None,
    say: Say = print,
) -> dict[str, Any]:
    """trials.csv, report/ (test set touched once here) and best/; returns run.json fields."""
    run_dir = Path(run_dir)
    write_trials(result, run_dir)
    test = evaluate(result, x_test, y_test, run_dir / "report")
    info = export(result, run_dir / "best", x_test, card={**dict(card or {}), "test": test})
    summary = {**result.summary(), "test": test, "export": info}
    say(f"best trial {result.best['trial_id']}: {result.objective}={result.best['score']}")
    say(f"model written to {run_dir / 'best' / 'saved_model'} (serve: {info['input']})")
    return summary
