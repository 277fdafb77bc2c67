"""Train one recipe from scratch (no search): the `train-scratch` runner and its Python API.

A recipe (pipelines/*.yaml) fixes the data pipeline, the model and the optimisation; CLI flags
override single values. The run directory gets run.json, checkpoints/ (every epoch, for
--resume), tensorboard/, report/ and best/ (a SavedModel whose `serve` takes uint8 images of any
size, with resize-with-pad and scaling inside, so the export and the training agree).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from automl_app import runs
from automl_app.errors import ConfigError, DataError, UsageError

MODELS = ("mobilenetv2",)
OPTIMIZERS = ("sgd", "adam", "rmsprop")
MIXED_PRECISION = ("auto", "on", "off")
DISTRIBUTE = ("auto", "none", "mirrored")
BALANCE = ("none", "oversample")
CHECKPOINT_DIR = "checkpoints"

# Recipe sections → the ScratchConfig fields they may set.
SECTIONS = {
    "model": ("name", "image_size", "alpha", "dropout", "bn_momentum"),
    "data": (
        "scale",
        "cache",
        "balance",
        "val_fraction",
        "test_fraction",
        "shuffle_buffer",
        "max_pixels",
        "max_samples",
    ),
    "augment": ("flip", "rotation", "crop", "brightness", "contrast", "jpeg_quality"),
    "train": (
        "batch_size",
        "epochs",
        "optimizer",
        "lr_per_256",
        "momentum",
        "nesterov",
        "schedule",
        "warmup_epochs",
        "label_smoothing",
        "weight_decay",
        "mixed_precision",
        "distribute",
        "seed",
    ),
}


@dataclass(frozen=True)
class ScratchConfig:
    """Everything one from-scratch run needs; defaults are the MobileNetV2 paper's recipe."""

    name: str = "mobilenetv2"
    image_size: int = 224
    alpha: float = 1.0
    dropout: float = 0.2
    bn_momentum: float = 0.999
    scale: str = "-1_1"
    cache: str | None = None
    balance: str = "none"
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    shuffle_buffer: int = 2048
    max_pixels: int = 50_000_000
    max_samples: int | None = None
    flip: bool = True
    rotation: float = 0.0
    crop: tuple[float, float] | None = (0.35, 1.0)
    brightness: float = 0.0
    contrast: float = 0.0
    jpeg_quality: tuple[int, int] | None = (70, 100)
    batch_size: int = 192
    epochs: int = 150
    optimizer: str = "sgd"
    lr_per_256: float = 0.045
    momentum: float = 0.9
    nesterov: bool = True
    schedule: str = "cosine"
    warmup_epochs: float = 5.0
    label_smoothing: float = 0.1
    weight_decay: float = 4e-5
    mixed_precision: str = "auto"
    distribute: str = "auto"
    seed: int = 0
    recipe: str | None = None

    @property
    def lr(self) -> float:
        """The learning rate actually used: lr_per_256 scaled linearly to the batch size."""
        return self.lr_per_256 * self.batch_size / 256.0


def recipe_dirs() -> list[Path]:
    """Where recipe names are looked up: the checkout's pipelines/, then the wheel's copy."""
    here = Path(__file__).resolve().parents[1]
    return [here.parent / "pipelines", here / "pipelines"]


def resolve_recipe(recipe: str) -> Path:
    """`--recipe NAME|FILE`: an existing file path, or pipelines/NAME.yaml."""
    path = Path(recipe).expanduser()
    if path.is_file():
        return path
    if os.sep not in recipe and not recipe.endswith((".yaml", ".yml")):
        for folder in recipe_dirs():
            candidate = folder / f"{recipe}.yaml"
            if candidate.is_file():
                return candidate
    known = sorted({p.stem for d in recipe_dirs() if d.is_dir() for p in d.glob("*.yaml")})
    raise UsageError(
        f"--recipe {recipe!r} is neither a file nor a recipe name; names: {', '.join(known)}"
    )


