"""Quiet by default: no TensorFlow, absl, CUDA or oneDNN lines on stderr unless verbose.

Real subprocesses, run WITHOUT the conftest's TF_CPP_MIN_LOG_LEVEL, so they prove the package
silences TensorFlow itself. On a machine without a GPU, TensorFlow's own default prints
`E0000 … failed call to cuInit` when the first op runs; the quiet run must not.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys

NOISE = ("E0000", "cuInit", "absl", "oneDNN")
# Variables a parent may have set to quiet TensorFlow; the child must not inherit them.
_STRIP = ("TF_CPP_MIN_LOG_LEVEL", "TF_CPP_MAX_VLOG_LEVEL", "GRPC_VERBOSITY", "GRPC_TRACE",
          "ABSL_MIN_LOG_LEVEL", "AUTOGRAPH_VERBOSITY", "AUTOML_QUIET_ENV", "CUDA_VISIBLE_DEVICES")  # fmt: skip

IMPORT = (
    "from automl_app.tf_env import set_verbose, tf\n"
    "set_verbose({verbose})\n"
    "t = tf()\n"
    "import keras\n"
    "print(t.reduce_sum(t.ones([2, 2])).numpy())\n"  # first op: device discovery (cuInit)
)
FIT = IMPORT + (
    "import numpy as np\n"
    "m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation='softmax')])\n"
    "m.compile('adam', 'sparse_categorical_crossentropy')\n"
    "m.fit(np.zeros((8, 4)), np.zeros(8), epochs=1, steps_per_epoch=1, verbose=0)\n"
    "print('fitted')\n"
)


def _run(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in _STRIP}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )


def test_quiet_by_default():
    """Import, first op (device discovery) and a 1-step fit: not one line of TensorFlow noise."""
    proc = _run(FIT.format(verbose=False))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "4.0" in proc.stdout and "fitted" in proc.stdout
    noisy = [line for line in proc.stderr.splitlines() if any(n in line for n in NOISE)]
    assert not noisy, "\n".join(noisy)


def test_quiet_whatever_imports_tensorflow_first():
    """A module that does `import keras` directly, before tf() and without set_verbose, still
    loads TensorFlow quietly: the hook tf_env installs when it is imported."""
    code = (
        "import automl_app.tf_env\n"
        "import keras, tensorflow as tf\n"
        "print(tf.reduce_sum(tf.ones([2, 2])).numpy())\n"
    )
    proc = _run(code)
    assert proc.returncode == 0 and "4.0" in proc.stdout, proc.stderr[-3000:]
    assert not [line for line in proc.stderr.splitlines() if any(n in line for n in NOISE)]
    assert not re.search(r"^[IWEF]\d{4} ", proc.stderr, re.M), proc.stderr[-3000:]  # absl lines


def test_user_choice_is_kept_and_verbose_takes_back_ours():
    code = (
        "import os\n"
        "from automl_app.tf_env import set_verbose\n"
        "assert os.environ['TF_CPP_MIN_LOG_LEVEL'] == '1', os.environ['TF_CPP_MIN_LOG_LEVEL']\n"
        "assert os.environ['GRPC_VERBOSITY'] == 'ERROR'\n"
        "set_verbose(True)\n"
        "assert os.environ['TF_CPP_MIN_LOG_LEVEL'] == '1'\n"  # the user's own value stays
        "assert 'GRPC_VERBOSITY' not in os.environ and 'AUTOML_QUIET_ENV' not in os.environ\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in _STRIP}
    env["TF_CPP_MIN_LOG_LEVEL"] = "1"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


def test_verbose_shows_tensorflow_logs():
    proc = _run(FIT.format(verbose=True))
    assert proc.returncode == 0, proc.stderr[-3000:]
    if sys.platform == "linux" and platform.machine() == "x86_64":
        # TensorFlow's x86 Linux build always logs its oneDNN / CPU-feature notes at load.
        assert "oneDNN" in proc.stderr or "cpu_feature_guard" in proc.stderr, proc.stderr[-3000:]


def _search(tmp_path, *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in _STRIP}
    cmd = [sys.executable, "-m", "automl_app.cli", "search", "image", "--dataset", "digits",
           "--space", "fcn", "--max-trials", "1", "--epochs", "1", "--max-samples", "200",
           "--run-dir", str(tmp_path / f"run{len(extra)}"), *extra]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def test_a_cli_search_is_quiet_and_verbose_shows_the_logs(tmp_path):
    """The issue's acceptance: a real `automl search` subprocess, stderr free of TensorFlow noise;
    with --verbose the logs come back."""
    proc = _search(tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "test accuracy" in proc.stdout
    noisy = [line for line in proc.stderr.splitlines() if any(n in line for n in NOISE)]
    assert not noisy, "\n".join(noisy)
    loud = _search(tmp_path, "--verbose")
    assert loud.returncode == 0, loud.stderr[-3000:]
    if sys.platform == "linux" and platform.machine() == "x86_64":
        assert "oneDNN" in loud.stderr or "cpu_feature_guard" in loud.stderr, loud.stderr[-3000:]
