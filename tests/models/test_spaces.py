"""Search-space files: every type, conditions, overrides and the errors users will hit."""

from __future__ import annotations

import keras_tuner as kt
import pytest

from automl_app import models, spaces
from automl_app.errors import ConfigError, UsageError

KNOWN = models.known()


def _space(hps: dict, model: str = "fcn"):
    return spaces.parse({"model": model, "hyperparameters": hps}, source="t.yaml", known=KNOWN)


def test_shipped_spaces_load_and_declare():
    assert {"fcn", "cnn"} <= set(spaces.available())
    for name in ("fcn", "cnn"):
        space = spaces.load(name, known=KNOWN)
        hp = space.to_hyperparameters()
        assert set(hp.values) <= set(space.names)
        assert space.model == name


def test_fcn_space_trains_where_dense_nets_train():
    # Issue 13: lr up to 1.0 and 16 x 1536 layers at batch 16 made most random draws diverge or
    # cost 20x a default trial; the ranges now stay where adam-family dense nets train.
    space = spaces.load("fcn", known=KNOWN)
    hp = space.to_hyperparameters()
    by = {p.name: p for p in hp.space}
    assert by["batch_size"].values == [32, 64, 128, 256]
    assert (by["learning_rate"].min_value, by["learning_rate"].max_value) == (1e-4, 3e-3)
    assert by["learning_rate"].sampling == "log"
    assert (by["num_layers"].min_value, by["num_layers"].max_value) == (1, 6)
    assert max(by["layer_size"].values) == 1024
    assert by["optimizer"].values == ["adam", "adamax", "nadam", "rmsprop"]
    # The defaults are the first trial of every search: a small, sound network.
    assert hp.values == {
        "batch_size": 128,
        "learning_rate": 1e-3,
        "dropout_rate": 0.2,
        "activation": "relu",
        "num_layers": 2,
        "layer_size": 512,
        "optimizer": "adam",
        "lr_schedule": "cosine",
    }


def test_cnn_space_defaults_and_training_hyperparameters():
    space = spaces.load("cnn", known=KNOWN)
    hp = space.to_hyperparameters()
    by = {p.name: p for p in hp.space}
    assert {"block", "augment_shift", "augment_flip", "label_smoothing", "lr_schedule"} <= set(by)
    assert by["learning_rate"].max_value <= 3e-3
    assert hp.values["conv_blocks"] == 2 and hp.values["convs_per_block"] == 1
    assert hp.values["lr_schedule"] == "cosine" and hp.values["augment_shift"] == 0.0


def test_every_type_maps_to_keras_tuner():
    space = _space(
        {
            "optimizer": {"type": "choice", "values": ["adam", "sgd"], "default": "sgd"},
            "num_layers": {"type": "int", "min": 2, "max": 8, "step": 2},
            "learning_rate": {"type": "float", "min": 1e-4, "max": 1e-1, "sampling": "log"},
            "dropout_rate": {"type": "float", "min": 0.0, "max": 0.5, "step": 0.1},
            "layer_size": {"type": "fixed", "value": 64},
            "batch_size": {"type": "choice", "values": [8, 16]},
        }
    )
    hp = space.to_hyperparameters()
    kinds = {p.name: type(p).__name__ for p in hp.space}
    assert kinds == {
        "optimizer": "Choice",
        "num_layers": "Int",
        "learning_rate": "Float",
        "dropout_rate": "Float",
        "layer_size": "Fixed",
        "batch_size": "Choice",
    }
    assert hp.values["optimizer"] == "sgd"
    assert hp.values["layer_size"] == 64

    cnn = _space({"batch_norm": {"type": "boolean", "default": True}}, model="cnn")
    assert type(cnn.to_hyperparameters().space[0]).__name__ == "Boolean"


def test_conditions_activate_children_only_for_their_parent_values():
    space = _space(
        {
            "optimizer": {"type": "choice", "values": ["adam", "sgd"]},
            "momentum": {"type": "float", "min": 0.5, "max": 0.9, "when": {"optimizer": ["sgd"]}},
        }
    )
    hp = kt.HyperParameters()
    values = space.declare(hp)
    assert values["optimizer"] == "adam" and "momentum" not in values
    assert not hp.is_active("momentum")
    hp.values["optimizer"] = "sgd"  # what an oracle does when it proposes sgd
    hp.values["momentum"] = 0.7
    assert hp.is_active("momentum")
    assert space.declare(hp)["momentum"] == 0.7


