"""What a KerasTuner search is made of: the validated space, the hypermodel and the tuner
(with an LR range test's suggestion enqueued first when asked).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from automl_app import runs
from automl_app.config import SearchConfig
from automl_app.errors import AutomlError, ConfigError, UsageError

Say = Callable[[str], None]


DEFAULT_SPACE = {"image": "cnn"}


def load_space(cfg: SearchConfig):
    """The validated search space (None for a user hypermodel), with --min-batch-size applied."""
    from automl_app import models, spaces

    if cfg.space.hypermodel is not None:
        if cfg.tuner.lr_find:
            raise UsageError(
                "--lr-find needs a --space (it trains the space's default configuration)"
            )
        return None
    space = spaces.load(
        cfg.space.space or DEFAULT_SPACE[cfg.task],
        known=models.known(),
        overrides=cfg.space.overrides,
    )
    space = spaces.with_min_batch_size(space, cfg.tuner.min_batch_size)
    if cfg.tuner.enqueue:
        from automl_app.tuning.enqueue import check_names

        check_names(list(cfg.tuner.enqueue), set(space.names))
    return space


def make_search_tuner(
    cfg: SearchConfig,
    space,
    data,
    run_dir: Path,
    say: Say,
    deadline,
    lr_find: bool | None = None,
    n_train: int | None = None,
    announce: bool = True,
):
    """The hypermodel and the tuner; the first trial is the space's defaults (or, with
    --lr-find, the defaults at the suggested learning rate) unless --no-defaults-first.
    `announce=False` (a parallel worker, whose queue the chief's oracle holds, and the finished
    search's reload) does not say the portfolio line again."""
    from automl_app.models.hypermodel import hypermodel_for
    from automl_app.tuning.tuners import make_tuner

    info = data.info
    enqueue = list(cfg.tuner.enqueue)
    defaults_first = cfg.tuner.defaults_first
    hypermodel = hypermodel_for(space, info.image_shape, info.num_classes,
                                user=cfg.space.hypermodel, seed=cfg.tuner.seed)  # fmt: skip
    configure_fit(hypermodel, cfg, data.y_train, info.num_classes)
    if space is not None and space.portfolio and defaults_first and cfg.tuner.tuner != "grid":
        # The space's portfolio runs right after the defaults (and --enqueue's), before the
        # tuner's own proposals: configurations that did well before, so a short search judges
        # them instead of hoping its first random draws find as good (the grid walks its points).
        enqueue = enqueue + [dict(c) for c in space.portfolio]
        if announce:
            say(
                f"search: the space's defaults first, then its portfolio ({_configs(space.portfolio)})"
            )
    if space is not None:
        train, val = data.as_datasets()
        fit_args = {"train": train, "val": val}
        if cfg.tuner.lr_find if lr_find is None else lr_find:
            enqueue = [
                lr_find_first(hypermodel, train, space, run_dir, say, cfg.tuner.seed)
            ] + enqueue
            defaults_first = False  # the LR test's configuration is the defaults, better tuned
    else:
        fit_args = {
            "train": data.x_train.astype("float32") / 255.0,
            "y_train": data.y_train,
            "val": data.x_val.astype("float32") / 255.0,
            "y_val": data.y_val,
        }
    try:
        tuner = make_tuner(
            cfg.tuner.tuner,
            hypermodel,
            run_dir=run_dir,
            objective=cfg.tuner.objective,
            direction=cfg.tuner.direction,
            max_trials=cfg.tuner.max_trials,
            epochs=cfg.tuner.epochs,
            seed=cfg.tuner.seed,
            max_failures=cfg.tuner.max_failures,
            on_line=say,
            overwrite=False,
            deadline=deadline,
            enqueue=enqueue,
            keep_checkpoints=cfg.tuner.keep_checkpoints,
            n_train=n_train or len(data.x_train),
            executions_per_trial=cfg.tuner.executions_per_trial,
            tpe_startup=cfg.tuner.tpe_startup,
            defaults_first=defaults_first,
        )
    except AutomlError:
        raise
    except Exception as exc:  # build(hp) failed on the space's defaults: a broken config
        raise ConfigError(
            f"the model does not build from the search space's defaults: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return tuner, fit_args


def _configs(configs) -> str:
    return "; ".join(" ".join(f"{k}={v}" for k, v in c.items()) for c in configs)


def configure_fit(hypermodel: Any, cfg: SearchConfig, y_train: Any, num_classes: int) -> None:
    """What every trial's (and the refit's) compile and fit take from the options: the metrics
    the objective needs (AUC, macro-F1), --early-stopping on the objective and --class-weight."""
    from automl_app.training.metrics import configure_hypermodel
    from automl_app.tuning.tuners import infer_direction

    t = cfg.tuner
    configure_hypermodel(
        hypermodel,
        objective=t.objective,
        direction=infer_direction(t.objective, t.direction),
        num_classes=num_classes,
        patience=t.early_stopping,
        class_weight=class_weights(t.class_weight, y_train),
    )


def class_weights(mode: str, y_train: Any) -> dict[int, float] | None:
    """--class-weight balanced: scikit-learn's 'balanced' weights (n / (k * count)) of the
    training split's classes; None for `none`."""
    if mode in (None, "none"):
        return None
    from automl_app.training.loop import balanced_class_weights

    return balanced_class_weights(y_train)


def lr_find_first(hypermodel, train, space, run_dir: Path, say: Say, seed: int) -> dict[str, Any]:
    """Run the LR range test, save report/lr_find.{png,json}, return the config to enqueue."""
    from automl_app.tuning import lr_find

    if "learning_rate" not in space.names:
        raise UsageError(f"--lr-find needs a `learning_rate` entry in {space.source}")
    result = lr_find.lr_range_test(hypermodel, train, seed=seed)
    lr = lr_find.clip_to_space(result["suggestion"], space)
    lr_find.plot(result, run_dir / "report" / "lr_find.png")
    runs.atomic_write_json(
        run_dir / "report" / "lr_find.json",
        {
            k: result[k]
            for k in ("lr_at_min_loss", "suggestion", "steps_run", "batch_size", "lrs", "losses")
        }
        | {"enqueued_learning_rate": lr},
    )
    say(
        f"lr-find: lowest loss at lr={result['lr_at_min_loss']:.3g} after "
        f"{result['steps_run']} steps; first trial uses learning_rate={lr:.3g} "
        f"(report/lr_find.png)"
    )
    return {"learning_rate": lr}
