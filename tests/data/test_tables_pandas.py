"""Tables through pandas: CSV quirks (property based), Parquet, and a DataFrame through the API.

The properties write tables with the standard library's csv writer (quoted fields with commas,
newlines and quotes, CRLF, a BOM, latin-1) or with pandas itself, and check that data/tables.py
reads back exactly what was written, and that a CSV, a Parquet file and a DataFrame holding the
same table give AutoKeras the same arrays (data/tabular.py). No TensorFlow.
"""

from __future__ import annotations

import csv
import io
import json
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from automl_app.config import DataConfig, SearchConfig, TunerConfig, search_config_from_dict
from automl_app.data import tables, tabular, text
from automl_app.errors import DataError

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
LATIN1 = "".join(chr(c) for c in range(0x20, 0x7F)) + "".join(chr(c) for c in range(0xA0, 0x100))
# Cells: the characters that break hand-written parsers, plus unicode beyond latin-1.
CELL_CHARS = LATIN1 + "\n\r\t,;\"'é€名🙂\u2028"
NAME_CHARS = "abcxyzABCé名ß_"  # letters only: a header row that cannot look like data


def names(n: int, alphabet: str = NAME_CHARS) -> st.SearchStrategy[list[str]]:
    return st.lists(st.text(alphabet, min_size=1, max_size=6), min_size=n, max_size=n,
                    unique=True)  # fmt: skip


@st.composite
def csv_tables(
    draw, alphabet: str = CELL_CHARS, name_alphabet: str = NAME_CHARS
) -> tuple[list[str], list[list[str]]]:
    n_cols = draw(st.integers(1, 4))
    header = draw(names(n_cols, name_alphabet))
    cell = st.one_of(
        st.text(alphabet, max_size=12),
        st.sampled_from(["", "NA", "nan", "null", "?", "007", "1e3", "-0.0", "1,5", "inf"]),
    )
    rows = draw(st.lists(st.lists(cell, min_size=n_cols, max_size=n_cols), min_size=1,
                         max_size=8))  # fmt: skip
    return header, rows


def _write_csv(
    path: Path, header, rows, *, encoding="utf-8", newline="\n", bom=False, quote_all=False
) -> Path:
    """The standard library's writer. It quotes a field holding a CR only when CR is part of the
    line terminator, so with LF lines such tables are written with every field quoted."""
    if newline == "\n" and any("\r" in c for row in [header, *rows] for c in row):
        quote_all = True
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=newline,
                   quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL)  # fmt: skip
    w.writerow(header)
    w.writerows(rows)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + buf.getvalue().encode(encoding))
    return path


# ---------------------------------------------------------------------------------------------
# CSV quirks, property based


@SETTINGS
@given(table=csv_tables(), newline=st.sampled_from(["\n", "\r\n"]), bom=st.booleans(),
       quote_all=st.booleans())  # fmt: skip
@example(table=(["a", "b"], [["x\r\ny", 'say "hi", then go']]), newline="\r\n", bom=True,
         quote_all=False)  # fmt: skip
@example(table=(["a"], [[""], ["NA"]]), newline="\n", bom=False, quote_all=False)  # a row of ""
@example(table=(["名"], [["\r"]]), newline="\n", bom=True, quote_all=False)  # a lone CR
def test_utf8_csv_reads_back_every_cell_exactly(table, newline, bom, quote_all):
    header, rows = table
    with tempfile.TemporaryDirectory() as d:
        path = _write_csv(Path(d) / "t.csv", header, rows, newline=newline, bom=bom,
                          quote_all=quote_all)  # fmt: skip
        frame = tables.read_table(path)
    assert list(frame.columns) == header
    assert frame.to_numpy().tolist() == rows
    assert "notes" not in frame.attrs


