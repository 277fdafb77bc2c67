"""--objective, --early-stopping and --class-weight are checked before any data loads: a value
the run cannot report or use is one line, exit 2, and no run directory."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from automl_app.cli import cli


def invoke(tmp_path, *args: str):
    run = tmp_path / "run"
    res = CliRunner().invoke(cli, ["search", "image", "--run-dir", str(run), *args])
    return res, run


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--objective", "val_r2"], ["val_auc", "val_macro_f1", "'val_r2'"]),
        (["--engine", "autokeras", "--objective", "val_macro_f1"], ["autokeras", "val_loss"]),
        (["--engine", "autokeras", "--objective", "val_auc"], ["AUC", "'val_auc'"]),
        (["--early-stopping", "0"], ["--early-stopping must be >= 1", "Received: 0"]),
        (["--early-stopping", "-3"], ["--early-stopping must be >= 1", "Received: -3"]),
        (["--engine", "autokeras", "--early-stopping", "2"], ["--engine kerastuner"]),
        (["--engine", "autokeras", "--class-weight", "balanced"], ["--engine kerastuner"]),
        (["--engine", "autokeras", "--tta", "flip"], ["--tta", "--engine kerastuner"]),
    ],
)
def test_refused_before_training(tmp_path, args, words):
    res, run = invoke(tmp_path, *args)
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert "\n" not in line and "Traceback" not in line
    for word in words:
        assert word in line
    assert not run.exists()


def test_class_weight_choices(tmp_path):
    res, run = invoke(tmp_path, "--class-weight", "inverse")
    assert res.exit_code == 2
    assert "'inverse'" in res.output and "balanced" in res.output
    assert not run.exists()


def test_tta_choices(tmp_path):
    res, run = invoke(tmp_path, "--tta", "mirror")
    assert res.exit_code == 2
    assert "'mirror'" in res.output and "auto" in res.output and "flip" in res.output
    assert not run.exists()


def test_help_lists_the_objectives():
    res = CliRunner().invoke(cli, ["search", "image", "--help"])
    text = " ".join(res.output.split())
    for name in ("val_auc", "val_macro_f1", "--early-stopping", "--class-weight", "--tta"):
        assert name in text


def test_python_api_refuses_what_autokeras_cannot_rank():
    from automl_app.config import SearchConfig, TunerConfig, check_objective, validate_search
    from automl_app.errors import UsageError

    with pytest.raises(UsageError, match="val_auc"):
        check_objective(SearchConfig(engine="autokeras", tuner=TunerConfig(objective="val_auc")))
    with pytest.raises(UsageError, match="early-stopping"):
        validate_search(SearchConfig(tuner=TunerConfig(early_stopping=0)))
    ok = SearchConfig(tuner=TunerConfig(objective="val_macro_f1", early_stopping=3))
    assert validate_search(ok) is ok


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--early-stopping", "0"], ["--early-stopping must be >= 1"]),
        (["--class-weight", "balanced", "--recipe", "OVERSAMPLE"], ["twice", "oversample"]),
    ],
)
def test_train_scratch_refusals(tmp_path, args, words):
    from automl_app.training.recipes import resolve_recipe

    recipe = tmp_path / "oversample.yaml"
    text = resolve_recipe("mobilenetv2_small").read_text()
    recipe.write_text(text.replace("balance: none", "balance: oversample"))
    args = [str(recipe) if a == "OVERSAMPLE" else a for a in args]
    run = tmp_path / "run"
    res = CliRunner().invoke(cli, ["train-scratch", "mobilenetv2", "--run-dir", str(run), *args])
    assert res.exit_code == 2, res.output
    assert "\n" not in res.output.strip()
    for word in words:
        assert word in res.output
    assert not run.exists()