def read_recipe(path: str | os.PathLike) -> dict[str, Any]:
    """Flatten a recipe's sections into ScratchConfig fields; unknown keys name file and key."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a recipe is a mapping of sections {', '.join(SECTIONS)}")
    flat: dict[str, Any] = {}
    for section, values in raw.items():
        if section not in SECTIONS:
            raise ConfigError(
                f"{path}: unknown section {section!r}; allowed: {', '.join(SECTIONS)}"
            )
        for key, value in (values or {}).items():
            if key not in SECTIONS[section]:
                raise ConfigError(
                    f"{path}: unknown key {section}.{key}; allowed in {section}: "
                    f"{', '.join(SECTIONS[section])}"
                )
            flat[key] = value
    return flat


def _check(cfg: ScratchConfig, origin: Callable[[str], str]) -> None:
    """Validate values; `origin(field)` names where a value came from for the message."""
    from automl_app.data.stages import SCALES

    def fail(key: str, allowed: str) -> None:
        value = getattr(cfg, key)
        where = origin(key)
        cls = UsageError if where.startswith("--") else ConfigError
        raise cls(f"{where} must be {allowed}. Received: {value!r}")

    def pair(v: Any) -> bool:
        return v is None or (isinstance(v, (list, tuple)) and len(v) == 2)

    choices = {
        "name": MODELS,
        "scale": SCALES,
        "balance": BALANCE,
        "optimizer": OPTIMIZERS,
        "schedule": ("cosine", "step", "exponential", "constant"),
        "mixed_precision": MIXED_PRECISION,
        "distribute": DISTRIBUTE,
    }
    for key, allowed in choices.items():
        if getattr(cfg, key) not in allowed:
            fail(key, f"one of {', '.join(allowed)}")
    positive_ints = ("image_size", "batch_size", "epochs", "shuffle_buffer", "max_pixels")
    for key in positive_ints:
        if not isinstance(getattr(cfg, key), int) or getattr(cfg, key) < 1:
            fail(key, "a positive integer")
    if cfg.image_size < 32:
        fail("image_size", "at least 32")
    if cfg.max_samples is not None and (
        not isinstance(cfg.max_samples, int) or cfg.max_samples < 1
    ):
        fail("max_samples", "a positive integer")
    if not cfg.alpha > 0:
        fail("alpha", "> 0")
    if not cfg.lr_per_256 > 0:
        fail("lr_per_256", "> 0")
    for key in ("dropout", "momentum", "label_smoothing", "bn_momentum"):
        if not 0 <= getattr(cfg, key) < 1:
            fail(key, "in [0, 1)")
    for key in ("weight_decay", "warmup_epochs", "rotation", "brightness", "contrast"):
        if not getattr(cfg, key) >= 0:
            fail(key, ">= 0")
    if not pair(cfg.crop) or (cfg.crop and not 0 < cfg.crop[0] <= cfg.crop[1] <= 1):
        fail("crop", "null or [min_area, max_area] with 0 < min <= max <= 1")
    if not pair(cfg.jpeg_quality) or (
        cfg.jpeg_quality and not 0 <= cfg.jpeg_quality[0] < cfg.jpeg_quality[1] <= 100
    ):
        fail("jpeg_quality", "null or [min, max] with 0 <= min < max <= 100")


OPTION_NAMES = {
    "image_size": "--image-size",
    "alpha": "--alpha",
    "batch_size": "--batch-size",
    "epochs": "--epochs",
    "optimizer": "--optimizer",
    "lr_per_256": "--lr",
    "momentum": "--momentum",
    "nesterov": "--nesterov",
    "schedule": "--schedule",
    "warmup_epochs": "--warmup-epochs",
    "label_smoothing": "--label-smoothing",
    "weight_decay": "--weight-decay",
    "mixed_precision": "--mixed-precision",
    "distribute": "--distribute",
    "max_samples": "--max-samples",
    "seed": "--seed",
    "scale": "--scale",
    "cache": "--cache",
}


def load_config(
    recipe: str | None = None, overrides: Mapping[str, Any] | None = None
) -> ScratchConfig:
    """Recipe values, then CLI overrides (None = not given); checked, with errors naming origin."""
    values: dict[str, Any] = {}
    path = None
    if recipe:
        path = resolve_recipe(recipe)
        values.update(read_recipe(path))
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = set(given) - {f.name for f in fields(ScratchConfig)}
    if unknown:
        raise UsageError(f"unknown override(s) {sorted(unknown)}")
    values.update(given)
    for key in ("crop", "jpeg_quality"):
        if isinstance(values.get(key), list):
            values[key] = tuple(values[key])
    for key in (
        "alpha",
        "dropout",
        "bn_momentum",
        "lr_per_256",
        "momentum",
        "warmup_epochs",
        "weight_decay",
    ):
        if isinstance(values.get(key), int) and not isinstance(values.get(key), bool):
            values[key] = float(values[key])
    cfg = replace(ScratchConfig(), **values, recipe=str(path) if path else None)

    def origin(key: str) -> str:
        if key in given:
            return OPTION_NAMES.get(key, key)
        section = next((s for s, keys in SECTIONS.items() if key in keys), "")
        return f"{path}: {section}.{key}" if path else key

    _check(cfg, origin)
    return cfg


# ----------------------------------------------------------------------------- data


@dataclass
class SplitData:
    """The file lists per split after scan, split, leakage removal and balancing."""

    class_names: list[str]
    train: list[Any]
    val: list[Any]
    test: list[Any]
    scan: Any
    leakage_removed: list[str]
    layout: str


def prepare_data(
    cfg: ScratchConfig, data_dir: str | os.PathLike, *, cache_path: str | os.PathLike | None
) -> SplitData:
    """List the folder, scan it (cached), drop bad files, split by content, balance."""
    from automl_app.data import folders, scan

    listing = folders.list_folder(data_dir)
    cache_path = cache_path or scan.default_cache_path(data_dir)
    result = scan.scan(
        [f.path for f in listing.files],
        root=data_dir,
        max_pixels=cfg.max_pixels,
        cache_path=cache_path,
    )
    by_path = {r.path: r for r in result.files}
    good = [f for f in listing.files if by_path[f.path].ok]
    hashes = {f.path: by_path[f.path].sha256 for f in good}
    split = folders.assign_splits(
        good, hashes, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction
    )
    train = [f for f in split if f.split == "train"]
    train_hashes = {hashes[f.path] for f in train}
    leaked = [f.path for f in split if f.split != "train" and hashes[f.path] in train_hashes]
    val = [f for f in split if f.split == "val" and f.path not in leaked]
    test = [f for f in split if f.split == "test" and f.path not in leaked]
    if cfg.max_samples:
        train = sorted(train, key=lambda f: hashes[f.path])[: cfg.max_samples]
        train = sorted(train, key=lambda f: f.path)
    if not train:
        raise DataError(f"no usable training images under {str(data_dir)!r} after the scan")
    if cfg.balance == "oversample":
        train = folders.oversample(train)
    return SplitData(listing.class_names, train, val, test, result, leaked, listing.layout)


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


# ------------------------------------------------------------------------- training


def _strategy(cfg: ScratchConfig, t: Any) -> tuple[Any, str]:
    gpus = t.config.list_physical_devices("GPU")
    if cfg.distribute == "mirrored" or (cfg.distribute == "auto" and len(gpus) > 1):
        return t.distribute.MirroredStrategy(), "mirrored"
    return t.distribute.get_strategy(), "none"


def _use_mixed_precision(cfg: ScratchConfig, t: Any) -> bool:
    if cfg.mixed_precision == "auto":
        return bool(t.config.list_physical_devices("GPU"))
    return cfg.mixed_precision == "on"


def _make_optimizer(cfg: ScratchConfig, schedule: Any):
    import keras

    common = {"learning_rate": schedule, "weight_decay": cfg.weight_decay or None}
    if cfg.optimizer == "sgd":
        opt = keras.optimizers.SGD(momentum=cfg.momentum, nesterov=cfg.nesterov, **common)
    elif cfg.optimizer == "rmsprop":
        opt = keras.optimizers.RMSprop(momentum=cfg.momentum, **common)
    else:
        opt = keras.optimizers.Adam(**common)
    if cfg.weight_decay:
        opt.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return opt


def _schedule(cfg: ScratchConfig, steps_per_epoch: int):
    from automl_app.training.schedules import WarmupDecay

    total = max(cfg.epochs * steps_per_epoch, 1)
    warmup = min(int(round(cfg.warmup_epochs * steps_per_epoch)), total)
    return WarmupDecay(cfg.lr, total_steps=total, warmup_steps=warmup, schedule=cfg.schedule)


def _sample_raw(files: list[Any], limit: int = 4):
    """A few decoded uint8 images of one shape, for the export's reload-and-compare check."""
    import numpy as np

    from automl_app.data import stages
    from automl_app.tf_env import tf

    t = tf()
    groups: dict[tuple, list] = {}
    for f in files[:32]:
        img = stages.decode(stages.read(t.constant(f.path))).numpy()
        groups.setdefault(img.shape, []).append(img)
    best = max(groups.values(), key=len)
    return np.stack(best[:limit])


