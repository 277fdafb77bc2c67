"""The first Ctrl-C stops a run in one line: never "Exception ignored … Traceback".

A SIGINT that lands inside a finaliser or weakref callback (TensorFlow runs many while training)
used to raise KeyboardInterrupt there, where CPython prints it as "Exception ignored" and goes on.
The handler now leaves a Ctrl-C inside a Keras loop to the next batch and delivers one that lands
in a finaliser again, a moment later, elsewhere.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import pytest

from automl_app import interrupts, runs

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def handler(monkeypatch):
    """interrupts.install() for one test; SIGINT's handler and the unraisable hook restored."""
    unraisable: list = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    old = signal.getsignal(signal.SIGINT)
    interrupts.install()
    yield unraisable
    signal.signal(signal.SIGINT, old)
    interrupts._requested.clear()


def _wait(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.005)


def test_ctrl_c_inside_a_finaliser_is_raised_again_outside_it(handler):
    class Dropped:
        def __del__(self):
            signal.raise_signal(signal.SIGINT)  # as if Ctrl-C arrived while it ran

    with pytest.raises(KeyboardInterrupt) as info:
        Dropped()
        _wait(5)
    assert interrupts.requested()
    assert handler == [], "KeyboardInterrupt went to sys.unraisablehook ('Exception ignored')"
    assert all(f.name != "__del__" for f in traceback.extract_tb(info.tb))


class _Callbacks:
    """Keras's CallbackList as the handler sees it in a fit frame."""

    def __init__(self, *callbacks):
        self.callbacks = list(callbacks)


def _stop_on_ctrl_c():
    """keras_callback()'s marker without importing Keras."""
    return type("StopOnCtrlC", (), {"_automl_stop_on_ctrl_c": True})()


def test_ctrl_c_inside_a_keras_loop_waits_for_the_next_batch(handler):
    batches_after = []

    def fit(callbacks):  # the frame the handler looks for, as Keras's own fit
        signal.raise_signal(signal.SIGINT)  # Ctrl-C mid-batch: nothing raised here
        batches_after.append(1)
        interrupts.check()  # what StopOnCtrlC does at the end of the batch

    with pytest.raises(KeyboardInterrupt) as info:
        fit(_Callbacks(_stop_on_ctrl_c()))
    assert batches_after == [1]
    assert traceback.extract_tb(info.tb)[-1].name == "check"
    assert handler == []


@pytest.mark.timing
def test_a_deferred_ctrl_c_no_batch_honours_is_raised_after_the_grace(handler, monkeypatch):
    monkeypatch.setattr(interrupts, "GRACE_S", 0.2)

    def fit(callbacks):
        signal.raise_signal(signal.SIGINT)
        _wait(5)  # a step that never ends (or a fit without the callback)

    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        fit(_Callbacks(_stop_on_ctrl_c()))
    assert 0.15 < time.monotonic() - t0 < 4


def test_a_fit_without_our_callback_and_plain_code_raise_at_once(handler):
    def fit(callbacks):
        signal.raise_signal(signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        fit(_Callbacks(object()))
    interrupts.install()
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)


def test_keras_callback_carries_the_marker():
    assert getattr(interrupts.keras_callback(), "_automl_stop_on_ctrl_c", False)


@pytest.mark.slow
@pytest.mark.timing
def test_first_ctrl_c_during_a_search_prints_one_line_no_traceback(tmp_path):
    """A real `automl search image` subprocess, SIGINT once while it trains."""
    run_dir = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "automl_app.cli", "search", "image", "--dataset", "digits",
           "--max-trials", "3", "--epochs", "3", "--run-dir", str(run_dir)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    lines: list[str] = []
    training = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if "epoch 1/3" in line:
                training.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert training.wait(240), "".join(lines)
        time.sleep(0.3)  # inside the next epoch's batches
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(10)
    out = "".join(lines)
    assert proc.returncode == 130, out
    assert "Exception ignored" not in out and "Traceback" not in out, out
    assert out.rstrip().endswith("Interrupted; the run directory keeps what was finished."), out
    assert runs.load_manifest(run_dir)["status"] == "interrupted"
