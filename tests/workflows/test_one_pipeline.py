"""Issue 10's acceptance: one image-folder path and one lifecycle for all three engines.

A folder with undecodable files, odd modes and extreme aspect ratios goes through `search image`
(KerasTuner and AutoKeras) and `train-scratch` at --image-size 32 and 64: every command finishes,
prints the same "N bad" line and lists the same files, and every file lands in the same split.
Then select / reproduce / evaluate on a folder search run and on a train-scratch run, and Ctrl-C
in each engine leaves `status: interrupted` and a run that --resume finishes.
The folder and the 32-pixel runs are the session's (tests/support/matrix.py); this module works on
copies of those runs and trains only the 64-pixel ones itself.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from support.matrix import copy_run

from automl_app import runs
from automl_app.cli import cli

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def photos(photos_folder) -> dict:
    """The session's image folder (support/matrix.py): bad files, odd modes, extreme ratios."""
    return photos_folder


def _cli(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, prog_name="automl")


def _bad_listed(output: str) -> tuple[int, set[str]]:
    count = int(re.search(r"(\d+) bad", output).group(1))
    listed = {m.group(1) for m in re.finditer(r"^bad: (.+?): ", output, re.M)}
    return count, listed


# Three of the five folder runs are the matrix's own (support/matrix.py, trained once per session
# with the same options: kt-folder runs two trials where this module once ran one); each test module
# works on its own copies. The 64-pixel runs are this module's.
SHARED = {"kerastuner-32": "kt-folder", "autokeras-32": "ak-image", "scratch-32": "scratch-folder"}
COMMANDS = {
    "kerastuner-64": ["search", "image", "--space", "fcn", "--max-trials", "1", "--epochs", "1",
                      "--image-size", "64"],
    "scratch-64": ["train-scratch", "mobilenetv2", "--recipe", "mobilenetv2_scratch_fast",
                   "--alpha", "0.35", "--batch-size", "8", "--epochs", "1", "--image-size", "64"],
}  # fmt: skip


@pytest.fixture(scope="module")
def folder_runs(photos, matrix_data) -> dict:
    out = {}
    for name, kind in SHARED.items():
        run_dir = copy_run(matrix_data, kind, photos["base"] / "runs" / name)
        out[name] = {"dir": run_dir, "output": matrix_data.outputs[kind],
                     "manifest": runs.load_manifest(run_dir)}  # fmt: skip
    for name, args in COMMANDS.items():
        run_dir = photos["base"] / "runs" / name
        res = _cli(*args, "--data-dir", str(photos["root"]), "--run-dir", str(run_dir))
        assert res.exit_code == 0, f"{name}: {res.output}"
        out[name] = {"dir": run_dir, "output": res.output, "manifest": runs.load_manifest(run_dir)}
    return out


@pytest.mark.slow
def test_every_engine_finishes_lists_the_same_bad_files_and_splits(photos, folder_runs):
    expected_bad = set(photos["bad"])
    prints = set()
    for name, r in folder_runs.items():
        count, listed = _bad_listed(r["output"])
        assert count == len(expected_bad) and listed == expected_bad, name
        m = r["manifest"]
        assert m["status"] == "completed" and m["schema_version"] == runs.SCHEMA_VERSION, name
        assert "test" in m and "test_metrics" not in m, name
        folder = m["data"]["folder"]
        assert {b["path"] for b in folder["blacklisted"]} == expected_bad, name
        prints.add(folder["fingerprint"])
        assert (r["dir"] / "report" / "index.html").is_file(), name  # every engine's report
        assert (r["dir"] / "trials.csv").is_file(), name
    assert len(prints) == 1  # every file in the same split, whatever the engine or image size


@pytest.mark.slow
def test_every_engine_export_takes_uint8_images_of_any_size(folder_runs):
    from automl_app.tf_env import tf

    t = tf()
    rng = np.random.default_rng(0)
    for name in ("kerastuner-32", "autokeras-32", "scratch-32"):
        served = t.saved_model.load(str(folder_runs[name]["dir"] / "best" / "saved_model"))
        for h, w in [(17, 40), (90, 61), (3, 200)]:
            raw = rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)
            probs = np.asarray(served.serve(t.constant(raw)))
            assert probs.shape == (2, 3), name
            np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)


