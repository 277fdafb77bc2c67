"""Make AutoKeras 3.0.0 dependable on the Keras we ship, applied once before any AutoKeras model.

AutoKeras 3.0.0 is in maintenance mode. Its heads build `Dense(self.shape[-1])`, where `shape` comes
from `numpy.array(x.shape)`: a numpy integer. Keras >= 3.13 rejects a numpy integer as `units`, so
every task fails in `fit()`. We pin keras < 3.13 (where it works), and this shim coerces the shapes to
Python ints at their source (`Graph.set_io_shapes`) and again in the heads, so a Keras bump does not
break AutoKeras silently (checked: keras 3.13.2 fails with "invalid value for `units`" without
the shim and passes with it). Checked on keras 3.12.4: the six tasks and the IO API need nothing
else (tests/engines/autokeras/test_autokeras.py runs each for one trial and one epoch). One AutoKeras bug is fixed
too: `AutoTuner._remove_early_stopping` nests the callback list when a non-EarlyStopping callback
(our --time-budget deadline) reaches the final fit.

Import this module only where AutoKeras is used: it imports autokeras (and so TensorFlow).
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

_PATCH_MARK = "_automl_int_shape_patch"


def _int_shape(shape: Any) -> Any:
    """A shape tuple with numpy integers turned into Python ints (None stays None)."""
    if shape is None:
        return None
    return tuple(None if d is None else int(d) for d in shape)


def _patch_method(cls: type, name: str, wrapper_factory) -> bool:
    """Wrap cls.name once; the marker on the wrapper makes a second call a no-op."""
    original = cls.__dict__.get(name)
    if original is None or getattr(original, _PATCH_MARK, False):
        return False
    wrapped = wrapper_factory(original)
    setattr(wrapped, _PATCH_MARK, True)
    setattr(cls, name, wrapped)
    return True


def _set_io_shapes_factory(original):
    @functools.wraps(original)
    def set_io_shapes(self, shapes):
        original(self, shapes)
        for node in self.inputs:
            node.shape = _int_shape(node.shape)
        for node in self.outputs:
            head = node.in_blocks[0]
            head.shape = _int_shape(head.shape)

    return set_io_shapes


def _head_build_factory(original):
    @functools.wraps(original)
    def build(self, hp, inputs=None):
        self.shape = _int_shape(self.shape)
        return original(self, hp, inputs)

    return build


def _remove_early_stopping_factory(original):
    @functools.wraps(original)
    def _remove_early_stopping(callbacks):
        # AutoKeras 3.0.0 deep-copies the whole list once per kept callback, so any callback
        # besides EarlyStopping (e.g. our deadline) reaches the final fit as a nested list.
        import copy

        import keras

        return [
            copy.deepcopy(c) for c in callbacks if not isinstance(c, keras.callbacks.EarlyStopping)
        ]

    return staticmethod(_remove_early_stopping)


def apply() -> ModuleType:
    """Patch AutoKeras once (idempotent) and return the `autokeras` module.

    Returns the module so callers write `ak = autokeras_compat.apply()` and never use an unpatched
    AutoKeras by accident.
    """
    from automl_app.tf_env import tf

    tf()  # quiet TensorFlow import first; autokeras imports it loudly otherwise
    import autokeras as ak
    from autokeras import graph as graph_module
    from autokeras.blocks import heads
    from autokeras.engine import tuner as tuner_module

    _patch_method(graph_module.Graph, "set_io_shapes", _set_io_shapes_factory)
    for head_cls in (heads.ClassificationHead, heads.RegressionHead):
        _patch_method(head_cls, "build", _head_build_factory)
    _patch_method(tuner_module.AutoTuner, "_remove_early_stopping", _remove_early_stopping_factory)
    return ak


def is_applied() -> bool:
    """Whether apply() has patched AutoKeras in this process (for tests and diagnostics)."""
    import sys

    graph_module = sys.modules.get("autokeras.graph")
    if graph_module is None:
        return False
    return bool(getattr(graph_module.Graph.__dict__["set_io_shapes"], _PATCH_MARK, False))
