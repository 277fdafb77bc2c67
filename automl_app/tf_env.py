"""Import TensorFlow once, quietly, and only where a command really trains or exports.

TensorFlow prints oneDNN/CUDA/absl lines on import, before its own log level applies; unless the
user asked for --verbose we silence file descriptor 2 for the import itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from types import ModuleType

_VERBOSE = False
_IMPORTED = False
_IMPORT_LOCK = threading.Lock()


def set_verbose(verbose: bool) -> None:
    """Record the user's --verbose choice before TensorFlow is imported."""
    global _VERBOSE
    _VERBOSE = verbose
    if not verbose:
        import warnings

        # Library warnings (e.g. Keras skipping optimizer variables when KerasTuner reloads the
        # best checkpoint) are noise for users; --verbose shows them.
        warnings.filterwarnings("ignore", category=UserWarning)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
        os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")


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
                import tensorflow
            else:
                os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
                with _stderr_silenced():
                    import keras  # noqa: F401  (its first import also logs)
                    import tensorflow
                tensorflow.get_logger().setLevel(logging.ERROR)
                logging.getLogger("absl").setLevel(logging.ERROR)
            _IMPORTED = True
    return sys.modules["tensorflow"]