@pytest.mark.parametrize(
    "hps, fragment",
    [
        ({"learning_rate": {"type": "float", "min": 1.0, "max": 0.1}}, "empty range"),
        ({"layer_size": {"type": "choice", "values": []}}, "non-empty list"),
        ({"layer_size": {"type": "choice", "values": [1], "stepp": 2}}, "unknown key 'stepp'"),
        ({"layer_size": {"type": "range", "min": 1, "max": 2}}, "type must be one of"),
        ({"colour": {"type": "choice", "values": ["red"]}}, "never reads 'colour'"),
        (
            {"learning_rate": {"type": "float", "min": 0.0, "max": 1.0, "sampling": "log"}},
            "needs min > 0",
        ),
        (
            {"momentum": {"type": "float", "min": 0.1, "max": 0.9, "when": {"optimiser": ["sgd"]}}},
            "unknown parent 'optimiser'",
        ),
        ({"num_layers": {"type": "int", "min": 1.5, "max": 3}}, "must be an int"),
    ],
)
def test_malformed_spaces_name_file_and_key(hps, fragment):
    with pytest.raises(ConfigError) as err:
        _space(hps)
    assert "t.yaml" in str(err.value) and fragment in str(err.value)


def test_unknown_model_and_top_level_key():
    with pytest.raises(ConfigError, match="`model` must be one of"):
        spaces.parse({"model": "resnet", "hyperparameters": {}}, known=KNOWN)
    with pytest.raises(ConfigError, match="unknown key 'hyperparams'"):
        spaces.parse({"model": "fcn", "hyperparams": {}}, known=KNOWN)


def test_load_errors(tmp_path):
    with pytest.raises(UsageError, match="unknown search space 'nope'"):
        spaces.load("nope", known=KNOWN)
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: fcn\nhyperparameters: {a: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        spaces.load(str(bad), known=KNOWN)


def test_set_overrides_fix_values_and_reject_unknown_names():
    sets = spaces.parse_set(["learning_rate=0.01", "optimizer=sgd", "num_layers=4"])
    assert sets == {"learning_rate": 0.01, "optimizer": "sgd", "num_layers": 4}
    space = spaces.load("fcn", known=KNOWN, overrides=sets)
    hp = space.to_hyperparameters()
    assert hp.values["learning_rate"] == 0.01 and hp.values["num_layers"] == 4
    assert {type(p).__name__ for p in hp.space if p.name in sets} == {"Fixed"}
    with pytest.raises(UsageError, match="has no hyperparameter 'units'"):
        spaces.load("fcn", known=KNOWN, overrides={"units": 3})
    with pytest.raises(UsageError, match="name=value"):
        spaces.parse_set(["learning_rate"])


def test_the_cnn_spaces_portfolio_is_valid_and_set_wins_over_it():
    cnn = spaces.load("cnn", known=KNOWN)
    assert cnn.portfolio and all(set(c) <= set(cnn.names) for c in cnn.portfolio)
    fixed = spaces.load("cnn", known=KNOWN, overrides={"block": "plain"})
    assert all("block" not in c for c in fixed.portfolio)  # the rest of the entry still runs
    small = spaces.parse(
        {
            "model": "cnn",
            "hyperparameters": {
                "batch_size": {"type": "choice", "values": [32, 256]},
                "filters": {"type": "choice", "values": [16, 32]},
            },
            "portfolio": [{"batch_size": 32, "filters": 16}],
        },
        known=KNOWN,
    )
    assert spaces.with_min_batch_size(small, 64).portfolio == ({"filters": 16},)


@pytest.mark.parametrize(
    "portfolio, fragment",
    [
        ([{"units": 3}], "portfolio[0].units: not a hyperparameter of the space"),
        ([{"optimizer": "sgdd"}], "portfolio[0].optimizer must be one of ['adam', 'sgd']"),
        ([{}, {"learning_rate": 5.0}], "`portfolio` must be a list of mappings"),
        ([{"learning_rate": 5.0}], "portfolio[0].learning_rate must be a number in 0.0001..0.1"),
        ([{"num_layers": 2.5}], "must be an int in 1..3"),
        ({"num_layers": 2}, "`portfolio` must be a list of mappings"),
    ],
)
def test_a_bad_portfolio_names_the_entry_and_what_is_allowed(portfolio, fragment):
    hps = {
        "optimizer": {"type": "choice", "values": ["adam", "sgd"]},
        "learning_rate": {"type": "float", "min": 1e-4, "max": 0.1, "sampling": "log"},
        "num_layers": {"type": "int", "min": 1, "max": 3},
    }
    raw = {"model": "fcn", "hyperparameters": hps, "portfolio": portfolio}
    with pytest.raises(ConfigError) as err:
        spaces.parse(raw, source="t.yaml", known=KNOWN)
    assert "t.yaml" in str(err.value) and fragment in str(err.value)
