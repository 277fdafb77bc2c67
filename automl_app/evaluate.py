"""Final evaluation: the test split, touched once, summarised with scikit-learn; chance level.

The one place every engine's model is judged (workflows.run_plan calls `final` and `chance_check`
after the engine trained): report/classification_report.{txt,json} and
report/confusion_matrix.{json,png} for classifiers, report/regression_report.json for regressors
(`regression_metrics`, also what `automl evaluate` prints), and whether the accuracy is within
noise of guessing the split's majority class.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from automl_app import runs


def classification_metrics(y_true: np.ndarray, y_prob: np.ndarray) -> dict[str, float]:
    """Accuracy and cross-entropy loss computed from predicted probabilities."""
    y_true = np.asarray(y_true).astype(int).reshape(-1)
    y_prob = np.asarray(y_prob, dtype=np.float64)
    p_true = np.clip(y_prob[np.arange(len(y_true)), y_true], 1e-12, 1.0)
    return {
        "accuracy": float(np.mean(np.argmax(y_prob, axis=1) == y_true)),
        "loss": float(-np.mean(np.log(p_true))),
        "examples": int(len(y_true)),
    }


def chance_check(
    accuracy: float, y_reference: np.ndarray, num_classes: int, *, split: str = "val"
) -> dict[str, Any]:
    """Whether `accuracy`, measured on the examples labelled `y_reference` (the `split`), is within
    noise of guessing: the better of 1/num_classes and always answering the split's majority class.

    "Within noise" is at most two binomial standard errors above that rate (about a 95% one-sided
    band), the shape report/chance.py reads from run.json's `chance`. The one chance rule of every
    engine (the flow calls it on the split the exported model was evaluated on).
    """
    y = np.asarray(y_reference).astype(int).reshape(-1)
    n = max(len(y), 1)
    k = max(int(num_classes), 2)
    majority = float(np.bincount(y, minlength=k).max() / n) if len(y) else 0.0
    uniform = 1.0 / k
    rate, basis = (uniform, f"1/{k} classes")
    if majority > uniform:
        rate, basis = majority, "majority class"
    margin = 2.0 * float(np.sqrt(rate * (1.0 - rate) / n))
    return {
        "rate": round(rate, 6),
        "basis": basis,
        "split": split,
        f"{split}_accuracy": round(float(accuracy), 6),
        "examples": int(len(y)),
        "margin": round(margin, 6),
        "within_noise": bool(float(accuracy) <= rate + margin),
    }


def chance_warning(chance: Mapping[str, Any]) -> str:
    """The one line every engine prints for a model within noise of chance (`chance_check` with
    `cause` and `next_step` added)."""
    split = chance.get("split", "val")
    acc = float(chance.get(f"{split}_accuracy", float("nan")))
    return (
        f"warning: the exported model is no better than chance: {split} accuracy {acc:.4f} vs "
        f"{chance['rate']:.4f} ({chance['basis']}, ±{chance['margin']:.4f} on "
        f"{chance['examples']} {split} examples); likely cause: {chance.get('cause')}; next: "
        f"{chance.get('next_step')}"
    )


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and R² (scikit-learn); several outputs are averaged as scikit-learn does."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    y_true = np.asarray(y_true, np.float64).reshape(len(y_true), -1)
    y_pred = np.asarray(y_pred, np.float64).reshape(len(y_pred), -1)
    return {
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "rmse": float(math.sqrt(mean_squared_error(y_true, y_pred))),
        "r2": float(r2_score(y_true, y_pred)) if len(y_true) > 1 else float("nan"),
        "examples": int(len(y_true)),
    }


def write_regression_report(
    y_true: np.ndarray, y_pred: np.ndarray, report_dir: str | Path, *, name: str | None = None
) -> dict[str, float]:
    """`regression_metrics` into report/regression_report.json (under `name` for one head of
    several); returns them."""
    import json

    metrics = regression_metrics(y_true, y_pred)
    path = Path(report_dir) / "regression_report.json"
    existing = json.loads(path.read_text()) if name is not None and path.is_file() else {}
    runs.atomic_write_json(path, {**existing, name: metrics} if name else metrics)
    return metrics


def metrics_line(metrics: Mapping[str, Any]) -> str:
    """'accuracy 0.9000, loss ... on N examples' for classifiers, 'MAE ..., RMSE ..., R² ...' for
    regressors: the test line of every engine."""
    if "accuracy" in metrics:
        return (
            f"accuracy {metrics['accuracy']:.4f}, loss {metrics['loss']:.4f} on "
            f"{metrics['examples']} examples"
        )
    return (
        f"MAE {metrics['mae']:.4g}, RMSE {metrics['rmse']:.4g}, R² {metrics['r2']:.3f} on "
        f"{metrics['examples']} examples"
    )


def final(
    predictions: Any, labels: Any, heads: Sequence[Mapping[str, Any]], report_dir: str | Path
) -> dict[str, Any]:
    """The test report of every head: classification report + confusion matrix, or regression
    metrics. One head: its metrics; several: {head name: metrics} (each in report/<name>/)."""
    report_dir = Path(report_dir)
    single = len(heads) == 1
    preds = predictions if isinstance(predictions, Mapping) else {heads[0]["name"]: predictions}
    ys = labels if isinstance(labels, Mapping) else {heads[0]["name"]: labels}
    out: dict[str, Any] = {}
    for head in heads:
        name = head["name"]
        pred = preds[name] if name in preds else next(iter(preds.values()))
        y = np.asarray(ys[name])
        if head["type"] == "classification":
            where = report_dir if single else report_dir / name
            out[name] = write_classification_report(y, pred, head["class_names"], where)
        else:
            out[name] = write_regression_report(y, pred, report_dir, name=None if single else name)
    return out[heads[0]["name"]] if single else out


def write_classification_report(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    class_names: Sequence[str],
    report_dir: str | Path,
) -> dict[str, Any]:
    """Write the per-class report and confusion matrix; return accuracy, loss and macro F1."""
    from sklearn.metrics import classification_report, confusion_matrix

    report_dir = Path(report_dir)
    y_true = np.asarray(y_true).astype(int).reshape(-1)
    y_pred = np.argmax(np.asarray(y_prob), axis=1)
    labels = list(range(len(class_names)))
    names = [str(n) for n in class_names]
    text = classification_report(
        y_true, y_pred, labels=labels, target_names=names, digits=4, zero_division=0
    )
    as_dict = classification_report(
        y_true, y_pred, labels=labels, target_names=names, output_dict=True, zero_division=0
    )
    runs.atomic_write_text(report_dir / "classification_report.txt", text)
    runs.atomic_write_json(report_dir / "classification_report.json", as_dict)
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    runs.atomic_write_json(
        report_dir / "confusion_matrix.json", {"labels": names, "matrix": cm.tolist()}
    )
    plot_confusion_matrix(cm, names, report_dir / "confusion_matrix.png")
    metrics = classification_metrics(y_true, y_prob)
    metrics["macro_f1"] = float(as_dict["macro avg"]["f1-score"])
    return metrics


def plot_confusion_matrix(cm: np.ndarray, names: Sequence[str], path: str | Path) -> Path:
    """Save the confusion matrix as a PNG (headless Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    size = max(4.0, 0.55 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay(cm, display_labels=list(names)).plot(
        ax=ax, cmap="Blues", colorbar=False, xticks_rotation=45
    )
    ax.set_title("Confusion matrix (test split)")
    fig.tight_layout()
    return runs.atomic_save_figure(fig, path)


def probabilities(model: Any, x_raw: np.ndarray, spec: Any, batch: int = 1024) -> np.ndarray:
    """The in-memory model's probabilities on raw inputs, through the export's preprocessing
    (spec.preprocess), so the test report measures what the exported `serve` will answer."""
    from automl_app.tf_env import tf

    t = tf()
    outs = []
    for i in range(0, len(x_raw), batch):
        x = spec.preprocess(t.constant(x_raw[i : i + batch]))
        outs.append(np.asarray(model(x, training=False), dtype=np.float64))
    probs = np.concatenate(outs) if outs else np.zeros((0, 0))
    if not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3) or (probs < -1e-6).any():
        e = np.exp(probs - probs.max(axis=1, keepdims=True))  # logits → probabilities
        probs = e / e.sum(axis=1, keepdims=True)
    return probs
