"""`automl predict`: a run's exported SavedModel on new files, what a server would run.

The model is the `serve` endpoint of RUN/best/saved_model (or of a `selected/` or `export/`
folder, or a SavedModel itself), found the way `automl evaluate` finds it
(evaluate_run._saved_model_and_manifest). Images are decoded with the training decoder
(data.stages.decode) after the scan's header check (data.scan), so a file predict skips is named
with the scan's words; tables are read with the search's own column rules (data.tabular). Rows
stream out in input order, one batch at a time, so memory does not grow with the input.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from automl_app import runs
from automl_app.analysis.evaluate_run import _as_serve_channels, _float, _saved_model_and_manifest
from automl_app.errors import DataError, UsageError

Say = Callable[[str], None]
Progress = Callable[[int, int], None]  # (inputs done, inputs in all)
FORMATS = ("csv", "jsonl")
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
DEFAULT_BATCH_SIZE = 64
DECODE_WORKERS = max(1, min(4, (os.cpu_count() or 2) // 2))  # threads decoding ahead of serve


@dataclass
class Predictor:
    """A loaded `serve` and what it takes: kind 'image', 'structured' or 'text'.

    fixed: the one (height, width, channels) a fixed-size image serve takes (named datasets),
    None when it takes any size (it resizes inside). columns: the serve's input name → the
    table column feeding it (structured); text_column: the text run's column.
    """

    saved_model: Path
    serve: Any
    kind: str
    labels: list[str] | None
    manifest: dict[str, Any] | None
    card: dict[str, Any] = field(default_factory=dict)
    fixed: tuple[int, int, int] | None = None
    columns: dict[str, str] = field(default_factory=dict)
    column_types: dict[str, str] = field(default_factory=dict)
    text_column: str | None = None
    target: str | None = None
    loaded: Any = None  # the SavedModel object: `serve` needs it alive


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- finding the model


def resolve(run: str | os.PathLike) -> tuple[Path, dict | None, list[str] | None, dict]:
    """(SavedModel dir, run manifest or None, labels or None, model card or {}) for a run dir, a
    folder holding saved_model/ (selected/, export/) or a SavedModel dir. No TensorFlow."""
    src = Path(run)
    if not src.exists():
        raise UsageError(f"RUN {str(src)!r} does not exist")
    if not (src / runs.MANIFEST).is_file() and (src / "saved_model" / "saved_model.pb").is_file():
        src = src / "saved_model"  # selected/ or export/: labels.json beside it, run.json above
    sm, manifest, labels = _saved_model_and_manifest(src)
    card_path = sm.parent / "model_card.json"
    if not card_path.is_file():  # export/: saved_model.model_card.json beside saved_model/
        card_path = sm.parent / f"{sm.name}.model_card.json"
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    return sm, manifest, labels, card


def _kind_from_files(manifest: dict | None, card: dict) -> str | None:
    """'image', 'structured', 'text' from run.json / the model card, None when they do not say."""
    command = (manifest or {}).get("command")
    if command == "search multi":
        raise UsageError(
            "predict does not apply to a 'search multi' run (several named inputs and heads); "
            "call its SavedModel's `serve` with a dict of inputs"
        )
    if command == "search structured":
        return "structured"
    if command == "search text":
        return "text"
    if (manifest or {}).get("data", {}).get("image_shape") or card.get("image_shape"):
        return "image"
    types = [i.get("type") for i in card.get("inputs") or []]
    if types in (["structured"], ["text"], ["image"]):
        return types[0]
    return None


def load(run: str | os.PathLike) -> Predictor:
    """The Predictor of a run (any kind), a selected/ or export/ folder, or a SavedModel."""
    from automl_app.tf_env import tf

    sm, manifest, labels, card = resolve(run)
    kind = _kind_from_files(manifest, card)
    t = tf()
    loaded = t.saved_model.load(str(sm))
    if not hasattr(loaded, "serve"):
        raise UsageError(f"{sm} has no `serve` endpoint (not exported by automl)")
    args, kwargs = loaded.serve.concrete_functions[0].structured_input_signature
    spec = args[0] if args else kwargs
    if kind is None:
        kind = "structured" if isinstance(spec, dict) else "image"
        if not isinstance(spec, dict) and spec.dtype == t.string:
            kind = "text"
    p = Predictor(sm, loaded.serve, kind, labels, manifest, card, loaded=loaded)
    mdata = (manifest or {}).get("data") or {}
    mcfg = ((manifest or {}).get("config") or {}).get("data") or {}
    p.target = mdata.get("target") or mcfg.get("target") or card.get("target")
    if kind == "image":
        p.fixed = _fixed_size(spec, card, mdata)
    elif kind == "structured":
        inputs = next((i for i in card.get("inputs") or [] if i.get("type") == "structured"), {})
        names = list(inputs.get("columns") or [])
        p.column_types = dict(inputs.get("column_types") or mdata.get("column_types") or {})
        by_name = {_sanitize(c): c for c in names}
        order = {c: i for i, c in enumerate(names)}  # the table's order, not the signature's
        found = {n: by_name.get(n, by_name.get(n[2:], n)) for n in spec}
        p.columns = dict(sorted(found.items(), key=lambda kv: order.get(kv[1], len(order))))
    else:
        p.text_column = mdata.get("text_column") or mcfg.get("text_column")
    return p


def _fixed_size(spec: Any, card: dict, mdata: dict) -> tuple[int, int, int] | None:
    """The one image size a serve takes, or None when it resizes inside (its H, W are free)."""
    shape = spec.shape
    if shape.rank == 4 and shape[1] is None and shape[2] is None:
        return None
    pre = card.get("preprocessing") or {}
    if "height" in pre:
        return int(pre["height"]), int(pre["width"]), int(pre.get("channels", 1))
    if shape.rank == 4 and None not in shape[1:]:
        return int(shape[1]), int(shape[2]), int(shape[3])
    if mdata.get("image_shape"):
        h, w, c = mdata["image_shape"]
        return int(h), int(w), int(c)
    return None


def _sanitize(column: str) -> str:
    """A column's name as the export names its input (evaluate_run._predict_rows' rule)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", str(column)).strip("_") or "input"


