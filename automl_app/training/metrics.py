"""AUC and macro-F1 as Keras metrics that take the labels the search feeds: integer class ids.

Keras's AUC and F1Score want one-hot labels (F1Score also float predictions); the search's data
and every command reading a run keep integer labels, so these wrappers one-hot inside
`update_state` (a one-hot `y_true` of the right width passes through unchanged, as train-scratch
feeds). Both average over classes like scikit-learn's `roc_auc_score(..., multi_class="ovr",
average="macro")` and `f1_score(..., average="macro")` (a class absent from both labels and
predictions counts as F1 0 here; scikit-learn leaves it out). `compile_metrics(objective)` is the
list a model compiles so that the objective is recorded each epoch.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

# objective (without "val_") -> the metric that records it
OBJECTIVE_METRICS = ("auc", "macro_f1")
AUC_THRESHOLDS = 1000  # close to scikit-learn's exact AUC (Keras's default 200 is coarser)


def _one_hot(y_true: Any, y_pred: Any) -> Any:
    """Integer labels (any shape [N] or [N,1]) → one-hot float [N,K]; one-hot [N,K] unchanged."""
    k = ops.shape(y_pred)[-1]
    if len(y_true.shape) == 2 and y_true.shape[-1] == y_pred.shape[-1] and y_true.shape[-1] != 1:
        return ops.cast(y_true, "float32")
    labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
    return ops.one_hot(labels, k)


@keras.saving.register_keras_serializable(package="automl")
class SparseAUC(keras.metrics.AUC):
    """ROC AUC per class (one-vs-rest) averaged over classes, from integer labels; name `auc`.

    Two classes give the binary AUC (both one-vs-rest curves are the same curve).
    """

    def __init__(self, num_classes: int, name: str = "auc", **kwargs: Any):
        kwargs.setdefault("num_thresholds", AUC_THRESHOLDS)
        kwargs.pop("multi_label", None)
        kwargs.pop("num_labels", None)
        super().__init__(name=name, multi_label=True, num_labels=int(num_classes), **kwargs)
        self.num_classes = int(num_classes)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.cast(y_pred, "float32")
        return super().update_state(_one_hot(y_true, y_pred), y_pred, sample_weight)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        for key in ("multi_label", "num_labels", "label_weights"):
            config.pop(key, None)
        return {**config, "num_classes": self.num_classes}


@keras.saving.register_keras_serializable(package="automl")
class SparseMacroF1(keras.metrics.F1Score):
    """F1 per class of the argmax prediction, averaged over classes, from integer labels;
    name `macro_f1`."""

    def __init__(self, num_classes: int, name: str = "macro_f1", **kwargs: Any):
        kwargs.pop("average", None)
        kwargs.pop("threshold", None)
        super().__init__(average="macro", threshold=None, name=name, **kwargs)
        self.num_classes = int(num_classes)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.cast(y_pred, "float32")
        return super().update_state(_one_hot(y_true, y_pred), y_pred, sample_weight)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        for key in ("average", "threshold"):
            config.pop(key, None)
        return {**config, "num_classes": self.num_classes}


def metric_name(objective: str) -> str:
    """`val_auc` → `auc`: the name the model compiles for an objective."""
    return objective[4:] if objective.startswith("val_") else objective


def compile_metrics(objective: str, num_classes: int) -> list[Any]:
    """What a model compiles so `objective` is recorded: accuracy, plus AUC or macro-F1 when the
    objective names them (fresh instances: one list per model)."""
    name = metric_name(objective)
    extra: list[Any] = []
    if name == "auc":
        extra.append(SparseAUC(num_classes))
    elif name == "macro_f1":
        extra.append(SparseMacroF1(num_classes))
    return ["accuracy", *extra]


def metrics_factory(objective: str, num_classes: int):
    """A no-argument callable returning `compile_metrics(objective, num_classes)` (a hypermodel
    calls it once per build, so no two models share a metric's state)."""

    def make() -> list[Any]:
        return compile_metrics(objective, num_classes)

    make.objective = objective  # type: ignore[attr-defined]
    return make


def configure_hypermodel(
    hypermodel: Any,
    *,
    objective: str,
    direction: str,
    num_classes: int,
    patience: int | None = None,
    class_weight: dict[int, float] | None = None,
) -> None:
    """Give a search's hypermodel (models/hypermodel.py) what its compile and fit take from the
    options: the metrics the objective needs, --early-stopping on the objective (`direction`:
    min or max) and --class-weight's weights. The search and every command that rebuilds a
    trial (select, reproduce) call this, so a rebuilt trial trains as the trial did."""
    if hasattr(hypermodel, "metrics_factory"):  # a --space model; a --hypermodel compiles its own
        hypermodel.metrics_factory = metrics_factory(objective, num_classes)
    hypermodel.early_stopping = (
        {"monitor": objective, "mode": direction, "patience": int(patience)} if patience else None
    )
    hypermodel.class_weight = dict(class_weight) if class_weight else None
