"""analysis.predict (the core of `automl predict`) on the matrix's run kinds, without Click.

Each prediction is checked against calling the run's SavedModel `serve` directly on the same
pixels or cells. The runs are the session's (tests/support/matrix.py); predict only reads them,
except `selected/`, which is made on this module's own copy.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from support.matrix import Built, build_run, cli, copy_run, explain

from automl_app.analysis import predict as P
from automl_app.errors import UsageError


def _serve(run_or_sm: Path):
    """The loaded SavedModel (keep it referenced while calling its `serve`)."""
    from automl_app.tf_env import tf

    sm = run_or_sm if (run_or_sm / "saved_model.pb").is_file() else run_or_sm / "saved_model"
    if not (sm / "saved_model.pb").is_file():
        sm = run_or_sm / "best" / "saved_model"
    return tf().saved_model.load(str(sm))


def _run_predict(run: Path, inputs, **kw) -> tuple[list[dict[str, str]], list[str]]:
    buf, notes = io.StringIO(), []
    P.predict(run, inputs, out=buf, note=notes.append, **kw)
    return P.read_rows(buf.getvalue()), notes


@pytest.fixture(scope="module")
def digit_pngs(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """Six 8x8 grayscale PNGs of scikit-learn digits, stored as the run stores them (x*255/16)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    folder = tmp_path_factory.mktemp("digit-pngs")
    pixels = np.rint(load_digits().images[:6] * 255 / 16).astype(np.uint8)
    for i, img in enumerate(pixels):
        Image.fromarray(img).save(folder / f"{i}.png")
    return folder, pixels


def test_row_writer_csv_jsonl_and_top_k() -> None:
    """No TensorFlow: the row layouts (class columns, top-k pairs, a one-value regressor)."""
    buf = io.StringIO()
    w = P.RowWriter(buf, "csv", ["cat", "label"], top_k=2)
    w.write("a.png", np.array([0.25, 0.75]))
    rows = P.read_rows(buf.getvalue())
    assert list(rows[0]) == ["input", "label", "probability", "cat", "p_label",
                             "top1_label", "top1_probability", "top2_label", "top2_probability"]  # fmt: skip
    assert rows[0]["label"] == "label" and rows[0]["top2_label"] == "cat"
    buf = io.StringIO()
    P.RowWriter(buf, "jsonl", ["a", "b", "c"], top_k=1).write(3, np.array([0.1, 0.7, 0.2]))
    got = json.loads(buf.getvalue())
    assert got["input"] == 3 and got["label"] == "b" and got["top_k"] == [["b", 0.7]]
    buf = io.StringIO()
    P.RowWriter(buf, "csv", None, top_k=0).write(1, np.array([2.5]))
    assert P.read_rows(buf.getvalue()) == [{"input": "1", "prediction": "2.5"}]


def test_options_are_checked_first() -> None:
    for kw, fragment in (({"fmt": "xml"}, "--format must be one of csv, jsonl"),
                         ({"top_k": -1}, "--top-k must be 0 or more"),
                         ({"batch_size": 0}, "--batch-size must be 1 or more")):  # fmt: skip
        with pytest.raises(UsageError, match=fragment):
            P.predict("no-such-run", ["x.png"], **kw)


@pytest.mark.slow
def test_digits_kerastuner_run(matrix_data: Built, digit_pngs) -> None:
    """A fixed-size (8x8 grayscale) serve: PNGs give the same probabilities as the raw pixels."""
    folder, pixels = digit_pngs
    run = build_run(matrix_data, "kt-digits")
    rows, notes = _run_predict(run, [folder], top_k=3)
    assert notes == [] and [Path(r["input"]).name for r in rows] == [f"{i}.png" for i in range(6)]
    model = _serve(run)
    want = np.asarray(model.serve(pixels))
    labels = json.loads((run / "best" / "labels.json").read_text())
    got = np.asarray([[float(r[c]) for c in labels] for r in rows])
    np.testing.assert_allclose(got, want, atol=2e-6)
    assert [r["label"] for r in rows] == [labels[i] for i in want.argmax(1)]
    assert all(r["top1_label"] == r["label"] and r["top3_label"] for r in rows)