@SETTINGS
@given(table=csv_tables(LATIN1 + '\n,"', "abcxyzéÿ_"), newline=st.sampled_from(["\n", "\r\n"]))
@example(table=(["name"], [["café"], ["naïve ÿ"]]), newline="\n")
def test_latin1_csv_reads_back_with_a_note(table, newline):
    header, rows = table
    data = "".join(header + sum(rows, [])).encode("latin-1")
    try:  # latin-1 bytes that are also valid UTF-8 ("Ã©") are read as UTF-8: UTF-8 comes first
        data.decode("utf-8")
        ascii_only = data.isascii()
    except UnicodeDecodeError:
        ascii_only = False
    else:
        if not ascii_only:
            return
    with tempfile.TemporaryDirectory() as d:
        path = _write_csv(Path(d) / "t.csv", header, rows, encoding="latin-1", newline=newline)
        frame = tables.read_table(path)
    assert frame.to_numpy().tolist() == rows
    if ascii_only:
        assert "notes" not in frame.attrs
    else:
        assert frame.attrs["notes"] == ["t.csv is not UTF-8; read it as cp1252"]


@SETTINGS
@given(content=st.one_of(st.binary(max_size=60), st.text(CELL_CHARS, max_size=60).map(str.encode)),
       suffix=st.sampled_from([".csv", ".tsv", ".parquet"]))  # fmt: skip
@example(content=b"a;b\nxyz\n", suffix=".csv")  # sniffed; the short row is padded
def test_any_bytes_give_a_table_or_a_data_error(content, suffix):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"t{suffix}"
        path.write_bytes(content)
        for read in (tables.read_table, tables.read_header):
            try:
                read(path)
            except DataError as exc:
                assert "\n" not in str(exc) and "t" + suffix in str(exc)


@SETTINGS
@given(values=st.lists(st.floats(allow_nan=False, width=64), min_size=1, max_size=20))
@example(values=[1e16, 1e-5, 0.1 + 0.2, -0.0, 5e-324, float("inf")])
def test_numerical_cells_are_the_repr_of_each_float(values):
    table = tables.Table(pd.DataFrame({"v": [repr(v) for v in values]}), "t", Path())
    x, _ = tabular.feature_matrix(table, ["v"], {"v": "numerical"})
    assert x[:, 0].tolist() == [repr(float(v)) for v in values]


# ---------------------------------------------------------------------------------------------
# the same table from a CSV, a Parquet file and a DataFrame


FLOAT_CELLS = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.just(np.nan))
TEXT_CELLS = st.one_of(st.none(), st.text(CELL_CHARS, max_size=6),
                       st.sampled_from(["007", "1.50", "NA", " x "]))  # fmt: skip


@st.composite
def frames(draw) -> pd.DataFrame:
    n = draw(st.integers(4, 30))
    cols = {
        "i": draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n)),
        "f": draw(st.lists(FLOAT_CELLS, min_size=n, max_size=n)),
        "s": draw(st.lists(TEXT_CELLS, min_size=n, max_size=n)),
        "b": draw(st.lists(st.booleans(), min_size=n, max_size=n)),
        "y": draw(st.lists(st.sampled_from(["cat", "dog", "émeu"]), min_size=n, max_size=n)),
    }
    frame = pd.DataFrame(cols)
    frame["s"] = frame["s"].astype(object)
    return frame


@SETTINGS
@given(frame=frames())
@example(frame=pd.DataFrame({"i": [1, 2, 3, 4], "f": [0.1, np.nan, 1e16, 2.5],
                             "s": ["007", None, "", "x"], "b": [True, False, True, True],
                             "y": ["cat", "dog", "cat", "dog"]}))  # fmt: skip
@example(frame=pd.DataFrame({"i": [0] * 4, "f": [0.0] * 4, "s": ["\r", None, "a", "b"],
                             "b": [False] * 4, "y": ["cat", "dog"] * 2}))  # fmt: skip
def test_csv_parquet_and_frame_give_the_same_arrays(frame):
    if frame["y"].nunique() < 2:
        frame.loc[0, "y"], frame.loc[1, "y"] = "cat", "dog"
    with tempfile.TemporaryDirectory() as d:
        # CRLF: with LF lines, pandas' writer (the csv module's) leaves a lone CR unquoted.
        frame.to_csv(Path(d) / "t.csv", index=False, lineterminator="\r\n")
        tables.save_frame(frame, Path(d) / "t.parquet")
        got = [tabular.load_table(src, "y", seed=3)
               for src in (frame, Path(d) / "t.csv", Path(d) / "t.parquet")]  # fmt: skip
    for other in got[1:]:
        np.testing.assert_array_equal(other.x, got[0].x)
        np.testing.assert_array_equal(other.y, got[0].y)
        assert other.column_types == got[0].column_types
        assert other.class_names == got[0].class_names


