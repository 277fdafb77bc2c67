"""AutoKeras's task APIs (ImageClassifier/Regressor, TextClassifier/Regressor,
StructuredDataClassifier/Regressor): arrays in, an AutoKerasResult out; and the trial table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from automl_app.engines.autokeras.constants import BLOCKS, TASKS
from automl_app.engines.autokeras.core import (
    DEFAULT_OPTIONS,
    AutoKerasResult,
    SearchOptions,
    _check_choice,
    _check_classes,
    _classes,
    _configure_image_blocks,
    _finish,
    _fit,
    _take,
    check_image_memory,
    has_gpu,
    image_block_note,
    image_initial_hps,
    tuner_factory,
)
from automl_app.errors import DataError

Say = Callable[[str], None]


def trial_rows(result: AutoKerasResult) -> list[dict[str, Any]]:
    """trials.csv rows (the best trial's with its params) in the KerasTuner engine's layout; the
    flow writes them."""
    rows = [dict(r) for r in result.trials]
    params = int(result.model.count_params())
    for r in rows:
        if r["trial_id"] == result.best["trial_id"]:
            r["params"] = params
    return rows


def _single_task_data(x, y, task, class_names, validation_data, opts, what, as_x):
    """Shared checks for the single-input tasks: subsample, class ids or float targets."""
    _check_choice("task", task, TASKS)
    opts.check()
    x, y = _take([as_x(x), np.asarray(y)], opts.max_samples, opts.seed)
    if task == "classification":
        class_names = _check_classes(y, class_names, what)
    else:
        y = y.astype(np.float32)
    val = None
    if validation_data is not None:
        yv = np.asarray(validation_data[1])
        val = (as_x(validation_data[0]), yv.astype(np.float32) if task == "regression" else yv)
    return x, y, (list(class_names) if class_names else None), val


def _head_name(task: str) -> str:
    return "classification_head_1" if task == "classification" else "regression_head_1"


def search_image(
    x: np.ndarray,
    y: np.ndarray,
    *,
    task: str = "classification",
    class_names: Sequence[str] | None = None,
    block: str = "auto",
    validation_data: tuple[np.ndarray, np.ndarray] | None = None,
    options: SearchOptions = DEFAULT_OPTIONS,
    say: Say = print,
) -> AutoKerasResult:
    """ImageClassifier / ImageRegressor on uint8 images [N,H,W] or [N,H,W,C].

    `block` picks the image family (auto searches all; without a GPU it starts with a vanilla CNN
    and says so). ImageNet weights are never used: searches stay offline and reproducible.
    """
    _check_choice("block", block, BLOCKS)
    x, y, class_names, val = _single_task_data(
        x, y, task, class_names, validation_data, options, f"image {task}", np.asarray
    )
    if x.ndim not in (3, 4):
        raise DataError(f"images must be [N,H,W] or [N,H,W,C]; got shape {x.shape}")
    check_image_memory(len(x), x.shape[1:], "AutoKeras image search", x.dtype.itemsize)
    ak = _classes()["ak"]
    gpu = has_gpu()
    head = _head_name(task)
    initial = image_initial_hps(block, gpu, head)
    factory = tuner_factory(options.tuner, initial_hps=initial, epochs=options.epochs)
    cls = ak.ImageClassifier if task == "classification" else ak.ImageRegressor
    automodel = cls(**options.automodel_kwargs(factory))
    _configure_image_blocks(automodel, block, gpu)
    notes = [n for n in [image_block_note(block, gpu)] if n]
    for n in notes:
        say(n)
    seconds = _fit(automodel, x, y, val, options)
    image = {"name": "image", "type": "image", "shape": list(x.shape[1:]), "dtype": str(x.dtype),
             "block": block}  # fmt: skip
    return _finish(automodel, "image", task, seconds, class_names=class_names, notes=notes,
                   inputs=[image], heads=[{"name": head, "type": task, "class_names": class_names}])  # fmt: skip


def _as_text(x) -> np.ndarray:
    return np.asarray(x, dtype=str).reshape(-1)


def search_text(
    texts: np.ndarray,
    y: np.ndarray,
    *,
    task: str = "classification",
    class_names: Sequence[str] | None = None,
    validation_data: tuple[np.ndarray, np.ndarray] | None = None,
    options: SearchOptions = DEFAULT_OPTIONS,
    say: Say = print,
) -> AutoKerasResult:
    """TextClassifier / TextRegressor on a numpy array of strings [N]."""
    texts, y, class_names, val = _single_task_data(
        texts, y, task, class_names, validation_data, options, f"text {task}", _as_text
    )
    ak = _classes()["ak"]
    from autokeras.tuners import task_specific

    initial = task_specific.TEXT_CLASSIFIER if task == "classification" else None
    factory = tuner_factory(options.tuner, initial_hps=initial, epochs=options.epochs)
    cls = ak.TextClassifier if task == "classification" else ak.TextRegressor
    automodel = cls(**options.automodel_kwargs(factory))
    seconds = _fit(automodel, texts, y, val, options)
    return _finish(automodel, "text", task, seconds, class_names=class_names,
                   inputs=[{"name": "text", "type": "text"}],
                   heads=[{"name": _head_name(task), "type": task, "class_names": class_names}])  # fmt: skip


def _as_table(x) -> np.ndarray:
    return np.asarray(x).astype(str)


def search_structured(
    x: np.ndarray,
    y: np.ndarray,
    *,
    column_names: Sequence[str],
    column_types: Mapping[str, str] | None = None,
    task: str = "classification",
    class_names: Sequence[str] | None = None,
    validation_data: tuple[np.ndarray, np.ndarray] | None = None,
    options: SearchOptions = DEFAULT_OPTIONS,
    say: Say = print,
) -> AutoKerasResult:
    """StructuredDataClassifier / Regressor on a string array [N, C] (data/tabular.py builds it).

    column_types: the final types (data.tabular infers them with AutoKeras's rule; users override).
    """
    x, y, class_names, val = _single_task_data(
        x, y, task, class_names, validation_data, options, f"structured {task}", _as_table
    )
    if x.ndim != 2 or x.shape[1] != len(column_names):
        raise DataError(
            f"structured data must be [N, {len(column_names)}] (one column per name); "
            f"got shape {x.shape}"
        )
    ak = _classes()["ak"]
    from autokeras.tuners import task_specific

    initial = (task_specific.STRUCTURED_DATA_CLASSIFIER if task == "classification"
               else task_specific.STRUCTURED_DATA_REGRESSOR)  # fmt: skip
    factory = tuner_factory(options.tuner, initial_hps=initial, epochs=options.epochs)
    cls = ak.StructuredDataClassifier if task == "classification" else ak.StructuredDataRegressor
    automodel = cls(column_names=list(column_names),
                    column_types=dict(column_types) if column_types else None,
                    **options.automodel_kwargs(factory))  # fmt: skip
    seconds = _fit(automodel, x, y, val, options)
    node = automodel.inputs[0]
    table = {"name": "structured", "type": "structured", "columns": list(node.column_names),
             "column_types": dict(node.column_types)}  # fmt: skip
    return _finish(automodel, "structured", task, seconds, class_names=class_names,
                   inputs=[table],
                   heads=[{"name": _head_name(task), "type": task, "class_names": class_names}])  # fmt: skip
