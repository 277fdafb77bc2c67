"""Rebuild a KerasTuner search's trial: its hypermodel, hyperparameters, weights and data.

Models are rebuilt with the run's own hypermodel and KerasTuner's saved hyperparameters and
checkpoint; data through data.source.load_for_run (the run's own source and splits,
fingerprint-checked).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from automl_app import report, runs
from automl_app.errors import UsageError

Say = Callable[[str], None]


SEARCH_COMMANDS = ("search image",)


def search_manifest(run_dir: Path) -> dict[str, Any]:
    m = runs.load_manifest(run_dir)
    engine = m.get("engine", "kerastuner")
    if engine == "scratch":
        raise UsageError(
            f"{str(run_dir)!r} is a train-scratch run: one configuration, no trials to select or "
            "reproduce from; to compare seeds run train-scratch again with --seed N"
        )
    if m.get("command") not in SEARCH_COMMANDS or engine != "kerastuner":
        after = (
            "its test metrics are in run.json and report/"
            if m.get("command") == "search multi"
            else f"`automl evaluate {run_dir}` evaluates its export"
        )
        raise UsageError(
            f"{str(run_dir)!r} is a {m.get('command')!r} run ({engine}); select and reproduce "
            "rebuild trials from KerasTuner's saved hyperparameters, which AutoKeras runs do not "
            f"keep in a rebuildable form; {after}"
        )
    if not (m.get("data") or {}).get("image_shape"):
        raise UsageError(f"{str(run_dir)!r} has no data record yet (the search never started)")
    return m


def hypermodel_of(manifest: Mapping[str, Any], seed: int | None):
    """The run's hypermodel, rebuilt from its saved config with the search's own step
    (models.hypermodel.hypermodel_for: the space file it read, --set and --min-batch-size)."""
    from automl_app import models, spaces
    from automl_app.models.hypermodel import hypermodel_for
    from automl_app.training.metrics import configure_hypermodel
    from automl_app.tuning.tuners import infer_direction

    cfg = manifest["config"]
    data = manifest["data"]
    n_classes = len(data["class_names"])
    space = None
    if not cfg["space"].get("hypermodel"):
        source = (manifest.get("space") or {}).get("source")
        ref = source if source and Path(source).is_file() else cfg["space"].get("space") or "cnn"
        space = spaces.load(
            ref, known=models.known(), overrides=cfg["space"].get("overrides") or {}
        )
        space = spaces.with_min_batch_size(space, (cfg.get("tuner") or {}).get("min_batch_size"))
    hm = hypermodel_for(space, tuple(data["image_shape"]), n_classes,
                        user=cfg["space"].get("hypermodel"), seed=seed)  # fmt: skip
    # The search's own step (training.metrics): a rebuilt trial records the objective's metric
    # (val_auc, val_macro_f1) and trains with the run's --early-stopping and class weights.
    tuner = cfg.get("tuner") or {}
    objective = tuner.get("objective") or "val_accuracy"
    weights = manifest.get("class_weights") or {}
    configure_hypermodel(
        hm,
        objective=objective,
        direction=infer_direction(objective, tuner.get("direction")),
        num_classes=n_classes,
        patience=tuner.get("early_stopping"),
        class_weight={int(k): float(v) for k, v in weights.items()} or None,
    )
    return hm


def trial_hyperparameters(run_dir: str | os.PathLike, trial_id: str):
    """KerasTuner's saved HyperParameters of one trial (tuner/trial_<id>/trial.json)."""
    import keras_tuner as kt

    path = Path(run_dir) / "tuner" / f"trial_{trial_id}" / "trial.json"
    if not path.is_file():
        raise UsageError(f"trial {trial_id!r} has no {path} (was it run in this directory?)")
    return kt.engine.trial.Trial.load(str(path)).hyperparameters


def load_trial_model(run_dir: str | os.PathLike, trial_id: str, manifest=None, data=None):
    """Trial `trial_id` as KerasTuner kept it: its hyperparameters and best-epoch weights.

    The checkpoint is loaded when the search kept it (`--keep-checkpoints`); otherwise the trial
    is retrained on the same split with the run's seed and tuned epochs, keeping the weights of
    its best epoch by the objective, as KerasTuner does. Returns (model, "checkpoint"|"retrained"),
    the model compiled for export (models.hypermodel.servable: stock loss, no optimizer state).
    """
    from automl_app.tf_env import tf

    tf()
    from automl_app.models.hypermodel import servable

    run_dir = Path(run_dir)
    manifest = manifest or search_manifest(run_dir)
    hp = trial_hyperparameters(run_dir, trial_id)
    ckpt = run_dir / "tuner" / f"trial_{trial_id}" / "checkpoint.weights.h5"
    if ckpt.is_file():
        model = hypermodel_of(manifest, seed=None).build(hp)
        with warnings.catch_warnings():  # Keras notes the optimizer state it does not restore
            warnings.simplefilter("ignore")
            model.load_weights(str(ckpt))
        return servable(model), "checkpoint"
    import keras

    name, direction = report.objective(run_dir, manifest)
    epochs = tuned_epochs(manifest, hp)
    keep_best = keras.callbacks.EarlyStopping(
        monitor=name, mode=direction, patience=epochs + 1, restore_best_weights=True
    )
    seed = int(manifest["config"]["tuner"].get("seed", 0))
    model, _ = train_config(manifest, hp, data or load_data(manifest), seed, epochs, [keep_best])
    return servable(model), "retrained"


def tuned_epochs(manifest: Mapping[str, Any], hp) -> int:
    """The epoch budget a trial was tuned at (Hyperband's `tuner/epochs`, else --epochs)."""
    return int(hp.values.get("tuner/epochs") or manifest["config"]["tuner"]["epochs"])


def train_config(manifest: Mapping[str, Any], hp, data, seed: int, epochs: int, callbacks=()):
    """Build and fit one configuration exactly as the search's hypermodel does; (model, s)."""
    import keras

    keras.utils.set_random_seed(seed)
    hm = hypermodel_of(manifest, seed=seed)
    model = hm.build(hp)
    if manifest["config"]["space"].get("hypermodel"):
        x, kw = data.x_train.astype("float32") / 255.0, {"y": data.y_train}
        val = (data.x_val.astype("float32") / 255.0, data.y_val)
    else:
        x, val = data.as_datasets()
        kw = {}
    t0 = time.perf_counter()
    hm.fit(
        hp, model, x, validation_data=val, epochs=epochs, verbose=0, callbacks=list(callbacks), **kw
    )
    return model, time.perf_counter() - t0


def load_data(manifest: Mapping[str, Any]):
    """The run's own data source (named dataset or image folder), same splits, fingerprint-checked."""
    from automl_app.data import source

    return source.load_for_run(manifest)


def serving_spec(manifest: Mapping[str, Any]):
    """The export's serving signature for this run (fixed size, or any size for a folder)."""
    from automl_app.export.runspec import spec_from_manifest

    return spec_from_manifest(manifest)


def probabilities(model, x_raw: np.ndarray, spec) -> np.ndarray:
    from automl_app.evaluate import probabilities as _probs

    return _probs(model, x_raw, spec)
