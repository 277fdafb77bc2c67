"""The model card (model_card.json + model_card.md beside every export): what the model takes,
what it returns, its test metrics with the split's size, the data's fingerprint, the command."""

from __future__ import annotations

import json
import shutil

import pytest
from support.matrix import KINDS, cli, copy_run, explain

from automl_app.export.model_card import render_markdown


def _card(folder, stem="model_card"):
    card = json.loads((folder / f"{stem}.json").read_text())
    md = (folder / f"{stem}.md").read_text()
    assert md == render_markdown(card)  # the .md is rendered from the same dict
    return card, md


def test_render_markdown_has_every_section():
    card = {
        "takes": {"endpoint": "serve", "dtype": "uint8", "shape": ["N", None, None, 3],
                  "resizing": "resize_with_pad to 32x32 inside", "scaling": "x / 255 inside"},
        "returns": {"description": "float32 probabilities", "class_names": ["cat", "dog"]},
        "test": {"accuracy": 0.75, "examples": 8}, "test_examples": 8,
        "data": {"source": "photos", "fingerprint": {"train": "abc123"}},
        "command": {"command": "search image", "line": "automl search image --data-dir photos"},
    }  # fmt: skip
    md = render_markdown(card)
    for text in ("## What it takes", "uint8", "resize_with_pad", "x / 255", "cat, dog",
                 "(8 examples)", "accuracy: 0.7500", "`abc123`",
                 "automl search image --data-dir photos"):  # fmt: skip
        assert text in md, text
    assert "not measured" in render_markdown({})


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_every_run_kind_has_a_full_card(matrix_runs, kind):
    run = matrix_runs.runs[kind]
    card, md = _card(run / "best")
    manifest = json.loads((run / "run.json").read_text())
    takes, returns = card["takes"], card["returns"]
    assert takes["endpoint"] == "serve" and takes["description"]
    if kind in ("kt-digits", "kt-folder", "ak-image", "scratch-digits", "scratch-folder"):
        assert takes["dtype"] == "uint8" and takes["shape"] and takes["resizing"], takes
        assert "0..255" in takes["scaling"], takes
    if kind == "ak-structured":
        assert takes["column_types"]["colour"] == "categorical"
    names = manifest["data"]["class_names"]
    assert returns["class_names"] == names and ", ".join(names) in md
    assert card["test"] == manifest["test"]
    assert card["test_examples"] == manifest["test"]["examples"] > 0
    assert f"({card['test_examples']} examples)" in md
    prints = manifest["data"]["fingerprint"]
    assert card["data"]["fingerprint"] == prints and all(fp in md for fp in prints.values())
    assert card["command"]["command"] == manifest["command"] and manifest["command"] in md


@pytest.mark.slow
def test_select_and_export_write_cards(matrix_runs, tmp_path):
    run = copy_run(matrix_runs, "kt-digits", tmp_path / "kt")
    res = cli("select", run, "--by", "params")
    assert res.exit_code == 0, explain(res)
    card, md = _card(run / "selected")
    assert card["test_examples"] > 0 and card["returns"]["class_names"][0] == "0"
    assert all(fp in md for fp in card["data"]["fingerprint"].values())
    res = cli("export", run)
    assert res.exit_code == 0, explain(res)
    card, md = _card(run / "export", stem="saved_model.model_card")
    assert card["serving"]["path"].endswith("export/saved_model")
    assert card["takes"]["dtype"] == "uint8" and card["test_examples"] > 0
    shutil.rmtree(run)