# ----------------------------------------------------------------------------------- inputs


def _is_table_name(path: Path) -> bool:
    return path.suffix.lower() in TABLE_SUFFIXES


def image_files(inputs: Sequence[str | os.PathLike]) -> list[str]:
    """Files given, and every non-hidden file below each folder given (recursive, sorted)."""
    from automl_app.data import scan

    files: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files.extend(scan.list_all_files(path))
        elif path.is_file():
            if _is_table_name(path):
                raise UsageError(
                    f"INPUT {str(path)!r} is a table; this is an image run: pass image files or "
                    "folders of images"
                )
            files.append(str(path))
        else:
            raise UsageError(f"INPUT {str(path)!r} does not exist")
    if not files:
        raise UsageError(f"no files found in {', '.join(repr(str(i)) for i in inputs)}")
    return files


def table_file(inputs: Sequence[str | os.PathLike], kind: str) -> Path:
    """The one CSV/Parquet file a structured or text run reads."""
    paths = [Path(i) for i in inputs]
    if len(paths) != 1 or paths[0].is_dir() or not _is_table_name(paths[0]):
        got = ", ".join(repr(str(p)) for p in paths)
        raise UsageError(
            f"this is a {kind} run: INPUT must be one CSV or Parquet file. Received: {got}"
        )
    if not paths[0].is_file():
        raise UsageError(f"INPUT {str(paths[0])!r} does not exist")
    return paths[0]


# ----------------------------------------------------------------------------------- images


Header = tuple[Any, Any, Any, Any]  # scan._header's (format, width, height, reason)


def decode_file(
    path: str, header: Header | None = None, channels: int = 3
) -> tuple[np.ndarray | None, str | None]:
    """(uint8 [H,W,channels], None) or (None, the scan's reason): the scan's header check (it
    rejects decompression bombs and animated WebP before TensorFlow sees them; `header` when
    check_sizes already made it), then the training decoder."""
    from automl_app.data import scan, stages
    from automl_app.tf_env import tf

    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return None, f"unreadable ({exc.strerror or exc})"
    if not data:
        return None, "empty"
    fmt, _, _, reason = header or scan._header(data, scan.DEFAULT_MAX_PIXELS)
    if reason:
        return None, reason
    try:
        return _to_channels(stages.decode(tf().constant(data)).numpy(), channels), None
    except Exception as exc:  # tf.errors.InvalidArgumentError and friends
        detail = scan._clean_tf_message(str(getattr(exc, "message", exc)))
        return None, scan.decoder_reason(detail, data, fmt)