# ---------------------------------------------------------------------------------------------
# CSV: explicit cases


def test_delimiters_are_sniffed_only_without_commas(tmp_path):
    (tmp_path / "semi.csv").write_text("a;b;y\n1,5;x;p\n2,5;y;q\n", encoding="utf-8")
    assert tables.read_table(tmp_path / "semi.csv").to_numpy().tolist() == [
        ["1,5", "x", "p"], ["2,5", "y", "q"]]  # fmt: skip
    (tmp_path / "t.tsv").write_text("a\tb\n1,2\t3\n", encoding="utf-8")
    assert tables.read_table(tmp_path / "t.tsv").to_numpy().tolist() == [["1,2", "3"]]
    (tmp_path / "one.csv").write_text("text\nhello; world\nbye\n", encoding="utf-8")
    assert tables.read_table(tmp_path / "one.csv")["text"].tolist() == ["hello; world", "bye"]


def test_cp1252_and_utf16_files(tmp_path):
    (tmp_path / "w.csv").write_bytes("price,y\n5 €,a\n6 €,b\n".encode("cp1252"))
    frame = tables.read_table(tmp_path / "w.csv")
    assert frame["price"].tolist() == ["5 €", "6 €"]
    assert frame.attrs["notes"] == ["w.csv is not UTF-8; read it as cp1252"]
    table = tabular.open_table(tmp_path / "w.csv")
    assert table.notes == frame.attrs["notes"]
    (tmp_path / "u.csv").write_bytes("名,y\n一,a\n".encode("utf-16"))
    assert tables.read_table(tmp_path / "u.csv").to_numpy().tolist() == [["一", "a"]]


def test_missing_values_and_numeric_looking_strings(tmp_path):
    path = tmp_path / "m.csv"
    rows = [[str(i), ["", "NA", "NaN", "null", "?", "None"][i % 6] if i % 2 else str(i * 1.5),
             f"{i % 2:03d}", "ab"[i % 2]] for i in range(60)]  # fmt: skip
    _write_csv(path, ["id", "num", "code", "y"], rows)
    data = tabular.load_table(path, "y", exclude=["id"])
    assert data.column_types == {"num": "numerical", "code": "categorical"}
    assert set(data.x[1::2, 0]) == {"nan"}  # every missing token
    assert set(data.x[:, 1]) == {"000", "001"}  # categorical: the text as written
    bad = tmp_path / "bad.csv"
    _write_csv(bad, ["x", "y"], [["1", "a"], ["2", "NA"], ["3", "b"]])
    with pytest.raises(DataError, match=r"target column 'y' of .*bad.csv has 1 missing values"):
        tabular.load_table(bad, "y")


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"", "is empty (no header row)"),
        (b"\n\n", "is empty (no header row)"),
        (b"\xef\xbb\xbf", "is empty (no header row)"),
        (b"a,b\n", "has a header but no rows"),
        (b"5.1,3.5,setosa\n4.9,3.0,setosa\n", None),  # one name is text: a header after all
        (b"5.1,3.5,1.4\n4.9,3.0,1.3\n", "the first row (5.1, 3.5, 1.4) looks like data"),
        (b"a,b,a\n1,2,3\n", "duplicate column name(s) 'a'; column names must be unique"),
        (b",a,y\n0,1,2\n", "column 1 has no name in the header row"),
        (b'a,y\n"open,1\n', "cannot be parsed: EOF inside string"),
        (b"a,y\n1,2,3\n", "line 2: 3 cells but the header has 2"),
        (b"PK\x03\x04\x00\x00binary", "is not text in a known encoding (it holds NUL bytes"),
    ],
)
def test_csv_problems_are_one_line_errors_naming_the_file(tmp_path, content, fragment):
    path = tmp_path / "f.csv"
    path.write_bytes(content)
    if fragment is None:
        assert tables.read_table(path).shape == (1, 3)
        return
    with pytest.raises(DataError) as err:
        tables.read_table(path)
    message = str(err.value)
    assert fragment in message and "f.csv" in message and "\n" not in message
    with pytest.raises(DataError, match=fragment.split("(")[0]):  # before any run directory
        tables.read_header(path)


