"""Click commands for the AutoKeras engine: `automl search text|structured|multi`, and the
`--engine/--block/--task/--data-dir` options that `automl search image` adds with
`add_engine_options`.

Thin layer: options → SearchConfig → one workflows_autokeras call → echo. Importing this module
imports neither TensorFlow nor AutoKeras, and not automl_app.cli (which attaches these commands):
`_run` and `_echo` are imported inside the command functions. `python -m automl_app.cli_autokeras`
runs the three commands stand-alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from automl_app.autokeras_tasks import BLOCKS, TASKS, TUNERS
from automl_app.errors import UsageError

ENGINES = ("kerastuner", "autokeras")
AUTO_TASKS = ("auto", "classification", "regression")


def _shared_options(fn: Callable) -> Callable:
    """Options with the meaning they have in `automl search image`."""
    options = [
        click.option(
            "--tuner",
            type=click.Choice(TUNERS),
            default="greedy",
            show_default=True,
            help="AutoKeras's tuner (greedy starts from its known-good configurations).",
        ),
        click.option("--max-trials", type=click.IntRange(min=1), default=10, show_default=True),
        click.option(
            "--epochs",
            type=click.IntRange(min=1),
            default=3,
            show_default=True,
            help="Epochs per trial (hyperband: the most epochs a trial gets).",
        ),
        click.option(
            "--time-budget",
            metavar="DURATION",
            default=None,
            help="Wall-clock budget, e.g. 90s, 10m, 2h: no trial starts past it, the running "
            "one stops at it, the best finished trial is still exported.",
        ),
        click.option(
            "--max-samples",
            type=click.IntRange(min=1),
            default=None,
            help="Use at most N training examples (quick runs).",
        ),
        click.option(
            "--val-fraction",
            type=click.FloatRange(0.01, 0.5),
            default=0.1,
            show_default=True,
            help="Share of the data held out (seeded) for validation; 20% more is held out "
            "for the test report.",
        ),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option(
            "--run-dir",
            type=click.Path(file_okay=False),
            default=None,
            help="Where the run is written. [default: runs/<data>-autokeras-<timestamp>]",
        ),
        click.option("--overwrite", is_flag=True, help="Replace an existing run directory."),
        click.option(
            "--resume",
            is_flag=True,
            help="Continue the run in --run-dir (after a crash, or with more --max-trials).",
        ),
        click.option(
            "--verbose", is_flag=True, help="Show library logs, progress bars and tracebacks."
        ),
    ]
    return _apply(options, fn)


def _apply(options: list[Callable], fn: Callable) -> Callable:
    """Decorate with several click options, listed in --help in the given order."""
    for option in reversed(options):
        fn = option(fn)
    return fn


def build_config(
    *,
    tuner: str,
    max_trials: int,
    epochs: int,
    time_budget: str | None,
    max_samples: int | None,
    val_fraction: float,
    seed: int,
    run_dir: str | None,
    overwrite: bool,
    resume: bool,
    verbose: bool,
    dataset: str | None = None,
    data_dir: str | None = None,
    task: str = "image",
):
    """The shared options → SearchConfig (what workflows_autokeras takes)."""
    from automl_app.config import DataConfig, SearchConfig, TunerConfig
    from automl_app.tuning.budget import parse_duration

    if resume and not run_dir:
        raise UsageError("--resume needs --run-dir (the run to continue)")
    data = DataConfig(max_samples=max_samples, val_fraction=val_fraction, seed=seed,
                      data_dir=data_dir, **({"dataset": dataset} if dataset else {}))  # fmt: skip
    return SearchConfig(
        data=data,
        tuner=TunerConfig(
            tuner=tuner,
            max_trials=max_trials,
            epochs=epochs,
            seed=seed,
            time_budget=parse_duration(time_budget) if time_budget else None,
        ),
        run_dir=run_dir,
        overwrite=overwrite,
        resume=resume,
        verbose=verbose,
        task=task,
    )


def _call(workflow: str, shared: dict[str, Any], kind: str, **kwargs: Any) -> None:
    """Build the config and run one workflows_autokeras function through cli._run."""
    from automl_app import workflows_autokeras
    from automl_app.cli_common import echo as _echo
    from automl_app.cli_common import run as _run

    def go():
        cfg = build_config(**shared, task=kind)
        return getattr(workflows_autokeras, workflow)(cfg, say=_echo, **kwargs)

    _run(go, shared["verbose"])


@click.command("text")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Text folder DIR/<class>/*.txt (one example per file; folder name = label).",
)
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="CSV with a text column and a target column.")  # fmt: skip
@click.option("--text-column", metavar="COL", default=None, help="The CSV's text column.")
@click.option("--target", metavar="COL", default=None, help="The CSV's column to predict.")
@click.option(
    "--task",
    type=click.Choice(AUTO_TASKS),
    default="auto",
    show_default=True,
    help="auto: regression for a target of real numbers, classification otherwise.",
)
@_shared_options
def search_text(data_dir, csv_path, text_column, target, task, **shared):
    """Search a text classifier/regressor with AutoKeras; the export takes raw strings."""
    _call("search_text", shared, "text", data_dir=data_dir, csv=csv_path,
          text_column=text_column, target=target, task=task)  # fmt: skip


@click.command("structured")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), required=True,
              help="CSV with a header row; every column but --target is a feature.")  # fmt: skip
@click.option("--target", metavar="COL", required=True, help="The column to predict.")
@click.option(
    "--column-type",
    "column_types",
    multiple=True,
    metavar="COL=numerical|categorical",
    help="Override an inferred column type (repeatable).",
)
@click.option(
    "--task",
    type=click.Choice(AUTO_TASKS),
    default="auto",
    show_default=True,
    help="auto: regression for a target of real numbers, classification otherwise.",
)
@_shared_options
def search_structured(csv_path, target, column_types, task, **shared):
    """Search a model for a CSV table with AutoKeras; the export takes one input per column."""
    from automl_app.cli_common import run as _run
    from automl_app.data.tabular import parse_column_types

    types = _run(lambda: parse_column_types(column_types), shared["verbose"])
    _call("search_structured", shared, "structured", csv=csv_path, target=target,
          column_types=types, task=task)  # fmt: skip


@click.command("multi")
@click.option("--spec", type=click.Path(dir_okay=False), required=True,
              help="YAML listing inputs (image/text/structured columns) and outputs.")  # fmt: skip
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="The data; overrides the spec's 'csv:'.")  # fmt: skip
@click.option(
    "--block",
    type=click.Choice(BLOCKS),
    default="auto",
    show_default=True,
    help="Image family for image inputs; auto without a GPU starts with a vanilla CNN.",
)
@_shared_options
def search_multi(spec, csv_path, block, **shared):
    """Search a multi-input/multi-output model with AutoKeras's IO API (ak.AutoModel)."""
    _call("search_multi", shared, "multi", spec=spec, csv=csv_path, block=block)