@pytest.mark.slow
def test_evaluate_select_reproduce_on_a_folder_search_run(folder_runs, photos):
    run_dir = folder_runs["kerastuner-32"]["dir"]
    res = _cli("evaluate", str(run_dir))
    assert res.exit_code == 0, res.output
    got = json.loads(next((run_dir / "report" / "evaluate").glob("*/evaluation.json")).read_text())
    assert got["metrics"]["accuracy"] == pytest.approx(
        folder_runs["kerastuner-32"]["manifest"]["test"]["accuracy"], abs=1e-6
    )
    res = _cli("select", str(run_dir), "--by", "params")
    assert res.exit_code == 0, res.output
    assert (run_dir / "selected" / "saved_model" / "saved_model.pb").is_file()
    res = _cli("reproduce", str(run_dir), "--top", "1", "--seeds", "2")
    assert res.exit_code == 0, res.output
    assert (run_dir / "report" / "reproduce.json").is_file()


@pytest.mark.slow
def test_evaluate_select_reproduce_on_a_train_scratch_run(folder_runs):
    run_dir = folder_runs["scratch-32"]["dir"]
    res = _cli("evaluate", str(run_dir))
    assert res.exit_code == 0, res.output
    got = json.loads(next((run_dir / "report" / "evaluate").glob("*/evaluation.json")).read_text())
    assert got["metrics"]["accuracy"] == pytest.approx(
        folder_runs["scratch-32"]["manifest"]["test"]["accuracy"], abs=1e-6
    )
    for args in (("select", str(run_dir)), ("reproduce", str(run_dir))):
        res = _cli(*args)
        assert res.exit_code == 2 and "train-scratch run" in res.output, res.output
        assert "Traceback" not in res.output
    res = _cli("runs", str(run_dir.parent))
    assert res.exit_code == 0 and "train-scratch" in res.output


# ----------------------------------------------------------------------------- Ctrl-C


