"""train-scratch: recipe loading and overrides, then a real 1-epoch run at 32 px, resume, export."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from support.images import make_folder

from automl_app import runs
from automl_app.config import DataConfig, TrainConfig
from automl_app.errors import ConfigError, UsageError
from automl_app.training import recipes as scratch

TINY = ["--image-size", "32", "--alpha", "0.35", "--batch-size", "8", "--epochs", "1"]


def test_recipes_resolve_by_name_and_path():
    full = scratch.load_config("mobilenetv2_scratch")
    assert (full.image_size, full.batch_size, full.optimizer, full.nesterov) == (
        224,
        192,
        "sgd",
        True,
    )
    assert (full.lr_per_256, full.warmup_epochs, full.schedule) == (0.045, 5.0, "cosine")
    assert (full.label_smoothing, full.weight_decay, full.jpeg_quality) == (0.1, 4e-5, (70, 100))
    assert full.lr == pytest.approx(0.045 * 192 / 256)
    fast = scratch.load_config(str(scratch.resolve_recipe("mobilenetv2_scratch_fast")))
    assert fast.image_size == 96 and fast.optimizer == "sgd"
    for name in ("mobilenetv2_scratch", "mobilenetv2_scratch_fast"):
        header = scratch.resolve_recipe(name).read_text().splitlines()[:6]
        assert any(f"--recipe {name}" in line for line in header)


def test_flags_override_recipe_values():
    cfg = scratch.load_config(
        "mobilenetv2_scratch", {"batch_size": 64, "lr_per_256": 0.1, "epochs": None}
    )
    assert cfg.batch_size == 64 and cfg.epochs == 150 and cfg.lr == pytest.approx(0.025)


def test_bad_values_name_their_origin(tmp_path):
    with pytest.raises(UsageError, match="--recipe 'nope' is neither a file nor a recipe name"):
        scratch.load_config("nope")
    with pytest.raises(UsageError, match=r"--momentum must be in \[0, 1\). Received: 1.5"):
        scratch.load_config("mobilenetv2_scratch", {"momentum": 1.5})
    bad_key = tmp_path / "r.yaml"
    bad_key.write_text("train:\n  lr: 0.1\n")
    with pytest.raises(
        ConfigError, match=r"r.yaml: unknown key train.lr; allowed in train: batch_size"
    ):
        scratch.load_config(str(bad_key))
    bad_value = tmp_path / "v.yaml"
    bad_value.write_text("train:\n  schedule: cosin\n")
    with pytest.raises(ConfigError, match=r"v.yaml: train.schedule must be one of cosine, step"):
        scratch.load_config(str(bad_value))
    bad_section = tmp_path / "s.yaml"
    bad_section.write_text("optim: {}\n")
    with pytest.raises(ConfigError, match="unknown section 'optim'"):
        scratch.load_config(str(bad_section))


def test_cli_usage_errors_exit_2(tmp_path):
    from automl_app.cli.train import train_scratch_cmd

    runner = CliRunner()
    res = runner.invoke(train_scratch_cmd, ["resnet", "--data-dir", str(tmp_path)])
    assert res.exit_code == 2 and "'resnet' is not" in res.output
    res = runner.invoke(
        train_scratch_cmd, ["mobilenetv2", "--data-dir", str(tmp_path), "--lr", "-1"]
    )
    assert res.exit_code == 2 and "--lr must be > 0. Received: -1.0" in res.output
    res = runner.invoke(train_scratch_cmd, ["mobilenetv2", "--data-dir", str(tmp_path / "none")])
    assert res.exit_code == 1 and "is not a directory" in res.output
    res = runner.invoke(train_scratch_cmd, ["mobilenetv2", "--help"])
    for flag in (
        "--recipe",
        "--nesterov / --no-nesterov",
        "--mixed-precision",
        "--resume",
        "--max-samples",
    ):
        assert flag in res.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One real 1-epoch run at 32 px through the CLI command, on a folder with bad files."""
    from automl_app.cli.train import train_scratch_cmd

    base = tmp_path_factory.mktemp("scratch")
    data = base / "photos"
    made = make_folder(data, per_class=10)
    run_dir = base / "run"
    os.environ["AUTOML_CACHE_DIR"] = str(base / "cache")
    try:
        res = CliRunner().invoke(
            train_scratch_cmd,
            [
                "mobilenetv2",
                "--data-dir",
                str(data),
                "--recipe",
                "mobilenetv2_scratch_fast",
                "--run-dir",
                str(run_dir),
                *TINY,
            ],
        )
    finally:
        os.environ.pop("AUTOML_CACHE_DIR", None)
    assert res.exit_code == 0, res.output + repr(res.exception)
    return {
        "data": data,
        "run": run_dir,
        "made": made,
        "output": res.output,
        "cache": base / "cache",
    }


