"""`--engine autokeras` behind the CLI: `search text|structured|multi` and the image workflow.

Exit codes and messages through CliRunner on the command objects, the run directory every command
writes (run.json completed, trials.csv, report/, best/saved_model), and one real subprocess. Data is
generated in code: scikit-learn's iris/diabetes written to CSV, a review CSV, digits as images.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from automl_app import runs
from automl_app.cli.search import build_config, search_multi, search_structured, search_text
from automl_app.errors import UsageError

REPO = Path(__file__).resolve().parents[3]
QUICK = ["--max-trials", "1", "--epochs", "1", "--seed", "1"]


def invoke(cmd, *args: str):
    return CliRunner().invoke(cmd, list(args), catch_exceptions=False)


def _iris_csv(path: Path) -> Path:
    from sklearn.datasets import load_iris

    iris = load_iris()
    rng = np.random.default_rng(0)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["sepal_length", "sepal_width", "petal_length", "petal_width", "site", "species"]
        )
        for row, t in zip(iris.data, iris.target, strict=True):
            w.writerow([*(f"{v:.1f}" for v in row), rng.choice(["north", "south"]),
                        iris.target_names[t]])  # fmt: skip
    return path


def _reviews_csv(path: Path, n: int = 60) -> Path:
    good, bad = ["great", "fine", "lovely", "superb"], ["awful", "poor", "dull", "broken"]
    rng = np.random.default_rng(0)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["review", "sentiment"])
        for i in range(n):
            pos = i % 2 == 0
            words = rng.choice(good if pos else bad, size=4).tolist() + ["film"]
            w.writerow([" ".join(words), "pos" if pos else "neg"])
    return path


def _check_run(run_dir: Path, command: str) -> dict:
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["status"] == "completed", manifest.get("error")
    assert manifest["engine"] == "autokeras" and manifest["command"] == command
    rows = runs.read_csv(run_dir / "trials.csv")
    assert len(rows) == 1 and rows[0]["status"] == "completed"
    assert any(k.startswith("hp_") for k in rows[0])
    assert (run_dir / "best" / "saved_model" / "saved_model.pb").is_file()
    assert (run_dir / "best" / "model_card.json").is_file()
    assert (run_dir / "report").is_dir()
    return manifest


# ---------------------------------------------------------------------------------------------
# fast: options, usage errors, splits


def test_commands_import_and_help_without_tensorflow():
    code = (
        "import sys; from click.testing import CliRunner; from automl_app.cli import search as c\n"
        "for cmd in c.search.commands.values():\n"
        "    assert CliRunner().invoke(cmd, ['--help']).exit_code == 0\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'autokeras', 'keras_tuner') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("cmd", [search_text, search_structured, search_multi])
def test_shared_options_everywhere(cmd):
    res = invoke(cmd, "--help")
    for opt in ("--tuner", "--max-trials", "--epochs", "--time-budget", "--max-samples",
                "--seed", "--run-dir", "--overwrite", "--resume", "--verbose"):  # fmt: skip
        assert opt in res.output, opt
    assert "greedy|random|bayesian|hyperband" in res.output


@pytest.mark.parametrize(
    "cmd, args, fragment",
    [
        (search_structured, ["--tuner", "grid"],
         "'grid' is not one of 'greedy', 'random', 'bayesian', 'hyperband'"),
        (search_structured, ["--column-type", "petal_width=ordinal"],
         "--column-type must be one of numerical, categorical. Received: petal_width='ordinal'"),
        (search_structured, ["--column-type", "petal_width"], "must look like NAME=numerical"),
        (search_structured, ["--column-type", "colour=categorical"],
         "column type given for 'colour', which is not a feature column"),
        (search_structured, ["--time-budget", "10x"], "`--time-budget` must look like 90s"),
        (search_structured, ["--resume"], "--resume needs --run-dir"),
        (search_structured, ["--resume", "--overwrite", "--run-dir", "r"], "exclusive"),
        (search_structured, ["--max-trials", "0"], "0 is not in the range x>=1"),
        (search_structured, ["--task", "ranking"], "'ranking' is not one of 'auto'"),
    ],
)  # fmt: skip
def test_structured_usage_errors_exit_2(tmp_path, cmd, args, fragment, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _iris_csv(tmp_path / "iris.csv")
    res = invoke(cmd, "--csv", str(path), "--target", "species", *args)
    assert res.exit_code == 2, res.output
    assert fragment in res.output
    assert not (tmp_path / "runs").exists()  # nothing written for a usage error


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--data-dir", "d", "--csv", "x.csv"], "exactly one source"),
        ([], "exactly one source"),
        (["--csv", "{csv}", "--target", "sentiment"], "--csv needs --text-column"),
        (["--data-dir", "{dir}", "--target", "sentiment"], "go with --csv"),
        (["--data-dir", "{dir}", "--task", "regression"], "needs a numeric --target"),
    ],
)
def test_text_usage_errors_exit_2(tmp_path, args, fragment):
    path = _reviews_csv(tmp_path / "r.csv")
    args = [a.format(csv=path, dir=tmp_path) for a in args]
    res = invoke(search_text, *args, "--run-dir", str(tmp_path / "run"))
    assert res.exit_code == 2, res.output
    assert fragment in res.output


def test_missing_csv_exit_1_before_any_run_dir(tmp_path):
    res = invoke(search_structured, "--csv", str(tmp_path / "nope.csv"), "--target", "y",
                 "--run-dir", str(tmp_path / "run"))  # fmt: skip
    assert res.exit_code == 1 and "does not exist" in res.output
    assert not (tmp_path / "run").exists()


def test_bad_spec_names_file_and_key(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "inputs: [{type: audio, column: a}]\noutputs: [{type: regression, column: y}]\n"
    )
    res = invoke(search_multi, "--spec", str(spec), "--run-dir", str(tmp_path / "run"))
    assert res.exit_code == 1
    assert "spec.yaml: inputs[0].type must be one of image, text, structured" in res.output
    res = invoke(search_multi, "--spec", str(spec), "--block", "big")
    assert res.exit_code == 2 and "'big' is not one of 'auto', 'vanilla'" in res.output


def test_existing_run_dir_needs_overwrite_or_resume(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "x").write_text("")
    res = invoke(search_structured, "--csv", str(_iris_csv(tmp_path / "i.csv")),
                 "--target", "species", "--run-dir", str(run))  # fmt: skip
    assert res.exit_code == 2 and "already exists; pass --overwrite" in res.output


def _cfg(block="vanilla", task="auto", **tuner):
    from automl_app.config import AutoKerasConfig, DataConfig, SearchConfig, TunerConfig

    base = {"tuner": "greedy", "max_trials": 1, "epochs": 1}
    return SearchConfig(data=DataConfig(dataset="digits", max_samples=200),
                        tuner=TunerConfig(**{**base, **tuner}), engine="autokeras",
                        autokeras=AutoKerasConfig(block=block, task=task))  # fmt: skip


def _plan(cfg):
    """The engine's checks, as the CLI runs them (nothing is written)."""
    from automl_app import workflows

    return workflows.plan_for(cfg)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"tuner": "tpe"}, "--tuner must be one of greedy, random, bayesian, hyperband"),
        ({"prune": "median"}, "--prune is a KerasTuner option"),
        ({"lr_find": True, "min_batch_size": 8}, "--lr-find, --min-batch-size are KerasTuner"),
    ],
)
def test_image_api_rejects_kerastuner_options(kwargs, fragment):
    with pytest.raises(UsageError, match=fragment):
        _plan(_cfg(**kwargs))


