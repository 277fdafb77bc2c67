"""The trial table every engine writes: RUN_DIR/trials.jsonl (source for resume) and trials.csv.

One row per trial: id, status, every hyperparameter as hp_<name>, objective, metrics, epochs,
seconds, seconds/epoch, params, pruned_at, error. KerasTuner, AutoKeras and train-scratch write the
same leading columns, so `automl report|select|runs` read any run the same way. A damaged
trials.csv is rebuilt from trials.jsonl when that one is intact (`read_csv`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import sys
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from automl_app.errors import DataError
from automl_app.runs import journal
from automl_app.runs.files import _json_default, atomic_write_text, csv_text

TRIALS_CSV = "trials.csv"
TRIALS_JSONL = "trials.jsonl"
FIRST_COLUMNS = [
    "trial_id",
    "status",
    "objective",
    "epochs",
    "seconds",
    "seconds_per_epoch",
    "samples_per_s",
    "params",
    "latency_ms_b1",
    "latency_ms_b256",
    "pruned_at",
    "error",
]


def trial_key(trial_id: Any) -> tuple[int, str]:
    """Sort numerically where ids are numbers ('2' before '10'), else by name."""
    s = str(trial_id)
    return (int(s), s) if s.isdigit() else (1 << 30, s)


def load_rows(run_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """trials.jsonl → {trial_id: row} (empty for a new run); a damaged line names the file."""
    path = Path(run_dir) / TRIALS_JSONL
    rows: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
                rows[r["trial_id"]] = r
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DataError(
                    f"{path} line {n} is damaged ({type(exc).__name__}: {exc}); delete that line "
                    "(the trial is re-run on --resume) or restore the file"
                ) from None
    return rows


@contextlib.contextmanager
def trials_lock(run_dir: str | os.PathLike) -> Iterator[None]:
    """An exclusive lock on RUN_DIR/.trials.lock around a read-modify-write of the trial table
    (workers and the chief on one machine or a shared disk)."""
    import fcntl

    with open(Path(run_dir) / ".trials.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def csv_table(ordered: Iterable[Mapping[str, Any]]) -> str:
    """trials.csv's text for rows in trial order (the per-epoch curve stays in trials.jsonl)."""
    flat = [{k: v for k, v in r.items() if k != journal.CURVE} for r in ordered]
    return csv_text(flat, first=FIRST_COLUMNS)


def save_rows(run_dir: str | os.PathLike, rows: Mapping[str, Mapping[str, Any]]) -> None:
    """Write trials.jsonl and trials.csv (one row per trial, every hp its own column), and
    mirror the finished trials into RUN_DIR/optuna.journal (what `automl dashboard` reads)."""
    ordered = [rows[k] for k in sorted(rows, key=trial_key)]
    atomic_write_text(
        Path(run_dir) / TRIALS_JSONL,
        "".join(json.dumps(r, default=_json_default) + "\n" for r in ordered),
    )
    atomic_write_text(Path(run_dir) / TRIALS_CSV, csv_table(ordered))
    try:
        journal.mirror(run_dir, ordered)
    except Exception as exc:  # the journal is a copy for the dashboard: it never fails a search
        warnings.warn(f"{journal.JOURNAL} not updated: {type(exc).__name__}: {exc}", stacklevel=2)


def write_trial_table(run_dir: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> Path:
    """save_rows for engines that produce all rows at the end (AutoKeras, train-scratch)."""
    by_id = {str(r["trial_id"]): dict(r) for r in rows}
    save_rows(run_dir, by_id)
    return Path(run_dir) / TRIALS_CSV


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    """Read a trials.csv back (values stay strings; callers convert what they need).

    A damaged table (not text, empty, a row with more or fewer fields than the header, a cut last
    line) is rebuilt from the trials.jsonl next to it when that one is intact, with a warning
    line on stderr; otherwise a DataError names the file, the damage and the way out.
    """
    path = Path(path)
    try:
        rows, problem = _parse_csv(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        rows, problem = [], f"not UTF-8 text (byte {exc.start})"
    if problem is None:
        return rows
    source = path.with_name(TRIALS_JSONL)
    if path.name == TRIALS_CSV and source.is_file():
        try:
            by_id = load_rows(path.parent)
        except DataError as exc:
            raise DataError(f"{path} is damaged ({problem}) and so is its source: {exc}") from None
        text = csv_table([by_id[k] for k in sorted(by_id, key=trial_key)])
        try:
            atomic_write_text(path, text)
            done = f"rewrote it from {source.name}"
        except OSError as exc:
            done = f"read {source.name} instead (could not rewrite it: {exc})"
        sys.stderr.write(f"warning: {path} was damaged ({problem}); {done}\n")
        return _parse_csv(text)[0]
    raise DataError(
        f"{path} is damaged ({problem}); restore it from a backup (no trials.jsonl next to it "
        "to rebuild it from)"
    )


def _parse_csv(text: str) -> tuple[list[dict[str, str]], str | None]:
    """Rows of a CSV text, and what is wrong with it (None when nothing is)."""
    if not text.strip():
        return [], "empty: truncated?"
    try:
        records = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        return [], f"not a CSV table ({exc})"
    header = records[0]
    if "trial_id" not in header:
        return [], f"its header has no trial_id column (it reads {','.join(header)[:60]!r})"
    rows = []
    for n, fields in enumerate(records[1:], 1):
        if not fields:
            continue
        if len(fields) != len(header):
            return [], (
                f"row {n} has {len(fields)} fields, the header {len(header)}: truncated or "
                "hand-edited?"
            )
        rows.append(dict(zip(header, fields, strict=True)))
    if not text.endswith("\n"):
        return [], f"row {len(records) - 1} is cut short (no end of line): truncated?"
    return rows, None
