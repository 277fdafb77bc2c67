"""The `automl` command line: Click options → a config → one workflow call → printed lines.

Nothing here imports TensorFlow; `automl --help` stays fast. User errors print one line and exit 2
(usage) or 1 (runtime), with a traceback only under --verbose.
"""

from __future__ import annotations

import click

from automl_app import __version__
from automl_app.cli_autokeras import add_engine_options, image_engine_tuner
from automl_app.cli_common import echo, run
from automl_app.data.datasets import DEFAULT_DATASET, IMAGE_DATASETS
from automl_app.tuning import PRUNER_NAMES, TUNER_NAMES

_run = run
_echo = echo


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="automl")
def cli() -> None:
    """Keras-native AutoML: search a model for your data, train baselines, export for serving."""


@cli.group()
def search() -> None:
    """Search a model with KerasTuner (or AutoKeras) and export the best one."""


def _space_names() -> str:
    from automl_app import spaces

    return ", ".join(spaces.available())


@search.command("image")
@add_engine_options
@click.option(
    "--dataset",
    type=click.Choice(IMAGE_DATASETS),
    default=None,
    help=f"Named dataset (TFDS, or the embedded `digits`). [default: {DEFAULT_DATASET}]",
)
@click.option(
    "--space",
    "space",
    metavar="NAME|FILE",
    default=None,
    help="Search space from search_spaces/ (fcn, cnn) or a YAML path. [default: cnn]",
)
@click.option(
    "--hypermodel",
    metavar="FILE.py:NAME",
    default=None,
    help="Your own KerasTuner build(hp) function or HyperModel instead of --space.",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="NAME=VALUE",
    help="Fix one hyperparameter of the space (repeatable).",
)
@click.option(
    "--tuner",
    type=click.Choice((*TUNER_NAMES, "greedy")),
    default=None,
    help="KerasTuner's random/grid/bayesian/hyperband, or tpe (Optuna inside KerasTuner); "
    "AutoKeras: greedy/random/bayesian/hyperband. [default: random; autokeras: greedy]",
)
@click.option("--max-trials", type=click.IntRange(min=1), default=10, show_default=True)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Epochs per trial (hyperband: the most epochs a trial gets).",
)
@click.option(
    "--time-budget",
    metavar="DURATION",
    default=None,
    help="Wall-clock budget, e.g. 90s, 10m, 2h: no trial starts past it, the running "
    "one stops at it, the best finished trial is still exported.",
)
@click.option("--objective", default="val_accuracy", show_default=True)
@click.option(
    "--direction",
    type=click.Choice(["min", "max"]),
    default=None,
    help="Override the direction inferred from --objective (val_loss: min).",
)
@click.option(
    "--prune",
    type=click.Choice(PRUNER_NAMES),
    default="none",
    show_default=True,
    help="Stop bad trials early with Optuna's MedianPruner or SuccessiveHalving (asha).",
)
@click.option(
    "--tpe-startup",
    type=click.IntRange(min=0),
    default=None,
    help="--tuner tpe: random trials before TPE models the results (Optuna's n_startup_trials). "
    "[default: 10]",
)
@click.option(
    "--min-epochs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Epochs every trial runs before it may be pruned.",
)
@click.option(
    "--enqueue",
    multiple=True,
    metavar="JSON|FILE",
    help="Configuration to run first, e.g. '{\"learning_rate\": 0.003}' (repeatable).",
)
@click.option(
    "--lr-find",
    is_flag=True,
    help="LR range test on the default configuration; its suggestion runs first.",
)
@click.option(
    "--max-samples",
    type=click.IntRange(min=1),
    default=None,
    help="Use at most N training examples (quick runs).",
)
@click.option(
    "--val-fraction",
    type=click.FloatRange(0.01, 0.5),
    default=0.1,
    show_default=True,
    help="Share of train carved out (seeded) for validation.",
)
@click.option(
    "--max-failures",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Stop after this many failed trials in a row.",
)
@click.option(
    "--keep-checkpoints",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Keep the weights of the best K trials only.",
)
@click.option(
    "--min-batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Drop smaller batch sizes from the space.",
)
@click.option(
    "--executions-per-trial",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Train each configuration N times and average (KerasTuner).",
)
@click.option(
    "--mlflow",
    metavar="URI",
    default=None,
    help="Log trials and the exported model to MLflow (file:, sqlite:, http:); "
    "needs pip install 'automl-app[mlflow]'.",
)
@click.option(
    "--oracle-bind",
    default="127.0.0.1",
    show_default=True,
    help="With --workers: address the chief oracle binds (0.0.0.0 lets other hosts join).",
)
@click.option(
    "--oracle-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="With --workers: the chief oracle's port. [default: a free one]",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Parallel trials: a KerasTuner chief oracle and N worker processes.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where the run is written. [default: runs/<dataset>-<timestamp>]",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing run directory.")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the run in --run-dir (after a crash, or with more --max-trials).",
)
@click.option("--verbose", is_flag=True, help="Show library logs, progress bars and tracebacks.")
def search_image(
    engine,
    block,
    task,
    data_dir,
    dataset,
    space,
    hypermodel,
    sets,
    tuner,
    max_trials,
    epochs,
    time_budget,
    objective,
    direction,
    prune,
    tpe_startup,
    min_epochs,
    enqueue,
    lr_find,
    max_samples,
    val_fraction,
    max_failures,
    keep_checkpoints,
    min_batch_size,
    executions_per_trial,
    mlflow,
    oracle_bind,
    oracle_port,
    workers,
    seed,
    run_dir,
    overwrite,
    resume,
    verbose,
):
    """Search an image classifier (KerasTuner) for a named dataset."""
    from automl_app import spaces, workflows
    from automl_app.config import DataConfig, SearchConfig, SpaceConfig, TunerConfig
    from automl_app.errors import UsageError
    from automl_app.tuning.budget import parse_duration
    from automl_app.tuning.enqueue import parse_enqueue

    def go():
        if resume and not run_dir:
            raise UsageError("--resume needs --run-dir (the run to continue)")
        tuner_name = image_engine_tuner(
            engine, tuner, dataset=dataset, block=block, task=task, data_dir=data_dir
        )
        cfg = SearchConfig(
            data=DataConfig(
                dataset=dataset or DEFAULT_DATASET,
                data_dir=data_dir,
                max_samples=max_samples,
                val_fraction=val_fraction,
                seed=seed,
            ),
            space=SpaceConfig(space=space, hypermodel=hypermodel, overrides=spaces.parse_set(sets)),
            tuner=TunerConfig(
                tuner=tuner_name,
                max_trials=max_trials,
                epochs=epochs,
                objective=objective,
                direction=direction,
                seed=seed,
                max_failures=max_failures,
                time_budget=parse_duration(time_budget) if time_budget else None,
                prune=prune,
                tpe_startup=tpe_startup,
                min_epochs=min_epochs,
                enqueue=tuple(parse_enqueue(enqueue)),
                lr_find=lr_find,
                keep_checkpoints=keep_checkpoints,
                min_batch_size=min_batch_size,
                executions_per_trial=executions_per_trial,
                workers=workers,
                oracle_bind=oracle_bind,
                oracle_port=oracle_port,
            ),
            run_dir=run_dir,
            overwrite=overwrite,
            resume=resume,
            verbose=verbose,
            mlflow=mlflow,
        )
        if engine == "autokeras":
            from automl_app import workflows_autokeras

            return workflows_autokeras.search_image_autokeras(
                cfg, block=block or "auto", task=task or "classification", say=_echo
            )
        return workflows.search(cfg, say=_echo)

    _run(go, verbose)