def test_missing_file_and_column_messages(tmp_path):
    with pytest.raises(DataError, match=r"CSV file '.*none.csv' does not exist"):
        tables.read_table(tmp_path / "none.csv")
    with pytest.raises(DataError, match=r"Parquet file '.*none.parquet' does not exist"):
        tabular.load_table(tmp_path / "none.parquet", "y")
    path = _write_csv(tmp_path / "a.csv", ["p", "q"], [["1", "2"]])
    assert tables.read_header(path) == ["p", "q"]
    with pytest.raises(DataError, match=r"column 'y' is not in .*a.csv. Columns: p, q"):
        tabular.load_table(path, "y")


# ---------------------------------------------------------------------------------------------
# Parquet


def test_parquet_by_extension_with_dtypes(tmp_path):
    frame = pd.DataFrame({"n": [1.5, None, 3.0, 4.25] * 10, "c": pd.Categorical(["u", "v"] * 20),
                          "k": pd.array([1, None, 3, 4] * 10, dtype="Int64"),
                          "y": ["a", "b", "a", "b"] * 10})  # fmt: skip
    frame.index = range(100, 140)  # a saved index is not a column
    frame.to_parquet(tmp_path / "t.parquet")
    assert tables.read_header(tmp_path / "t.parquet") == ["n", "c", "k", "y"]
    data = tabular.load_table(tmp_path / "t.parquet", "y")
    assert data.source == str(tmp_path / "t.parquet")
    assert data.column_types == {"n": "numerical", "c": "categorical", "k": "numerical"}
    assert data.x[:4].tolist() == [["1.5", "u", "1.0"], ["nan", "v", "nan"],
                                   ["3.0", "u", "3.0"], ["4.25", "v", "4.0"]]  # fmt: skip
    forced = tabular.load_table(tmp_path / "t.parquet", "y", column_types={"k": "categorical"})
    assert forced.x[:4, 2].tolist() == ["1", "", "3", "4"]  # categorical: the text as is
    assert data.class_names == ["a", "b"] and data.y[:4].tolist() == [0, 1, 0, 1]
    need = tabular.estimate_table_bytes(tmp_path / "t.parquet")
    assert 0 < tabular.estimate_table_bytes(tmp_path / "t.parquet", max_samples=4) < need


def test_parquet_problems(tmp_path):
    (tmp_path / "e.parquet").write_bytes(b"")
    with pytest.raises(DataError, match=r"Parquet file '.*e.parquet' is empty"):
        tables.read_table(tmp_path / "e.parquet")
    (tmp_path / "x.parquet").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match=r"Parquet file '.*x.parquet' cannot be read: "):
        tables.read_table(tmp_path / "x.parquet")
    with pytest.raises(DataError, match=r"x.parquet' cannot be read"):
        tables.read_header(tmp_path / "x.parquet")
    pd.DataFrame({"a": [], "y": []}).to_parquet(tmp_path / "z.parquet")
    with pytest.raises(DataError, match="has a header but no rows"):
        tables.read_table(tmp_path / "z.parquet")


def test_text_from_parquet_and_frame(tmp_path):
    frame = pd.DataFrame({"body": ["good film", None, "bad, bad", "fine"] * 3,
                          "label": ["pos", "neg", "neg", "pos"] * 3})  # fmt: skip
    frame.to_parquet(tmp_path / "r.parquet")
    for src in (tmp_path / "r.parquet", frame):
        data = text.load_text_csv(src, "body", "label")
        assert data.texts[:3].tolist() == ["good film", "", "bad, bad"]
        assert data.class_names == ["neg", "pos"] and data.texts.dtype.kind == "U"


# ---------------------------------------------------------------------------------------------
# a DataFrame through the Python API


