"""Ctrl-C that always stops a run, whichever engine is training.

Python delivers SIGINT as a KeyboardInterrupt at the next bytecode, and when that happens inside a
weakref or import-lock callback CPython prints "Exception ignored" and carries on: a search
then ran to completion after Ctrl-C. So the lifecycle installs a handler that also records the
request; every engine's fit carries `keras_callback()`, which raises KeyboardInterrupt again at the
next batch, and the lifecycle checks `requested()` once more after fit. The run ends
`interrupted` and `--resume` continues it.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

_requested = threading.Event()


def _handler(signum: int, frame: Any) -> None:
    _requested.set()
    raise KeyboardInterrupt


def install() -> None:
    """Install the SIGINT handler (main thread only; elsewhere it is a no-op)."""
    _requested.clear()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _handler)


def requested() -> bool:
    return _requested.is_set()


def check() -> None:
    """Raise KeyboardInterrupt when Ctrl-C was pressed and somehow swallowed."""
    if _requested.is_set():
        raise KeyboardInterrupt


def keras_callback() -> Any:
    """A Keras callback that turns a recorded Ctrl-C into KeyboardInterrupt at the next batch."""
    import keras

    class StopOnCtrlC(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            check()

        def on_test_batch_end(self, batch, logs=None):
            check()

        def on_predict_batch_end(self, batch, logs=None):
            check()

    return StopOnCtrlC()
