"""RUN_DIR/optuna.journal: the trial table mirrored, trial by trial, into an Optuna JournalStorage.

KerasTuner (or AutoKeras, or train-scratch) stays the source of truth; the journal is a copy in
the format optuna-dashboard reads, so `automl dashboard RUN_DIR` shows a search while it runs.
`save_rows` calls `mirror` after every trial: one study per run, and every finished trial added
once (keyed by user_attrs['trial_id']) with its params and their distributions, its objective,
its per-epoch objective as intermediate values, its state and seconds/params/error. The whole
read-check-append runs under the journal's own file lock, so the workers of one search never add
a trial twice and a resumed search adds only what is new.

With `--storage URL` (run.json's config `storage`: an Optuna RDB storage, SQLite file or
database server) the journal's study is copied on into that storage as well, under the run's
name, inside the same lock: trials the storage lacks (by trial_id) are added, so it holds the
same trials with the same values, a resume adds only what is new, and a storage that was
unreachable for a while catches up at the next trial. The study records the run's path and
start time: a run replaced with --overwrite replaces its study; another run with the same name
is refused (a warning; the journal is unaffected).

The row → Optuna translation (distributions, states, values) lives here once: the report
replays the same table into its in-memory study with `infer_distributions` and `frozen_trial`.
Optuna is imported inside functions: the CLI imports this package while it parses.
"""

from __future__ import annotations

import datetime
import glob
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from automl_app.runs.lifecycle import MANIFEST

JOURNAL = "optuna.journal"
CURVE = "curve"  # row key: [[epoch (1-based), objective], ...]; in trials.jsonl, not trials.csv
_MIN_WORDS = ("loss", "error", "mae", "mse", "rmse", "latency")


# ------------------------------------------------------------------ rows → Optuna distributions


