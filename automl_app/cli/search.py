"""`automl search image|text|structured|multi`: options → one SearchConfig → workflows.search.

Every engine-specific check (a KerasTuner option with --engine autokeras, a tuner the engine does
not have) happens in the engine's plan, before anything is written; here options only become a
config.
"""

from __future__ import annotations

from typing import Any

import click

from automl_app.cli import options as o
from automl_app.cli.common import echo, handles_errors
from automl_app.errors import UsageError


@click.group(context_settings=o.CONTEXT)
def search() -> None:
    """Search a model with KerasTuner (or AutoKeras) and export the best one."""


def build_config(kind: str, opts: dict[str, Any]) -> Any:
    """The CLI's options for `search <kind>` → a SearchConfig (the Python API's argument)."""
    from automl_app import spaces
    from automl_app.config import (
        DEFAULT_DATASET,
        AutoKerasConfig,
        DataConfig,
        SearchConfig,
        SpaceConfig,
        TunerConfig,
    )
    from automl_app.tuning.budget import parse_duration
    from automl_app.tuning.enqueue import parse_enqueue

    engine = opts.get("engine") or ("autokeras" if kind != "image" else "kerastuner")
    o.check_run_and_source(opts)
    if engine == "kerastuner":
        used = [f for f, k in (("--block", "block"), ("--task", "task")) if opts.get(k)]
        if used:
            raise UsageError(f"{', '.join(used)} need{'s' * (len(used) == 1)} --engine autokeras")
        if opts.get("tuner") == "greedy":
            raise UsageError("--tuner greedy needs --engine autokeras")
    if opts.get("image_size") and not opts.get("data_dir") and kind == "image":
        raise UsageError("--image-size applies to image folders (--data-dir); a named dataset "
                         "keeps its own size")  # fmt: skip
    if engine == "autokeras":  # AutoKeras ranks by its own metrics and fits on its own
        from automl_app.config import AUTOKERAS_OBJECTIVES

        used = ["--early-stopping"] * (opts.get("early_stopping") is not None)
        used += ["--class-weight"] * (opts.get("class_weight", "none") != "none")
        used += ["--tta"] * (opts.get("tta", "auto") != "auto")
        if used:
            raise UsageError(f"{', '.join(used)} need{'s' * (len(used) == 1)} --engine kerastuner")
        if opts.get("objective", "val_accuracy") not in AUTOKERAS_OBJECTIVES:
            raise UsageError(
                f"--objective must be one of {', '.join(AUTOKERAS_OBJECTIVES)} with --engine "
                f"autokeras (AutoKeras records no AUC or F1). Received: {opts['objective']!r}"
            )
    tuner_name = opts.get("tuner") or ("greedy" if engine == "autokeras" else "random")
    budget = opts.get("time_budget")
    kt_only = {k: opts[k] for k in opts if k in _KT_FIELDS}
    data = DataConfig(
        dataset=opts.get("dataset") or DEFAULT_DATASET,
        data_dir=opts.get("data_dir"),
        image_size=opts.get("image_size"),
        max_samples=opts.get("max_samples"),
        val_fraction=opts.get("val_fraction", 0.1),
        seed=opts.get("seed", 0),
        csv=opts.get("csv_path"),
        target=opts.get("target"),
        text_column=opts.get("text_column"),
        column_types=dict(opts.get("column_types_parsed") or {}),
        spec=opts.get("spec"),
    )
    tuner_kwargs = {k: v for k, v in kt_only.items() if k not in ("space", "hypermodel", "sets")}
    if "enqueue" in tuner_kwargs:
        tuner_kwargs["enqueue"] = tuple(parse_enqueue(tuner_kwargs["enqueue"]))
    return SearchConfig(
        data=data,
        space=SpaceConfig(
            space=kt_only.get("space"),
            hypermodel=kt_only.get("hypermodel"),
            overrides=spaces.parse_set(kt_only.get("sets") or ()),
        ),
        tuner=TunerConfig(
            tuner=tuner_name,
            max_trials=opts["max_trials"],
            epochs=opts.get("epochs") or 3,
            seed=opts.get("seed", 0),
            time_budget=parse_duration(budget) if budget else None,
            **tuner_kwargs,
        ),
        run_dir=opts.get("run_dir"),
        overwrite=opts.get("overwrite", False),
        resume=opts.get("resume", False),
        verbose=opts.get("verbose", False),
        quiet=opts.get("quiet", False),
        task=kind,
        mlflow=opts.get("mlflow"),
        storage=opts.get("storage"),
        fail_below=opts.get("fail_below"),
        engine=engine,
        autokeras=AutoKerasConfig(
            block=opts.get("block") or "auto", task=opts.get("task") or "auto"
        ),
    )


_KT_FIELDS = {
    "space", "hypermodel", "sets", "objective", "direction", "prune", "tpe_startup", "min_epochs",
    "enqueue", "lr_find", "max_failures", "keep_checkpoints", "min_batch_size",
    "executions_per_trial", "workers", "oracle_bind", "oracle_port", "defaults_first",
    "early_stopping", "class_weight", "tta",
}  # fmt: skip


def _search(kind: str, opts: dict[str, Any]) -> None:
    from automl_app import workflows

    workflows.search(build_config(kind, opts), say=echo)


@search.command("image", context_settings=o.CONTEXT)
@o.engine
@o.image_data_options
@o.kerastuner_options
@o.tuner
@o.budget_options
@o.block
@o.task
@o.run_options
@handles_errors
def search_image(**opts: Any) -> None:
    """Search an image classifier for a named dataset or your image folder."""
    _search("image", opts)


@search.command("text", context_settings=o.CONTEXT)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Text folder DIR/<class>/*.txt (one example per file; folder name = label).",
)
@o.csv
@click.option("--text-column", metavar="COL", default=None, help="The CSV's text column.")
@o.target
@o.autokeras_command_options(o.task)
@handles_errors
def search_text(**opts: Any) -> None:
    """Search a text classifier/regressor with AutoKeras; the export takes raw strings."""
    _search("text", opts)


@search.command("structured", context_settings=o.CONTEXT)
@o.csv
@o.target
@click.option(
    "--column-type",
    "column_types",
    multiple=True,
    metavar="COL=numerical|categorical",
    help="Override an inferred column type (repeatable).",
)
@o.autokeras_command_options(o.task)
@handles_errors
def search_structured(**opts: Any) -> None:
    """Search a model for a table with AutoKeras; the export takes one input per column."""
    from automl_app.data.tabular import parse_column_types

    if not opts.get("csv_path"):
        raise UsageError("search structured needs --csv FILE (and --target COL)")
    opts["column_types_parsed"] = parse_column_types(opts.pop("column_types") or ())
    _search("structured", opts)


@search.command("multi", context_settings=o.CONTEXT)
@click.option(
    "--spec",
    type=click.Path(dir_okay=False),
    required=True,
    help="YAML listing inputs (image/text/structured columns) and outputs.",
)
@o.csv
@o.autokeras_command_options(o.block)
@handles_errors
def search_multi(**opts: Any) -> None:
    """Search a multi-input/multi-output model with AutoKeras's IO API (ak.AutoModel)."""
    _search("multi", opts)
