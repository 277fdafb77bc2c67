"""Commands over finished (or running) runs: runs, report, select, evaluate, reproduce, export,
tensorboard, dashboard, worker, spaces. Thin: options → one function of analysis/, report/,
integrations/ or workflows → printed lines. Nothing here imports TensorFlow at import time."""

from __future__ import annotations

import time
import webbrowser
from pathlib import Path

import click

from automl_app.cli import options as o
from automl_app.cli.common import echo, handles_errors


def _quiet(verbose: bool) -> None:
    from automl_app.tf_env import set_verbose

    set_verbose(verbose)


@click.command("runs", context_settings=o.CONTEXT)
@click.argument("root", required=False, default="runs", type=click.Path(path_type=str))
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON array (one object per run: kind, data, status, best, test, path, "
    "times) and nothing else, for scripts.",
)
@handles_errors
def runs_cmd(root: str, as_json: bool) -> None:
    """List the runs under ROOT (default: runs/): kind, data, trials, best, test accuracy."""
    from automl_app import analysis

    if as_json:
        import json

        from automl_app.analysis.runs_table import list_run_records

        click.echo(json.dumps(list_run_records(root), indent=2, allow_nan=False))
        return
    rows = analysis.list_runs(root)
    if not rows:
        click.echo(f"no runs under {root}")
        return
    click.echo(analysis.format_runs(rows))


@click.command("report", context_settings=o.CONTEXT)
@o.run_dir_argument
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--open", "open_", is_flag=True, help="Open report/index.html in a browser.")
@o.verbose
@handles_errors
def report_cmd(run_dir: str, top: int, open_: bool, verbose: bool) -> None:
    """Print the leaderboard and write RUN_DIR/report/ (plots and one self-contained index.html)."""
    _quiet(verbose)
    from automl_app import report, runs

    if not (Path(run_dir) / runs.MANIFEST).is_file():
        info = report.write_report(run_dir, say=click.echo, top=top)  # its one-line refusal
    else:
        with runs.lock(run_dir).hold():  # it rewrites RUN_DIR/report/
            info = report.write_report(run_dir, say=click.echo, top=top)
    if open_:
        uri = Path(info["index"]).resolve().as_uri()
        if not webbrowser.open(uri):
            click.echo(f"no browser available; open {uri}")


@click.command("select", context_settings=o.CONTEXT)
@o.run_dir_argument
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
@o.verbose
@handles_errors
def select_cmd(run_dir: str, where: str | None, by: str, verbose: bool) -> None:
    """Export to RUN_DIR/selected/ the trial with the lowest --by among those meeting --where."""
    _quiet(verbose)
    from automl_app import analysis

    analysis.select(run_dir, where=where, by=by, say=click.echo)


@click.command("evaluate", context_settings=o.CONTEXT)
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
@o.verbose
@handles_errors
def evaluate_cmd(
    source: str, dataset: str | None, data_dir: str | None, split: str, out: str | None, verbose
) -> None:
    """Evaluate an exported SavedModel through its `serve` endpoint; write the sklearn report."""
    _quiet(verbose)
    from automl_app import analysis

    analysis.evaluate_export(
        source, dataset=dataset, data_dir=data_dir, split=split, say=click.echo, out=out
    )