def hp_distribution(cfg: Mapping[str, Any]):
    """KerasTuner hyperparameter config → the Optuna distribution with the same range."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    kind, c = cfg.get("class_name"), cfg.get("config", {})
    log = c.get("sampling") == "log"
    if kind == "Choice":
        return CategoricalDistribution(list(c["values"]))
    if kind == "Boolean":
        return CategoricalDistribution([False, True])
    if kind == "Int":
        step = 1 if log or not c.get("step") else int(c["step"])
        return IntDistribution(int(c["min_value"]), int(c["max_value"]), log=log, step=step)
    if kind == "Float":
        return FloatDistribution(float(c["min_value"]), float(c["max_value"]), log=log)
    return None  # Fixed: not a parameter that varies


def infer_distributions(
    rows: Sequence[Mapping[str, Any]],
    states: Mapping[str, Mapping[str, Any]],
    keep_fixed: bool = False,
) -> dict[str, Any]:
    """Optuna distributions for every hyperparameter: KerasTuner's space, else the table's values.

    A numeric column with a single value has no range: it is left out unless `keep_fixed`
    (the journal keeps it as a one-point range, so a one-trial run still shows its settings).
    """
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    dists: dict[str, Any] = {}
    for state in states.values():
        for cfg in (state.get("hyperparameters") or {}).get("space", []):
            name = cfg.get("config", {}).get("name")
            if name and name not in dists and not name.startswith("tuner/"):
                d = hp_distribution(cfg)
                if d is not None:
                    dists[name] = d
    seen: dict[str, None] = {}
    for r in rows:
        seen.update(dict.fromkeys(r))
    for col in seen:
        name = col[3:]
        if not col.startswith("hp_") or name in dists or name.startswith("tuner/"):
            continue
        values = [r[col] for r in rows if r.get(col) is not None]
        if not values:
            continue
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            lo, hi = min(values), max(values)
            if lo < hi or keep_fixed:
                ints = all(isinstance(v, int) for v in values)
                dists[name] = (
                    IntDistribution(int(lo), int(hi)) if ints else FloatDistribution(lo, hi)
                )
        else:
            dists[name] = CategoricalDistribution(sorted({str(v) for v in values}))
    return dists


def fit_to_distribution(dist, value: Any) -> Any:
    """A table value in the form its Optuna distribution accepts (None when it does not fit)."""
    from optuna.distributions import CategoricalDistribution

    if isinstance(dist, CategoricalDistribution):
        if value in dist.choices:
            return value
        as_str = {str(c): c for c in dist.choices}
        return as_str.get(str(value))
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    if not dist.low <= v <= dist.high:
        return None
    return int(round(v)) if type(dist).__name__ == "IntDistribution" else v


def norm_id(tid: Any) -> str:
    """'00' and 0 are the same trial (trials.csv reads KerasTuner's padded ids back as numbers)."""
    s = str(tid)
    return str(int(s)) if s.isdigit() else s


def id_key(tid: Any) -> tuple:
    """Numeric ids in numeric order, named ones after them."""
    s = str(tid)
    return (0, int(s), s) if s.isdigit() else (1, 0, s)


def frozen_trial(
    row: Mapping[str, Any],
    dists: Mapping[str, Any],
    state: Mapping[str, Any] | None = None,
    curve: Iterable[tuple[int, float]] | None = None,
    extra_attrs: bool = False,
):
    """One trial-table row as an Optuna FrozenTrial (None while it is still running).

    Pruned trials are PRUNED (with their curve), completed ones COMPLETE, a completed trial
    without a finite objective and failed ones FAIL. `user_attrs['trial_id']` keeps the
    engine's id; with `extra_attrs` also seconds, params, epochs and error.
    """
    from optuna.trial import TrialState, create_trial

    tid = norm_id(row.get("trial_id"))
    hp_values = ((state or {}).get("hyperparameters") or {}).get("values") or {
        k[3:]: v for k, v in row.items() if k.startswith("hp_") and v is not None
    }
    params, used = {}, {}
    for k, v in hp_values.items():
        d = dists.get(k)
        if d is None or v is None:
            continue
        v = fit_to_distribution(d, v)
        if v is not None:
            params[k], used[k] = v, d
    value = row.get("objective")
    if row.get("status") == "pruned" or row.get("pruned_at") not in (None, ""):
        kind = TrialState.PRUNED
    elif row.get("status") == "completed" and _is_number(value):
        kind = TrialState.COMPLETE
    elif row.get("status") in ("failed", "completed"):
        kind = TrialState.FAIL
    else:
        return None
    if kind == TrialState.COMPLETE and not math.isfinite(float(value)):
        kind = TrialState.FAIL
    if curve is None:
        curve = row.get(CURVE) or []
    inter = {}
    for e, v in curve:
        if _is_number(v) and math.isfinite(float(v)):
            inter[int(e)] = float(v)
    attrs: dict[str, Any] = {"trial_id": tid}
    if extra_attrs:
        for key in ("seconds", "params", "epochs", "error"):
            if row.get(key) not in (None, ""):
                attrs[key] = _plain(row[key])
    trial = create_trial(
        state=kind,
        value=float(value) if kind == TrialState.COMPLETE else None,
        params=params,
        distributions=used,
        intermediate_values=inter,
        user_attrs=attrs,
    )
    if _is_number(row.get("seconds")) and trial.datetime_complete is not None:
        trial.datetime_start = trial.datetime_complete - datetime.timedelta(
            seconds=float(row["seconds"])
        )
    return trial


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _plain(v: Any) -> Any:
    """A JSON-safe user attribute (numpy scalars become Python numbers)."""
    if isinstance(v, (str, bool, int, float)):
        return v
    try:
        return v.item()
    except AttributeError:
        return str(v)


# ------------------------------------------------------------------ the run directory's files


def kerastuner_states(
    run_dir: str | os.PathLike, ids: Iterable[Any] | None = None
) -> dict[str, dict[str, Any]]:
    """{normalised trial_id: trial.json} from KerasTuner's project folder(s) under RUN_DIR.

    With `ids`, only those trials' files (RUN_DIR/tuner/trial_<id>/ first, so a search's
    per-trial mirror reads one file, not every trial's).
    """
    root = Path(run_dir)
    files: list[str] = []
    if ids is not None:
        for tid in ids:
            direct = root / "tuner" / f"trial_{tid}" / "trial.json"
            if direct.is_file():
                files.append(str(direct))
            else:
                files += glob.glob(str(root / "**" / f"trial_{tid}" / "trial.json"), recursive=True)
    else:
        files = glob.glob(str(root / "tuner" / "trial_*" / "trial.json")) or glob.glob(
            str(root / "**" / "trial_*" / "trial.json"), recursive=True
        )
    out = {}
    for f in sorted(files):
        try:
            state = json.loads(Path(f).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        out[norm_id(state.get("trial_id"))] = state
    return out


def objective_of(
    run_dir: str | os.PathLike, states: Mapping[str, Mapping[str, Any]] | None = None
) -> tuple[str, str]:
    """(objective name, 'max' | 'min'): run.json's config, KerasTuner's trial.json, the name."""
    try:
        manifest = json.loads((Path(run_dir) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {}
    tuner = (
        ((manifest.get("config") or {}).get("tuner") or {}) if isinstance(manifest, dict) else {}
    )
    name = tuner.get("objective") or "val_accuracy"
    if tuner.get("direction") in ("min", "max"):
        return name, tuner["direction"]
    for state in (states or {}).values():
        metric = (state.get("metrics") or {}).get("metrics", {}).get(name)
        if metric and metric.get("direction") in ("min", "max"):
            return name, metric["direction"]
    return name, "min" if any(w in name.lower() for w in _MIN_WORDS) else "max"


def _state_curve(state: Mapping[str, Any] | None, name: str) -> list[tuple[int, float]]:
    """Per-epoch observations of `name` in a trial.json (one per epoch when pruning reported)."""
    hist = ((state or {}).get("metrics") or {}).get("metrics", {}).get(name) or {}
    points = []
    for o in hist.get("observations", []):
        vals = o["value"] if isinstance(o["value"], list) else [o["value"]]
        points.append((int(o["step"]) + 1, float(sum(vals) / len(vals))))
    return sorted(points)


# ------------------------------------------------------------------ the journal


class _ReentrantLock:
    """The journal's own file lock, re-entrant within this object: `mirror` holds it across
    read-check-append while JournalFileBackend takes it again for each append."""

    def __init__(self, lock: Any) -> None:
        self._lock, self._depth = lock, 0

    def acquire(self) -> bool:
        if self._depth == 0:
            self._lock.acquire()
        self._depth += 1
        return True

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._lock.release()

    def __enter__(self) -> _ReentrantLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def journal_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / JOURNAL


def storage(run_dir: str | os.PathLike):
    """An Optuna JournalStorage over RUN_DIR/optuna.journal (created empty if absent)."""
    return _storage_and_lock(run_dir)[0]


def _storage_and_lock(run_dir: str | os.PathLike):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = str(journal_path(run_dir))
    lock = _ReentrantLock(JournalFileOpenLock(path))
    return JournalStorage(JournalFileBackend(path, lock_obj=lock)), lock


@contextmanager
def locked_study(run_dir: str | os.PathLike, states: Mapping[str, Any] | None = None) -> Iterator:
    """The run's one study in its journal (created on first use), with the journal locked."""
    import warnings

    import optuna

    store, lock = _storage_and_lock(run_dir)
    with lock:
        summaries = store.get_all_studies()
        if summaries:
            study = optuna.load_study(study_name=summaries[0].study_name, storage=store)
        else:
            name, direction = objective_of(run_dir, states)
            study = optuna.create_study(
                storage=store,
                study_name=Path(run_dir).resolve().name or "run",
                direction="maximize" if direction == "max" else "minimize",
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # set_metric_names is experimental in Optuna
                study.set_metric_names([name])
        yield study


def ensure_study(run_dir: str | os.PathLike) -> Path:
    """RUN_DIR/optuna.journal with the run's study in it (nothing else changes)."""
    with locked_study(run_dir):
        pass
    return journal_path(run_dir)


def storage_url(run_dir: str | os.PathLike) -> str | None:
    """run.json's --storage URL (None when the run has none)."""
    manifest = _manifest(run_dir)
    url = (manifest.get("config") or {}).get("storage")
    return str(url) if url else None


def _manifest(run_dir: str | os.PathLike) -> dict[str, Any]:
    try:
        manifest = json.loads((Path(run_dir) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def shown_url(url: str) -> str:
    """The URL without its password (for messages)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<the --storage URL>"


def sync_storage(run_dir: str | os.PathLike, study, url: str) -> int:
    """Copy the journal study's trials the RDB storage at `url` lacks into the run's study
    there (created on first use, named after the run); how many were added.

    Raises RuntimeError when the storage's study of that name belongs to another run.
    """
    import optuna

    run_dir = Path(run_dir).resolve()
    started = str(_manifest(run_dir).get("started_at") or "")
    rdb = optuna.storages.RDBStorage(url)
    try:
        name = study.study_name
        try:
            sid = rdb.get_study_id_from_name(name)
        except KeyError:
            sid = None
        if sid is not None:
            attrs = rdb.get_study_user_attrs(sid)
            if attrs.get("automl_run_dir") not in (None, str(run_dir)):
                raise RuntimeError(
                    f"{shown_url(url)} already holds a study {name!r} from another run "
                    f"({attrs.get('automl_run_dir')}); rename this run's directory"
                )
            if attrs.get("automl_started_at") != started:  # the run was replaced (--overwrite)
                rdb.delete_study(sid)
                sid = None
        if sid is None:
            sid = rdb.create_new_study(study.directions, study_name=name)
            rdb.set_study_user_attr(sid, "automl_run_dir", str(run_dir))
            rdb.set_study_user_attr(sid, "automl_started_at", started)
            for key, value in study._storage.get_study_system_attrs(study._study_id).items():
                rdb.set_study_system_attr(sid, key, value)  # the objective's name
        have = {str(t.user_attrs.get("trial_id")) for t in rdb.get_all_trials(sid, deepcopy=False)}
        added = 0
        for trial in study.get_trials(deepcopy=False):
            if str(trial.user_attrs.get("trial_id")) not in have:
                rdb.create_new_trial(sid, template_trial=trial)
                added += 1
        return added
    finally:
        rdb.remove_session()
        rdb.engine.dispose()


def _sync_storage_quietly(run_dir: str | os.PathLike, study) -> None:
    """sync_storage for the run's --storage, if any; a failure is a warning (it is a copy)."""
    url = storage_url(run_dir)
    if not url:
        return
    try:
        sync_storage(run_dir, study, url)
    except Exception as exc:
        import warnings

        warnings.warn(
            f"--storage {shown_url(url)} not updated: {type(exc).__name__}: {exc}", stacklevel=3
        )


def mirrored_ids(study) -> set[str]:
    """The trial ids already in the journal's study."""
    return {str(t.user_attrs.get("trial_id")) for t in study.get_trials(deepcopy=False)}


def add_trials(run_dir: str | os.PathLike, trials: Iterable[Any]) -> int:
    """Add FrozenTrials (user_attrs['trial_id'] set) the journal does not have yet; how many."""
    with locked_study(run_dir) as study:
        have = mirrored_ids(study)
        new = [t for t in trials if str(t.user_attrs.get("trial_id")) not in have]
        for t in new:
            study.add_trial(t)
        return len(new)


def mirror(run_dir: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> int:
    """Add every finished row the journal does not have yet (idempotent); how many were added."""
    rows = sorted(rows, key=lambda r: id_key(r.get("trial_id")))
    finished = [r for r in rows if r.get("status") in ("completed", "pruned", "failed")]
    if not finished:
        return 0
    added = 0
    with locked_study(run_dir) as study:
        have = mirrored_ids(study)
        todo = [r for r in finished if norm_id(r.get("trial_id")) not in have]
        if not todo:
            _sync_storage_quietly(run_dir, study)  # catches up a storage that was unreachable
            return 0
        states = kerastuner_states(run_dir, [r.get("trial_id") for r in todo])
        name, _ = objective_of(run_dir, states)
        dists = infer_distributions(rows, states, keep_fixed=True)
        for row in todo:
            state = states.get(norm_id(row.get("trial_id")))
            curve = row.get(CURVE) or _state_curve(state, name)
            trial = frozen_trial(row, dists, state, curve, extra_attrs=True)
            if trial is not None:
                study.add_trial(trial)
                added += 1
        _sync_storage_quietly(run_dir, study)
    return added
