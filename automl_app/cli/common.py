"""The one error wrapper of every `automl` command: errors become one line and an exit code.

AutomlError subclasses carry their exit code (UsageError 2, others 1); any other exception is a
bug or a library failure and still prints one line. Tracebacks only with --verbose.
"""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from typing import Any

import click

from automl_app.errors import AutomlError


def run(fn: Callable[[], Any], verbose: bool = False) -> Any:
    """Call a workflow; turn failures into `Error: <message>` and the right exit code."""
    try:
        return fn()
    except AutomlError as exc:
        if verbose:
            traceback.print_exc()
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted; the run directory keeps what was finished.", err=True)
        sys.exit(130)
    except Exception as exc:
        if verbose:
            traceback.print_exc()
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        click.echo(
            f"Error: {type(exc).__name__}: {msg} (rerun with --verbose for the traceback)",
            err=True,
        )
        sys.exit(1)


def handles_errors(fn: Callable) -> Callable:
    """Decorator for a Click command function: its body runs under `run` (reads `verbose`)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return run(lambda: fn(*args, **kwargs), bool(kwargs.get("verbose", False)))

    return wrapper


def echo(line: str) -> None:
    """Print one line of a workflow's output."""
    click.echo(line)
