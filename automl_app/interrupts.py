"""Ctrl-C that always stops a run, whichever engine is training, and never prints a traceback.

Python delivers SIGINT at the next bytecode, wherever that is. Raised inside a weakref callback
or a `__del__` (TensorFlow runs many while it trains), CPython prints "Exception ignored in …
Traceback … KeyboardInterrupt" and carries on: the user saw a traceback, and a search once ran to
completion after Ctrl-C. So the lifecycle installs a handler that records the request and:

- inside a Keras loop that carries `keras_callback()` (every engine's fit does), raises nothing:
  the callback raises KeyboardInterrupt at the next batch, in plain code. If no batch ends within
  GRACE_S seconds (a fit without the callback, a very long step), the request is delivered again;
- inside a finaliser or weakref callback, raises nothing and delivers the request again a moment
  later, when the interpreter is elsewhere;
- anywhere else (and at a second Ctrl-C), raises KeyboardInterrupt at once.

The lifecycle checks `requested()` once more after fit. The run ends `interrupted` and `--resume`
continues it.
"""

from __future__ import annotations

import _thread
import os
import signal
import threading
from types import FrameType
from typing import Any

GRACE_S = 5.0  # a deferred Ctrl-C not honoured by then is delivered again (then raised)
RETRY_S = 0.05  # a Ctrl-C that arrived inside a finaliser is delivered again this much later

_requested = threading.Event()
_honoured = threading.Event()


def _handler(signum: int, frame: FrameType | None) -> None:
    first = not _requested.is_set()
    _requested.set()
    if first and _in_keras_loop(frame):
        _later(GRACE_S)
        return
    if _in_finaliser(frame):
        _later(RETRY_S)
        return
    _honoured.set()
    raise KeyboardInterrupt


def _frames(frame: FrameType | None):
    while frame is not None:
        yield frame
        frame = frame.f_back


def _in_finaliser(frame: FrameType | None) -> bool:
    """Whether an exception raised here would be printed as "Exception ignored" and dropped."""
    for f in _frames(frame):
        code = f.f_code
        if code.co_name == "__del__" or os.path.basename(code.co_filename) in (
            "weakref.py",
            "_weakrefset.py",
        ):
            return True
    return False


def _in_keras_loop(frame: FrameType | None) -> bool:
    """Whether a Keras fit/evaluate/predict with our callback is running below `frame`."""
    for f in _frames(frame):
        if f.f_code.co_name not in ("fit", "evaluate", "predict"):
            continue
        callbacks = f.f_locals.get("callbacks")
        inner = getattr(callbacks, "callbacks", None) or ()
        if any(getattr(cb, "_automl_stop_on_ctrl_c", False) for cb in inner):
            return True
    return False


def _later(seconds: float) -> None:
    """Deliver SIGINT to the main thread again after `seconds`, unless it was honoured."""

    def fire() -> None:
        if not _honoured.is_set():
            _thread.interrupt_main(signal.SIGINT)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()


def install() -> None:
    """Install the SIGINT handler (main thread only; elsewhere it is a no-op)."""
    _requested.clear()
    _honoured.clear()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _handler)


def requested() -> bool:
    return _requested.is_set()


def check() -> None:
    """Raise KeyboardInterrupt when Ctrl-C was pressed and not yet raised (deferred, swallowed)."""
    if _requested.is_set():
        _honoured.set()
        raise KeyboardInterrupt


def keras_callback() -> Any:
    """A Keras callback that turns a recorded Ctrl-C into KeyboardInterrupt at the next batch."""
    import keras

    class StopOnCtrlC(keras.callbacks.Callback):
        _automl_stop_on_ctrl_c = True  # the handler looks for it (_in_keras_loop)

        def on_train_batch_end(self, batch, logs=None):
            check()

        def on_test_batch_end(self, batch, logs=None):
            check()

        def on_predict_batch_end(self, batch, logs=None):
            check()

    return StopOnCtrlC()