@click.command("reproduce", context_settings=o.CONTEXT)
@o.run_dir_argument
@click.option("--top", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--seeds", type=click.IntRange(min=2), default=3, show_default=True)
@click.option(
    "--trials",
    default=None,
    metavar="ID,ID",
    help="Reproduce these trial ids instead of the top ones.",
)
@o.verbose
@handles_errors
def reproduce_cmd(run_dir: str, top: int, seeds: int, trials: str | None, verbose: bool) -> None:
    """Retrain the top configurations with several seeds; mean ± std, 95% interval, Welch's t."""
    _quiet(verbose)
    from automl_app import analysis

    ids = [t.strip() for t in trials.split(",") if t.strip()] if trials else None
    analysis.reproduce(run_dir, top=top, seeds=seeds, say=click.echo, trials=ids)


@click.command("tensorboard", context_settings=o.CONTEXT)
@o.run_dir_argument
@click.option("--port", type=click.IntRange(0, 65535), default=6006, show_default=True)
@handles_errors
def tensorboard_cmd(run_dir: str, port: int) -> None:
    """Serve RUN_DIR/tensorboard on 127.0.0.1 (HParams tab included) until Ctrl-C."""
    _quiet(False)
    from automl_app.integrations.tensorboard import tensorboard

    tensorboard(run_dir, port=port, say=click.echo)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        click.echo("TensorBoard stopped.")


@click.command("dashboard", context_settings=o.CONTEXT)
@click.argument("run_dir", metavar="RUN_DIR|ROOT", type=click.Path(file_okay=False, path_type=str))
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="0 picks a free port.")  # fmt: skip
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@handles_errors
def dashboard_cmd(run_dir: str, port: int, host: str) -> None:
    """Serve optuna-dashboard over RUN_DIR/optuna.journal until Ctrl-C; live while a search runs
    (any engine; an older run gets its journal built from trials.csv first). ROOT, a folder of
    runs (one or two levels below it): one dashboard, one study per run named by its path under
    ROOT, refreshed as the runs' journals grow."""
    _quiet(False)
    from automl_app.integrations.dashboard import REFRESH_S, serve

    server = serve(run_dir, host=host, port=port, say=click.echo)
    if server.merged is not None:
        k, n = server.merged.found, len(server.merged.names)
        click.echo(f"optuna-dashboard for {k} run{'s' * (k != 1)} under {run_dir}: {n} "
                   f"stud{'ies' if n != 1 else 'y'} named by the run's path (refreshed every "
                   f"{REFRESH_S:g} s) at {server.url} (Ctrl-C to stop)")  # fmt: skip
    else:
        click.echo(f"optuna-dashboard for {run_dir} at {server.url} (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("dashboard stopped.")


@click.command("export", context_settings=o.CONTEXT)
@o.run_dir_argument
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["saved_model", "tflite", "onnx"]),
    default="saved_model",
    show_default=True,
    help="tflite/onnx: a fixed input shape (the training size), verified against the "
    "SavedModel on test images before it is written.",
)
@click.option(
    "--quantize",
    type=click.Choice(["none", "float16", "int8"]),
    default="none",
    show_default=True,
    help="--format tflite: float16 weights, or int8 calibrated on training images.",
)
@click.option(
    "--out",
    type=click.Path(),
    default=None,
    help="Where to write. [default: RUN_DIR/export/saved_model or RUN_DIR/export/model*.tflite]",
)
@o.verbose
@handles_errors
def export_cmd(run_dir: str, fmt: str, quantize: str, out: str | None, verbose: bool) -> None:
    """Export a finished run's best model: SavedModel, or TFLite / ONNX for phones and runtimes
    (checked against the SavedModel: top-1 agreement, largest probability difference, size)."""
    from automl_app import workflows

    _quiet(verbose)
    workflows.export_run(run_dir, out, format=fmt, quantize=quantize, say=echo)


@click.command("worker", context_settings=o.CONTEXT)
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
@o.verbose
@handles_errors
def worker_cmd(run_dir: str, oracle: str, tuner_id: str | None, verbose: bool) -> None:
    """Join a parallel search as one of its roles (KerasTuner's distributed mode)."""
    import os
    import socket

    from automl_app import workflows
    from automl_app.distributed.workers import parse_oracle

    host, port = parse_oracle(oracle)
    os.environ["KERASTUNER_ORACLE_IP"] = host
    os.environ["KERASTUNER_ORACLE_PORT"] = str(port)
    os.environ["KERASTUNER_TUNER_ID"] = (
        tuner_id
        or os.environ.get("KERASTUNER_TUNER_ID")
        or f"tuner-{socket.gethostname()}-{os.getpid()}"
    )
    _quiet(verbose)
    workflows.worker(run_dir, say=echo)


@click.command("spaces", context_settings=o.CONTEXT)
def spaces_cmd() -> None:
    """List the shipped search spaces."""
    from automl_app import spaces
    from automl_app.resources import find_named_file

    for name in spaces.available():
        click.echo(f"{name}\t{find_named_file('search_spaces', name)}")


COMMANDS = (runs_cmd, report_cmd, select_cmd, evaluate_cmd, reproduce_cmd, tensorboard_cmd,
            dashboard_cmd, export_cmd, worker_cmd, spaces_cmd)  # fmt: skip
