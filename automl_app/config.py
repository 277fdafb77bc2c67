"""Run configuration: frozen dataclasses built from CLI options (and YAML files), validated early.

Validation here needs no TensorFlow, so bad input fails in well under a second with exit 2.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from automl_app.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

# The named dataset of every command that takes --dataset (search image, train-scratch): embedded,
# so it works offline with no files (data/datasets.py DEFAULT_DATASET says the same).
DEFAULT_DATASET = "digits"
# What a --space model records each epoch (models/ compile metrics=["accuracy"], plus AUC or
# macro-F1 when the objective names them, training/metrics.py): the objectives a KerasTuner
# search over a space can rank by. A --hypermodel compiles its own metrics.
SPACE_OBJECTIVES = (
    "val_accuracy", "val_loss", "val_auc", "val_macro_f1", "accuracy", "loss", "auc", "macro_f1",
)  # fmt: skip
# What AutoKeras ranks by: its own metrics (accuracy and loss), not AUC or F1.
AUTOKERAS_OBJECTIVES = ("val_accuracy", "val_loss", "accuracy", "loss")
CLASS_WEIGHTS = ("none", "balanced")
TTA_CHOICES = ("auto", "flip", "shift", "none")  # the exported model's test-time augmentation
# The least --time-budget of a (single-process) KerasTuner search: its schedule
# (engines/kerastuner/schedule.py) keeps at least RESERVE_MIN_S = 12 s for evaluation and export
# and at most a quarter of the budget, so below 4 x 12 s the export would eat the search's time.
MIN_TIME_BUDGET_S = 48.0
# Fewer training examples than this per class teach nothing (--max-samples; check_examples_per_class).
MIN_EXAMPLES_PER_CLASS = 2
# Option values, here so the CLI can validate without importing KerasTuner or AutoKeras.
TUNER_NAMES = ("random", "grid", "bayesian", "hyperband", "tpe")
PRUNER_NAMES = ("none", "median", "asha")
ENGINES = ("kerastuner", "autokeras")


@dataclass(frozen=True)
class DataConfig:
    """Where the data comes from: enough to rebuild the same splits later (select, reproduce)."""

    dataset: str = DEFAULT_DATASET
    data_dir: str | None = None  # an image folder (or a text folder for `search text`)
    image_size: int | None = None  # image folders: square size after resize_with_pad
    max_samples: int | None = None
    val_fraction: float = 0.1
    seed: int = 0
    # tables and text: a CSV or Parquet file, or (Python API) a pandas DataFrame, which the run
    # keeps as RUN_DIR/data.parquet and run.json names (data/tables.py save_frame)
    csv: str | os.PathLike[str] | pd.DataFrame | None = None
    target: str | None = None
    text_column: str | None = None
    column_types: dict[str, str] = field(default_factory=dict)
    spec: str | None = None  # search multi: the YAML spec of inputs and outputs


@dataclass(frozen=True)
class SpaceConfig:
    space: str | None = None  # name in search_spaces/ or a path; None → the model's default
    hypermodel: str | None = None  # path/to/file.py:build
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TunerConfig:
    tuner: str = "random"
    max_trials: int = 10
    epochs: int = 3
    objective: str = "val_accuracy"
    direction: str | None = None  # None → inferred from the objective's name
    seed: int = 0
    max_failures: int = 3
    time_budget: float | None = None  # seconds
    prune: str = "none"
    tpe_startup: int | None = None  # TPE's random start-up trials; None → TPEOracle's default
    min_epochs: int = 1
    enqueue: tuple[dict[str, Any], ...] = ()
    lr_find: bool = False
    keep_checkpoints: int = 1
    min_batch_size: int | None = None
    executions_per_trial: int = 1
    workers: int = 1
    oracle_bind: str = "127.0.0.1"  # 0.0.0.0 lets workers on other hosts join
    oracle_port: int | None = None
    defaults_first: bool = True  # the space's (or hypermodel's) defaults are the first trial
    early_stopping: int | None = None  # patience in epochs: Keras EarlyStopping on the objective
    class_weight: str = "none"  # or balanced: scikit-learn's weights from the train labels
    tta: str = "auto"  # test-time augmentation: auto (by validation), flip, shift, none


@dataclass(frozen=True)
class AutoKerasConfig:
    block: str = "auto"  # image family: auto, vanilla, resnet, xception, efficientnet
    task: str = "auto"  # auto, classification, regression


def default_run_dir(data: DataConfig, engine: str) -> Path:
    """runs/<data name>-<engine>-<timestamp>: one rule for every command."""
    if data.spec:
        name = Path(data.spec).stem
    elif isinstance(data.csv, (str, os.PathLike)) and str(data.csv):
        name = Path(data.csv).stem
    elif data.csv is not None:
        name = "dataframe"
    elif data.data_dir:
        name = Path(data.data_dir).resolve().name
    else:
        name = data.dataset
    return Path("runs") / f"{name}-{engine}-{time.strftime('%Y%m%d-%H%M%S')}"


@dataclass(frozen=True)
class SearchConfig:
    """Everything `automl search image|text|structured|multi` needs; also the Python API's
    argument."""

    data: DataConfig = field(default_factory=DataConfig)
    space: SpaceConfig = field(default_factory=SpaceConfig)
    tuner: TunerConfig = field(default_factory=TunerConfig)
    run_dir: str | None = None
    overwrite: bool = False
    resume: bool = False
    verbose: bool = False
    quiet: bool = False  # --quiet: only the summary, no per-trial or per-epoch progress
    task: str = "image"  # image, text, structured, multi
    mlflow: str | None = None  # tracking URI (file:, sqlite:, http:)
    storage: str | None = None  # --storage: an Optuna RDB URL the study is mirrored into too
    engine: str = "kerastuner"  # kerastuner or autokeras
    autokeras: AutoKerasConfig = field(default_factory=AutoKerasConfig)
    fail_below: float | None = None  # exit 1 when the test accuracy is below this (scripts, CI)

    def resolved_run_dir(self) -> Path:
        """--run-dir, or runs/<data>-<engine>-<timestamp>."""
        return Path(self.run_dir) if self.run_dir else default_run_dir(self.data, self.engine)

    def to_dict(self) -> dict[str, Any]:
        return asdict(replace(self, data=_plain(self.data)))


@dataclass(frozen=True)
class TrainConfig:
    """`automl train-scratch MODEL`: a recipe, single-value overrides and the data source."""

    model: str = "mobilenetv2"
    recipe: str = "mobilenetv2_scratch"
    overrides: dict[str, Any] = field(default_factory=dict)  # recipe keys, e.g. epochs, lr_per_256
    data: DataConfig = field(default_factory=DataConfig)
    run_dir: str | None = None
    overwrite: bool = False
    resume: bool = False
    verbose: bool = False
    quiet: bool = False  # --quiet: only the summary, no per-trial or per-epoch progress
    mlflow: str | None = None
    storage: str | None = None  # --storage: an Optuna RDB URL the study is mirrored into too
    scan_cache: str | None = None
    engine: str = "scratch"
    task: str = "image"
    early_stopping: int | None = None  # patience in epochs: EarlyStopping on val_accuracy
    class_weight: str = "none"  # or balanced (an alternative to the recipe's oversampling)
    fail_below: float | None = None  # exit 1 when the test accuracy is below this (scripts, CI)

    def resolved_run_dir(self) -> Path:
        return Path(self.run_dir) if self.run_dir else default_run_dir(self.data, self.engine)

    def to_dict(self) -> dict[str, Any]:
        return asdict(replace(self, data=_plain(self.data)))


def _plain(data: DataConfig) -> DataConfig:
    """JSON-ready: a path as str, a DataFrame as `<DataFrame ROWSxCOLS>` (the engines replace a
    frame with the path of the run's copy before run.json is written)."""
    csv = data.csv
    if csv is None or isinstance(csv, str):
        return data
    if isinstance(csv, os.PathLike):
        return replace(data, csv=os.fspath(csv))
    rows, cols = getattr(csv, "shape", ("?", "?"))
    return replace(data, csv=f"<DataFrame {rows}x{cols}>")


def _known(cls: type, d: dict[str, Any]) -> dict[str, Any]:
    """Only the fields `cls` has (run.json written by an older version may carry others)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


def search_config_from_dict(d: dict[str, Any]) -> SearchConfig:
    """Rebuild a SearchConfig from run.json's `config` (for workers, resume and reproduce)."""
    tuner = dict(d.get("tuner", {}))
    tuner["enqueue"] = tuple(tuner.get("enqueue") or ())
    nested = ("data", "space", "tuner", "autokeras")
    return SearchConfig(
        data=DataConfig(**_known(DataConfig, d.get("data", {}))),
        space=SpaceConfig(**_known(SpaceConfig, d.get("space", {}))),
        tuner=TunerConfig(**_known(TunerConfig, tuner)),
        autokeras=AutoKerasConfig(**_known(AutoKerasConfig, d.get("autokeras") or {})),
        **_known(SearchConfig, {k: v for k, v in d.items() if k not in nested}),
    )


def validate_search(cfg: SearchConfig) -> SearchConfig:
    """Checks that need no library import; raises UsageError (exit 2)."""
    if cfg.tuner.max_trials < 1:
        raise UsageError(f"--max-trials must be >= 1. Received: {cfg.tuner.max_trials}")
    if cfg.tuner.epochs < 1:
        raise UsageError(f"--epochs must be >= 1. Received: {cfg.tuner.epochs}")
    if cfg.tuner.tuner not in TUNER_NAMES:
        raise UsageError(
            f"--tuner must be one of {', '.join(TUNER_NAMES)}. Received: {cfg.tuner.tuner!r}"
        )
    t = cfg.tuner
    if t.prune not in PRUNER_NAMES:
        raise UsageError(f"--prune must be one of {', '.join(PRUNER_NAMES)}. Received: {t.prune!r}")
    if t.prune != "none" and t.tuner == "hyperband":
        raise UsageError(
            "--prune works with random, grid, bayesian and tpe; Hyperband prunes by "
            f"itself. Received: --tuner hyperband --prune {t.prune}"
        )
    if t.tpe_startup is not None and t.tpe_startup < 0:
        raise UsageError(f"--tpe-startup must be >= 0. Received: {t.tpe_startup}")
    if t.tpe_startup is not None and t.tuner != "tpe":
        raise UsageError(
            f"--tpe-startup applies to --tuner tpe only. Received: --tuner {t.tuner} "
            f"--tpe-startup {t.tpe_startup}"
        )
    if t.min_epochs < 1:
        raise UsageError(f"--min-epochs must be >= 1. Received: {t.min_epochs}")
    if t.time_budget is not None and t.time_budget <= 0:
        raise UsageError(f"--time-budget must be positive. Received: {t.time_budget:g}s")
    check_time_budget(cfg)
    check_objective(cfg)
    check_storage(cfg.storage)
    check_stopping_and_weights(t.early_stopping, t.class_weight)
    if t.tta not in TTA_CHOICES:
        raise UsageError(f"--tta must be one of {', '.join(TTA_CHOICES)}. Received: {t.tta!r}")
    if t.keep_checkpoints < 1:
        raise UsageError(f"--keep-checkpoints must be >= 1. Received: {t.keep_checkpoints}")
    if t.workers < 1:
        raise UsageError(f"--workers must be >= 1. Received: {t.workers}")
    if cfg.resume and cfg.overwrite:
        raise UsageError("--resume and --overwrite are exclusive: continue the run or replace it")
    if cfg.space.space and cfg.space.hypermodel:
        raise UsageError("--space and --hypermodel are exclusive: pick one")
    if cfg.data.max_samples is not None and cfg.data.max_samples < 1:
        raise UsageError(f"--max-samples must be >= 1. Received: {cfg.data.max_samples}")
    return cfg


def _scheduled(cfg: SearchConfig) -> bool:
    """A KerasTuner search in one process: the one whose --time-budget is a schedule."""
    t = cfg.tuner
    return (
        cfg.engine == "kerastuner"
        and t.workers == 1
        and t.oracle_bind
        in (
            "127.0.0.1",
            "localhost",
        )
    )


def check_time_budget(cfg: SearchConfig) -> None:
    """A budget too small for the schedule's phases is refused, saying the least (exit 2)."""
    seconds = cfg.tuner.time_budget
    if seconds is None or not _scheduled(cfg) or seconds >= MIN_TIME_BUDGET_S:
        return
    raise UsageError(
        f"--time-budget {seconds:g}s is too small: a search keeps at least "
        f"{MIN_TIME_BUDGET_S / 4:g}s of its budget for "
        f"evaluation and export, and at most a quarter, so the least budget is "
        f"{MIN_TIME_BUDGET_S:g}s (or leave --time-budget out and set --max-trials)"
    )


def check_objective(cfg: SearchConfig) -> None:
    """--objective must be a metric the searched models record; checked before any data loads,
    so a typo never costs a trial (a --hypermodel compiles its own metrics: not checked)."""
    name = cfg.tuner.objective
    if cfg.engine == "autokeras" and name not in AUTOKERAS_OBJECTIVES:
        raise UsageError(
            f"--objective must be one of {', '.join(AUTOKERAS_OBJECTIVES)} with --engine "
            f"autokeras (AutoKeras records no AUC or F1). Received: {name!r}"
        )
    if cfg.engine != "kerastuner" or cfg.space.hypermodel or name in SPACE_OBJECTIVES:
        return
    raise UsageError(
        f"--objective must be one of {', '.join(SPACE_OBJECTIVES)} (what a --space model "
        f"records). Received: {name!r}"
    )


STORAGE_BACKENDS = ("sqlite", "postgresql", "mysql", "oracle", "mssql")  # Optuna's RDBStorage


def check_storage(url: str | None) -> None:
    """--storage URL: an Optuna RDB storage, checked without connecting (parsed, its driver
    imported, a SQLite file's folder present) so a typo stops the command before data loads."""
    if url is None:
        return
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    allowed = (
        "an Optuna RDB storage URL: sqlite:///path.db, or postgresql://, mysql://… for a "
        "database server"
    )
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise UsageError(f"--storage must be {allowed}. Received: {url!r}") from None
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() not in STORAGE_BACKENDS:
        raise UsageError(
            f"--storage must use one of {', '.join(STORAGE_BACKENDS)} ({allowed}). "
            f"Received: {shown!r}"
        )
    try:
        parsed.get_dialect().import_dbapi()
    except NoSuchModuleError:
        raise UsageError(f"--storage: SQLAlchemy has no driver {parsed.drivername!r}. "
                         f"Received: {shown!r}") from None  # fmt: skip
    except ImportError as exc:
        raise UsageError(
            f"--storage {shown} needs the Python database driver {exc.name or exc!s}, "
            "which is not installed here; install it, or use sqlite:///path.db"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database or ""
        if db in ("", ":memory:") or db.startswith("file:"):
            raise UsageError(
                f"--storage sqlite needs a file: sqlite:///path.db. Received: {shown!r}"
            )
        if not Path(db).expanduser().resolve().parent.is_dir():
            raise UsageError(
                f"--storage {shown}: the folder {str(Path(db).parent)!r} does not exist"
            )


def check_stopping_and_weights(patience: int | None, class_weight: str) -> None:
    """--early-stopping PATIENCE (>= 1 epoch) and --class-weight (none, balanced); exit 2."""
    if patience is not None and (isinstance(patience, bool) or int(patience) < 1):
        raise UsageError(
            f"--early-stopping must be >= 1 (epochs of patience). Received: {patience}"
        )
    if class_weight not in CLASS_WEIGHTS:
        raise UsageError(
            f"--class-weight must be one of {', '.join(CLASS_WEIGHTS)}. Received: {class_weight!r}"
        )


def check_examples_per_class(n_train: int, num_classes: int, max_samples: int | None) -> None:
    """The data layer calls this once the class count is known: --max-samples that leaves fewer
    than MIN_EXAMPLES_PER_CLASS training examples per class is refused, saying the least."""
    if max_samples is None or num_classes < 2 or n_train >= MIN_EXAMPLES_PER_CLASS * num_classes:
        return
    least = MIN_EXAMPLES_PER_CLASS * num_classes
    raise UsageError(
        f"--max-samples {max_samples} is too few examples per class: {n_train} training examples "
        f"for {num_classes} classes; pass --max-samples {least} or more (at least "
        f"{MIN_EXAMPLES_PER_CLASS} per class)"
    )
