"""Keep TensorFlow quiet unless --verbose: set up before it loads, then import it lazily.

TensorFlow logs from C++ in two ways. Its shared libraries print oneDNN, CPU-feature and CUDA-stub
lines while `import tensorflow` runs, before absl logging is initialised, whatever the log level:
only pointing fd 2 at /dev/null for that import hides them. Later lines, such as
`E0000 … cuda_platform.cc:52] failed call to cuInit` on a machine without a GPU when the first op
asks for devices, follow TF_CPP_MIN_LOG_LEVEL, which C++ reads from the environment.
So importing this module (1) puts the quiet defaults into os.environ, keeping any value the user
set, and (2) installs an import hook that silences fd 2 while the `tensorflow` package loads,
wherever that import happens (a plain `import keras` included). `set_verbose(True)` takes both
back, so everything shows. stderr is never lost: fd 2 is restored after the import, under a lock.
"""

from __future__ import annotations

import contextlib
import importlib.abc
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
_FD_LOCK = threading.RLock()  # held while fd 2 points at /dev/null


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


class _QuietTensorFlowLoader(importlib.abc.Loader):
    """Loads the `tensorflow` package as usual, with fd 2 on /dev/null while it runs."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        try:
            with _FD_LOCK, _stderr_silenced():
                self._loader.exec_module(module)
        finally:  # leave no trace of this wrapper on the module
            module.__loader__ = self._loader
            if module.__spec__ is not None:
                module.__spec__.loader = self._loader


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Wherever `import tensorflow` first happens (a direct `import keras` included), unless
    --verbose: its shared libraries print oneDNN/CUDA lines before absl logging is initialised,
    which no log level hides; only fd 2 can."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow" or _VERBOSE or "tensorflow" in sys.modules:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _QuietTensorFlowLoader(spec.loader)
                return spec
        return None


if "tensorflow" not in sys.modules and not any(
    isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path
):
    sys.meta_path.insert(0, _QuietTensorFlowFinder())


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
    tf()  # imported before the lock is taken: an import inside it could wait on another thread
    with _FD_LOCK, _stderr_silenced():
        yield


def tf() -> ModuleType:
    """Return the tensorflow module, imported quietly unless --verbose.

    Thread-safe: Python's import lock lets one thread load TensorFlow while the others wait, and
    the one fd-2 swap (the import hook above) happens under _FD_LOCK, so threads (e.g. the
    scan's decode pool) cannot leave stderr pointing at /dev/null.
    """
    global _IMPORTED
    if _IMPORTED:
        return sys.modules["tensorflow"]
    if not _VERBOSE:
        _quiet_environment()
    import keras  # noqa: F401  (loads TensorFlow, through the quiet hook)
    import tensorflow

    _python_loggers(_VERBOSE)
    _IMPORTED = True
    return tensorflow