def test_frame_loads_like_its_csv(tmp_path):
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True).frame
    iris["target"] = iris["target"].map(dict(enumerate(["setosa", "versicolor", "virginica"])))
    data = tabular.load_table(iris, "target", max_samples=30, seed=1)
    iris.to_csv(tmp_path / "iris.csv", index=False)
    from_csv = tabular.load_table(tmp_path / "iris.csv", "target", max_samples=30, seed=1)
    np.testing.assert_array_equal(data.x, from_csv.x)
    np.testing.assert_array_equal(data.y, from_csv.y)
    assert re.fullmatch(r"<DataFrame 150x5 sha256:[0-9a-f]{12}>", data.source)
    assert tabular.load_table(iris, "target").source == data.source  # content, not identity


def test_frame_problems():
    with pytest.raises(DataError, match=r"<DataFrame 0x2> has no rows"):
        tabular.load_table(pd.DataFrame({"a": [], "y": []}), "y")
    dup = pd.DataFrame([[1, 2, 3]], columns=["a", "a", "y"])
    with pytest.raises(DataError, match=r"<DataFrame 1x3>: duplicate column name\(s\) 'a'"):
        tabular.load_table(dup, "y")
    with pytest.raises(DataError, match=r"the first row \(0, 1\) looks like data"):
        tables.read_header(pd.DataFrame([[1, 2]]))
    with pytest.raises(DataError, match=r"column 'nope' is not in <DataFrame 2x2 sha256:"):
        tabular.load_table(pd.DataFrame({"a": [1, 2], "y": ["p", "q"]}), "nope")


def test_save_frame_keeps_what_the_search_reads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    frame = pd.DataFrame({"mixed": [1, "two", 3.5, None], "img": ["a.png", "b.png"] * 2,
                          "y": ["p", "q", "p", "q"]})  # fmt: skip
    path = tables.save_frame(frame, tmp_path / "run" / tables.FRAME_FILE)
    assert path.is_file() and not (tmp_path / "run" / "data.parquet.tmp").exists()
    back = tabular.open_table(path)
    assert back.cells.equals(tabular.open_table(frame).cells)
    assert back.base_dir == tmp_path  # relative paths still start where they did
    tables.save_frame(frame.iloc[:2], path)  # a resumed run keeps its file
    assert len(tables.read_table(path)) == 4


def test_config_with_a_frame_serialises_and_the_plan_names_the_runs_copy(tmp_path, monkeypatch):
    from automl_app.engines.autokeras import engine as ak

    monkeypatch.chdir(tmp_path)
    frame = pd.DataFrame({"a": np.arange(40) * 0.5, "y": ["p", "q"] * 20})
    quick = TunerConfig(tuner="greedy", max_trials=1)
    cfg = SearchConfig(data=DataConfig(csv=frame, target="y"), engine="autokeras",
                       task="structured", tuner=quick)  # fmt: skip
    assert json.loads(json.dumps(cfg.to_dict()))["data"]["csv"] == "<DataFrame 40x2>"
    assert cfg.resolved_run_dir().name.startswith("dataframe-autokeras-")
    plan = ak.plan_structured(cfg)
    run_dir = Path(plan.cfg.run_dir)
    assert plan.cfg.data.csv == str(run_dir / "data.parquet")
    assert not run_dir.exists()  # nothing written before the run opens
    saved = json.loads(json.dumps(plan.cfg.to_dict()))  # what run.json holds
    assert plan.fields["autokeras"]["source"]["csv"] == saved["data"]["csv"]
    # The body keeps the frame where run.json says; reading that file later (--resume, a later
    # command) gives the arrays the search trained on, so the data fingerprints match.
    ak._keep_frame(frame, plan.cfg)
    later = search_config_from_dict(saved)
    again = tabular.load_table(later.data.csv, "y")
    first = tabular.load_table(frame, "y")
    np.testing.assert_array_equal(again.x, first.x)
    np.testing.assert_array_equal(again.y, first.y)
    with pytest.raises(DataError, match=r"column 'z' is not in <DataFrame 40x2>"):
        ak.plan_structured(SearchConfig(data=DataConfig(csv=frame, target="z"),
                                        engine="autokeras", task="structured",
                                        tuner=TunerConfig(tuner="greedy")))  # fmt: skip


