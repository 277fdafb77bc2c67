"""`automl select`: filter trials.csv by conditions, export the cheapest trial that passes."""

from __future__ import annotations

import operator
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from automl_app import report, runs
from automl_app.analysis.rebuild import (
    load_data,
    load_trial_model,
    probabilities,
    search_manifest,
    serving_spec,
)
from automl_app.errors import AutomlError, UsageError

Say = Callable[[str], None]


ALIASES = {"latency_ms": "latency_ms_b1", "latency": "latency_ms_b1"}


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
    "=": operator.eq,
}


_COND = re.compile(r"^\s*([A-Za-z_][\w/]*)\s*(>=|<=|==|!=|>|<|=)\s*(.+?)\s*$")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_WORD = re.compile(r"^('[^']*'|\"[^\"]*\"|[\w.\-]+)$")
SYNTAX = (
    "COLUMN OP VALUE with OP one of >=, <=, >, <, ==, != and VALUE a number (or a word for == and "
    "!=), joined by ',' or 'and', e.g. \"val_accuracy>=0.9, params<1e6\""
)


def _value(raw: str, op: str) -> Any:
    """A condition's value: a number for every operator, a word only for == and !=."""
    if _NUMBER.match(raw):
        return report.convert(raw)
    if op in ("==", "!=", "=") and _WORD.match(raw):
        return report.convert(raw.strip("'\""))
    return None


def parse_where(where: str | None) -> list[tuple[str, str, Any]]:
    """`val_accuracy>=0.9, params<1e6` (also joined by `and`) → [(column, op, value), ...];
    anything else is a UsageError saying it cannot be parsed and what is allowed."""
    if not where or not where.strip():
        return []
    out = []
    for part in re.split(r"\s*(?:,|\band\b|&&)\s*", where.strip()):
        m = _COND.match(part)
        value = _value(m[3].strip(), m[2]) if m else None
        if value is None:
            raise UsageError(f"cannot parse --where {where!r} at {part!r}; expected {SYNTAX}")
        col, op = m[1], m[2]
        out.append((col, op, value))
    return out


def _resolve_column(col: str, available: Sequence[str], what: str) -> str:
    """A column that exists (latency_ms → latency_ms_b1), or a UsageError listing the real ones."""
    if col in available:
        return col
    alias = ALIASES.get(col)
    if alias and alias in available:
        return alias
    if f"hp_{col}" in available:
        return f"hp_{col}"
    raise UsageError(
        f"{what} column {col!r} is not in trials.csv (not measured for this run); available: "
        + ", ".join(available)
    )


def passes(row: Mapping[str, Any], conditions: Sequence[tuple[str, str, Any]]) -> bool:
    """Whether a trial row meets every condition (a missing value fails it)."""
    for col, op, value in conditions:
        have = row.get(col)
        if have is None:
            return False
        if isinstance(value, (int, float)) != isinstance(have, (int, float)):
            have, value = str(have), str(value)
        try:
            if not _OPS[op](have, value):
                return False
        except TypeError:
            return False
    return True


def filter_trials(
    rows: Sequence[Mapping[str, Any]], where: str | None, by: str
) -> tuple[list[Mapping[str, Any]], str, list[tuple[str, str, Any]]]:
    """Finished trials meeting `where`, sorted by `by` (ascending); also the resolved names."""
    cols = report.columns(rows)
    conds = [(_resolve_column(c, cols, "--where"), op, v) for c, op, v in parse_where(where)]
    by_col = _resolve_column(by, cols, "--by")
    ok = [
        r
        for r in rows
        if r.get("status") == "completed" and not report.is_pruned(r) and passes(r, conds)
    ]
    ok = [r for r in ok if isinstance(r.get(by_col), (int, float))]
    ok.sort(key=lambda r: (r[by_col], -(r.get("objective") or 0)))
    return ok, by_col, conds


def select(
    run_dir: str | os.PathLike,
    where: str | None = None,
    by: str = "params",
    say: Say = print,
) -> dict[str, Any]:
    """Pick the trial minimising `by` among those meeting `where`; evaluate; export to selected/.

    The model is rebuilt from KerasTuner's saved hyperparameters and best-epoch checkpoint, its
    validation accuracy recomputed through the export's preprocessing (so the pick really meets
    the condition), evaluated once on the test split and exported with the checks of `best/`.
    """
    run_dir = Path(run_dir)
    manifest = search_manifest(run_dir)
    with runs.lock(run_dir).hold():  # it writes selected/ and run.json
        return _select(run_dir, manifest, where, by, say)


def _select(run_dir: Path, manifest: dict, where: str | None, by: str, say: Say) -> dict:
    from automl_app import evaluate, export

    rows = report.load_trials(run_dir)
    if not rows:
        raise UsageError(f"{str(run_dir)!r} has no trials.csv yet")
    ok, by_col, conds = filter_trials(rows, where, by)
    if not ok:
        raise UsageError(
            f"no completed trial meets --where {where!r} (of {len(rows)} trials); loosen it"
        )
    row = ok[0]
    tid = str(row["trial_id"])
    data = load_data(manifest)
    model, how = load_trial_model(run_dir, tid, manifest, data)
    spec = serving_spec(manifest)
    names = list(manifest["data"]["class_names"])
    val_probs = probabilities(model, data.x_val, spec)
    val = evaluate.classification_metrics(data.y_val, val_probs)
    checked = {"val_accuracy": val["accuracy"], "val_loss": val["loss"]}
    for col, op, value in conds:  # decided and verified before anything is announced
        if col in checked and not _OPS[op](checked[col], value):
            weights = (
                "its kept checkpoint"
                if how == "checkpoint"
                else "retrained (its weights were not kept)"
            )
            raise AutomlError(
                f"no trial exported: trial {tid}, the lowest {by_col} of {len(ok)} passing "
                f"{where!r} in trials.csv ({col}={row.get(col)}), gives {col}={checked[col]:.4f} "
                f"when rebuilt, {weights}; search with --keep-checkpoints N to keep every "
                "trial's weights"
            )
    say(
        f"selected trial {tid}: {by_col}={report._fmt(row[by_col])} (lowest of {len(ok)} "
        f"passing {where or 'no condition'}); objective {report._fmt(row.get('objective'))}; "
        f"weights: {how}"
    )
    x_test, y_test = data.test()
    out = run_dir / "selected"
    test = evaluate.write_classification_report(
        y_test, probabilities(model, x_test, spec), names, out / "report"
    )
    card = {
        "dataset": manifest["data"]["dataset"],
        "class_names": names,
        "image_shape": manifest["data"]["image_shape"],
        "trial": tid,
        "selected_by": {"where": where, "by": by_col, "value": row[by_col], "passing": len(ok)},
        "hyperparameters": {k[3:]: v for k, v in row.items() if k.startswith("hp_")},
        "trial_row": dict(row),
        "val_recomputed": val,
        "weights": how,
        "test": test,
        "config": manifest.get("config"),
    }
    info = export.export_best(model, spec, x_test[:64], out, labels=names, card=card)
    result = {
        "trial_id": tid,
        "weights": how,
        "by": by_col,
        "value": row[by_col],
        "where": where,
        "val": val,
        "test": test,
        "export": info,
        "path": str(out),
    }
    runs.update(run_dir, selected=result)
    say(
        f"val accuracy {val['accuracy']:.4f} (recomputed), test accuracy {test['accuracy']:.4f} on "
        f"{test['examples']} examples; exported to {out / 'saved_model'}"
    )
    return result
