"""What one example costs a built Keras model: multiply-accumulates of a forward pass.

The time budget predicts a trial's seconds from this count and the epoch times measured so far
(tuning/budget.py), so a configuration ten times heavier than the ones measured is known to be
before it starts. Counted from the layers' output shapes, no tracing: convolutions and dense layers
(the bulk of the work), nested models included; other layers count one operation per output value.
"""

from __future__ import annotations

import math
from typing import Any


def _size(shape: Any) -> int:
    dims = [d for d in tuple(shape)[1:] if d is not None]
    return int(math.prod(dims)) if dims else 0


def _out_shape(layer: Any) -> tuple:
    try:
        return tuple(layer.output.shape)
    except (AttributeError, ValueError):
        return ()


def _in_shape(layer: Any) -> tuple:
    try:
        return tuple(layer.input.shape)
    except (AttributeError, ValueError):
        return ()


def forward_macs(model: Any) -> int:
    """Multiply-accumulates of one example's forward pass (training costs about 3×)."""
    total = 0
    for layer in getattr(model, "layers", []):
        kind = type(layer).__name__
        if getattr(layer, "layers", None) and layer is not model:  # a nested model
            total += forward_macs(layer)
            continue
        out = _out_shape(layer)
        if kind in ("Conv2D", "Conv1D", "Conv3D") and out:
            kernel = getattr(layer, "kernel_size", (1,))
            c_in = _in_shape(layer)[-1] or 1
            groups = int(getattr(layer, "groups", 1) or 1)
            total += _size(out) * int(math.prod(kernel)) * int(c_in) // groups
        elif kind in ("DepthwiseConv2D",) and out:
            total += _size(out) * int(math.prod(getattr(layer, "kernel_size", (1,))))
        elif kind in ("SeparableConv2D",) and out:
            c_in = _in_shape(layer)[-1] or 1
            k = int(math.prod(getattr(layer, "kernel_size", (1,))))
            spatial = _size(out) // max(int(out[-1] or 1), 1)
            total += spatial * int(c_in) * k + _size(out) * int(c_in)
        elif kind == "Dense" and out:
            c_in = _in_shape(layer)[-1] or 1
            total += _size(out) * int(c_in)
        elif out and kind != "InputLayer":
            total += _size(out)
    return int(total)
