"""Skip and name the files a tf.data pipeline fails to load, instead of ending the run.

tf.data errors name no file, and `Dataset.ignore_errors` skips silently. stages.build with a
SkipGuard skips failing files and records, once per batch, the paths that got through; after a
pass the guard decodes the paths it never saw, eagerly, and names those that fail.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from automl_app.data import scan


class SkipGuard:
    """Names the files a stages.build pipeline skipped because they failed to load.

    The pipeline records the paths that got through (once per batch); after a full pass,
    `check()` decodes each path never seen, eagerly, and names those that fail, once each.
    One guard per dataset (train, val, evaluation), built from that dataset's `paths`.
    """

    def __init__(
        self,
        paths: Sequence[str],
        *,
        image_size: int = 32,
        log: Callable[[str], None] | None = print,
    ):
        self.paths = [str(p) for p in paths]
        self.image_size = image_size
        self.log = log
        self.seen: set[str] = set()
        self.skipped: dict[str, str] = {}
        self._lock = threading.Lock()

    def record(self, paths: Any) -> bool:
        """Called by the pipeline with a batch of path strings (a tensor of bytes)."""
        values = paths.numpy() if hasattr(paths, "numpy") else paths
        with self._lock:
            self.seen.update(p.decode() if isinstance(p, bytes) else str(p) for p in values)
        return True

    def check(self) -> list[tuple[str, str]]:
        """(path, reason) of files newly found skipped; each is logged once."""
        with self._lock:
            unseen = [p for p in self.paths if p not in self.seen and p not in self.skipped]
        new = []
        for path in dict.fromkeys(unseen):
            reason = scan.load_failure(path, self.image_size)
            if reason is None:
                continue  # not reached yet (a partial pass), or readable again
            self.skipped[path] = reason
            new.append((path, reason))
            if self.log is not None:
                self.log(f"skipped: {path}: {reason}")
        return new

    def kept(self, paths: Sequence[str], labels: Sequence[int]) -> tuple[list[str], list[int]]:
        """`paths` and `labels` without the skipped files: the rows a pipeline over them yields
        (in order, when built with training=False), e.g. to align labels with predictions."""
        self.check()
        pairs = [(p, lab) for p, lab in zip(paths, labels, strict=True) if p not in self.skipped]
        return [p for p, _ in pairs], [lab for _, lab in pairs]

    def callback(self) -> Any:
        """A Keras callback for fit/evaluate/predict: `check()` after every epoch and at the end.

        Skipping makes the dataset's length unknown, so Keras counts batches during the first
        pass and warns that the input "ran out of data"; that is expected here, and the warning
        is silenced while the callback's fit/evaluate/predict runs.
        """
        import keras

        guard = self

        class NameSkippedFiles(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                _quiet_keras_length_warning(True)

            def on_epoch_end(self, epoch, logs=None):
                guard.check()

            def on_train_end(self, logs=None):
                _quiet_keras_length_warning(False)

            on_test_begin = on_predict_begin = on_train_begin

            def on_test_end(self, logs=None):
                guard.check()
                _quiet_keras_length_warning(False)

            on_predict_end = on_test_end

        return NameSkippedFiles()


_KERAS_LENGTH_WARNING = "Your input ran out of data"
_quiet_depth = [0]  # fit/evaluate/predict calls (nested: fit runs evaluate) now silencing it


def _quiet_keras_length_warning(on: bool) -> None:
    """Silence Keras's unknown-length warning while any guarded fit/evaluate/predict runs."""
    _quiet_depth[0] = max(0, _quiet_depth[0] + (1 if on else -1))
    if _quiet_depth[0]:
        warnings.filterwarnings("ignore", message=_KERAS_LENGTH_WARNING, category=UserWarning)
    else:
        warnings.filters[:] = [
            f for f in warnings.filters if getattr(f[1], "pattern", None) != _KERAS_LENGTH_WARNING
        ]
