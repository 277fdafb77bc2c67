"""Two kinds of failure, as in KerasTuner: the user's input (exit 2) and a run that broke (exit 1).

The CLI prints `Error: <message>` for any AutomlError and never a traceback unless --verbose.
"""

from __future__ import annotations


class AutomlError(Exception):
    """Base class: a message meant for the user, and the exit code that goes with it."""

    exit_code = 1


class UsageError(AutomlError):
    """A bad option value or combination: exit 2, like Click's own usage errors."""

    exit_code = 2


class ConfigError(AutomlError):
    """A search space, recipe or spec file that cannot be used; names the file and key."""


class DataError(AutomlError):
    """Data that is missing, unreadable or inconsistent; says where the data should be."""


class SearchError(AutomlError):
    """A search that could not produce a model (e.g. every trial failed)."""
