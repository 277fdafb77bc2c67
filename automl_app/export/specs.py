"""ServingSpec: what the exported `serve` accepts and how raw input becomes the model's input.

Two image specs: `fixed_image_spec` (named datasets: one size, [N,H,W] or [N,H,W,C]) and
`folder_image_spec` (image folders: any size, resized with padding inside, as in training).
Both name a `fixed_shape`, the one input shape that fixed-size runtimes (TFLite, ONNX) get.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from automl_app.tf_env import tf


@dataclass(frozen=True)
class ServingSpec:
    """What `serve` accepts and how it becomes the model's input.

    shape/dtype: the TensorSpec of the raw input (None entries are free; shape=None: any rank).
    preprocess: a TensorFlow function raw -> model input (scaling, reshape, resize...).
    task: 'classification' (probabilities out) or 'regression' (values out).
    fixed_shape: one example's shape for runtimes that need every dimension (TFLite, ONNX); the
      export then adds a second endpoint, `serve_fixed`, traced at [N, *fixed_shape].
    """

    shape: tuple[int | None, ...] | None
    dtype: str
    preprocess: Callable[[Any], Any]
    description: str
    task: str = "classification"
    extra: dict[str, Any] = field(default_factory=dict)
    fixed_shape: tuple[int, ...] | None = None


def fixed_image_spec(height: int, width: int, channels: int, scale: str = "0_1") -> ServingSpec:
    """Raw uint8 images of one size, as [N,H,W] or [N,H,W,C]; scaled to [0,1] or [-1,1] inside."""
    t = tf()
    _check_scale(scale)

    def preprocess(x):
        x = t.reshape(t.cast(x, t.float32), [-1, height, width, channels])
        return _scale(x, scale)

    return ServingSpec(
        shape=None,
        dtype="uint8",
        preprocess=preprocess,
        description=(
            f"uint8 images [N,{height},{width}] or [N,{height},{width},{channels}] "
            f"-> float32 probabilities; scaling {scale.replace('_', '..')} inside"
        ),
        extra={"height": height, "width": width, "channels": channels, "scale": scale},
        fixed_shape=(height, width, channels),
    )


def folder_image_spec(image_size: int, channels: int = 3, scale: str = "0_1") -> ServingSpec:
    """Raw uint8 images of ANY size [N,H,W,C]; scaled, then resize_with_pad to the training size.

    The same stages as training (data.stages.scale, data.stages.resize_with_pad). Images that
    already have the training size skip the resize: decided from the static shape when traced at
    that size (so `serve_fixed` holds no resize op, which TFLite and ONNX lack), else at run time.
    """
    from automl_app.data import stages

    t = tf()
    _check_scale(scale)
    if not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"`image_size` must be a positive integer. Received: {image_size!r}")

    def preprocess(images):
        x = stages.scale(images, scale)
        if tuple(x.shape[1:3]) == (image_size, image_size):
            return x
        h, w = t.shape(x)[1], t.shape(x)[2]
        return t.cond(
            t.logical_and(t.equal(h, image_size), t.equal(w, image_size)),
            lambda: t.reshape(x, [-1, image_size, image_size, channels]),
            lambda: t.reshape(
                stages.resize_with_pad(x, image_size), [-1, image_size, image_size, channels]
            ),
        )

    return ServingSpec(
        shape=(None, None, None, channels),
        dtype="uint8",
        preprocess=preprocess,
        description=(
            f"uint8 images [N,H,W,{channels}] of any size -> float32 probabilities; "
            f"resize_with_pad to {image_size} and scaling {scale.replace('_', '..')} inside"
        ),
        extra={
            "image_size": image_size,
            "channels": channels,
            "scale": scale,
            "resize": "resize_with_pad",
        },
        fixed_shape=(image_size, image_size, channels),
    )


# Named datasets whose raw pixels are not 0..255: how data/datasets.py stores them as uint8.
SOURCE_RANGES = {"digits": "scikit-learn's digits pixels 0..16 are stored as uint8 0..255 "
                 "(x * 255/16, rounded), so send digits images scaled the same way"}  # fmt: skip
_SCALES = {"0_1": "x / 255 inside (the model sees 0..1)",
           "-1_1": "x / 127.5 - 1 inside (the model sees -1..1)"}  # fmt: skip


def input_scaling(dataset: str | None, scale: str | None) -> str | None:
    """model_card.json's `input_scaling`: what `serve` expects and how it scales inside.

    None for inputs that are not images (text, tables). `scale` is a ServingSpec extra: 0_1,
    -1_1, or AutoKeras's "none (raw 0..255)" (its own normalisation layer inside).
    """
    if scale is None:
        return None
    inside = _SCALES.get(scale, "AutoKeras's normalisation layer inside")
    text = f"serve takes uint8 pixels 0..255 and scales them: {inside}"
    if dataset in SOURCE_RANGES:
        text += f"; {SOURCE_RANGES[dataset]}"
    return text


def _check_scale(scale: str) -> None:
    if scale not in ("0_1", "-1_1"):
        raise ValueError(f"`scale` must be one of 0_1, -1_1. Received: scale={scale!r}")


def _scale(x, scale: str):
    _check_scale(scale)
    return x / 255.0 if scale == "0_1" else x / 127.5 - 1.0