def test_image_api_rejects_bad_block_task_dataset():
    import dataclasses

    with pytest.raises(UsageError, match=r"--block must be one of auto, vanilla, resnet"):
        _plan(_cfg(block="big"))
    with pytest.raises(UsageError, match=r"--task must be one of classification, regression"):
        _plan(_cfg(task="ranking"))
    cfg = _cfg()
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, dataset="imagenet"))
    with pytest.raises(
        UsageError, match="--dataset must be one of .*Received: --dataset 'imagenet'"
    ):
        _plan(cfg)


def image_engine_tuner(engine, tuner, **extra):
    """The tuner `search image` resolves for an engine (options → config → engine checks)."""
    cfg = build_config("image", {"engine": engine, "tuner": tuner, "max_trials": 1, **extra})
    if engine == "autokeras":
        from automl_app.engines.autokeras.engine import check_config

        check_config(cfg)
    return cfg.tuner.tuner


def test_engine_options_for_search_image():
    assert image_engine_tuner("kerastuner", None) == "random"
    assert image_engine_tuner("autokeras", None) == "greedy"
    assert image_engine_tuner("autokeras", "hyperband") == "hyperband"
    with pytest.raises(UsageError, match="--block, --task need"):
        image_engine_tuner("kerastuner", None, block="vanilla", task="regression")
    with pytest.raises(UsageError, match="greedy needs --engine autokeras"):
        image_engine_tuner("kerastuner", "greedy")
    with pytest.raises(UsageError, match="Received: --tuner 'tpe'"):
        image_engine_tuner("autokeras", "tpe")
    with pytest.raises(UsageError, match="exclusive"):
        image_engine_tuner("autokeras", None, dataset="digits", data_dir="d")


