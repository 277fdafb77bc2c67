"""The AutoKeras engine's four commands: options checked, then a Plan the lifecycle runs.

    from automl_app import workflows
    from automl_app.config import AutoKerasConfig, DataConfig, SearchConfig, TunerConfig
    cfg = SearchConfig(engine="autokeras", data=DataConfig(dataset="digits", max_samples=200),
                       tuner=TunerConfig(tuner="greedy", max_trials=1, epochs=1),
                       autokeras=AutoKerasConfig(block="vanilla"))
    manifest = workflows.search(cfg)

Each `plan_*` validates its options before anything is written and returns an engines.base.Plan
whose `fit` searches with AutoKeras and returns an EngineResult (serving.engine_result); the flow
(workflows.complete) reads the test split once, writes report/, best/ and trials.csv. Named datasets keep their own test split; CSV
and text data get a seeded (stratified for classifiers) hold-out; image folders the shared
content-hash split of data/images.py; run.json's `data.split` says which.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from automl_app import runs
from automl_app.config import SearchConfig, SpaceConfig, TunerConfig, check_objective
from automl_app.data import tables
from automl_app.data.tabular import TEST_FRACTION, holdout, rows_to_load
from automl_app.engines.autokeras import constants, core, io, serving, tasks
from automl_app.engines.base import EngineResult, Plan
from automl_app.errors import DataError, UsageError

Say = Callable[[str], None]
TEXT_TASKS = ("auto", "classification", "regression")
# Training-split sizes of the named datasets: the memory check runs before anything is read.
TRAIN_SIZES = {"fashion_mnist": 60_000, "mnist": 60_000, "kmnist": 60_000, "cifar10": 50_000,
               "cifar100": 50_000, "digits": 1_438}  # fmt: skip
# KerasTuner-only settings: a non-default value with --engine autokeras is a usage error.
_KERASTUNER_ONLY = {
    "space": "--space", "hypermodel": "--hypermodel", "overrides": "--set",
    "direction": "--direction", "prune": "--prune", "min_epochs": "--min-epochs",
    "tpe_startup": "--tpe-startup",
    "enqueue": "--enqueue", "lr_find": "--lr-find", "keep_checkpoints": "--keep-checkpoints",
    "min_batch_size": "--min-batch-size", "executions_per_trial": "--executions-per-trial",
    "max_failures": "--max-failures", "workers": "--workers",
    "early_stopping": "--early-stopping", "class_weight": "--class-weight",
}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# the four commands


def plan_image(cfg: SearchConfig) -> Plan:
    """`automl search image --engine autokeras`: a named dataset (cfg.data.dataset) or an image
    folder (cfg.data.data_dir) → ImageClassifier, or ImageRegressor for numeric class names."""
    from automl_app.data import datasets

    block = core._check_choice("--block", cfg.autokeras.block, constants.BLOCKS)
    task = cfg.autokeras.task if cfg.autokeras.task != "auto" else "classification"
    core._check_choice("--task", task, constants.TASKS)
    check_config(cfg)
    from automl_app.data import source

    source.precheck(cfg.data)  # the folder exists / the named dataset is known and offline
    folder = cfg.data.data_dir
    if folder is not None:
        name = Path(folder).resolve().name
    else:
        name = cfg.data.dataset
        shape = (datasets.TFDS_IMAGE | datasets.EMBEDDED)[name]
        n = min(TRAIN_SIZES[name], cfg.data.max_samples or TRAIN_SIZES[name])
        core.check_image_memory(n, shape, f"{name} for AutoKeras")
    cfg = _with_run_dir(cfg, name)

    def body(run: runs.Run, say: Say) -> EngineResult:
        run_dir = run.dir
        from automl_app.data import source
        from automl_app.data.fingerprint import leakage

        data = source.load_image_data(cfg.data, verbose=cfg.verbose)
        if folder is not None:
            split = {"method": "content hash of each file (data/images.py): stable as the "
                     "folder grows; DIR/{train,val,test} splits are kept as given",
                     "val_fraction": cfg.data.val_fraction}  # fmt: skip
        else:
            split = {"method": f"the dataset's own test split; validation carved from train "
                     f"(seed {cfg.data.seed})", "val_fraction": cfg.data.val_fraction}  # fmt: skip
        info = data.info
        class_names = list(info.class_names)
        to_y = _label_values(class_names, name) if task == "regression" else None
        y_train = data.y_train if to_y is None else to_y[data.y_train]
        y_val = data.y_val if to_y is None else to_y[data.y_val]
        for line in source.describe(data):
            say(line)
        record = source.data_record(data)
        _record_data(run, {"train": (data.x_train, y_train), "val": (data.x_val, y_val)},
                     **{k: v for k, v in record.items() if k != "fingerprint"},
                     task=task, split=split)  # fmt: skip
        opts = _options(cfg, run_dir, say)
        say(_search_line("Image" + ("Classifier" if task == "classification" else "Regressor"),
                         cfg, f"block {block}"))  # fmt: skip
        result = tasks.search_image(
            data.x_train, y_train, task=task,
            class_names=class_names if task == "classification" else None, block=block,
            validation_data=(data.x_val, y_val) if len(data.x_val) else None,
            options=opts, say=say,
        )  # fmt: skip
        _say_stop(result, say)

        def read_test() -> tuple[np.ndarray, np.ndarray]:  # the flow calls it once
            x_test, y_test = data.test()
            return x_test, (y_test if to_y is None else to_y[y_test])

        card = {"dataset": info.name, "class_names": class_names, "config": cfg.to_dict()}
        return serving.engine_result(
            result, read_test, card=card,
            image_size=source.folder_image_size(cfg.data) if folder else None,
            test_fields=lambda x_test: {"leakage": leakage(data.x_train, x_test, data.x_val)},
        )  # fmt: skip

    return Plan("search image", "autokeras", cfg, body, {"autokeras": dict(block=block, task=task)})


def plan_text(cfg: SearchConfig) -> Plan:
    """`automl search text`: a folder DIR/<class>/*.txt or a CSV's text and target columns →
    TextClassifier / TextRegressor; the export's `serve` takes raw strings."""
    from automl_app.data import text

    d = cfg.data
    data_dir, csv, text_column, target = d.data_dir, d.csv, d.text_column, d.target
    task = core._check_choice("--task", cfg.autokeras.task, TEXT_TASKS)
    check_config(cfg)
    table = None  # the CSV/Parquet path or the DataFrame to read
    if (data_dir is None) == (csv is None):
        raise UsageError("search text needs exactly one source: --data-dir DIR (DIR/<class>/*.txt) "
                         "or --csv FILE --text-column COL --target COL")  # fmt: skip
    if csv is not None:
        if not text_column or not target:
            raise UsageError("--csv needs --text-column COL (the texts) and --target COL (labels)")
        cfg, table = _table(cfg, csv, "--csv")
        csv = cfg.data.csv
    else:
        if text_column or target:
            raise UsageError("--text-column and --target go with --csv; a --data-dir text folder "
                             "takes its labels from the class folder names")  # fmt: skip
        if task == "regression":
            raise UsageError("--task regression needs a numeric --target in a --csv; a text "
                             "folder's labels are class folder names")  # fmt: skip
        if not Path(data_dir).is_dir():
            raise DataError(f"--data-dir {str(data_dir)!r} is not a directory")
    source = Path(csv if csv is not None else data_dir)
    cfg = _with_run_dir(cfg, source.stem if csv is not None else source.resolve().name)
    n_load = _rows_to_load(cfg)

    def body(run: runs.Run, say: Say) -> EngineResult:
        run_dir = run.dir
        if csv is not None:
            _keep_frame(table, cfg)
            data = text.load_text_csv(table, text_column, target, task=task, max_samples=n_load,
                                      seed=cfg.data.seed)  # fmt: skip
        else:
            data = text.load_text_folder(data_dir, max_samples=n_load, seed=cfg.data.seed)
        x, y = data.texts, data.y
        word = tables.kind_word(table if table is not None else csv) if csv else "text folder"
        tr, va, te = _hold_out(run, cfg, data, x, say, word, kind="csv" if csv else "text_folder",
                               text_column=text_column, target=target)  # fmt: skip
        opts = _options(cfg, run_dir, say)
        say(_search_line("Text" + _task_word(data.task), cfg))
        result = tasks.search_text(x[tr], y[tr], task=data.task, class_names=data.class_names,
                                 validation_data=(x[va], y[va]) if len(va) else None,
                                 options=opts, say=say)  # fmt: skip
        _say_stop(result, say)
        card = {"source": data.source, "class_names": data.class_names, "config": cfg.to_dict()}
        return serving.engine_result(result, lambda: (x[te], y[te]), card=card)

    return Plan("search text", "autokeras", cfg, body, {"autokeras": dict(task=task,
                        source={"data_dir": _str(data_dir), "csv": _str(csv),
                                "text_column": text_column, "target": target})})  # fmt: skip


def plan_structured(cfg: SearchConfig) -> Plan:
    """`automl search structured`: every CSV column but --target is a feature (types inferred
    with AutoKeras's rule, --column-type overrides) → StructuredDataClassifier / Regressor."""
    from automl_app.data import tabular

    csv, target, column_types = cfg.data.csv, cfg.data.target, cfg.data.column_types
    task = core._check_choice("--task", cfg.autokeras.task, TEXT_TASKS)
    check_config(cfg)
    if csv is None or isinstance(csv, str) and not csv:
        raise UsageError("search structured needs --csv FILE (and --target COL)")
    if not target:
        raise UsageError("search structured needs --target COL (the column to predict)")
    for col, kind in (column_types or {}).items():
        if kind not in tabular.COLUMN_TYPES:
            raise UsageError(f"--column-type must be one of {', '.join(tabular.COLUMN_TYPES)}. "
                             f"Received: {col}={kind!r}")  # fmt: skip
    cfg, table = _table(cfg, csv, "--csv")
    csv, where = cfg.data.csv, tables.describe(table)
    header = tables.read_header(table)
    if target not in header:
        raise DataError(f"column {target!r} is not in {where}. Columns: {', '.join(header)}")
    tabular.validate_column_types(column_types, [c for c in header if c != target], where)
    cfg = _with_run_dir(cfg, Path(csv).stem)
    n_load = _rows_to_load(cfg)

    def body(run: runs.Run, say: Say) -> EngineResult:
        run_dir = run.dir
        _keep_frame(table, cfg)
        data = tabular.load_table(table, target, task=task, column_types=column_types,
                                  max_samples=n_load, seed=cfg.data.seed)  # fmt: skip
        x, y = data.x, data.y
        tr, va, te = _hold_out(run, cfg, data, x, say, tables.kind_word(table), kind="csv",
                               target=target, column_types=data.column_types,
                               columns=f" columns={len(data.column_names)}")  # fmt: skip
        opts = _options(cfg, run_dir, say)
        say(_search_line("StructuredData" + _task_word(data.task), cfg))
        result = tasks.search_structured(
            x[tr], y[tr], column_names=data.column_names, column_types=data.column_types,
            task=data.task, class_names=data.class_names,
            validation_data=(x[va], y[va]) if len(va) else None, options=opts, say=say,
        )  # fmt: skip
        _say_stop(result, say)
        card = {"source": data.source, "target": target, "class_names": data.class_names,
                "config": cfg.to_dict()}  # fmt: skip
        return serving.engine_result(result, lambda: (x[te], y[te]), card=card)

    return Plan("search structured", "autokeras", cfg, body, {"autokeras": dict(task=task,
                        source={"csv": _str(csv), "target": target,
                                "column_types": dict(column_types or {})})})  # fmt: skip


def plan_multi(cfg: SearchConfig) -> Plan:
    """`automl search multi --spec FILE [--csv FILE]`: ak.AutoModel with the spec's inputs and
    heads (the IO API); the export's `serve` takes one named tensor per input column."""
    spec, csv = cfg.data.spec, cfg.data.csv
    block = core._check_choice("--block", cfg.autokeras.block, constants.BLOCKS)
    if cfg.autokeras.task != "auto":
        raise UsageError("--task does not apply to search multi: each output in the spec has "
                         "its own type")  # fmt: skip
    check_config(cfg)
    if not spec:
        raise UsageError("search multi needs --spec FILE")
    parsed = io.load_spec(spec)  # ConfigError naming the file and key
    if csv is not None:
        cfg, table = _table(cfg, csv, "--csv")
        csv = cfg.data.csv
    else:
        csv = table = parsed.csv
        if csv is None:
            raise UsageError(f"search multi needs a CSV: pass --csv FILE or set 'csv:' in {spec}")
        _need_file(csv, f"the 'csv:' of {spec}")
    cfg = _with_run_dir(cfg, Path(spec).stem)
    n_load = _rows_to_load(cfg)

    def body(run: runs.Run, say: Say) -> EngineResult:
        run_dir = run.dir
        _keep_frame(table, cfg)
        data = io.load_multi_csv(parsed, table, max_samples=n_load, seed=cfg.data.seed)
        first_cls = next((h for h in parsed.heads if h.type == "classification"), None)
        strat = data.targets[first_cls.name] if first_cls else next(iter(data.targets.values()))
        tr, va, te = holdout(strat, "classification" if first_cls else "regression",
                             seed=cfg.data.seed, val_fraction=cfg.data.val_fraction,
                             max_train=cfg.data.max_samples)  # fmt: skip

        def part(idx: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
            return ({k: v[idx] for k, v in data.inputs.items()},
                    {k: v[idx] for k, v in data.targets.items()})  # fmt: skip

        train, val, test = part(tr), part(va), part(te)
        say(f"data: {csv} ({tables.kind_word(table)}, spec {parsed.source}) train={len(tr)} val={len(va)} "
            f"test={len(te)} inputs={', '.join(data.inputs)} outputs={', '.join(data.targets)}")  # fmt: skip
        prints = {f"{split}/{k}": (v, None) for split, (ins, outs) in
                  (("train", train), ("val", val)) for k, v in {**ins, **outs}.items()}  # fmt: skip
        _record_data(run, prints, source=str(csv), kind="csv",
                     spec=parsed.source, train_examples=len(tr), val_examples=len(va), class_names=data.class_names,
                     column_types=data.column_types, test_examples=len(te),
                     split=_holdout_note(cfg, f"stratified by {first_cls.name}" if first_cls
                                         else "regression"))  # fmt: skip
        opts = _options(cfg, run_dir, say)
        say(_search_line("AutoModel", cfg, f"block {block}"))
        result = io.search_multi(parsed, *train, class_names=data.class_names,
                                  column_types=data.column_types,
                                  validation_data=val if len(va) else None, block=block,
                                  options=opts, say=say)  # fmt: skip
        _say_stop(result, say)
        card = {"source": str(csv), "spec": parsed.source, "config": cfg.to_dict()}
        return serving.engine_result(result, lambda: test, card=card)

    return Plan("search multi", "autokeras", cfg, body, {"autokeras": dict(block=block,
                        source={"spec": str(spec), "csv": str(csv)})})  # fmt: skip


# ---------------------------------------------------------------------------------------------
# validation (before any directory is written; no TensorFlow)


def check_config(cfg: SearchConfig) -> SearchConfig:
    """The shared options as AutoKeras reads them; UsageError (exit 2) naming what is allowed."""
    t = cfg.tuner
    if t.tuner not in constants.TUNERS:
        raise UsageError(f"--tuner must be one of {', '.join(constants.TUNERS)} with --engine autokeras. "
                         f"Received: --tuner {t.tuner!r}")  # fmt: skip
    if t.max_trials < 1:
        raise UsageError(f"--max-trials must be >= 1. Received: {t.max_trials}")
    if t.epochs < 1:
        raise UsageError(f"--epochs must be >= 1. Received: {t.epochs}")
    if t.time_budget is not None and not t.time_budget > 0:
        raise UsageError(f"--time-budget must be positive. Received: {t.time_budget}")
    if cfg.data.max_samples is not None and cfg.data.max_samples < 1:
        raise UsageError(f"--max-samples must be >= 1. Received: {cfg.data.max_samples}")
    if not 0.0 < cfg.data.val_fraction <= 0.5:
        raise UsageError(f"--val-fraction must be in (0, 0.5]. Received: {cfg.data.val_fraction}")
    if cfg.resume and cfg.overwrite:
        raise UsageError("--resume and --overwrite are exclusive: continue the run or replace it")
    check_objective(cfg)  # the CLI checks it too; the Python API only here
    defaults = {**dataclasses.asdict(TunerConfig()), **dataclasses.asdict(SpaceConfig())}
    given = {**dataclasses.asdict(t), **dataclasses.asdict(cfg.space)}
    used = [flag for key, flag in _KERASTUNER_ONLY.items() if given[key] != defaults[key]]
    if used:
        raise UsageError(f"{', '.join(used)} {'is a' if len(used) == 1 else 'are'} KerasTuner "
                         "option(s), not available with --engine autokeras")  # fmt: skip
    return cfg


def _need_file(path: str | Path, flag: str) -> None:
    if not Path(path).is_file():
        raise DataError(f"{flag} {str(path)!r} does not exist")


def _table(cfg: SearchConfig, csv: Any, flag: str) -> tuple[SearchConfig, Any]:
    """The table a plan reads: a file (checked now), or a pandas DataFrame given as DataConfig.csv
    (Python API). A frame is kept as RUN_DIR/data.parquet once the run is open (`_keep_frame`),
    and the returned config names that file, so run.json stays JSON and --resume reads it."""

    if not tables.is_frame(csv):
        _need_file(csv, flag)
        return cfg, csv
    cfg = _with_run_dir(cfg, "dataframe")
    path = str(Path(cfg.run_dir) / tables.FRAME_FILE)
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, csv=path)), csv


def _keep_frame(table: Any, cfg: SearchConfig) -> None:
    """Write the Python API's DataFrame where run.json says the table is (kept on --resume)."""

    if tables.is_frame(table):
        tables.save_frame(table, cfg.data.csv)


def _str(path: str | Path | None) -> str | None:
    return None if path is None else str(path)


# ---------------------------------------------------------------------------------------------
# data: hold-out splits, image folders


def _hold_out(
    run: runs.Run,
    cfg: SearchConfig,
    data: Any,
    x: np.ndarray,
    say: Say,
    word: str,
    columns: str = "",
    **record: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Text and structured searches: the seeded hold-out, its data line and notes, and run.json's
    `data` (with `record`'s fields); returns the train, val and test row indices."""
    tr, va, te = holdout(data.y, data.task, seed=cfg.data.seed,
                         val_fraction=cfg.data.val_fraction, max_train=cfg.data.max_samples)  # fmt: skip
    y = data.y
    say(f"data: {data.source} ({word}) train={len(tr)} val={len(va)} test={len(te)} "
        f"task={data.task}{columns}"
        + (f" classes={len(data.class_names)}" if data.class_names else ""))  # fmt: skip
    for note in data.notes:
        say(f"note: {note}")
    _record_data(run, {"train": (x[tr], y[tr]), "val": (x[va], y[va])}, source=data.source,
                 task=data.task, class_names=data.class_names, test_examples=len(te),
                 split=_holdout_note(cfg, data.task), **record)  # fmt: skip
    return tr, va, te


def _rows_to_load(cfg: SearchConfig) -> int | None:
    """Rows to read so that --max-samples training rows remain after the val/test hold-out."""
    return rows_to_load(cfg.data.max_samples, cfg.data.val_fraction, TEST_FRACTION)


def _holdout_note(cfg: SearchConfig, task: str) -> dict[str, Any]:
    how = "stratified by class" if task == "classification" else "uniform"
    if task not in ("classification", "regression"):
        how = task
    return {"method": f"seeded random hold-out of the rows ({how}); numpy default_rng(seed)",
            "seed": cfg.data.seed, "test_fraction": TEST_FRACTION,
            "val_fraction": cfg.data.val_fraction,
            "max_samples": cfg.data.max_samples}  # fmt: skip


def _label_values(class_names: list[str], source: str) -> np.ndarray:
    """Class names as numbers for --task regression (e.g. digits 0..9, folders named 1.5, 2)."""
    try:
        return np.asarray([float(n) for n in class_names], dtype=np.float32)
    except ValueError:
        shown = ", ".join(class_names[:5]) + (", ..." if len(class_names) > 5 else "")
        raise UsageError(f"--task regression needs numeric labels, but the classes of {source} "
                         f"are names ({shown})") from None  # fmt: skip


# ---------------------------------------------------------------------------------------------
# run directory and printed lines, shared by the four commands


def _with_run_dir(cfg: SearchConfig, name: str) -> SearchConfig:
    """Fix the run directory now (runs/<data>-autokeras-<timestamp> unless --run-dir)."""
    if cfg.run_dir:
        return cfg
    return dataclasses.replace(cfg, run_dir=str(cfg.resolved_run_dir()))


def _options(cfg: SearchConfig, run_dir: Path, say: Say | None = None) -> core.SearchOptions:
    """SearchOptions from the shared flags; max_samples is already applied by the loaders, and
    AutoKeras never overwrites its project (RUN_DIR/tuner), so --resume reloads its trials.
    `say` gets the per-epoch and per-trial lines (the flow's say: --quiet drops them)."""
    return core.SearchOptions(tuner=cfg.tuner.tuner, max_trials=cfg.tuner.max_trials,
                             epochs=cfg.tuner.epochs, seed=cfg.tuner.seed, max_samples=None,
                             directory=run_dir / "tuner", overwrite=False, verbose=cfg.verbose,
                             time_budget=cfg.tuner.time_budget, say=say)  # fmt: skip


def _record_data(
    run: runs.Run, splits: Mapping[str, tuple[np.ndarray, np.ndarray | None]], **fields: Any
) -> None:
    """run.json's `data` with fingerprints; a resumed run must see the same train/val data."""
    from automl_app.data.fingerprint import fingerprint

    prints = {k: fingerprint(x, y) for k, (x, y) in splits.items()}
    run.check_same_data(prints, "same data, --seed, --max-samples and --val-fraction")
    counts = {f"{k}_examples": len(x) for k, (x, _) in splits.items() if "/" not in k}
    old = (run.manifest().get("data") or {}) if run.resumed else {}
    run.update(data={**old, **fields, **counts, "fingerprint": prints})


def _task_word(task: str) -> str:
    return "Classifier" if task == "classification" else "Regressor"


def _search_line(what: str, cfg: SearchConfig, extra: str = "") -> str:
    t = cfg.tuner
    return (f"search: AutoKeras {what}, {t.tuner} tuner, max {t.max_trials} trials x "
            f"{t.epochs} epochs" + (f", {extra}" if extra else "")
            + (f", budget {t.time_budget:g}s" if t.time_budget else ""))  # fmt: skip


def _say_stop(result: core.AutoKerasResult, say: Say) -> None:
    done = sum(r["status"] == "completed" for r in result.trials)
    say(f"search stopped: {result.stop.get('stop_reason') or 'done'} after {len(result.trials)} "
        f"trials ({done} completed) in {result.search_seconds:.1f}s")  # fmt: skip
