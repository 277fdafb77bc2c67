"""The train-from-scratch engine: one recipe, no search, behind the same flow.

The image folder goes through the shared path (data/images.py: scan, blacklist, content-hash
split), then tf.data stages; `fit` trains (checkpoints/ every epoch for --resume, tensorboard/)
and returns an EngineResult: one trial row, the model and its serving spec (uint8 images of any
size, resize-with-pad and scaling inside, so the export and the training agree). The flow reads
the evaluation split once, reports, checks chance (majority class, as for searches) and exports.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from automl_app import interrupts, runs
from automl_app.config import TrainConfig, check_stopping_and_weights
from automl_app.engines.base import EngineResult, Plan, TestPredictions
from automl_app.errors import DataError, UsageError
from automl_app.training.loop import (
    _epoch_checkpoint,
    _epoch_log,
    _make_optimizer,
    _schedule,
    _strategy,
    _use_mixed_precision,
    balanced_class_weights,
    early_stopping,
)
from automl_app.training.recipes import MODELS, ScratchConfig, load_config

Say = Callable[[str], None]

CHECKPOINT_DIR = "checkpoints"


@dataclass
class SplitData:
    """The examples per split, as file lists (an image folder) or arrays (a named dataset)."""

    class_names: list[str]
    train: list[Any]
    val: list[Any]
    test: list[Any]
    layout: str
    folder: Any = None  # data.images.FolderSplit for a folder
    arrays: Any = None  # data.datasets.ImageData for a named dataset

    def counts(self) -> dict[str, int]:
        if self.arrays is not None:
            # A named dataset's test split is read once, after training: its size comes later.
            return {"train": len(self.arrays.x_train), "val": len(self.arrays.x_val),
                    "test": None}  # fmt: skip
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def prepare_data(sc: ScratchConfig, cfg: TrainConfig) -> SplitData:
    """The shared folder path (scan → blacklist → content-hash split → balance), or a named
    dataset read into memory with the same val rule as searches."""
    from automl_app.data import images, source

    if cfg.data.data_dir:
        split = images.prepare_folder(
            cfg.data.data_dir,
            val_fraction=sc.val_fraction,
            test_fraction=sc.test_fraction,
            max_samples=sc.max_samples,
            seed=sc.seed,
            max_pixels=sc.max_pixels,
            cache_path=cfg.scan_cache,
            balance=sc.balance,
        )
        return SplitData(list(split.class_names), list(split.train), list(split.val),
                         list(split.test), split.layout, folder=split)  # fmt: skip
    data = source.load_image_data(
        dataclasses.replace(cfg.data, max_samples=sc.max_samples, seed=sc.seed,
                            val_fraction=sc.val_fraction), verbose=cfg.verbose)  # fmt: skip
    names = list(data.info.class_names)
    return SplitData(names, [], [], [], "named dataset", arrays=data)


def _arrays(files: list[Any], class_names: list[str]) -> tuple[list[str], list[int]]:
    index = {c: i for i, c in enumerate(class_names)}
    return [f.path for f in files], [index[f.label] for f in files]


def find_undecodable(paths: list[str]) -> tuple[str, str] | None:
    """The first file the training decoder rejects now (used only after a pipeline error)."""
    from automl_app.data import stages
    from automl_app.tf_env import tf

    t = tf()
    for p in paths:
        try:
            stages.decode(stages.read(t.constant(p)))
        except Exception as exc:
            from automl_app.data.scan import _clean_tf_message

            return p, _clean_tf_message(str(getattr(exc, "message", exc)))
    return None


def plan_train(cfg: TrainConfig) -> Plan:
    """Recipe + overrides + data options → a checked ScratchConfig and the Plan to train it."""
    from automl_app.data import source

    if cfg.model not in MODELS:
        raise UsageError(f"model must be one of {', '.join(MODELS)}. Received: {cfg.model!r}")
    overrides = {k: v for k, v in cfg.overrides.items() if v is not None}
    d = cfg.data
    for key, value in (("image_size", d.image_size), ("max_samples", d.max_samples),
                       ("seed", d.seed), ("val_fraction", d.val_fraction)):  # fmt: skip
        if value is not None:
            overrides[key] = value
    sc = load_config(cfg.recipe, {**overrides, "name": cfg.model})
    check_stopping_and_weights(cfg.early_stopping, cfg.class_weight)
    if cfg.class_weight != "none" and sc.balance == "oversample":
        raise UsageError(
            "--class-weight balanced and the recipe's data.balance: oversample would count the "
            "imbalance twice: use one (--class-weight none, or a recipe with balance: none)"
        )
    source.precheck(cfg.data)
    run_dir = cfg.resolved_run_dir()
    if cfg.resume and not (run_dir / CHECKPOINT_DIR / "state.json").is_file():
        if (run_dir / runs.MANIFEST).is_file():
            raise UsageError(f"--resume given but {str(run_dir)!r} has no checkpoint yet")

    def fit(run: runs.Run, say: Say) -> EngineResult:
        return _train(sc, cfg, run, say)

    return Plan("train-scratch", "scratch", cfg, fit, {"recipe": asdict(sc)})


def _train(sc: ScratchConfig, cfg: TrainConfig, run: runs.Run, say: Say) -> EngineResult:
    data = prepare_data(sc, cfg)
    counts = data.counts()
    if data.arrays is not None:
        eval_name = "test"
    else:
        eval_name = next(n for n in ("test", "val", "train") if counts[n])
    record: dict[str, Any] = {
        "dataset": cfg.data.dataset if data.arrays is not None else None,
        "data_dir": cfg.data.data_dir,
        "layout": data.layout,
        "class_names": data.class_names,
        "counts": counts,
        "image_shape": [sc.image_size, sc.image_size, 3],
        "scale": sc.scale,
        "evaluated_on": eval_name,
    }
    if data.folder is not None:
        for line in [data.folder.summary(), *data.folder.blacklist_lines()]:
            say(line)
        record["folder"] = data.folder.record()
        record["fingerprint"] = {"split": data.folder.fingerprint()}
    else:
        from automl_app.data import source

        record["fingerprint"] = source.data_record(data.arrays)["fingerprint"]
        record["source"] = data.arrays.info.source
    run.check_same_data(record["fingerprint"], "same data options and recipe")
    run.update(data=record, lr_used=sc.lr)
    say(
        f"data: {cfg.data.data_dir or cfg.data.dataset} train={counts['train']} "
        f"val={counts['val']} test={'its own split' if counts['test'] is None else counts['test']} classes={len(data.class_names)}"
    )
    weights = None
    if cfg.class_weight == "balanced":
        if data.arrays is not None:
            labels = data.arrays.y_train
        else:
            labels = _arrays(data.train, data.class_names)[1]
        weights = balanced_class_weights(labels)
        run.update(class_weights={str(k): v for k, v in weights.items()})
        say("class weights (balanced): " + ", ".join(
            f"{data.class_names[k]}={w:.3g}" for k, w in weights.items()))  # fmt: skip
    result = _fit(sc, data, run.dir, eval_name, run.resumed, say, cfg.verbose,
                  patience=cfg.early_stopping, class_weight=weights)  # fmt: skip
    result.card["dataset"] = record["dataset"]
    return result


class _Pipelines:
    """train/val/eval tf.data pipelines from files (folder) or arrays (named dataset), plus the
    eval labels and a few raw images for the export check."""

    def __init__(self, cfg: ScratchConfig, data: SplitData, eval_name: str, log: Say = print):
        from automl_app.data import stages

        self.cfg, self.data, self.eval_name, self.log = cfg, data, eval_name, log
        self.guards: list[Any] = []  # one images.SkipGuard per file pipeline
        self.augment = stages.Augment(flip=cfg.flip, rotation=cfg.rotation, crop=cfg.crop,
                                      brightness=cfg.brightness, contrast=cfg.contrast,
                                      jpeg_quality=cfg.jpeg_quality)  # fmt: skip
        self.n_classes = len(data.class_names)
        self.n_train = data.counts()["train"]

    def _files(self, files: list[Any], training: bool):
        from automl_app.data import stages
        from automl_app.data.images import SkipGuard

        cfg = self.cfg
        paths, labels = _arrays(files, self.data.class_names)
        # A file the scan passed but that fails now is skipped and named, never ending the run.
        guard = SkipGuard(paths, image_size=cfg.image_size, log=self.log)
        self.guards.append(guard)
        ds = stages.build(paths, labels, batch_size=cfg.batch_size, training=training,
                          augment=self.augment if training else None,
                          cache_to=cfg.cache if training else None,
                          shuffle_buffer=cfg.shuffle_buffer, seed=cfg.seed,
                          num_classes=self.n_classes, image_size=cfg.image_size,
                          mode=cfg.scale, guard=guard)  # fmt: skip
        return ds, (paths, labels, guard)

    def _in_memory(self, x, y, training: bool):
        """In-memory uint8 images through the same stages (resize_with_pad, scale, augment)."""
        from automl_app.data import stages
        from automl_app.tf_env import tf

        t, cfg = tf(), self.cfg
        active = training and self.augment.active
        fn = stages.make_augment(self.augment, cfg.scale) if active else None

        def prep(image, label):
            image = t.image.grayscale_to_rgb(image) if image.shape[-1] == 1 else image
            image = stages.resize_with_pad(t.cast(image, t.float32), cfg.image_size)
            image = stages.scale(image, cfg.scale)
            if fn is not None:
                image = fn(image)
            return image, t.one_hot(label, self.n_classes)

        ds = t.data.Dataset.from_tensor_slices((x, y.astype("int32")))
        if training:
            ds = ds.shuffle(max(1, min(len(x), cfg.shuffle_buffer or len(x))), seed=cfg.seed)
        ds = ds.map(prep, num_parallel_calls=t.data.AUTOTUNE)
        return ds.batch(cfg.batch_size).prefetch(t.data.AUTOTUNE), y

    def train(self):
        d = self.data
        if d.arrays is not None:
            return self._in_memory(d.arrays.x_train, d.arrays.y_train, True)[0]
        return self._files(d.train, True)[0]

    def val(self):
        d = self.data
        if d.arrays is not None:
            if not len(d.arrays.x_val):
                return None
            return self._in_memory(d.arrays.x_val, d.arrays.y_val, False)[0]
        return self._files(d.val, False)[0] if d.val else None

    def eval(self):
        """(dataset, labels, raw sample); the test split is read here, once."""
        import numpy as np

        from automl_app.data.images import raw_sample

        d = self.data
        if d.arrays is not None:
            x, y = d.arrays.test() if self.eval_name == "test" else (d.arrays.x_val, d.arrays.y_val)
            ds, labels = self._in_memory(x, y, False)
            raw = x[:4] if x.shape[-1] == 3 else np.repeat(x[:4], 3, axis=-1)
            return ds, (lambda: np.asarray(labels)), raw
        files = {"test": d.test, "val": d.val, "train": d.train}[self.eval_name]
        ds, (paths, labels, guard) = self._files(files, False)
        # Labels of the files the pipeline kept, in order, once `predict` has been through them.
        self.eval_guard = guard
        return ds, (lambda: np.asarray(guard.kept(paths, labels)[1])), raw_sample(paths)

    def callbacks(self) -> list[Any]:
        """Keras callbacks naming files skipped during an epoch (train and val pipelines)."""
        return [g.callback() for g in self.guards]

    def all_paths(self) -> list[str]:
        d = self.data
        return [f.path for f in d.train + d.val + d.test]


def _fit(
    cfg, data, run_dir, eval_name, resume, log, verbose, patience=None, class_weight=None
) -> EngineResult:
    from automl_app import export
    from automl_app.models import mobilenetv2
    from automl_app.tf_env import tf
    from automl_app.training import schedules  # noqa: F401  (registers WarmupDecay)

    t = tf()
    import keras

    keras.utils.set_random_seed(cfg.seed)
    mixed = _use_mixed_precision(cfg, t)
    previous_policy = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    try:
        strategy, dist_name = _strategy(cfg, t)
        pipes = _Pipelines(cfg, data, eval_name, log)
        n_classes, n_train = pipes.n_classes, pipes.n_train
        train_ds, val_ds = pipes.train(), pipes.val()
        steps = math.ceil(n_train / cfg.batch_size)
        schedule = _schedule(cfg, steps)
        ckpt_dir = run_dir / CHECKPOINT_DIR
        ckpt_dir.mkdir(exist_ok=True)
        initial_epoch = 0
        state_path = ckpt_dir / "state.json"
        with strategy.scope():
            if resume and state_path.is_file():
                state = json.loads(state_path.read_text())
                initial_epoch = int(state["epoch"])
                model = keras.models.load_model(ckpt_dir / "last.keras")
                model.optimizer.learning_rate = schedule  # a longer run stretches the decay
                log(f"resuming from epoch {initial_epoch} ({ckpt_dir / 'last.keras'})")
            else:
                model = mobilenetv2.build(
                    n_classes,
                    cfg.image_size,
                    alpha=cfg.alpha,
                    dropout=cfg.dropout,
                    bn_momentum=cfg.bn_momentum,
                )
                model.compile(
                    optimizer=_make_optimizer(cfg, schedule),
                    loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
                    metrics=["accuracy"],
                )
        callbacks = [
            _epoch_checkpoint(ckpt_dir),
            keras.callbacks.TensorBoard(
                log_dir=str(run_dir / "tensorboard"), write_graph=False, update_freq="epoch"
            ),
            _epoch_log(cfg.epochs, n_train, log),
            *pipes.callbacks(),
            interrupts.keras_callback(),
        ]
        if patience:  # on val_accuracy, or the training accuracy when there is no val split
            monitor = "val_accuracy" if val_ds is not None else "accuracy"
            callbacks.append(early_stopping(monitor, "max", patience))
            log(f"early stopping: {monitor}, patience {patience} epochs (best weights kept)")
        log(
            f"training {cfg.name} alpha={cfg.alpha} at {cfg.image_size}px on "
            f"{n_train} images ({n_classes} classes), batch {cfg.batch_size}, "
            f"lr {cfg.lr:.4g} ({cfg.lr_per_256:g} per 256), scale {cfg.scale}, "
            f"mixed precision {'on' if mixed else 'off'}, distribute {dist_name}"
        )
        fit_started = time.perf_counter()
        with _names_bad_file(pipes.all_paths()):
            if initial_epoch < cfg.epochs:
                history = model.fit(
                    train_ds,
                    validation_data=val_ds,
                    epochs=cfg.epochs,
                    initial_epoch=initial_epoch,
                    callbacks=callbacks,
                    verbose=2 if verbose else 0,
                    class_weight=class_weight,
                )
                hist = {k: [float(x) for x in v] for k, v in history.history.items()}
            else:
                hist = {}
            fit_seconds = time.perf_counter() - fit_started

        def read_test() -> TestPredictions:
            with _names_bad_file(pipes.all_paths()):
                eval_ds, kept_labels, raw_sample = pipes.eval()  # the test split, read once
                guard = getattr(pipes, "eval_guard", None)
                callbacks = [guard.callback()] if guard else []
                probs = model.predict(eval_ds, verbose=0, callbacks=callbacks)
                return TestPredictions(probs, kept_labels(), raw_sample)

        # Any-size uint8 images, resized with padding inside; `serve_fixed` (the training size)
        # is what TFLite and ONNX convert.
        spec = export.folder_image_spec(cfg.image_size, 3, cfg.scale)
        return EngineResult(
            fields={
                "history": hist,
                "fit_seconds": round(fit_seconds, 2),
                "images_per_second": round(
                    (cfg.epochs - initial_epoch) * n_train / max(fit_seconds, 1e-9), 2
                ),
                "mixed_precision": mixed,
                "distribute": dist_name,
                "resumed_from_epoch": initial_epoch if resume else None,
            },
            read_test=read_test,
            heads=[
                {"name": "output", "type": "classification", "class_names": list(data.class_names)}
            ],
            model=model,
            spec=spec,
            card={
                "model": cfg.name,
                "alpha": cfg.alpha,
                "image_size": cfg.image_size,
                "scale": cfg.scale,
                "evaluated_on": eval_name,
            },
            trials=[_trial_row(cfg, hist, fit_seconds, n_train, model)],
            split=eval_name,
            diagnose=lambda chance: _diagnose(cfg, hist, n_classes, chance),
        )
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def _diagnose(cfg: ScratchConfig, hist, n_classes: int, chance) -> tuple[str, str]:
    """For a model within noise of chance: the likely cause, read from the history, and one step."""
    loss = (hist.get("loss") or [None])[-1]
    acc = (hist.get("accuracy") or [None])[-1]
    guess = math.log(max(n_classes, 2))
    if loss is not None and (math.isnan(loss) or loss > 1.5 * guess):
        return (
            f"training diverged (training loss {loss:.3g}, guessing scores {guess:.2f}, "
            f"lr {cfg.lr:.4g})",
            "lower --lr (the learning rate per 256 images)",
        )
    if acc is not None and acc > chance["rate"] + 0.2:
        return (
            f"the model fits the training data ({acc:.2f}) but not the {chance['split']} split",
            "check that the splits are labelled and scaled alike, or regularise more",
        )
    return (
        f"the model did not learn in {len(hist.get('loss') or [])} epochs at lr {cfg.lr:.4g}",
        "train for more --epochs (or change the learning rate)",
    )


def _trial_row(cfg: ScratchConfig, hist, seconds: float, n_train: int, model) -> dict[str, Any]:
    """train-scratch is one trial: the same trials.csv as searches, so `runs`/`report` read it."""
    epochs = len(next(iter(hist.values()), [])) or None
    val = hist.get("val_accuracy") or hist.get("accuracy") or [None]
    hps = ("optimizer", "lr_per_256", "batch_size", "schedule", "image_size", "alpha")
    row = {
        "trial_id": "0",
        "status": "completed",
        "objective": val[-1],
        "epochs": epochs,
        "seconds": round(seconds, 3),
        "seconds_per_epoch": round(seconds / epochs, 3) if epochs else None,
        "samples_per_s": round(n_train * (epochs or 0) / max(seconds, 1e-9), 1),
        "params": int(model.count_params()),
        **{k: v[-1] for k, v in hist.items()},
        **{f"hp_{k}": getattr(cfg, k) for k in hps},
        "curve": [[i + 1, v] for i, v in enumerate(hist.get("val_accuracy", []))],
    }
    return row


class _names_bad_file:
    """Turn a decode error inside tf.data (which names no file) into a DataError naming it."""

    def __init__(self, paths: list[str]):
        self.paths = paths

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None:
            return False
        from automl_app.tf_env import tf

        if not isinstance(exc, tf().errors.OpError):
            return False
        culprit = find_undecodable(self.paths)
        if culprit is None:
            return False
        path, message = culprit
        raise DataError(
            f"{path}: the decoder failed during training ({message}); the file changed after "
            "the scan cached it as good. Fix or remove it and run again"
        ) from None
