"""`automl runs ROOT --json`: one JSON array for scripts, an object per run of every kind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.matrix import FOLDER, KINDS, TABLE_CSV, TEXT_CSV, cli


def _strict(text: str):
    def refuse(name):
        raise AssertionError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_a_run_with_nan_metrics_gives_null_and_only_json(tmp_path):
    run = tmp_path / "runs" / "odd"
    run.mkdir(parents=True)
    (run / "run.json").write_text(
        json.dumps({"schema_version": 2, "command": "search image", "engine": "kerastuner",
                    "status": "completed", "started_at": "2026-01-02T03:04:05+0000",
                    "wall_seconds": 10.0, "test": {"accuracy": 0.5, "loss": float("nan")},
                    "config": {"data": {"dataset": "digits"}}, "data": {"dataset": "digits"}})
    )  # fmt: skip
    (tmp_path / "runs" / "broken").mkdir()
    (tmp_path / "runs" / "broken" / "run.json").write_text("{not json")
    res = cli("runs", tmp_path / "runs", "--json")
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in _strict(res.output)}
    odd = rows["odd"]
    assert odd["test"] == {"accuracy": 0.5, "loss": None}
    assert odd["kind"] == {"engine": "kerastuner", "task": "image_classification"}
    assert odd["data"] == "digits" and odd["status"] == "completed"
    assert odd["created_at"] == "2026-01-02T03:04:05+0000"
    assert odd["finished_at"] == "2026-01-02T03:04:15+0000"
    assert Path(odd["path"]).is_dir()
    assert rows["broken"]["status"] == "unreadable" and rows["broken"]["error"]


def test_no_runs_is_an_empty_array(tmp_path):
    res = cli("runs", tmp_path, "--json")
    assert res.exit_code == 0 and _strict(res.output) == []


@pytest.mark.slow
def test_runs_json_holds_every_kind(matrix_runs):
    res = cli("runs", matrix_runs.base / "built", "--json")
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in _strict(res.output)}
    assert set(rows) == set(KINDS)
    engines = {k: rows[k]["kind"]["engine"] for k in KINDS}
    assert engines == {"kt-digits": "kerastuner", "kt-folder": "kerastuner",
                       "ak-image": "autokeras", "ak-structured": "autokeras",
                       "ak-text": "autokeras", "scratch-digits": "train-scratch",
                       "scratch-folder": "train-scratch"}  # fmt: skip
    assert rows["ak-structured"]["kind"]["task"] == "structured_classification"
    assert rows["ak-text"]["kind"]["task"] == "text_classification"
    assert rows["ak-structured"]["data"] == TABLE_CSV and rows["ak-text"]["data"] == TEXT_CSV
    assert rows["kt-digits"]["data"] == "digits" and rows["kt-folder"]["data"].endswith(FOLDER)
    for kind, r in rows.items():
        assert r["status"] == "completed", (kind, r)
        assert isinstance(r["test"].get("accuracy"), float) and r["test"]["examples"] > 0, kind
        assert r["best"]["objective"] and isinstance(r["best"]["value"], float), (kind, r["best"])
        assert Path(r["path"]) == (matrix_runs.runs[kind]).resolve()
        assert r["created_at"] and r["finished_at"], kind
    assert rows["kt-digits"]["trials"]["completed"] == 2
