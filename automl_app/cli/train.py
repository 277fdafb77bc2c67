"""`automl scan-images DIR` and `automl train-scratch MODEL`: options → one workflow call."""

from __future__ import annotations

from typing import Any

import click

from automl_app.cli import options as o
from automl_app.cli.common import echo, handles_errors

# Recipe keys the train-scratch flags override (flag → ScratchConfig field).
RECIPE_FLAGS = ("alpha", "batch_size", "epochs", "optimizer", "lr", "momentum", "nesterov",
                "schedule", "warmup_epochs", "label_smoothing", "weight_decay",
                "mixed_precision", "distribute")  # fmt: skip
DEFAULT_RECIPE = {"folder": "mobilenetv2_scratch", "named": "mobilenetv2_small"}


@click.command("scan-images", context_settings=o.CONTEXT)
@click.argument("data_dir", type=click.Path(file_okay=False, path_type=str))
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=str),
    help="Write the blacklist (path<TAB>reason per bad file) here; default: stdout.",
)
@click.option(
    "--max-pixels",
    type=int,
    default=50_000_000,
    show_default=True,
    help="Images with more pixels (read from the header) are 'too large'.",
)
@click.option(
    "--cache",
    type=click.Path(dir_okay=False, path_type=str),
    help="Scan cache (JSON, keyed by path, size, mtime); default under $AUTOML_CACHE_DIR.",
)
@o.verbose
@handles_errors
def scan_images_cmd(
    data_dir: str, output: str | None, max_pixels: int, cache: str | None, verbose: bool
) -> None:
    """Decode every file below DATA_DIR as training would; list bad files and duplicates."""
    from automl_app import workflows
    from automl_app.tf_env import set_verbose

    set_verbose(verbose)
    result = workflows.scan_images(data_dir, output=output, max_pixels=max_pixels, cache=cache)
    to_err = output is None
    if output is None:
        click.echo(result.blacklist_text(), nl=False)
    for dup in result.duplicates:
        flags = [
            n
            for n, on in (("across classes", dup.cross_class), ("across splits", dup.cross_split))
            if on
        ]
        click.echo(
            f"duplicate{' (' + ', '.join(flags) + ')' if flags else ''}: " + "  ".join(dup.paths),
            err=to_err,
        )
    click.echo(result.summary(), err=to_err)


@click.command("train-scratch", context_settings=o.CONTEXT)
@click.argument("model", type=click.Choice(["mobilenetv2"]))
@click.option(
    "--recipe",
    default=None,
    help="Recipe name (pipelines/NAME.yaml) or a YAML file. [default: mobilenetv2_scratch for "
    "--data-dir, mobilenetv2_small (32 px) for a named dataset]",
)
@o.image_data_options
@o.scratch_epochs
@click.option("--alpha", type=float, help="MobileNetV2 width multiplier.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Global batch size (the LR scales).")
@click.option("--optimizer", type=click.Choice(["sgd", "adam", "rmsprop"]))
@click.option("--lr", type=float, help="Learning rate per 256 images (scaled to the batch).")
@click.option("--momentum", type=float)
@click.option("--nesterov/--no-nesterov", default=None)
@click.option(
    "--schedule",
    type=click.Choice(["cosine", "step", "exponential", "constant"]),
    help="Decay after the warm-up.",
)
@click.option("--warmup-epochs", type=float, help="Linear warm-up length in epochs.")
@click.option("--label-smoothing", type=float)
@click.option("--weight-decay", type=float)
@click.option(
    "--mixed-precision",
    type=click.Choice(["auto", "on", "off"]),
    help="auto: on when a GPU is present.",
)
@click.option(
    "--distribute",
    type=click.Choice(["auto", "none", "mirrored"]),
    help="mirrored: tf.distribute.MirroredStrategy over the GPUs.",
)
@click.option(
    "--scan-cache",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    help="Scan cache for --data-dir (JSON). [default: under $AUTOML_CACHE_DIR]",
)
@click.option(
    "--early-stopping",
    type=int,
    default=None,
    metavar="PATIENCE",
    help="Stop after PATIENCE epochs without a better val_accuracy and keep the best epoch's "
    "weights (Keras EarlyStopping).",
)
@click.option(
    "--class-weight",
    type=click.Choice(["none", "balanced"]),
    default="none",
    show_default=True,
    help="balanced: weight the loss by inverse class frequency of the training split (instead "
    "of the recipe's `data.balance: oversample`; not both).",
)
@o.run_options
@handles_errors
def train_scratch_cmd(model: str, **opts: Any) -> None:
    """Train MODEL from scratch (a named dataset or your image folder) with one recipe; evaluate
    once on the test split and export."""
    from automl_app import workflows

    cfg = build_train_config(model, opts)
    manifest = workflows.train_scratch(cfg, say=echo)
    m = manifest["test"]
    echo(
        f"done in {manifest['wall_seconds']:.1f} s: {manifest['data']['evaluated_on']} accuracy "
        f"{m['accuracy']:.4f}; run in {cfg.resolved_run_dir()}"
    )


def build_train_config(model: str, opts: dict[str, Any]) -> Any:
    """train-scratch options → TrainConfig (recipe overrides + the shared data/run options)."""
    import dataclasses

    from automl_app.config import DEFAULT_DATASET, DataConfig, TrainConfig

    o.check_run_and_source(opts)
    overrides = {("lr_per_256" if k == "lr" else k): opts.get(k) for k in RECIPE_FLAGS}
    recipe = opts.get("recipe") or DEFAULT_RECIPE["folder" if opts.get("data_dir") else "named"]
    cfg = TrainConfig(
        model=model,
        recipe=recipe,
        overrides={k: v for k, v in overrides.items() if v is not None},
        data=DataConfig(
            dataset=opts.get("dataset") or DEFAULT_DATASET,
            data_dir=opts.get("data_dir"),
            image_size=opts.get("image_size"),
            max_samples=opts.get("max_samples"),
            val_fraction=opts.get("val_fraction", 0.1),
            seed=opts.get("seed", 0),
        ),
        run_dir=opts.get("run_dir"),
        overwrite=opts.get("overwrite", False),
        resume=opts.get("resume", False),
        verbose=opts.get("verbose", False),
        quiet=opts.get("quiet", False),
        mlflow=opts.get("mlflow"),
        storage=opts.get("storage"),
        fail_below=opts.get("fail_below"),
        scan_cache=opts.get("scan_cache"),
        early_stopping=opts.get("early_stopping"),
        class_weight=opts.get("class_weight") or "none",
    )
    # The run directory is fixed now, so the closing line and --resume name the same one.
    return dataclasses.replace(cfg, run_dir=str(cfg.resolved_run_dir()))