def test_search_text_accepts_engine_autokeras_and_refuses_kerastuner(tmp_path):
    path = _reviews_csv(tmp_path / "r.csv")
    base = ["--csv", str(path), "--text-column", "review", "--target", "sentiment"]
    res = invoke(search_text, *base, "--engine", "kerastuner", "--run-dir", str(tmp_path / "a"))
    assert res.exit_code == 2 and "needs --engine autokeras" in res.output
    res = invoke(search_text, "--engine", "autokeras", "--help")
    assert res.exit_code == 0


def test_holdout_is_seeded_stratified_and_disjoint():
    from automl_app.engines.autokeras.engine import holdout

    y = np.repeat([0, 1, 2], [50, 30, 3])
    tr, va, te = holdout(y, "classification", seed=3, val_fraction=0.1)
    assert not (set(tr) & set(va) or set(tr) & set(te) or set(va) & set(te))
    assert len(tr) + len(va) + len(te) == len(y)
    assert set(y[tr]) == {0, 1, 2}  # the rare class keeps training rows
    assert np.bincount(y[te]).tolist()[:2] == [10, 6]
    again = holdout(y, "classification", seed=3, val_fraction=0.1)
    assert all(np.array_equal(a, b) for a, b in zip((tr, va, te), again, strict=True))
    tr2, _, te2 = holdout(np.linspace(0, 1, 40), "regression", seed=0, val_fraction=0.1,
                          max_train=10)  # fmt: skip
    assert len(tr2) == 10 and len(te2) == 8


# ---------------------------------------------------------------------------------------------
# slow: real AutoKeras searches (one trial, one epoch) writing the run directory


