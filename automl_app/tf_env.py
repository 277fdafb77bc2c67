"""Import TensorFlow once, quietly, and only where a command really trains or exports.

TensorFlow's C++ side logs through absl as soon as it loads: oneDNN and CPU-feature notes, and on
a machine without a GPU `E0000 … cuda_platform.cc:52] failed call to cuInit`, which appears later,
when the first op asks for devices. C++ reads its log level from the environment once, so the
quiet defaults are put into os.environ when this module is imported (before anything can load
TensorFlow) and the import itself runs with fd 2 pointed at /dev/null. A variable the user set
keeps the user's value. `set_verbose(True)` takes back what we set, so everything shows.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from types import ModuleType

# What quiet means, as environment read by TensorFlow's C++ logging, gRPC and absl at load time.
QUIET_ENV: dict[str, str] = {
    "TF_CPP_MIN_LOG_LEVEL": "3",  # INFO, WARNING and ERROR (the cuInit line is an ERROR)
    "TF_CPP_MAX_VLOG_LEVEL": "0",  # no VLOG chatter
    "GRPC_VERBOSITY": "ERROR",
    "GRPC_TRACE": "",
    "ABSL_MIN_LOG_LEVEL": "3",
    "AUTOGRAPH_VERBOSITY": "0",
}
# Names of the variables this package set (not the user): inherited by child processes, so a
# child started with --verbose can take them back too.
_MARK = "AUTOML_QUIET_ENV"

_VERBOSE = False
_IMPORTED = False
_IMPORT_LOCK = threading.RLock()  # also held by quiet_native_stderr, which may call tf()


def _quiet_environment() -> None:
    """Fill in QUIET_ENV where the user has not chosen a value; remember which ones we set."""
    ours = set(filter(None, os.environ.get(_MARK, "").split(",")))
    for name, value in QUIET_ENV.items():
        if name not in os.environ:
            os.environ[name] = value
            ours.add(name)
    if ours:
        os.environ[_MARK] = ",".join(sorted(ours))


def _loud_environment() -> None:
    """Remove the quiet values this package (or a parent automl process) put there."""
    for name in filter(None, os.environ.pop(_MARK, "").split(",")):
        if os.environ.get(name) == QUIET_ENV.get(name):
            del os.environ[name]


def _python_loggers(verbose: bool) -> None:
    """TensorFlow's and absl's Python loggers (they exist only once TensorFlow is imported)."""
    level = logging.INFO if verbose else logging.ERROR
    logging.getLogger("tensorflow").setLevel(level)
    logging.getLogger("absl").setLevel(level)
    absl_logging = sys.modules.get("absl.logging")
    if absl_logging is not None:
        absl_logging.set_verbosity(absl_logging.INFO if verbose else absl_logging.ERROR)


_quiet_environment()  # before any import of TensorFlow that goes through this package


def set_verbose(verbose: bool) -> None:
    """Record the user's --verbose choice; call it before TensorFlow is imported.

    C++ logging is fixed when TensorFlow loads: after that only the Python loggers follow.
    """
    global _VERBOSE
    _VERBOSE = verbose
    if verbose:
        _loud_environment()
    else:
        import warnings

        # Library warnings (e.g. Keras skipping optimizer variables when KerasTuner reloads the
        # best checkpoint) are noise for users; --verbose shows them.
        warnings.filterwarnings("ignore", category=UserWarning)
        _quiet_environment()
    if "tensorflow" in sys.modules:
        _python_loggers(verbose)


def is_verbose() -> bool:
    """Whether library output (Keras progress bars, TFDS bars, TF logs) should be shown."""
    return _VERBOSE


@contextlib.contextmanager
def _stderr_silenced():
    """Point fd 2 at /dev/null for the duration (C++ writes bypass sys.stderr)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (e.g. some test runners)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def quiet_native_stderr():
    """Unless --verbose, hide what native code prints to fd 2 for the duration.

    For libraries that print straight to the C stderr whatever the log level (the TFLite
    interpreter's "Created TensorFlow Lite XNNPACK delegate", the int8 calibrator). Python
    exceptions still propagate; keep the block short, other threads' stderr is hidden too.
    """
    if _VERBOSE:
        yield
        return
    with _IMPORT_LOCK, _stderr_silenced():
        yield


def tf() -> ModuleType:
    """Return the tensorflow module, imported quietly unless --verbose.

    Thread-safe: the first import happens once under a lock, so two threads (e.g. the scan's
    decode pool) can neither interleave their fd-2 swaps, which would leave stderr pointing at
    /dev/null, nor see a half-imported module.
    """
    global _IMPORTED
    if _IMPORTED:
        return sys.modules["tensorflow"]
    with _IMPORT_LOCK:
        if not _IMPORTED:
            if _VERBOSE:
                import keras  # noqa: F401
                import tensorflow  # noqa: F401
            else:
                _quiet_environment()
                with _stderr_silenced():
                    import keras  # noqa: F401  (its first import also logs)
                    import tensorflow  # noqa: F401
            _python_loggers(_VERBOSE)
            _IMPORTED = True
    return sys.modules["tensorflow"]
