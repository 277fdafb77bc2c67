"""Every option two commands share, declared once: one decorator per group, as datasette does.

A command stacks the groups it needs (`@data_options()`, `@run_options()`, …) and gets the same
flag, type, default and help as every other command. Nothing here imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from automl_app.config import (
    CLASS_WEIGHTS,
    DEFAULT_DATASET,
    ENGINES,
    MIN_TIME_BUDGET_S,
    PRUNER_NAMES,
    SPACE_OBJECTIVES,
    TTA_CHOICES,
    TUNER_NAMES,
)
from automl_app.data.datasets import IMAGE_DATASETS
from automl_app.errors import UsageError

# Every command declares these itself: Click caches a command's help option the first time it is
# built, so a command first invoked on its own would otherwise lose "-h" for good.
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
AK_TUNERS = ("greedy", "random", "bayesian", "hyperband")
AK_BLOCKS = ("auto", "vanilla", "resnet", "xception", "efficientnet")
TASKS = ("auto", "classification", "regression")


def apply(options: list[Callable], fn: Callable) -> Callable:
    """Decorate with several click options, listed in --help in the given order."""
    for option in reversed(options):
        fn = option(fn)
    return fn


def group(*options: Callable) -> Callable[[Callable], Callable]:
    """A decorator applying `options` in order."""
    return lambda fn: apply(list(options), fn)


# --------------------------------------------------------------------------------- the options

dataset = click.option(
    "--dataset",
    type=click.Choice(IMAGE_DATASETS),
    default=None,
    help="Named dataset (TFDS, offline from $AUTOML_DATA_DIR/<name>/, or the embedded `digits`). "
    f"[default: {DEFAULT_DATASET}]",
)
data_dir = click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Your image folder DIR/<class>/* or DIR/{train,val,test}/<class>/* (scanned; bad files "
    "are skipped and named).",
)
image_size = click.option(
    "--image-size",
    type=click.IntRange(min=8, max=1024),
    default=None,
    help="Image folders: square size in pixels (resize with padding). [default: 64 for "
    "searches, the recipe's for train-scratch]",
)
max_samples = click.option(
    "--max-samples",
    type=click.IntRange(min=1),
    default=None,
    help="Use at most N training examples (quick runs).",
)
val_fraction = click.option(
    "--val-fraction",
    type=click.FloatRange(0.01, 0.5),
    default=0.1,
    show_default=True,
    help="Share of the training data held out (seeded) for validation.",
)
seed = click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")

max_trials = click.option("--max-trials", type=click.IntRange(min=1), default=10, show_default=True)
epochs = click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    help="Epochs per trial (hyperband: the most a trial gets). [default: 3]",
)
scratch_epochs = click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    help="Training epochs. [default: the recipe's]",
)
_BUDGET_HELP = (
    "Wall-clock budget, e.g. 90s, 10m, 2h, evaluation and export included: no trial starts that "
    "cannot finish"
)
time_budget = click.option(
    "--time-budget",
    metavar="DURATION",
    default=None,
    help=_BUDGET_HELP + "; a KerasTuner search explores on a subset of the training data, then "
    f"refits the best configuration on all of it for the time left (at least "
    f"{MIN_TIME_BUDGET_S:g}s).",
)
autokeras_time_budget = click.option(
    "--time-budget", metavar="DURATION", default=None, help=_BUDGET_HELP + "."
)
tuner = click.option(
    "--tuner",
    type=click.Choice((*TUNER_NAMES, "greedy")),
    default=None,
    help="KerasTuner: random, grid, bayesian, hyperband, or tpe (Optuna inside KerasTuner); "
    "AutoKeras: greedy, random, bayesian, hyperband. [default: random; autokeras: greedy]",
)
autokeras_tuner = click.option(
    "--tuner",
    type=click.Choice(AK_TUNERS),
    default=None,
    help="AutoKeras's tuner (greedy starts from its known-good configurations). [default: greedy]",
)
engine = click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default=None,
    help="Search with KerasTuner over --space, or with AutoKeras. [default: kerastuner for "
    "images, autokeras for text, tables and multi-input]",
)
# search text|structured|multi search with AutoKeras only: --engine autokeras is accepted (and
# --engine kerastuner refused with a reason) but not offered in their help.
autokeras_engine = click.option(
    "--engine", type=click.Choice(ENGINES), default=None, hidden=True, help="Always autokeras."
)
block = click.option(
    "--block",
    type=click.Choice(AK_BLOCKS),
    default=None,
    help="AutoKeras image family. [default: auto; without a GPU it starts with a vanilla CNN, "
    "not a ResNet50 from scratch]",
)
task = click.option(
    "--task",
    type=click.Choice(TASKS),
    default=None,
    help="AutoKeras: auto (regression for a target of real numbers), classification or "
    "regression (images: numeric class names). [default: auto]",
)
csv = click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="A table: CSV (any encoding, quoting) or Parquet (.parquet).",
)
target = click.option("--target", metavar="COL", default=None, help="The column to predict.")

run_dir = click.option(
    "--run-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where the run is written. [default: runs/<data>-<engine>-<timestamp>]",
)
overwrite = click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an existing run directory (only a run, with its run.json, or an empty folder).",
)
resume = click.option(
    "--resume",
    is_flag=True,
    help="Continue the run in --run-dir (after a crash or Ctrl-C, or with more --max-trials).",
)
mlflow = click.option(
    "--mlflow",
    metavar="URI",
    default=None,
    help="Log trials and the exported model to MLflow (file:, sqlite:, http:); needs "
    "pip install 'automl-app[mlflow]'.",
)
storage = click.option(
    "--storage",
    metavar="URL",
    default=None,
    help="Also write the study (named after the run) to this Optuna RDB storage: "
    "sqlite:///path.db or a database server's URL; RUN_DIR/optuna.journal is written as always.",
)
verbose = click.option(
    "--verbose", is_flag=True, help="Show library logs, progress bars and tracebacks."
)
quiet = click.option(
    "--quiet",
    is_flag=True,
    help="Print only the summary: no per-epoch, per-trial or between-trials progress.",
)
fail_below = click.option(
    "--fail-below",
    metavar="SCORE",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Exit 1 when the exported model's test accuracy is below SCORE (scripts, CI); the run "
    "is still written.",
)
run_dir_argument = click.argument("run_dir", type=click.Path(file_okay=False, path_type=str))


# ---------------------------------------------------------------------------------- the groups

image_data_options = group(dataset, data_dir, image_size, max_samples, val_fraction, seed)
table_data_options = group(max_samples, val_fraction, seed)
budget_options = group(max_trials, epochs, time_budget)
run_options = group(run_dir, overwrite, resume, mlflow, storage, fail_below, verbose, quiet)


def autokeras_command_options(*own: Callable) -> Callable[[Callable], Callable]:
    """What `search text|structured|multi` share after their own data options; `own` are the
    AutoKeras options that apply to that command (--task for text and tables, --block for
    multi-input), so its help offers nothing it would ignore."""
    return group(
        autokeras_engine,
        autokeras_tuner,
        *own,
        table_data_options,
        max_trials,
        epochs,
        autokeras_time_budget,
        run_options,
    )


def kerastuner_options(fn: Callable) -> Callable:
    """The options only a KerasTuner search has (search image)."""
    return apply(
        [
            click.option(
                "--space",
                metavar="NAME|FILE",
                default=None,
                help="Search space from search_spaces/ (fcn, cnn) or a YAML path. [default: cnn]",
            ),
            click.option(
                "--hypermodel",
                metavar="FILE.py:NAME",
                default=None,
                help="Your own KerasTuner build(hp) function or HyperModel instead of --space.",
            ),
            click.option(
                "--set",
                "sets",
                multiple=True,
                metavar="NAME=VALUE",
                help="Fix one hyperparameter of the space (repeatable).",
            ),
            click.option(
                "--objective",
                default="val_accuracy",
                show_default=True,
                help=f"What ranks the trials: {', '.join(SPACE_OBJECTIVES)} (--hypermodel: any "
                "metric your model compiles).",
            ),
            click.option(
                "--direction",
                type=click.Choice(["min", "max"]),
                default=None,
                help="Override the direction inferred from --objective (val_loss: min).",
            ),
            click.option(
                "--early-stopping",
                type=int,
                default=None,
                metavar="PATIENCE",
                help="Stop a trial after PATIENCE epochs without a better --objective and keep "
                "its best epoch's weights (Keras EarlyStopping).",
            ),
            click.option(
                "--tta",
                type=click.Choice(TTA_CHOICES),
                default="auto",
                show_default=True,
                help="Test-time augmentation of the exported model: flip averages it over the "
                "image and its mirror (2 forward passes per image), shift over the image and its "
                "four 1-pixel shifts (5 passes); auto keeps the one that validates best, or "
                "none.",
            ),
            click.option(
                "--class-weight",
                type=click.Choice(CLASS_WEIGHTS),
                default="none",
                show_default=True,
                help="balanced: weight the loss by inverse class frequency of the training "
                "split (unbalanced folders).",
            ),
            click.option(
                "--prune",
                type=click.Choice(PRUNER_NAMES),
                default="none",
                show_default=True,
                help="Stop bad trials early with Optuna's MedianPruner or SuccessiveHalving "
                "(asha).",
            ),
            click.option(
                "--tpe-startup",
                type=click.IntRange(min=0),
                default=None,
                help="--tuner tpe: random trials before TPE models the results (Optuna's "
                "n_startup_trials). [default: 10]",
            ),
            click.option(
                "--min-epochs",
                type=click.IntRange(min=1),
                default=1,
                show_default=True,
                help="Epochs every trial runs before it may be pruned.",
            ),
            click.option(
                "--enqueue",
                multiple=True,
                metavar="JSON|FILE",
                help="Configuration to run first, e.g. '{\"learning_rate\": 0.003}' (repeatable).",
            ),
            click.option(
                "--no-defaults-first",
                "defaults_first",
                flag_value=False,
                default=True,
                help="Do not run the space's (or hypermodel's) default configuration as the "
                "first trial, nor the space's portfolio after it.",
            ),
            click.option(
                "--lr-find",
                is_flag=True,
                help="LR range test on the default configuration; its suggestion runs first.",
            ),
            click.option(
                "--max-failures",
                type=click.IntRange(min=1),
                default=3,
                show_default=True,
                help="Stop after this many failed trials in a row.",
            ),
            click.option(
                "--keep-checkpoints",
                type=click.IntRange(min=1),
                default=1,
                show_default=True,
                help="Keep the weights of the best K trials only.",
            ),
            click.option(
                "--min-batch-size",
                type=click.IntRange(min=1),
                default=None,
                help="Drop smaller batch sizes from the space.",
            ),
            click.option(
                "--executions-per-trial",
                type=click.IntRange(min=1),
                default=1,
                show_default=True,
                help="Train each configuration N times and average (KerasTuner).",
            ),
            click.option(
                "--workers",
                type=click.IntRange(min=1),
                default=1,
                show_default=True,
                help="Parallel trials: a KerasTuner chief oracle and N worker processes.",
            ),
            click.option(
                "--oracle-bind",
                default="127.0.0.1",
                show_default=True,
                help="Address the chief oracle binds; another address (or 0.0.0.0) starts a "
                "chief that workers on other hosts can join, even with --workers 1.",
            ),
            click.option(
                "--oracle-port",
                type=click.IntRange(1, 65535),
                default=None,
                help="The chief oracle's port. [default: a free one]",
            ),
        ],
        fn,
    )


def check_run_and_source(opts: dict[str, Any]) -> None:
    """The two rules every run-making command shares (run_options + a data source)."""
    if opts.get("resume") and not opts.get("run_dir"):
        raise UsageError("--resume needs --run-dir (the run to continue)")
    if opts.get("dataset") and opts.get("data_dir"):
        raise UsageError("--dataset and --data-dir are exclusive: a named dataset or your folder")
