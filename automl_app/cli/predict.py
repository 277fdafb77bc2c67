"""`automl predict RUN INPUT...`: options → analysis.predict → rows on stdout or --out.

Thin: the rows are the only thing on stdout; skipped files, ignored columns and the progress bar
(only when stderr is a terminal) go to stderr. Nothing here imports TensorFlow at import time.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from automl_app.cli import options as o
from automl_app.cli.common import handles_errors

_CLEAR = "\r\x1b[K"  # a line printed under the bar starts at column 0 of a cleared line


class _Bar:
    """A click progress bar on stderr, made on the first update (the total is known then)."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.done = 0

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = click.progressbar(length=total, label="predict", file=sys.stderr)
            self.bar.__enter__()
        self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


@click.command("predict", context_settings=o.CONTEXT)
@click.argument("run", metavar="RUN", type=click.Path(path_type=str))
@click.argument("inputs", metavar="INPUT...", nargs=-1, type=click.Path(path_type=str))
@click.option(
    "--out",
    default=None,
    type=click.Path(dir_okay=False, path_type=str),
    help="Write the rows to FILE [default: CSV on stdout].",
)
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True
)
@click.option(
    "--top-k",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Add the K most probable labels and their probabilities to each row.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Inputs per call of the SavedModel.",
)
@o.verbose
@handles_errors
def predict_cmd(
    run: str,
    inputs: tuple[str, ...],
    out: str | None,
    fmt: str,
    top_k: int,
    batch_size: int,
    verbose: bool,
) -> None:
    """Predict new inputs with RUN's exported SavedModel (RUN/best, or a selected/ or export/
    folder): image files and folders for image runs, a CSV/Parquet file for structured and text
    runs. One row per input: input (path, or row number with 1 = the first data row), label, its
    probability, one column per class. Unreadable images are named on stderr and skipped."""
    from automl_app.tf_env import set_verbose

    set_verbose(verbose)
    from automl_app import workflows

    bar = _Bar() if sys.stderr.isatty() else None
    try:
        workflows.predict(
            run, inputs, out=out, fmt=fmt, top_k=top_k, batch_size=batch_size,
            say_err=lambda line: click.echo(_CLEAR * (bar is not None) + line, err=True),
            progress=bar,
        )  # fmt: skip
    except BrokenPipeError:  # `automl predict … | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        if bar is not None:
            bar.close()


COMMANDS = (predict_cmd,)