def _to_channels(img: np.ndarray, channels: int) -> np.ndarray:
    """RGB → the model's channels: grayscale by ITU-R 601 luma (exact for gray files)."""
    if channels == 3:
        return img
    if (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all():
        return img[..., :1]
    gray = img.astype(np.float32) @ np.asarray([0.299, 0.587, 0.114], np.float32)
    return np.clip(np.rint(gray), 0, 255).astype(np.uint8)[..., None]


def check_sizes(files: Sequence[str], fixed: tuple[int, int, int]) -> dict[str, Header]:
    """A fixed-size model refuses other sizes up front (its serve reshapes, never resizes):
    a UsageError naming the first file of another size and the size expected. Returns the
    scan's header of each file that has one, so decode_file does not read it again."""
    from automl_app.data import scan

    h, w, c = fixed
    headers: dict[str, Header] = {}
    for path in files:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError:  # decode_file names it later
            continue
        if not data:
            continue
        headers[path] = fmt, width, height, reason = scan._header(data, scan.DEFAULT_MAX_PIXELS)
        if reason or fmt is None:  # decode_file names it later, with the scan's reason
            continue
        if (height, width) != (h, w):
            raise UsageError(
                f"{path!r} is {width}x{height}; this model takes {w}x{h} images "
                f"({'grayscale' if c == 1 else 'RGB'}, uint8 0..255) and does not resize: "
                f"resize them to {w}x{h} first"
            )
    return headers


def predict_images(
    p: Predictor,
    files: Sequence[str],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    skipped: Say = _stderr,
    progress: Progress | None = None,
) -> Iterator[tuple[str, np.ndarray]]:
    """(path, outputs) for every file that decodes, in order; the others go to `skipped` as
    `skipped: PATH: reason`. Same-size images share one `serve` call."""
    from automl_app.data import images, stages
    from automl_app.tf_env import tf

    t = tf()
    headers = check_sizes(files, p.fixed) if p.fixed is not None else {}
    channels = p.fixed[2] if p.fixed is not None else 3

    def load(path: str) -> tuple[np.ndarray | None, str | None]:
        return decode_file(path, headers.get(path), channels)

    chunks = [files[i : i + batch_size] for i in range(0, len(files), batch_size)]
    done = 0
    with ThreadPoolExecutor(max_workers=DECODE_WORKERS) as pool:
        pending = [pool.submit(load, f) for f in chunks[0]] if chunks else []
        for k, chunk in enumerate(chunks):
            # Chunk k+1 decodes while chunk k is served; both inside the decoder-noise filter,
            # which is left (and every decode finished) before lines go to stderr or rows out.
            with stages.quiet_decoder_warnings():
                decoded = [f.result() for f in pending]
                nxt = chunks[k + 1] if k + 1 < len(chunks) else []
                pending = [pool.submit(load, f) for f in nxt]
                outs = _serve_chunk(p, t, decoded)
                for f in pending:
                    f.exception()  # wait, without raising: decode_file returns its failures
            for path, (img, reason) in zip(chunk, decoded, strict=True):
                if img is None:
                    for line in images.skipped_lines([(path, reason)]):
                        skipped(line)
            for i in sorted(outs):
                yield chunk[i], outs[i]
            done += len(chunk)
            if progress is not None:
                progress(done, len(files))


def _serve_chunk(p: Predictor, t: Any, decoded: list) -> dict[int, np.ndarray]:
    """Outputs by position for the decoded images of one chunk; same-size images share a call."""
    groups: dict[tuple, list[int]] = {}
    for i, (img, _) in enumerate(decoded):
        if img is None:
            continue
        groups.setdefault(img.shape, []).append(i)
    outs: dict[int, np.ndarray] = {}
    for idx in groups.values():
        x = np.stack([decoded[i][0] for i in idx])
        x = _as_serve_channels(p.serve, x) if p.fixed is None else x
        outs.update(zip(idx, np.asarray(p.serve(t.constant(x))), strict=True))
    return outs


# ----------------------------------------------------------------------------------- tables


def predict_table(
    p: Predictor,
    path: str | os.PathLike,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    note: Say = _stderr,
    progress: Progress | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """(row number, 1 = the first data row; outputs) for every row of a CSV/Parquet file, read
    with the search's column rules; the target and other unused columns are ignored (one line
    to `note`), a missing input column is a UsageError naming it."""
    from automl_app.data import tabular
    from automl_app.tf_env import tf

    t = tf()
    table = tabular.open_table(str(path))
    if p.kind == "text":
        if not p.text_column:
            raise UsageError(f"{p.saved_model} records no text column (run.json is missing)")
        needed = [p.text_column]
    else:
        needed = list(dict.fromkeys(p.columns.values()))
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise UsageError(
            f"{str(path)!r} lacks the column(s) {', '.join(missing)} the model reads. "
            f"Columns: {', '.join(table.columns)}"
        )
    extra = [c for c in table.columns if c not in needed]
    if extra:
        what = [f"{c} (the target)" if c == p.target else c for c in extra]
        note(f"ignored columns (the model does not read them): {', '.join(what)}")
    if p.kind == "text":
        x = table.text(p.text_column)[:, None]
    else:
        types = {c: p.column_types[c] for c in needed if c in p.column_types}
        x, _ = tabular.feature_matrix(table, needed, types)
    n = len(table)
    if not n:
        raise UsageError(f"{str(path)!r} has no rows")
    specs = {} if p.kind == "text" else p.serve.concrete_functions[0].structured_input_signature
    if specs:
        args, kwargs = specs
        specs = args[0] if args else kwargs
    for start in range(0, n, batch_size):
        chunk = x[start : start + batch_size]
        if p.kind == "text":
            probs = np.asarray(p.serve(t.constant(chunk[:, 0].astype(str))))
        else:
            feed = {}
            for name, spec in specs.items():
                cells = chunk[:, needed.index(p.columns[name])]
                if spec.dtype == t.string:
                    feed[name] = t.constant(cells.astype(str))
                else:
                    values = np.asarray([_float(v) for v in cells], np.float32)
                    feed[name] = t.constant(values, dtype=spec.dtype)
            probs = np.asarray(p.serve(feed))
        for j, row in enumerate(probs):
            yield start + j + 1, row
        if progress is not None:
            progress(min(start + batch_size, n), n)


# ----------------------------------------------------------------------------------- output


def _columns(labels: Sequence[str] | None, width: int, top_k: int) -> list[str]:
    if labels is None:
        return ["input", "prediction"] if width == 1 else ["input", "label", "probability"]
    fixed = {"input", "label", "probability"}
    cols = ["input", "label", "probability"]
    cols += [f"p_{c}" if c in fixed else str(c) for c in labels]
    for k in range(1, top_k + 1):
        cols += [f"top{k}_label", f"top{k}_probability"]
    return cols


class RowWriter:
    """CSV (header first) or JSON Lines rows: input, label, its probability, one column per
    class, then top-k label/probability pairs."""

    def __init__(self, fh: IO[str], fmt: str, labels: Sequence[str] | None, top_k: int) -> None:
        self.fh, self.fmt, self.labels, self.top_k = fh, fmt, list(labels or []) or None, top_k
        self._csv = csv.writer(fh, lineterminator="\n") if fmt == "csv" else None
        self._header = False
        self.rows = 0

    def write(self, key: str | int, out: np.ndarray) -> None:
        out = np.asarray(out, dtype=np.float64).reshape(-1)
        names = self.labels or [str(i) for i in range(len(out))]
        if self._csv is not None and not self._header:
            self._csv.writerow(_columns(self.labels, len(out), self.top_k))
            self._header = True
        self.rows += 1
        if len(out) == 1 and (self.labels is None or len(self.labels) != 1):
            value = float(out[0])
            if self._csv is not None:
                self._csv.writerow([key, f"{value:.6g}"])
            else:
                self.fh.write(json.dumps({"input": key, "prediction": value}) + "\n")
            return
        if self.labels is not None and len(self.labels) != len(out):
            raise DataError(
                f"labels.json names {len(self.labels)} classes but the model returns {len(out)} "
                "values; the export's files do not belong together"
            )
        best = int(np.argmax(out))
        order = np.argsort(-out, kind="stable")[: self.top_k]
        if self._csv is not None:
            row = [key, names[best], f"{out[best]:.6f}"]
            if self.labels is not None:
                row += [f"{v:.6f}" for v in out]
            for i in order:
                row += [names[i], f"{out[i]:.6f}"]
            self._csv.writerow(row)
            return
        record: dict[str, Any] = {"input": key, "label": names[best],
                                  "probability": round(float(out[best]), 6)}  # fmt: skip
        if self.labels is not None:
            record["probabilities"] = {
                n: round(float(v), 6) for n, v in zip(names, out, strict=True)
            }
        if self.top_k:
            record["top_k"] = [[names[i], round(float(out[i]), 6)] for i in order]
        self.fh.write(json.dumps(record) + "\n")


# ----------------------------------------------------------------------------------- the flow


def check_options(fmt: str, top_k: int, batch_size: int) -> None:
    """The options' values, before anything loads."""
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}. Received: {fmt!r}")
    if top_k < 0:
        raise UsageError(f"--top-k must be 0 or more. Received: {top_k}")
    if batch_size < 1:
        raise UsageError(f"--batch-size must be 1 or more. Received: {batch_size}")


def predict(
    run: str | os.PathLike,
    inputs: Sequence[str | os.PathLike],
    *,
    out: str | os.PathLike | IO[str] | None = None,
    fmt: str = "csv",
    top_k: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    note: Say = _stderr,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Predict every input with RUN's SavedModel; rows go to `out` (a path, an open text file, or
    None: stdout). Skipped files and ignored columns go to `note`, one line each. Returns
    {"saved_model", "kind", "rows", "skipped", "out"}."""
    check_options(fmt, top_k, batch_size)
    if not inputs:
        raise UsageError("give at least one INPUT (image files or folders, or a CSV/Parquet file)")
    sm, manifest, labels, card = resolve(run)
    kind = _kind_from_files(manifest, card)
    if labels is not None and top_k > len(labels):
        raise UsageError(f"--top-k must be at most {len(labels)} (the classes). Received: {top_k}")
    # Inputs are checked before TensorFlow loads the model, when run.json says the kind.
    files = image_files(inputs) if kind == "image" else None
    table = table_file(inputs, kind) if kind in ("structured", "text") else None
    p = load(run)
    if files is None and table is None:
        files = image_files(inputs) if p.kind == "image" else None
        table = table_file(inputs, p.kind) if p.kind != "image" else None
    skipped: list[str] = []

    def skip(line: str) -> None:
        skipped.append(line)
        note(line)

    if files is not None:
        rows: Iterable[tuple[Any, np.ndarray]] = predict_images(
            p, files, batch_size=batch_size, skipped=skip, progress=progress
        )
    else:
        rows = predict_table(p, table, batch_size=batch_size, note=note, progress=progress)
    target = out if out is not None else sys.stdout
    opened = isinstance(target, (str, os.PathLike))
    fh: IO[str] = open(target, "w", newline="") if opened else target  # noqa: SIM115
    try:
        writer = RowWriter(fh, fmt, labels, top_k)
        for key, probs in rows:
            if top_k and labels is None and len(probs) == 1:
                raise UsageError("--top-k applies to classifiers; this model returns one value")
            writer.write(key, probs)
        fh.flush()
    finally:
        if opened:
            fh.close()
    if files is not None and writer.rows == 0:
        raise UsageError(f"none of the {len(files)} input files is an image the model can read")
    return {
        "saved_model": str(sm),
        "kind": p.kind,
        "rows": writer.rows,
        "skipped": len(skipped),
        "out": str(out) if opened else None,
    }


def read_rows(text: str) -> list[dict[str, str]]:
    """predict's CSV output as dicts (for tests and scripts)."""
    return list(csv.DictReader(io.StringIO(text)))


__all__ = [
    "FORMATS",
    "Predictor",
    "RowWriter",
    "check_options",
    "decode_file",
    "image_files",
    "load",
    "predict",
    "predict_images",
    "predict_table",
    "read_rows",
    "resolve",
    "table_file",
]