def test_multi_inputs_from_csv_frame_and_the_runs_parquet(tmp_path, monkeypatch):
    from PIL import Image

    from automl_app.engines.autokeras import io as akio

    monkeypatch.chdir(tmp_path)
    (tmp_path / "img").mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(f"img/{i}.png")
    frame = pd.DataFrame({"picture": [f"img/{i}.png" for i in range(12)],
                          "note": ["short, text", None] * 6, "size": rng.normal(size=12),
                          "kind": ["cat", "dog"] * 6})  # fmt: skip
    frame.to_csv(tmp_path / "items.csv", index=False)
    (tmp_path / "spec.yaml").write_text(
        "inputs:\n  - {type: image, column: picture, channels: 1}\n"
        "  - {type: text, column: note}\n  - {type: structured, columns: [size]}\n"
        "outputs:\n  - {type: classification, column: kind}\ncsv: items.csv\n"
    )
    spec = akio.load_spec(tmp_path / "spec.yaml")
    (tmp_path / "run").mkdir()
    tables.save_frame(frame, tmp_path / "run" / "data.parquet")
    monkeypatch.chdir(tmp_path / "run")  # a later command elsewhere: paths still resolve
    loads = [akio.load_multi_csv(spec, src, max_samples=10, seed=2)
             for src in (None, tmp_path / "run" / "data.parquet")]  # fmt: skip
    monkeypatch.chdir(tmp_path)
    loads.append(akio.load_multi_csv(spec, frame, max_samples=10, seed=2))
    for data in loads:
        assert data.inputs["picture"].shape == (10, 8, 8, 1)
        assert data.class_names == {"kind": ["cat", "dog"]}
        assert list(data.column_types.values()) == [{"size": "numerical"}]
        for key in data.inputs:
            np.testing.assert_array_equal(data.inputs[key], loads[0].inputs[key])
        np.testing.assert_array_equal(data.targets["kind"], loads[0].targets["kind"])
    assert set(loads[0].inputs["note"]) == {"short, text", ""}


@pytest.mark.slow
def test_frame_search_keeps_its_table_and_a_later_command_reads_it(tmp_path, monkeypatch):
    """workflows.search with DataConfig(csv=DataFrame); then --resume from the file run.json
    names, as any later command would (~80 s: one AutoKeras trial of one epoch)."""
    from click.testing import CliRunner
    from sklearn.datasets import load_iris

    from automl_app import workflows
    from automl_app.cli.search import search_structured

    monkeypatch.chdir(tmp_path)
    iris = load_iris(as_frame=True).frame
    iris["target"] = iris["target"].map(dict(enumerate(["setosa", "versicolor", "virginica"])))
    run = tmp_path / "run"
    quick = TunerConfig(tuner="greedy", max_trials=1, epochs=1, seed=1)
    data = DataConfig(csv=iris, target="target", seed=1)  # the CLI's --seed sets both seeds
    cfg = SearchConfig(data=data, engine="autokeras", task="structured", tuner=quick,
                       run_dir=str(run))  # fmt: skip
    lines: list[str] = []
    manifest = workflows.search(cfg, say=lines.append)
    assert manifest["status"] == "completed"
    assert any(ln.startswith("data: <DataFrame 150x5") and "(DataFrame)" in ln for ln in lines)
    assert manifest["config"]["data"]["csv"] == str(run / "data.parquet")
    assert re.fullmatch(r"<DataFrame 150x5 sha256:[0-9a-f]{12}>", manifest["data"]["source"])
    assert len(tables.read_table(run / "data.parquet")) == 150
    args = ["--csv", str(run / "data.parquet"), "--target", "target", "--run-dir", str(run),
            "--max-trials", "1", "--epochs", "1", "--seed", "1", "--resume"]  # fmt: skip
    res = CliRunner().invoke(search_structured, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output  # same fingerprints: the Parquet copy is the frame
    assert "(Parquet) train=" in res.output
    assert json.loads((run / "run.json").read_text())["resumed"] == 1


def test_kind_word_names_the_table_format():
    assert tables.kind_word("a.csv") == "CSV" and tables.kind_word("b.PARQUET") == "Parquet"
    assert tables.kind_word(pd.DataFrame({"a": [1]})) == "DataFrame"
