"""Click commands for image folders: `automl scan-images` and `automl train-scratch`.

Thin layer: options → one workflows_images call → echo. No TensorFlow import at import time.
`python -m automl_app.cli_images ...` runs them stand-alone.
"""

from __future__ import annotations

import sys

import click

from automl_app.cli_common import handles_errors
from automl_app.errors import UsageError


@click.command("scan-images")
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
@handles_errors
def scan_images_cmd(data_dir: str, output: str | None, max_pixels: int, cache: str | None):
    """Decode every file below DATA_DIR as training would; list bad files and duplicates."""
    from automl_app import workflows_images

    result = workflows_images.scan_images(
        data_dir, output=output, max_pixels=max_pixels, cache=cache
    )
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


@click.command("train-scratch")
@click.argument("model", type=click.Choice(["mobilenetv2"]))
@click.option(
    "--data-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=str),
    help="Image folder: DIR/<class>/* or DIR/{train,val,test}/<class>/*.",
)
@click.option(
    "--recipe",
    default="mobilenetv2_scratch",
    show_default=True,
    help="Recipe name (pipelines/NAME.yaml) or a YAML file.",
)
@click.option("--image-size", type=int, help="Square input size in pixels.")
@click.option("--alpha", type=float, help="MobileNetV2 width multiplier.")
@click.option("--batch-size", type=int, help="Global batch size (the LR scales with it).")
@click.option("--epochs", type=int, help="Total epochs (also when resuming).")
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
@click.option("--max-samples", type=int, help="Use at most N training images.")
@click.option("--seed", type=int, help="Random seed.")
@click.option(
    "--run-dir",
    default="runs/train-scratch",
    show_default=True,
    type=click.Path(file_okay=False, path_type=str),
    help="Where the run is written.",
)
@click.option("--resume", is_flag=True, help="Continue RUN_DIR from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Start RUN_DIR again from nothing.")
@click.option("--verbose", is_flag=True, help="Show Keras progress and TensorFlow logs.")
@handles_errors
def train_scratch_cmd(
    model: str,
    data_dir: str,
    recipe: str,
    run_dir: str,
    resume: bool,
    overwrite: bool,
    verbose: bool,
    **options,
):
    """Train MODEL from scratch on an image folder with one recipe; evaluate and export it."""
    from automl_app import workflows_images
    from automl_app.tf_env import set_verbose

    if resume and overwrite:
        raise UsageError("--resume and --overwrite exclude each other; pass one")
    set_verbose(verbose)
    overrides = dict(options)
    overrides["lr_per_256"] = overrides.pop("lr")
    manifest = workflows_images.train_scratch(
        model,
        data_dir,
        recipe=recipe,
        overrides=overrides,
        run_dir=run_dir,
        resume=resume,
        overwrite=overwrite,
        log=click.echo,
        verbose=verbose,
    )
    m = manifest["test_metrics"]
    click.echo(
        f"done in {manifest['wall_seconds']:.1f} s: {manifest['data']['evaluated_on']} accuracy "
        f"{m['accuracy']:.4f}; run in {run_dir}"
    )


@click.group()
def _main() -> None:
    """Stand-alone entry for the image commands (until cli.py registers them)."""


_main.add_command(scan_images_cmd)
_main.add_command(train_scratch_cmd)

if __name__ == "__main__":
    sys.exit(_main())