def train_scratch(
    cfg: ScratchConfig,
    data_dir: str | os.PathLike,
    run_dir: str | os.PathLike,
    *,
    resume: bool = False,
    overwrite: bool = False,
    scan_cache: str | os.PathLike | None = None,
    log: Callable[[str], None] = print,
    verbose: bool = False,
) -> dict[str, Any]:
    """Scan, split, train, evaluate and export; return the final run.json manifest."""
    started = time.perf_counter()
    run_dir = runs.prepare_run_dir(run_dir, overwrite=overwrite, resume=resume)
    ckpt_dir = run_dir / CHECKPOINT_DIR
    state_path = ckpt_dir / "state.json"
    if resume and not state_path.is_file():
        raise UsageError(f"--resume given but {str(run_dir)!r} has no checkpoint yet")

    data = prepare_data(cfg, data_dir, cache_path=scan_cache)
    eval_name, eval_files = next(
        (n, fs) for n, fs in (("test", data.test), ("val", data.val), ("train", data.train)) if fs
    )
    record = {
        "data": {
            "data_dir": str(data_dir),
            "layout": data.layout,
            "classes": data.class_names,
            "counts": {
                "train": len(data.train),
                "val": len(data.val),
                "test": len(data.test),
            },
            "scan": data.scan.summary(),
            "evaluated_on": eval_name,
        },
        "scale": cfg.scale,
        "image_size": cfg.image_size,
        "blacklisted": [{"path": f.path, "reason": f.reason} for f in data.scan.bad],
        "duplicates": [asdict(d) for d in data.scan.duplicates],
        "leakage_removed": data.leakage_removed,
        "lr_used": cfg.lr,
    }
    if resume:
        runs.update(run_dir, status="running", config=asdict(cfg), **record)
    else:
        runs.start(run_dir, "train-scratch", asdict(cfg), **record)
    log(f"data: {data.scan.summary()}")
    try:
        result = _fit_evaluate_export(cfg, data, run_dir, eval_files, resume, log, verbose)
    except BaseException as exc:
        runs.update(run_dir, status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    return runs.update(
        run_dir, status="completed", wall_seconds=round(time.perf_counter() - started, 2), **result
    )


def _fit_evaluate_export(cfg, data, run_dir, eval_files, resume, log, verbose) -> dict[str, Any]:
    import numpy as np

    from automl_app import evaluate, export
    from automl_app.data import stages
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
        n_classes = len(data.class_names)
        train_paths, train_labels = _arrays(data.train, data.class_names)
        augment = stages.Augment(
            flip=cfg.flip,
            rotation=cfg.rotation,
            crop=cfg.crop,
            brightness=cfg.brightness,
            contrast=cfg.contrast,
            jpeg_quality=cfg.jpeg_quality,
        )
        common = {"num_classes": n_classes, "image_size": cfg.image_size, "mode": cfg.scale}
        train_ds = stages.build(
            train_paths,
            train_labels,
            batch_size=cfg.batch_size,
            training=True,
            augment=augment,
            cache_to=cfg.cache,
            shuffle_buffer=cfg.shuffle_buffer,
            seed=cfg.seed,
            **common,
        )
        val_ds = None
        if data.val:
            vp, vl = _arrays(data.val, data.class_names)
            val_ds = stages.build(vp, vl, batch_size=cfg.batch_size, training=False, **common)
        steps = math.ceil(len(train_paths) / cfg.batch_size)
        schedule = _schedule(cfg, steps)
        ckpt_dir = run_dir / CHECKPOINT_DIR
        ckpt_dir.mkdir(exist_ok=True)
        initial_epoch = 0
        with strategy.scope():
            if resume:
                state = json.loads((ckpt_dir / "state.json").read_text())
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
            _epoch_log(cfg.epochs, len(train_paths), log),
        ]
        log(
            f"training {cfg.name} alpha={cfg.alpha} at {cfg.image_size}px on "
            f"{len(train_paths)} images ({n_classes} classes), batch {cfg.batch_size}, "
            f"lr {cfg.lr:.4g} ({cfg.lr_per_256:g} per 256), scale {cfg.scale}, "
            f"mixed precision {'on' if mixed else 'off'}, distribute {dist_name}"
        )
        fit_started = time.perf_counter()
        all_paths = train_paths + [f.path for f in data.val + data.test]
        with _names_bad_file(all_paths):
            if initial_epoch < cfg.epochs:
                history = model.fit(
                    train_ds,
                    validation_data=val_ds,
                    epochs=cfg.epochs,
                    initial_epoch=initial_epoch,
                    callbacks=callbacks,
                    verbose=2 if verbose else 0,
                )
                hist = {k: [float(x) for x in v] for k, v in history.history.items()}
            else:
                hist = {}
            fit_seconds = time.perf_counter() - fit_started
            ep, el = _arrays(eval_files, data.class_names)
            eval_ds = stages.build(ep, el, batch_size=cfg.batch_size, training=False, **common)
            probs = model.predict(eval_ds, verbose=0)
        metrics = evaluate.write_classification_report(
            np.asarray(el), probs, data.class_names, run_dir / "report"
        )
        log(
            f"{data_name(eval_files, data)} accuracy {metrics['accuracy']:.4f} "
            f"(loss {metrics['loss']:.4f}, macro F1 {metrics['macro_f1']:.4f}) on "
            f"{metrics['examples']} images"
        )
        spec = export.ServingSpec(
            shape=(None, None, None, 3),
            dtype="uint8",
            preprocess=stages.serving_preprocess(cfg.image_size, cfg.scale),
            description=(
                f"uint8 images [N,H,W,3] of any size -> float32 probabilities [N,{n_classes}]; "
                f"resize_with_pad to {cfg.image_size} and scaling {cfg.scale} inside"
            ),
            extra={
                "image_size": cfg.image_size,
                "scale": cfg.scale,
                "resize": "resize_with_pad",
                "channels": 3,
            },
        )
        export_info = export.export_best(
            model,
            spec,
            _sample_raw(eval_files),
            run_dir / "best",
            labels=data.class_names,
            card={
                "model": cfg.name,
                "alpha": cfg.alpha,
                "image_size": cfg.image_size,
                "scale": cfg.scale,
                "test_metrics": metrics,
                "evaluated_on": data_name(eval_files, data),
            },
        )
        log(f"exported {run_dir / 'best' / 'saved_model'}")
        return {
            "history": hist,
            "fit_seconds": round(fit_seconds, 2),
            "images_per_second": round(
                (cfg.epochs - initial_epoch) * len(train_paths) / max(fit_seconds, 1e-9), 2
            ),
            "mixed_precision": mixed,
            "distribute": dist_name,
            "resumed_from_epoch": initial_epoch if resume else None,
            "test_metrics": metrics,
            "export": export_info,
        }
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def data_name(files: list[Any], data: SplitData) -> str:
    """Which split `files` is, for messages."""
    return "test" if files is data.test else "val" if files is data.val else "train"


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


def _epoch_checkpoint(ckpt_dir: Path):
    """Save the whole model (optimizer included) after every epoch, atomically, for --resume."""
    import keras

    class EpochCheckpoint(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            tmp = ckpt_dir / ".last.tmp.keras"
            self.model.save(tmp)
            os.replace(tmp, ckpt_dir / "last.keras")
            runs.atomic_write_json(ckpt_dir / "state.json", {"epoch": epoch + 1})

    return EpochCheckpoint()


def _epoch_log(epochs: int, n_images: int, log: Callable[[str], None]):
    """One line per epoch: metrics, learning rate, seconds and images/s."""
    import keras

    class EpochLog(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            secs = time.perf_counter() - self.t0
            shown = " ".join(f"{k} {float(v):.4f}" for k, v in (logs or {}).items())
            lr = float(self.model.optimizer.learning_rate)
            log(
                f"epoch {epoch + 1}/{epochs}: {shown} lr {lr:.4g} "
                f"({secs:.1f} s, {n_images / max(secs, 1e-9):.0f} img/s)"
            )

    return EpochLog()