COMMANDS = (search_text, search_structured, search_multi)


# ---------------------------------------------------------------------------------------------
# for `automl search image`


def add_engine_options(cmd: Callable) -> Callable:
    """Decorator adding --engine, --block, --task and --data-dir to `search image`."""
    options = [
        click.option(
            "--engine",
            type=click.Choice(ENGINES),
            default="kerastuner",
            show_default=True,
            help="Search with KerasTuner over --space, or with AutoKeras's ImageClassifier.",
        ),
        click.option(
            "--block",
            type=click.Choice(BLOCKS),
            default=None,
            help="AutoKeras image family. [default: auto; without a GPU it starts with a "
            "vanilla CNN, not a ResNet50 from scratch]",
        ),
        click.option(
            "--task",
            type=click.Choice(TASKS),
            default=None,
            help="AutoKeras: classification, or regression on numeric class names. "
            "[default: classification]",
        ),
        click.option(
            "--data-dir",
            type=click.Path(file_okay=False),
            default=None,
            help="Image folder DIR/<class>/* or DIR/{train,val,test}/<class>/* "
            "(--engine autokeras).",
        ),
    ]
    return _apply(options, cmd)


def image_engine_tuner(
    engine: str,
    tuner: str | None,
    *,
    dataset: str | None = None,
    block: str | None = None,
    task: str | None = None,
    data_dir: str | None = None,
) -> str:
    """Check the engine-specific options of `search image`; return the tuner to use (default:
    random for KerasTuner, greedy for AutoKeras)."""
    if dataset and data_dir:
        raise UsageError("--dataset and --data-dir are exclusive: a named dataset or your folder")
    if engine == "kerastuner":
        used = [f for f, v in (("--block", block), ("--task", task)) if v]
        if used:
            raise UsageError(f"{', '.join(used)} need{'s' * (len(used) == 1)} --engine autokeras")
        if tuner == "greedy":
            raise UsageError("--tuner greedy needs --engine autokeras")
        return tuner or "random"
    if dataset and data_dir:
        raise UsageError("--dataset and --data-dir are exclusive: a named dataset or your folder")
    tuner = tuner or "greedy"
    if tuner not in TUNERS:
        raise UsageError(f"--tuner must be one of {', '.join(TUNERS)} with --engine autokeras. "
                         f"Received: --tuner {tuner!r}")  # fmt: skip
    return tuner


@click.group()
def _standalone() -> None:
    """AutoKeras searches (the commands `automl search` attaches)."""


for _cmd in COMMANDS:
    _standalone.add_command(_cmd)


if __name__ == "__main__":
    _standalone(prog_name="automl search")