@pytest.mark.slow
def test_structured_iris_run_dir_and_resume(tmp_path):
    path = _iris_csv(tmp_path / "iris.csv")
    run = tmp_path / "run"
    args = ["--csv", str(path), "--target", "species", "--column-type", "site=categorical",
            "--run-dir", str(run), *QUICK]  # fmt: skip
    res = invoke(search_structured, *args)
    assert res.exit_code == 0, res.output
    assert "search: AutoKeras StructuredDataClassifier, greedy tuner" in res.output
    assert "test accuracy" in res.output and "best/saved_model" in res.output
    m = _check_run(run, "search structured")
    assert m["data"]["column_types"]["site"] == "categorical"
    assert (
        m["data"]["split"]["test_fraction"] == 0.2 and "stratified" in m["data"]["split"]["method"]
    )
    assert m["data"]["train_examples"] + m["data"]["val_examples"] + m["test"]["examples"] == 150
    assert m["autokeras_task"] == "structured_classification"
    assert (run / "report" / "classification_report.json").is_file()
    card = json.loads((run / "best" / "model_card.json").read_text())
    assert set(card["serving"]["input_names"]) == {"sepal_length", "sepal_width", "petal_length",
                                                   "petal_width", "site"}  # fmt: skip
    res = invoke(search_structured, *args)
    assert res.exit_code == 2 and "--overwrite" in res.output
    # --resume: AutoKeras reloads RUN_DIR/tuner; the one trial is already done.
    res = invoke(search_structured, *args, "--resume")
    assert res.exit_code == 0, res.output
    m = _check_run(run, "search structured")
    assert m["resumed"] == 1


@pytest.mark.slow
def test_text_csv_classifier(tmp_path):
    path = _reviews_csv(tmp_path / "reviews.csv")
    run = tmp_path / "run"
    res = invoke(search_text, "--csv", str(path), "--text-column", "review", "--target",
                 "sentiment", "--run-dir", str(run), "--max-samples", "40", *QUICK)  # fmt: skip
    assert res.exit_code == 0, res.output
    m = _check_run(run, "search text")
    assert m["data"]["train_examples"] == 40
    assert m["data"]["class_names"] == ["neg", "pos"]
    assert "raw strings" in m["export"]["input"]
    assert (run / "report" / "classification_report.txt").is_file()


@pytest.mark.slow
def test_digits_image_api_reads_test_once(tmp_path, monkeypatch):
    from automl_app import workflows
    from automl_app.config import AutoKerasConfig, DataConfig, SearchConfig, TunerConfig
    from automl_app.data import datasets

    loaded = []
    real = datasets.load
    monkeypatch.setattr(
        datasets, "load", lambda *a, **k: loaded.append(real(*a, **k)) or loaded[-1]
    )
    cfg = SearchConfig(data=DataConfig(dataset="digits", max_samples=200, seed=1),
                       tuner=TunerConfig(tuner="greedy", max_trials=1, epochs=1, seed=1),
                       run_dir=str(tmp_path / "run"), engine="autokeras",
                       autokeras=AutoKerasConfig(block="vanilla"))  # fmt: skip
    said = []
    m = workflows.search(cfg, say=said.append)
    assert loaded[0].test_reads == 1
    run = tmp_path / "run"
    _check_run(run, "search image")
    assert m["data"]["train_examples"] == 200 and m["inputs"][0]["shape"] == [8, 8, 1]
    assert m["autokeras"] == {"block": "vanilla", "task": "classification"}
    assert m["leakage"]["test_examples"] == 359
    assert any(s.startswith("test accuracy") for s in said)
    assert not any("ResNet50" in s for s in said)  # a chosen block needs no note
    from automl_app.tf_env import tf

    loaded_model = tf().saved_model.load(str(run / "best" / "saved_model"))
    x = np.zeros((3, 8, 8, 1), np.uint8)
    probs = np.asarray(loaded_model.serve(tf().constant(x)))
    assert probs.shape == (3, 10)