@pytest.mark.slow
def test_one_epoch_run_writes_the_run_directory(trained):
    run = trained["run"]
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["status"] == "completed" and manifest["data"]["scale"] == "-1_1"
    assert manifest["recipe"]["image_size"] == 32 and manifest["recipe"]["epochs"] == 1
    assert manifest["schema_version"] == runs.SCHEMA_VERSION and "test" in manifest
    blacklisted = manifest["data"]["folder"]["blacklisted"]
    assert {b["path"]: b["reason"] for b in blacklisted} == trained["made"]["bad"]
    assert manifest["data"]["class_names"] == ["blue", "green", "red"]
    assert len(manifest["history"]["loss"]) == 1
    assert (run / "report" / "classification_report.txt").is_file()
    assert json.loads((run / "best" / "labels.json").read_text()) == ["blue", "green", "red"]
    card = json.loads((run / "best" / "model_card.json").read_text())
    assert card["preprocessing"]["scale"] == "-1_1" and card["preprocessing"]["image_size"] == 32
    assert (run / "checkpoints" / "last.keras").is_file()
    assert any((run / "tensorboard").rglob("events.out.tfevents.*"))
    assert "epoch 1/1" in trained["output"] and "accuracy" in trained["output"]


@pytest.mark.slow
def test_export_serves_raw_images_of_any_size(trained):
    import keras

    from automl_app.data import stages
    from automl_app.tf_env import tf

    t = tf()
    best = trained["run"] / "best"
    served = t.saved_model.load(str(best / "saved_model"))
    model = keras.models.load_model(best / "model.keras")
    rng = np.random.default_rng(0)
    for h, w in [(17, 40), (32, 32), (90, 61)]:
        raw = rng.integers(0, 256, (3, h, w, 3), dtype=np.uint8)
        got = served.serve(t.constant(raw)).numpy()
        want = model(stages.serving_preprocess(32, "-1_1")(t.constant(raw)), training=False).numpy()
        assert got.shape == (3, 3)
        np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.slow
def test_resume_continues_from_the_last_epoch(trained):
    from automl_app import workflows

    run = trained["run"]
    data = DataConfig(data_dir=str(trained["data"]), image_size=32)
    with pytest.raises(UsageError, match="pass --overwrite to start again or --resume"):
        workflows.train_scratch(TrainConfig(data=data, run_dir=str(run)))
    lines: list[str] = []
    cfg = TrainConfig(
        recipe="mobilenetv2_scratch_fast",
        overrides={"alpha": 0.35, "batch_size": 8, "epochs": 2},
        data=data,
        run_dir=str(run),
        resume=True,
        scan_cache=str(trained["cache"] / "resume.json"),
    )
    manifest = workflows.train_scratch(cfg, say=lines.append)
    assert manifest["resumed_from_epoch"] == 1 and manifest["status"] == "completed"
    assert len(manifest["history"]["loss"]) == 1  # only epoch 2 ran
    assert any(line.startswith("resuming from epoch 1") for line in lines)
    assert any(line.startswith("epoch 2/2") for line in lines)
    state = json.loads((run / "checkpoints" / "state.json").read_text())
    assert state == {"epoch": 2}