def _interrupt_and_resume(args: list[str], run_dir: Path, ready, env=None) -> dict:
    """Start the command, SIGINT it once `ready(run_dir)` holds, then finish it with --resume."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", **(env or {})}
    cmd = [sys.executable, "-m", "automl_app.cli", *args, "--run-dir", str(run_dir)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None and not ready(run_dir):
            time.sleep(0.2)
        assert proc.poll() is None, proc.stdout.read()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    assert "Traceback" not in out
    m = runs.load_manifest(run_dir)
    assert m["status"] == "interrupted", m
    done = subprocess.run([*cmd, "--resume"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    m = runs.load_manifest(run_dir)
    assert m["status"] == "completed" and m["resumed"] == 1
    return m


def _trained_once(run_dir: Path) -> bool:
    """At least one epoch/trial has been written (the engine is inside fit)."""
    return (
        any(run_dir.glob("tuner/**/trial.json"))
        or any(run_dir.glob("tuner/*/trial_*"))
        or (run_dir / "checkpoints" / "state.json").is_file()
    )


@pytest.mark.slow
def test_ctrl_c_kerastuner_search_is_interrupted_and_resumable(tmp_path):
    m = _interrupt_and_resume(
        ["search", "image", "--dataset", "digits", "--space", "fcn", "--max-trials", "6",
         "--epochs", "2", "--max-samples", "300"],
        tmp_path / "run", _trained_once,
    )  # fmt: skip
    assert m["trials"]["completed"] >= 1


@pytest.mark.slow
def test_ctrl_c_autokeras_search_is_interrupted_and_resumable(tmp_path):
    _interrupt_and_resume(
        ["search", "image", "--engine", "autokeras", "--block", "vanilla", "--dataset", "digits",
         "--max-trials", "3", "--epochs", "2", "--max-samples", "300"],
        tmp_path / "run", _trained_once,
    )  # fmt: skip


@pytest.mark.slow
def test_ctrl_c_train_scratch_is_interrupted_and_resumable(tmp_path, photos):
    m = _interrupt_and_resume(
        ["train-scratch", "mobilenetv2", "--data-dir", str(photos["root"]), "--recipe",
         "mobilenetv2_scratch_fast", "--alpha", "0.35", "--batch-size", "8", "--epochs", "3",
         "--image-size", "32"],
        tmp_path / "run", _trained_once,
    )  # fmt: skip
    assert m["resumed_from_epoch"] >= 1


# ----------------------------------------------------------------------------- phones


@pytest.mark.slow
@pytest.mark.parametrize("name, quantize", [("kerastuner-32", "none"), ("scratch-32", "int8")])
def test_tflite_export_of_search_and_train_scratch_runs_matches_the_saved_model(
    folder_runs, name, quantize
):
    from automl_app.tf_env import tf

    run_dir = folder_runs[name]["dir"]
    res = _cli("export", str(run_dir), "--format", "tflite", "--quantize", quantize)
    assert res.exit_code == 0, res.output
    assert "top-1 agreement" in res.output and "largest probability difference" in res.output
    path = next((run_dir / "export").glob("*.tflite"))
    t = tf()
    interpreter = t.lite.Interpreter(model_path=str(path))
    interpreter.allocate_tensors()  # a fixed input shape: allocates
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    assert list(inp["shape"]) == [1, 32, 32, 3] and inp["dtype"] == np.uint8
    image = np.random.default_rng(1).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    interpreter.set_tensor(inp["index"], image)
    interpreter.invoke()
    got = interpreter.get_tensor(out["index"])
    served = t.saved_model.load(str(run_dir / "best" / "saved_model"))
    want = np.asarray(served.serve(t.constant(image)))
    allowed = 0.1 if quantize == "int8" else 1e-3
    if got.argmax() != want.argmax():  # only a near tie may flip (1-epoch models are near uniform)
        assert want[0].max() - want[0, got.argmax()] <= allowed, (got, want)
    np.testing.assert_allclose(got, want, atol=allowed)
    (e,) = runs.load_manifest(run_dir)["exports"].values()
    assert e["quantize"] == quantize and e["thresholds"]["max_prob_diff"] == allowed
    kept = e["agreement"] + e["near_ties"] / e["examples"]  # what the command holds it to
    assert kept >= e["thresholds"]["min_agreement"], e


@pytest.mark.slow
@pytest.mark.parametrize("name", ["autokeras-32", "scratch-32"])
def test_mlflow_logs_autokeras_and_train_scratch_runs(folder_runs, name, tmp_path):
    """--mlflow is applied by the lifecycle, so it works for every engine's run."""
    mlflow = pytest.importorskip("mlflow")
    from automl_app.integrations.mlflow import log_mlflow

    uri = (tmp_path / "mlruns").as_uri()
    parent = log_mlflow(folder_runs[name]["dir"], uri, say=lambda _l: None)
    run = mlflow.tracking.MlflowClient(tracking_uri=uri).get_run(parent)
    assert "test_accuracy" in run.data.metrics


@pytest.mark.slow
def test_onnx_and_float16_exports_through_the_cli(folder_runs):
    """Every export format the CLI offers, end to end on a folder search run."""
    pytest.importorskip("tf2onnx")
    run_dir = folder_runs["kerastuner-32"]["dir"]
    for args in (("--format", "tflite", "--quantize", "float16"), ("--format", "onnx")):
        res = _cli("export", str(run_dir), *args)
        assert res.exit_code == 0, res.output
        assert "top-1 agreement" in res.output
    assert (run_dir / "export" / "model_float16.tflite").is_file()
    assert (run_dir / "export" / "model.onnx").is_file()
    res = _cli("export", str(run_dir), "--format", "onnx", "--quantize", "int8")
    assert res.exit_code == 2 and "--quantize applies to --format tflite" in res.output
