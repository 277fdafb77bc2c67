"""Click commands for experiment management: runs, report, select, evaluate, reproduce, tensorboard.

Thin layer over automl_app.experiments / automl_app.report; nothing imports TensorFlow at import
time. cli.py registers these with `cli.add_command(...)`; `python -m automl_app.cli_experiments`
runs them stand-alone.
"""

from __future__ import annotations

import sys
import time
import webbrowser
from pathlib import Path

import click

from automl_app.cli_common import handles_errors


def _quiet(verbose: bool) -> None:
    from automl_app.tf_env import set_verbose

    set_verbose(verbose)


_verbose = click.option("--verbose", is_flag=True, help="Show library logs and tracebacks.")
_run_dir = click.argument("run_dir", type=click.Path(file_okay=False, path_type=str))


@click.command("runs")
@click.argument("root", required=False, default="runs", type=click.Path(path_type=str))
@handles_errors
def runs_cmd(root: str) -> None:
    """List the runs under ROOT (default: runs/): kind, data, trials, best, test accuracy."""
    from automl_app import experiments

    rows = experiments.list_runs(root)
    if not rows:
        click.echo(f"no runs under {root}")
        return
    click.echo(experiments.format_runs(rows))


@click.command("report")
@_run_dir
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--open", "open_", is_flag=True, help="Open report/index.html in a browser.")
@_verbose
@handles_errors
def report_cmd(run_dir: str, top: int, open_: bool, verbose: bool) -> None:
    """Print the leaderboard and write RUN_DIR/report/ (plots and one self-contained index.html)."""
    _quiet(verbose)
    from automl_app import report

    info = report.write_report(run_dir, say=click.echo, top=top)
    if open_:
        uri = Path(info["index"]).resolve().as_uri()
        if not webbrowser.open(uri):
            click.echo(f"no browser available; open {uri}")


@click.command("select")
@_run_dir
@click.option(
    "--where",
    default=None,
    metavar="COND",
    help='Condition on trials.csv columns, e.g. "val_accuracy>=0.90, params<1e6".',
)
@click.option(
    "--by",
    default="params",
    show_default=True,
    metavar="COLUMN",
    help="Column to minimise: latency_ms, params, seconds_per_epoch, ...",
)
@_verbose
@handles_errors
def select_cmd(run_dir: str, where: str | None, by: str, verbose: bool) -> None:
    """Export to RUN_DIR/selected/ the trial with the lowest --by among those meeting --where."""
    _quiet(verbose)
    from automl_app import experiments

    experiments.select(run_dir, where=where, by=by, say=click.echo)


@click.command("evaluate")
@click.argument("source", metavar="RUN_DIR|SAVED_MODEL", type=click.Path(path_type=str))
@click.option("--dataset", default=None, help="Named dataset [default: the run's own].")
@click.option(
    "--data-dir",
    default=None,
    type=click.Path(file_okay=False, path_type=str),
    help="Image folder DIR/<class>/* or DIR/{train,val,test}/<class>/*.",
)
@click.option(
    "--split",
    type=click.Choice(["train", "val", "test", "all"]),
    default="test",
    show_default=True,
)
@click.option("--out", default=None, type=click.Path(path_type=str), help="Report folder.")
@_verbose
@handles_errors
def evaluate_cmd(
    source: str, dataset: str | None, data_dir: str | None, split: str, out: str | None, verbose
) -> None:
    """Evaluate an exported SavedModel through its `serve` endpoint; write the sklearn report."""
    _quiet(verbose)
    from automl_app import experiments

    experiments.evaluate_export(
        source, dataset=dataset, data_dir=data_dir, split=split, say=click.echo, out=out
    )


@click.command("reproduce")
@_run_dir
@click.option("--top", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--seeds", type=click.IntRange(min=2), default=3, show_default=True)
@click.option(
    "--trials",
    default=None,
    metavar="ID,ID",
    help="Reproduce these trial ids instead of the top ones.",
)
@_verbose
@handles_errors
def reproduce_cmd(run_dir: str, top: int, seeds: int, trials: str | None, verbose: bool) -> None:
    """Retrain the top configurations with several seeds; mean ± std, 95% interval, Welch's t."""
    _quiet(verbose)
    from automl_app import experiments

    ids = [t.strip() for t in trials.split(",") if t.strip()] if trials else None
    experiments.reproduce(run_dir, top=top, seeds=seeds, say=click.echo, trials=ids)


@click.command("tensorboard")
@_run_dir
@click.option("--port", type=click.IntRange(0, 65535), default=6006, show_default=True)
@handles_errors
def tensorboard_cmd(run_dir: str, port: int) -> None:
    """Serve RUN_DIR/tensorboard on 127.0.0.1 (HParams tab included) until Ctrl-C."""
    _quiet(False)
    from automl_app import experiments

    experiments.tensorboard(run_dir, port=port, say=click.echo)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        click.echo("TensorBoard stopped.")


COMMANDS = (runs_cmd, report_cmd, select_cmd, evaluate_cmd, reproduce_cmd, tensorboard_cmd)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def _main() -> None:
    """Stand-alone entry for the experiment commands (cli.py registers the same objects)."""


for _cmd in COMMANDS:
    _main.add_command(_cmd)

if __name__ == "__main__":
    sys.exit(_main())
