"""AutoKeras itself, made to fit our contract: the result type, input checks, our layer
classes, the tuner factory and the fit loop with a time budget.

AutoKeras 3.0.0 takes numpy arrays only, starts image searches with a ResNet50 from scratch and
keeps part of its preprocessing outside the Keras model; see serving.py for the export side.
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from automl_app import interrupts
from automl_app.data.tabular import COPIES, check_memory
from automl_app.engines.autokeras.constants import _AK_BLOCK, _OOV, TUNERS
from automl_app.errors import DataError, SearchError, UsageError

Say = Callable[[str], None]


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


def _ak():
    from automl_app.engines.autokeras import compat as autokeras_compat

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
    """A tuner class that records each trial's wall time (KerasTuner keeps none) and, when
    `_fit` gave it a tuning.progress.SearchProgress, says the KerasTuner engine's lines: one per
    epoch of the running trial, one per finished trial, and the search's progress after it."""

    class Timed(base):
        def on_trial_begin(self, trial):
            self._automl_t0 = time.perf_counter()
            return super().on_trial_begin(trial)

        def run_trial(self, trial, *args, **kwargs):
            progress = getattr(self, "_automl_progress", None)
            if progress is not None:  # per trial, so AutoKeras's final fit never gets it
                self._automl_store = store = {}
                name = self.oracle.objective.name
                kwargs["callbacks"] = [*list(kwargs.get("callbacks") or []),
                                       progress.callback(trial.trial_id, store, name)]  # fmt: skip
            return super().run_trial(trial, *args, **kwargs)

        def on_trial_end(self, trial):
            seconds = getattr(self, "_automl_seconds", {})
            seconds[trial.trial_id] = time.perf_counter() - getattr(self, "_automl_t0", 0.0)
            self._automl_seconds = seconds
            out = super().on_trial_end(trial)
            if getattr(self, "_automl_progress", None) is not None:
                _say_trial(self, trial.trial_id)
            return out

    Timed.__name__ = Timed.__qualname__ = f"Timed{base.__name__}"
    return Timed


def _say_trial(tuner, trial_id: str) -> None:
    """The finished trial's line and the search's elapsed/ETA/best line (tuning.progress)."""
    from automl_app.models.hypermodel import describe
    from automl_app.tuning.progress import short_names, trial_line

    progress = tuner._automl_progress
    rows = {str(r["trial_id"]): r for r in trial_rows(tuner)}
    row = rows.get(str(trial_id)) or {}
    objective = tuner.oracle.objective
    scored = [r["objective"] for r in rows.values()
              if r["status"] == "completed" and r.get("objective") is not None]  # fmt: skip
    best = (min if getattr(objective, "direction", "max") == "min" else max)(scored, default=None)
    progress.say(
        trial_line(trial_id, len(rows), progress.total, row.get("status", "?"),
                   describe(short_names(tuner.oracle.get_trial(trial_id).hyperparameters.values)),
                   objective.name, row.get("objective"), row.get("seconds") or 0.0, best,
                   row.get("error"))
    )  # fmt: skip
    progress.between_trials(rows, objective, getattr(tuner.oracle, "deadline", None))


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
    callbacks = [keras.callbacks.EarlyStopping(patience=10, min_delta=1e-4),
                 interrupts.keras_callback()]  # fmt: skip
    if opts.time_budget is not None:
        from automl_app.tuning import budget

        deadline = budget.Deadline.after_command_start(opts.time_budget)
        budget.attach_budget(automodel.tuner.oracle, deadline)
        callbacks.append(budget.deadline_callback(deadline))
    kwargs: dict[str, Any] = {"validation_data": validation_data}
    if validation_data is None:
        kwargs = {"validation_split": 0.2}
    if opts.say is not None:
        from automl_app.tuning.progress import SearchProgress

        automodel.tuner._automl_progress = SearchProgress(opts.say, opts.max_trials)
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
    # where per-epoch and per-trial progress lines go (tuning.progress); None: no lines
    say: Callable[[str], None] | None = field(default=None, compare=False, repr=False)

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


DEFAULT_OPTIONS = SearchOptions()