@pytest.mark.slow
def test_digits_wrong_size_is_refused_naming_the_size(matrix_data: Built, tmp_path) -> None:
    from PIL import Image

    Image.new("L", (28, 28)).save(tmp_path / "big.png")
    with pytest.raises(UsageError, match=r"28x28; this model takes 8x8 images"):
        P.predict(build_run(matrix_data, "kt-digits"), [tmp_path / "big.png"], out=io.StringIO())


@pytest.mark.slow
def test_train_scratch_digits_run(matrix_data: Built, digit_pngs) -> None:
    """train-scratch's serve takes RGB of any size: gray PNGs are repeated to RGB, as training."""
    folder, pixels = digit_pngs
    run = build_run(matrix_data, "scratch-digits")
    rows, _ = _run_predict(run, [folder])
    rgb = np.repeat(pixels[..., None], 3, axis=-1)
    model = _serve(run)
    want = np.asarray(model.serve(rgb))
    labels = json.loads((run / "best" / "labels.json").read_text())
    np.testing.assert_allclose([[float(r[c]) for c in labels] for r in rows], want, atol=2e-6)


@pytest.mark.slow
def test_autokeras_text_run_without_target(matrix_data: Built, tmp_path) -> None:
    run = build_run(matrix_data, "ak-text")
    src = list(csv.reader(open(matrix_data.text_csv)))
    path = tmp_path / "texts.csv"
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows([["review", "note"], *[[r[0], "x"] for r in src[1:8]]])
    rows, notes = _run_predict(run, [path], fmt="csv")
    assert [r["input"] for r in rows] == [str(i) for i in range(1, 8)]
    assert notes == ["ignored columns (the model does not read them): note"]
    model = _serve(run)
    want = np.asarray(model.serve(np.asarray([r[0] for r in src[1:8]])))
    labels = json.loads((run / "best" / "labels.json").read_text())
    np.testing.assert_allclose([[float(r[c]) for c in labels] for r in rows], want, atol=2e-6)


@pytest.mark.slow
def test_autokeras_structured_run_missing_column(matrix_data: Built, tmp_path) -> None:
    run = build_run(matrix_data, "ak-structured")
    path = tmp_path / "part.csv"
    path.write_text("height,label\n160,small\n")
    with pytest.raises(UsageError, match=r"lacks the column\(s\) weight, colour"):
        P.predict(run, [path], out=io.StringIO())


@pytest.mark.slow
def test_selected_and_export_dirs(matrix_data: Built, tmp_path) -> None:
    """selected/ and export/ serve like best/: the same rows shape, labels beside them."""
    run = copy_run(matrix_data, "kt-folder", tmp_path / "kt-folder")
    for args in (("select", run), ("export", run)):
        res = cli(*args)
        assert res.exit_code == 0, explain(res)
    photos = matrix_data.photos["good"][:5]
    for where in (run / "selected", run / "export", run / "export" / "saved_model"):
        rows, notes = _run_predict(where, photos, fmt="csv")
        assert [r["input"] for r in rows] == photos and notes == [], where
        model = _serve(where)
        want = np.asarray([np.asarray(model.serve(P.decode_file(f)[0][None]))[0] for f in photos])
        got = [[float(r[c]) for c in ("blue", "green", "red")] for r in rows]
        np.testing.assert_allclose(got, want, atol=2e-6)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["ak-image", "scratch-folder"])
def test_any_size_image_runs(matrix_data: Built, kind: str) -> None:
    """AutoKeras and train-scratch folder runs: every size and mode of the session's folder
    (odd files included: 20x4000, 16-bit, CMYK, 1x1), one row each, as `serve` gives per image;
    the bad files are named with the scan's reasons."""
    run = build_run(matrix_data, kind)
    photos = matrix_data.photos
    files = [*photos["good"][::3], *photos["odd"], *sorted(photos["bad"])]
    rows, notes = _run_predict(run, files, batch_size=8)
    assert [r["input"] for r in rows] == [*photos["good"][::3], *photos["odd"]]
    assert notes == [f"skipped: {p}: {photos['bad'][p]}" for p in sorted(photos["bad"])]
    model = _serve(run)
    for row in rows[:: max(1, len(rows) // 6)]:
        want = np.asarray(model.serve(P.decode_file(row["input"])[0][None]))[0]
        got = [float(row[c]) for c in ("blue", "green", "red")]
        np.testing.assert_allclose(got, want, atol=2e-6)
