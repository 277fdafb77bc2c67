"""Final evaluation: the test split, touched once, summarised with scikit-learn.

Writes report/classification_report.{txt,json} and report/confusion_matrix.{json,png}.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def chance_check(accuracy: float, y_reference: np.ndarray, num_classes: int) -> dict[str, Any]:
    """Whether `accuracy`, measured on the examples labelled `y_reference`, is within noise of
    guessing: the better of 1/num_classes and always answering the majority class.

    "Within noise" is at most two binomial standard errors above that rate (about a 95% one-sided
    band), the shape report/chance.py reads from run.json's `chance`.
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
        "val_accuracy": round(float(accuracy), 6),
        "examples": int(len(y)),
        "margin": round(margin, 6),
        "within_noise": bool(float(accuracy) <= rate + margin),
    }


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
