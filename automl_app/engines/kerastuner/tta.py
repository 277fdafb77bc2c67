"""Choose the exported model's test-time augmentation (--tta auto|flip|shift|none) on validation.

Why a choice and not a default: averaging over the mirror image is worth a few tenths of a point
on photos, and over 1-pixel shifts a few tenths on Fashion-MNIST models trained with shifts, but
each costs forward passes per image (2 and 5), and the mirror hurts where left and right mean
different things (digits, text; Fashion-MNIST models trained without flips). `auto` validates
the plain model and each view and keeps the best under the search's objective (a tie keeps the
cheaper); the record says every figure and the measured inference-time ratios, so the price is
stated where the gain is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

Say = Callable[[str], None]

VIEWS = ("flip", "shift")  # what `auto` validates beside the plain model, cheapest first
WITH = {"flip": "the mirror image", "shift": "the 1-pixel shifts"}


def choose(
    mode: str,
    hypermodel: Any,
    model: Any,
    fit_args: dict[str, Any],
    objective: Any,
    say: Say,
    deadline: Any = None,
    trained: dict[str, Any] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """(the model to evaluate and export, run.json's `tta` record). `trained`: the exported
    configuration's hyperparameters, read only when `auto` has no validation split to judge by."""
    from automl_app.engines.kerastuner.schedule import n_val, val_metrics
    from automl_app.models.tta import PASSES, can_augment, with_tta

    record: dict[str, Any] = {"mode": mode, "chosen": "none"}
    if mode == "none":
        return model, record
    if not can_augment(model):
        record["reason"] = "the model does not take (height, width, channels) images"
        say(f"test-time augmentation: none ({record['reason']})")
        return model, record
    if mode == "auto" and not n_val(fit_args):
        kind, record["reason"] = untested_view(trained or {})
        record.update(chosen=kind, passes=PASSES[kind])
        say(f"test-time augmentation: {kind} ({record['reason']})")
        return (model if kind == "none" else with_tta(model, kind)), record
    if mode != "auto":
        record.update(chosen=mode, passes=PASSES[mode], reason=f"--tta {mode}")
        say(
            f"test-time augmentation: {mode} (--tta {mode}; {PASSES[mode]} forward passes per image)"
        )
        return with_tta(model, mode), record
    t0 = time.perf_counter()
    plain = val_metrics(hypermodel, model, fit_args)
    plain_s = time.perf_counter() - t0
    name = objective.name
    scores, seconds, models = {"none": plain.get(name)}, {"none": plain_s}, {"none": model}
    for kind in VIEWS:
        if deadline is not None and deadline.remaining() < 3 * PASSES[kind] * plain_s:
            continue  # a dearer view would not fit either: checked in order of cost
        models[kind] = with_tta(model, kind)
        t0 = time.perf_counter()
        scores[kind] = val_metrics(hypermodel, models[kind], fit_args).get(name)
        seconds[kind] = time.perf_counter() - t0
    if len(scores) == 1:
        record["reason"] = f"no time left to validate it ({deadline.remaining():.0f}s)"
        say(f"test-time augmentation: none ({record['reason']})")
        return model, record
    if any(v is None for v in scores.values()):
        record["reason"] = f"{name} is not measured on validation"
        return model, record
    best = "none"
    for kind in scores:  # cheapest first: a tie keeps the cheaper
        if objective.better_than(scores[kind], scores[best]):
            best = kind
    ratios = {k: round(seconds[k] / max(plain_s, 1e-9), 2) for k in scores if k != "none"}
    record.update(
        chosen=best,
        objective=name,
        validation={k: round(v, 6) for k, v in scores.items()},
        passes=PASSES[best],
        inference_time_ratio=ratios.get(best, 1.0),
        inference_time_ratios=ratios,
    )
    views = ", ".join(f"{scores[k]:.4f} with {WITH[k]} ({ratios[k]:g}× the time)" for k in ratios)
    say(
        f"test-time augmentation: {best} ({name} {scores['none']:.4f} without, {views}; "
        f"{PASSES[best]} forward pass{'es' * (PASSES[best] > 1)} per image)"
    )
    return models[best], record


def untested_view(trained: dict[str, Any]) -> tuple[str, str]:
    """(view, reason) for `auto` with no validation split: only a view the model was trained
    with, the mirror for flips and else the shifts for shifts (a view it never saw can cost
    points: the mirror took a Fashion-MNIST model trained without flips from 0.861 to 0.799)."""
    if trained.get("augment_flip"):
        return "flip", "no validation split; the model trained with flips"
    if float(trained.get("augment_shift") or 0.0) > 0:
        return "shift", "no validation split; the model trained with shifts"
    return "none", "no validation split, and the model trained with neither flips nor shifts"


def describe(record: dict[str, Any]) -> str:
    """The model card's line: what the exported model does at inference and what it costs."""
    kind = record.get("chosen")
    if kind not in WITH:
        return "none"
    views = {"flip": "its mirror", "shift": "its four 1-pixel shifts"}[kind]
    text = f"{kind}: the mean over the image and {views} ({record['passes']} forward passes)"
    if "validation" in record:
        v = record["validation"]
        text += f"; {record['objective']} {v['none']:.4f} without, {v[kind]:.4f} with"
    return text