@cli.command("export")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--out", required=True, type=click.Path(), help="Directory for the SavedModel.")
@click.option("--verbose", is_flag=True)
def export_cmd(run_dir, out, verbose):
    """Re-export a finished run's best model as a SavedModel (checked by reloading)."""
    from automl_app import workflows
    from automl_app.tf_env import set_verbose

    set_verbose(verbose)
    _run(lambda: workflows.export_run(run_dir, out, say=_echo), verbose)


@cli.command("worker")
@click.option(
    "--run-dir",
    required=True,
    type=click.Path(file_okay=False),
    help="The run directory the chief was started with (shared disk across hosts).",
)
@click.option("--oracle", required=True, metavar="HOST:PORT", help="The chief oracle's address.")
@click.option(
    "--tuner-id", default=None, help="chief, or a worker id (default: tuner-<hostname>-<pid>)."
)
@click.option("--verbose", is_flag=True)
def worker_cmd(run_dir, oracle, tuner_id, verbose):
    """Join a parallel search as one of its roles (KerasTuner's distributed mode)."""
    import os
    import socket

    from automl_app import workflows
    from automl_app.tf_env import set_verbose
    from automl_app.tuning.workers import parse_oracle

    def go():
        host, port = parse_oracle(oracle)
        os.environ["KERASTUNER_ORACLE_IP"] = host
        os.environ["KERASTUNER_ORACLE_PORT"] = str(port)
        os.environ["KERASTUNER_TUNER_ID"] = (
            tuner_id
            or os.environ.get("KERASTUNER_TUNER_ID")
            or f"tuner-{socket.gethostname()}-{os.getpid()}"
        )
        set_verbose(verbose)
        workflows.worker(run_dir, say=_echo)

    _run(go, verbose)


@cli.command("spaces")
def spaces_cmd():
    """List the shipped search spaces."""
    from automl_app import spaces
    from automl_app.resources import find_named_file

    for name in spaces.available():
        click.echo(f"{name}\t{find_named_file('search_spaces', name)}")


def _register_commands() -> None:
    """Commands that live in their own modules (still no TensorFlow import here)."""
    from automl_app.cli_experiments import COMMANDS as experiment_commands
    from automl_app.cli_images import scan_images_cmd, train_scratch_cmd

    cli.add_command(scan_images_cmd)
    cli.add_command(train_scratch_cmd)
    for command in experiment_commands:
        cli.add_command(command)
    from automl_app.cli_autokeras import COMMANDS as autokeras_commands

    for command in autokeras_commands:
        search.add_command(command)


_register_commands()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="automl")


if __name__ == "__main__":
    main()
