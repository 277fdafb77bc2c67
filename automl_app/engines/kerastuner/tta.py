"""Choose the exported model's test-time augmentation (--tta auto|flip|none) on validation.

Why a choice and not a default: averaging over the mirror image is worth a few tenths of a point
on photos and clothing, costs a second forward pass per image, and hurts where left and right
mean different things (digits, text). `auto` keeps it only when it validates better under the
search's objective; the record says both figures and the measured inference-time ratio, so the
price is stated where the gain is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

Say = Callable[[str], None]


def choose(
    mode: str,
    hypermodel: Any,
    model: Any,
    fit_args: dict[str, Any],
    objective: Any,
    say: Say,
    deadline: Any = None,
) -> tuple[Any, dict[str, Any]]:
    """(the model to evaluate and export, run.json's `tta` record)."""
    from automl_app.engines.kerastuner.schedule import n_val, val_metrics
    from automl_app.models.tta import FLIP_PASSES, can_flip, with_flip_tta

    record: dict[str, Any] = {"mode": mode, "chosen": "none"}
    if mode == "none":
        return model, record
    if not can_flip(model):
        record["reason"] = "the model does not take (height, width, channels) images"
        say(f"test-time augmentation: none ({record['reason']})")
        return model, record
    flipped = with_flip_tta(model)
    record["passes"] = FLIP_PASSES
    if mode == "flip" or not n_val(fit_args):
        record.update(
            chosen="flip", reason="--tta flip" if mode == "flip" else "no validation split"
        )
        say(
            f"test-time augmentation: flip ({record['reason']}; {FLIP_PASSES} forward passes per image)"
        )
        return flipped, record
    t0 = time.perf_counter()
    plain = val_metrics(hypermodel, model, fit_args)
    plain_s = time.perf_counter() - t0
    if deadline is not None and deadline.remaining() < 3 * FLIP_PASSES * plain_s:
        record["reason"] = f"no time left to validate it ({deadline.remaining():.0f}s)"
        say(f"test-time augmentation: none ({record['reason']})")
        return model, record
    t0 = time.perf_counter()
    mirrored = val_metrics(hypermodel, flipped, fit_args)
    flip_s = time.perf_counter() - t0
    name = objective.name
    if name not in plain or name not in mirrored:
        record["reason"] = f"{name} is not measured on validation"
        return model, record
    better = objective.better_than(mirrored[name], plain[name])
    record.update(
        chosen="flip" if better else "none",
        objective=name,
        validation={"none": round(plain[name], 6), "flip": round(mirrored[name], 6)},
        inference_time_ratio=round(flip_s / max(plain_s, 1e-9), 2),
    )
    say(
        f"test-time augmentation: {record['chosen']} ({name} {plain[name]:.4f} without, "
        f"{mirrored[name]:.4f} with the mirror image; {FLIP_PASSES} forward passes per image, "
        f"{record['inference_time_ratio']:g}× the validation time)"
    )
    return (flipped if better else model), record


def describe(record: dict[str, Any]) -> str:
    """The model card's line: what the exported model does at inference and what it costs."""
    if record.get("chosen") != "flip":
        return "none"
    text = f"flip: the mean over the image and its mirror ({record['passes']} forward passes)"
    if "validation" in record:
        v = record["validation"]
        text += f"; {record['objective']} {v['none']:.4f} without, {v['flip']:.4f} with"
    return text