@pytest.mark.slow
def test_a_file_that_breaks_after_the_scan_is_skipped_and_named(tmp_path):
    """The scan cached it as good; training meets it broken: named, skipped, the run finishes."""
    from automl_app import workflows

    data = tmp_path / "photos"
    made = make_folder(data, per_class=4, bad=False)
    cache = tmp_path / "scan.json"
    from automl_app.data import scan

    scan.scan_folder(data, cache_path=cache)
    victim = Path(made["good"][0])
    st = victim.stat()
    victim.write_bytes(b"X" * st.st_size)  # same size, same mtime: the cache still says good
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    lines: list[str] = []
    cfg = TrainConfig(
        recipe="mobilenetv2_scratch_fast",
        overrides={"alpha": 0.35, "batch_size": 32, "epochs": 1, "test_fraction": 0.0},
        data=DataConfig(data_dir=str(data), image_size=32, val_fraction=0.0),
        run_dir=str(tmp_path / "run"),
        scan_cache=str(cache),
    )
    manifest = workflows.train_scratch(cfg, say=lines.append)
    assert manifest["status"] == "completed"
    assert any(str(victim) in line and "skipped" in line for line in lines), lines


def test_importing_and_help_do_not_import_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys; from click.testing import CliRunner; "
        "from automl_app import workflows; from automl_app.cli import train; "
        "r = CliRunner().invoke(train.train_scratch_cmd, ['--help']); assert r.exit_code == 0; "
        "r = CliRunner().invoke(train.scan_images_cmd, ['--help']); assert r.exit_code == 0; "
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_usage_line_as_typed_trains_on_the_default_named_dataset(tmp_path):
    """`automl train-scratch mobilenetv2` needs no data option: the default dataset (digits, the
    same as `search image`), evaluated on its own test split, exported."""
    import subprocess
    import sys

    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    run = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "automl_app.cli", "train-scratch", "mobilenetv2", "--epochs", "1",
         "--max-samples", "256", "--run-dir", str(run)],
        capture_output=True, text=True, env=env, timeout=1200,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    manifest = runs.load_manifest(run)
    assert manifest["data"]["dataset"] == "digits"
    assert manifest["data"]["counts"]["train"] == 256 and manifest["test"]["examples"] == 359
    assert (run / "best" / "saved_model" / "saved_model.pb").is_file()
    assert "test accuracy" in proc.stdout
    for noise in ("E0000", "cuInit", "oneDNN"):
        assert noise not in proc.stderr, proc.stderr[-1000:]


@pytest.mark.slow
def test_a_run_that_did_not_learn_warns_at_chance_against_the_majority_class(tmp_path):
    """Issue 17: train-scratch exported a model that answered class 0 for every image without a
    word, and measured chance as 1/classes. Now the flow's one chance rule (majority class of
    the evaluated split) prints the searches' line and records run.json `chance`. (One tiny
    epoch at a vanishing learning rate: the model cannot learn; a diverging one exports NaN.)"""
    from automl_app import workflows
    from automl_app.data import datasets

    lines: list[str] = []
    cfg = TrainConfig(
        recipe="mobilenetv2_scratch_fast",
        overrides={"alpha": 0.35, "batch_size": 32, "epochs": 1, "lr_per_256": 1e-7},
        data=DataConfig(dataset="digits", image_size=32, max_samples=64),
        run_dir=str(tmp_path / "run"),
    )
    manifest = workflows.train_scratch(cfg, say=lines.append)
    warned = [ln for ln in lines if ln.startswith("warning: the exported model is no better")]
    assert len(warned) == 1, lines
    assert "test accuracy" in warned[0] and "majority class" in warned[0]
    assert "likely cause:" in warned[0] and "next:" in warned[0]
    chance = manifest["chance"]
    _, _, _, y_test, _ = datasets._digits(0)
    majority = np.bincount(y_test).max() / len(y_test)
    assert chance["basis"] == "majority class" and chance["rate"] == pytest.approx(majority, 1e-5)
    assert chance["within_noise"] is True and chance["split"] == "test"
    assert chance["examples"] == len(y_test) == manifest["test"]["examples"]
    assert {"cause", "next_step", "margin"} <= set(chance)
    card = json.loads((tmp_path / "run" / "best" / "model_card.json").read_text())
    assert "0..16" in card["input_scaling"] and "127.5" in card["input_scaling"]
    assert card["test"] == manifest["test"] and card["dataset"] == "digits"