@pytest.mark.slow
def test_image_folder_regression_on_numeric_classes(tmp_path):
    from PIL import Image
    from sklearn.datasets import load_digits

    from automl_app import workflows
    from automl_app.config import AutoKerasConfig, DataConfig, SearchConfig, TunerConfig

    d = load_digits()
    for i in range(150):
        folder = tmp_path / "imgs" / f"{d.target[i] % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((d.images[i] * 15).astype(np.uint8)).save(folder / f"{i}.png")
    cfg = SearchConfig(data=DataConfig(data_dir=str(tmp_path / "imgs"), image_size=8),
                       tuner=TunerConfig(tuner="greedy", max_trials=1, epochs=1),
                       run_dir=str(tmp_path / "run"), engine="autokeras",
                       autokeras=AutoKerasConfig(block="vanilla", task="regression"))  # fmt: skip
    m = workflows.search(cfg, say=lambda s: None)
    _check_run(tmp_path / "run", "search image")
    assert "content hash" in m["data"]["split"]["method"]
    assert m["data"]["image_shape"] == [8, 8, 3]  # the shared folder path decodes to RGB
    assert set(m["test"]) >= {"mae", "rmse", "r2"}
    assert (tmp_path / "run" / "report" / "regression_report.json").is_file()


SPEC = """\
inputs:
  - {type: image, column: picture, channels: 1}
  - {type: structured, columns: [size]}
outputs:
  - {type: classification, column: kind}
"""


@pytest.mark.slow
def test_multi_spec_image_and_table(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "img").mkdir()
    with open(tmp_path / "items.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["picture", "size", "kind"])
        for i in range(60):
            c = i % 2
            x = rng.integers(0, 60, (8, 8), dtype=np.uint8)
            x[:, c * 4 : c * 4 + 4] = 220
            Image.fromarray(x).save(tmp_path / "img" / f"{i}.png")
            w.writerow([f"img/{i}.png", f"{rng.normal(3 + 2 * c):.3f}", ["cat", "dog"][c]])
    (tmp_path / "spec.yaml").write_text(SPEC)
    run = tmp_path / "run"
    res = invoke(search_multi, "--spec", str(tmp_path / "spec.yaml"), "--csv",
                 str(tmp_path / "items.csv"), "--block", "vanilla", "--run-dir", str(run), *QUICK)  # fmt: skip
    assert res.exit_code == 0, res.output
    m = _check_run(run, "search multi")
    assert m["autokeras_task"] == "auto_model"
    assert m["data"]["test_examples"] == 12 and m["test"]["examples"] == 12
    assert json.loads((run / "best" / "labels.json").read_text()) == {"kind": ["cat", "dog"]}


@pytest.mark.slow
def test_subprocess_structured_regression(tmp_path):
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    path = tmp_path / "diabetes.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*d.feature_names, "progression"])
        for row, t in zip(d.data[:100], d.target[:100], strict=True):
            w.writerow([*(f"{v:.5f}" for v in row), f"{t:.1f}"])
    from automl_app.cli.search import search

    attached = "structured" in search.commands
    assert attached
    prog = ["automl_app.cli", "search"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run(
        [sys.executable, "-m", *prog, "structured", "--csv", str(path), "--target", "progression",
         "--run-dir", str(tmp_path / "run"), *QUICK],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "test MAE" in out.stdout and "RMSE" in out.stdout
    m = _check_run(tmp_path / "run", "search structured")
    assert m["data"]["task"] == "regression" and m["autokeras_task"] == "structured_regression"
    assert (
        json.loads((tmp_path / "run" / "report" / "regression_report.json").read_text())["rmse"] > 0
    )


@pytest.mark.parametrize(
    "tuner, line",
    [
        ({"early_stopping": 2}, "--early-stopping is a KerasTuner option"),
        ({"class_weight": "balanced"}, "--class-weight is a KerasTuner option"),
        ({"objective": "val_auc"}, "AutoKeras records no AUC or F1"),
    ],
)
def test_the_python_api_refuses_what_autokeras_cannot_do(tuner, line):
    """The engine's own check (what a Python caller meets), not only the CLI's."""
    from dataclasses import replace

    from automl_app.engines.autokeras.engine import check_config

    cfg = build_config("image", {"engine": "autokeras", "max_trials": 1})
    with pytest.raises(UsageError, match=line):
        check_config(replace(cfg, tuner=replace(cfg.tuner, **tuner)))
