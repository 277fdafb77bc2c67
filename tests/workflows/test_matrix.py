"""Issue 17's matrix: every command that reads a run, on every kind of run.

Seven tiny runs (tests/support/matrix.py, built once per session) × the commands `runs`,
`evaluate` (no data options: the run's own data), `report`, `export` (SavedModel; TFLite for image
runs), `select` (the cheapest trial, and a trial whose weights were not kept) and `reproduce`.
Each (kind, command) pair is its own test, so a failure names both. Where a command does not apply
to a kind (TFLite for a table, select/reproduce without KerasTuner trials) the cell holds it to the
rule of every command: exit 2 and one line saying why, never a traceback.

The commands write into the runs, so this module works on its own copies of them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from support.matrix import (
    FOLDER,
    IMAGE_KINDS,
    KERASTUNER_KINDS,
    KINDS,
    TABLE_CSV,
    TEXT_CSV,
    Built,
    cli,
    copy_run,
    explain,
)

from automl_app import report, runs

ALL = frozenset(KINDS)
# command → the kinds it applies to; on every other kind it must refuse in one line (exit 2).
APPLIES: dict[str, frozenset[str]] = {
    "runs": ALL,
    "evaluate": ALL,
    "report": ALL,
    # structured/text: best/saved_model is already the export; AutoKeras image: no TFLite (its
    # serving model resizes with ScaleAndTranslate): both refuse in one line.
    "export": IMAGE_KINDS,
    "export-tflite": IMAGE_KINDS - {"ak-image"},
    "select": KERASTUNER_KINDS,
    "select-unkept": KERASTUNER_KINDS,
    "reproduce": KERASTUNER_KINDS,
}
# select-unkept is a variant of select on a run with trials; elsewhere the select cell says it all.
CELLS = [
    (kind, command)
    for command, kinds in APPLIES.items()
    for kind in KINDS
    if command != "select-unkept" or kind in kinds
]
# The data column of `automl runs`: what each kind's row must show.
SOURCE = {
    "kt-digits": "digits",
    "scratch-digits": "digits",
    "kt-folder": FOLDER,
    "ak-image": FOLDER,
    "scratch-folder": FOLDER,
    "ak-structured": Path(TABLE_CSV).stem,
    "ak-text": Path(TEXT_CSV).stem,
}


class Workspace:
    """This module's copies of the session's runs, one folder (ROOT for `automl runs`)."""

    def __init__(self, built: Built, root: Path) -> None:
        self.built, self.root, self.copies = built, root, {}

    def run(self, kind: str) -> Path:
        if kind not in self.copies:
            self.copies[kind] = copy_run(self.built, kind, self.root / kind)
        return self.copies[kind]


@pytest.fixture(scope="module")
def workspace(matrix_data, tmp_path_factory) -> Workspace:
    return Workspace(matrix_data, tmp_path_factory.mktemp("matrix-copies"))


def _refused_in_one_line(res) -> None:
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) == 1, explain(res)
    assert "Traceback" not in res.output and lines[0].startswith("Error: "), explain(res)


def _ok(res) -> None:
    assert res.exit_code == 0 and "Traceback" not in res.output, explain(res)


# ----------------------------------------------------------------------------- one cell each


def check_runs(kind: str, run_dir: Path, ws: Workspace) -> None:
    res = cli("runs", ws.root)
    _ok(res)
    line = next((ln for ln in res.output.splitlines() if ln.startswith(f"{kind} ")), None)
    assert line is not None, f"no row for {kind}:\n{res.output}"
    assert SOURCE[kind] in line, f"the row does not show {SOURCE[kind]!r}: {line}"
    if SOURCE[kind] != "digits":
        assert "digits" not in line, f"a {kind} run shows 'digits': {line}"
    engine = "train-scratch" if kind.startswith("scratch") else "kerastuner"
    engine = "autokeras" if kind.startswith("ak-") else engine
    assert engine in line and "completed" in line, line


def check_evaluate(kind: str, run_dir: Path, ws: Workspace) -> None:
    res = cli("evaluate", run_dir)
    _ok(res)
    found = sorted((run_dir / "report" / "evaluate").glob("*/evaluation.json"))
    assert found, f"no report/evaluate/*/evaluation.json: {explain(res)}"
    got = json.loads(found[-1].read_text())["metrics"]
    want = runs.load_manifest(run_dir)["test"]
    assert got["accuracy"] == pytest.approx(want["accuracy"], abs=1e-6), (got, want)


def check_report(kind: str, run_dir: Path, ws: Workspace) -> None:
    res = cli("report", run_dir)
    _ok(res)
    page = (run_dir / "report" / "index.html").read_text()
    page = re.sub(r"<script.*?</script>", "", page, flags=re.S)  # the plot library's code
    for text, where in ((res.output, "printed"), (page, "report/index.html")):
        assert "{'" not in text and "{&#x27;" not in text, f"a raw Python dict {where}"


def check_export(kind: str, run_dir: Path, ws: Workspace) -> None:
    res = cli("export", run_dir)
    if kind not in APPLIES["export"]:
        return _refused_in_one_line(res)
    _ok(res)
    assert (run_dir / "export" / "saved_model" / "saved_model.pb").is_file(), explain(res)


def check_export_tflite(kind: str, run_dir: Path, ws: Workspace) -> None:
    res = cli("export", run_dir, "--format", "tflite")
    if kind not in APPLIES["export-tflite"]:
        return _refused_in_one_line(res)
    _ok(res)
    assert "top-1 agreement" in res.output, explain(res)
    assert list((run_dir / "export").glob("*.tflite")), explain(res)


def check_select(kind: str, run_dir: Path, ws: Workspace) -> None:
    res = cli("select", run_dir)
    if kind not in APPLIES["select"]:
        return _refused_in_one_line(res)
    _ok(res)
    chosen = runs.load_manifest(run_dir)["selected"]["trial_id"]
    assert f"selected trial {chosen}" in res.output, explain(res)
    assert (run_dir / "selected" / "saved_model" / "saved_model.pb").is_file()


def _unkept_trial(run_dir: Path) -> tuple[str, str]:
    """A completed trial without kept weights, and a --where that only it meets."""
    rows = [r for r in report.load_trials(run_dir) if r["status"] == "completed"]
    kept = {p.parent.name for p in (run_dir / "tuner").glob("trial_*/checkpoint.weights.h5")}
    other = next((r for r in rows if f"trial_{r['trial_id']}" not in kept), None)
    assert other is not None, f"every trial kept its weights ({sorted(kept)}): nothing to test"
    for col in ("params", *sorted(k for k in other if k.startswith("hp_"))):
        value = other.get(col)
        if isinstance(value, (int, float)) and [r.get(col) for r in rows].count(value) == 1:
            return str(other["trial_id"]), f"{col}=={value!r}"
    raise AssertionError(f"no numeric column tells trial {other['trial_id']} apart: {rows}")


def check_select_unkept(kind: str, run_dir: Path, ws: Workspace) -> None:
    tid, where = _unkept_trial(run_dir)
    assert tid != str(runs.load_manifest(run_dir)["best_trial"]["trial_id"])
    res = cli("select", run_dir, "--where", where, "--by", "params")
    _ok(res)
    assert f"selected trial {tid}" in res.output, explain(res)
    card = json.loads((run_dir / "selected" / "model_card.json").read_text())
    assert card["trial"] == tid and card["weights"] == "retrained", card.get("weights")
    assert (run_dir / "selected" / "saved_model" / "saved_model.pb").is_file()


def check_reproduce(kind: str, run_dir: Path, ws: Workspace) -> None:
    res = cli("reproduce", run_dir, "--top", "1", "--seeds", "2")
    if kind not in APPLIES["reproduce"]:
        return _refused_in_one_line(res)
    _ok(res)
    saved = json.loads((run_dir / "report" / "reproduce.json").read_text())
    assert [len(c["scores"]) for c in saved["configurations"]] == [2], saved


CHECKS = {
    "runs": check_runs,
    "evaluate": check_evaluate,
    "report": check_report,
    "export": check_export,
    "export-tflite": check_export_tflite,
    "select": check_select,
    "select-unkept": check_select_unkept,
    "reproduce": check_reproduce,
}


@pytest.mark.slow
@pytest.mark.parametrize("kind, command", CELLS, ids=[f"{k}-{c}" for k, c in CELLS])
def test_cell(kind: str, command: str, workspace: Workspace) -> None:
    CHECKS[command](kind, workspace.run(kind), workspace)


@pytest.mark.slow
def test_the_folder_search_exports_its_test_time_flip(workspace: Workspace) -> None:
    """kt-folder is built with --tta flip: run.json and the model card say so (the cells
    above run every command on that model; evaluate's figure through the SavedModel equals the
    search's own, so the export holds the flip too)."""
    run_dir = workspace.run("kt-folder")
    manifest = runs.load_manifest(run_dir)
    assert manifest["tta"]["chosen"] == "flip" and manifest["tta"]["passes"] == 2
    card = json.loads((run_dir / "best" / "model_card.json").read_text())
    assert card["test_time_augmentation"].startswith("flip")
    assert "test time augmentation: flip" in (run_dir / "best" / "model_card.md").read_text()
    digits = runs.load_manifest(workspace.run("kt-digits"))["tta"]
    assert digits["mode"] == "auto" and digits["chosen"] in ("flip", "shift", "none")


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_every_run_records_what_its_test_and_export_took(kind: str, workspace: Workspace) -> None:
    finish = runs.load_manifest(workspace.run(kind))["finish_seconds"]
    assert set(finish) == {"test", "export"} and all(v >= 0 for v in finish.values()), finish
    assert finish["export"] > 0  # every kind writes and reloads a SavedModel


def test_no_kind_or_command_is_missing() -> None:
    """Every kind meets every command (applies or refuses); select-unkept on every KerasTuner run."""
    assert set(CHECKS) == set(APPLIES)
    for command in APPLIES:
        want = KERASTUNER_KINDS if command == "select-unkept" else set(KINDS)
        assert {k for k, c in CELLS if c == command} == want, command
