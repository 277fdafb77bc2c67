"""AutoKeras's IO API (ak.AutoModel): a YAML spec of inputs (image/text/structured columns)
and outputs over one CSV → a multi-input, multi-output search.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from automl_app.engines.autokeras.constants import BLOCKS, INPUT_TYPES, TASKS
from automl_app.engines.autokeras.core import (
    DEFAULT_OPTIONS,
    AutoKerasResult,
    SearchOptions,
    _check_choice,
    _check_classes,
    _classes,
    _configure_image_blocks,
    _finish,
    _fit,
    _take,
    check_image_memory,
    has_gpu,
    image_block_note,
    image_initial_hps,
    tuner_factory,
)
from automl_app.engines.autokeras.tasks import _as_table, _as_text
from automl_app.errors import ConfigError, DataError, UsageError

Say = Callable[[str], None]


@dataclass(frozen=True)
class InputSpec:
    name: str
    type: str  # image | text | structured
    column: str | None = None  # image (file paths) and text
    columns: tuple[str, ...] = ()  # structured
    column_types: Mapping[str, str] = field(default_factory=dict)
    size: tuple[int, int] | None = None  # image: resize to (H, W)
    channels: int = 1  # image: 1 (grayscale) or 3 (RGB)


@dataclass(frozen=True)
class HeadSpec:
    name: str
    type: str  # classification | regression
    column: str


@dataclass(frozen=True)
class MultiSpec:
    inputs: tuple[InputSpec, ...]
    heads: tuple[HeadSpec, ...]
    source: str = "<spec>"
    csv: str | None = None


_NAME_RE = re.compile(r"[^A-Za-z0-9_]")


def safe_name(name: str) -> str:
    """A column name as a Keras/TensorFlow input name ([A-Za-z0-9_], not starting with _)."""
    out = _NAME_RE.sub("_", str(name)).strip("_") or "input"
    return out if out[0].isalpha() else f"c_{out}"


def load_spec(spec: str | Path | Mapping[str, Any]) -> MultiSpec:
    """Read and validate the `automl search multi --spec FILE` YAML (errors name file and key).

    inputs:
      - {type: image, column: image_path, size: [16, 16], channels: 1}
      - {type: text, column: review}
      - {type: structured, columns: [age, income], column_types: {age: numerical}}
    outputs:
      - {type: classification, column: label}
      - {type: regression, column: price}
    csv: data.csv   # optional; --csv overrides; relative to the spec file
    """
    source = "<spec>"
    base = Path(".")
    if not isinstance(spec, Mapping):
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(f"spec file {str(path)!r} does not exist")
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        source, base = str(path), path.parent
        spec = data
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{source}: the spec must be a mapping with 'inputs' and 'outputs'")
    unknown = set(spec) - {"inputs", "outputs", "csv"}
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(sorted(unknown))}; allowed: inputs, outputs, csv"
        )
    ins, outs = spec.get("inputs"), spec.get("outputs")
    if not isinstance(ins, list) or not ins:
        raise ConfigError(f"{source}: 'inputs' must be a non-empty list")
    if not isinstance(outs, list) or not outs:
        raise ConfigError(f"{source}: 'outputs' must be a non-empty list")
    inputs = tuple(_input_spec(i, item, source) for i, item in enumerate(ins))
    heads = tuple(_head_spec(i, item, source) for i, item in enumerate(outs))
    names = [s.name for s in inputs] + [h.name for h in heads]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"{source}: names must be unique; repeated: {', '.join(dup)}")
    csv = spec.get("csv")
    if csv is not None:
        csv = str(base / str(csv)) if not Path(str(csv)).is_absolute() else str(csv)
    return MultiSpec(inputs=inputs, heads=heads, source=source, csv=csv)


def _input_spec(i: int, item: Any, source: str) -> InputSpec:
    where = f"{source}: inputs[{i}]"
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where} must be a mapping with 'type'")
    allowed = {"type", "name", "column", "columns", "column_types", "size", "channels"}
    unknown = set(item) - allowed
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; allowed: "
            f"{', '.join(sorted(allowed))}"
        )
    kind = item.get("type")
    if kind not in INPUT_TYPES:
        raise ConfigError(
            f"{where}.type must be one of {', '.join(INPUT_TYPES)}. Received: type={kind!r}"
        )
    if kind == "structured":
        cols = item.get("columns")
        if not isinstance(cols, list) or not cols:
            raise ConfigError(f"{where}.columns must be a non-empty list of column names")
        ctypes = item.get("column_types") or {}
        for k, v in ctypes.items():
            if v not in ("numerical", "categorical") or k not in cols:
                raise ConfigError(
                    f"{where}.column_types: each entry must name a listed column and be "
                    f"numerical or categorical. Received: {k}={v!r}"
                )
        name = item.get("name") or "structured"
        return InputSpec(name=safe_name(name), type=kind, columns=tuple(map(str, cols)),
                         column_types=dict(ctypes))  # fmt: skip
    col = item.get("column")
    if not isinstance(col, str) or not col:
        raise ConfigError(f"{where}.column must name the CSV column that holds the {kind}")
    size = item.get("size")
    if size is not None:
        if not (isinstance(size, list) and len(size) == 2 and all(
            isinstance(s, int) and s > 0 for s in size)):  # fmt: skip
            raise ConfigError(f"{where}.size must be [height, width]. Received: {size!r}")
        size = (int(size[0]), int(size[1]))
    channels = item.get("channels", 1)
    if channels not in (1, 3):
        raise ConfigError(f"{where}.channels must be 1 or 3. Received: {channels!r}")
    return InputSpec(name=safe_name(item.get("name") or col), type=kind, column=col, size=size,
                     channels=channels)  # fmt: skip


def _head_spec(i: int, item: Any, source: str) -> HeadSpec:
    where = f"{source}: outputs[{i}]"
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where} must be a mapping with 'type' and 'column'")
    unknown = set(item) - {"type", "name", "column"}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
                          "allowed: column, name, type")  # fmt: skip
    kind = item.get("type")
    if kind not in TASKS:
        raise ConfigError(
            f"{where}.type must be one of {', '.join(TASKS)}. Received: type={kind!r}"
        )
    col = item.get("column")
    if not isinstance(col, str) or not col:
        raise ConfigError(f"{where}.column must name the target column")
    return HeadSpec(name=safe_name(item.get("name") or col), type=kind, column=col)


@dataclass
class MultiData:
    """Materialised inputs and targets for search_multi, keyed by spec names."""

    inputs: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]
    class_names: dict[str, list[str]]
    column_types: dict[str, dict[str, str]]


def load_multi_csv(
    spec: MultiSpec,
    csv_path: Any = None,
    *,
    max_samples: int | None = None,
    seed: int = 0,
) -> MultiData:
    """Read the spec's columns from a table (a CSV or Parquet path, or a pandas DataFrame): image
    paths (relative to the file's folder, or to the current directory for a DataFrame) become
    uint8 arrays."""
    from automl_app.data import tabular

    if csv_path is None:
        csv_path = spec.csv
    if csv_path is None:
        raise UsageError("search multi needs a CSV: pass --csv FILE or set 'csv:' in the spec")
    table = tabular.open_table(csv_path, max_samples=max_samples)
    rows = tabular.subsample(len(table), max_samples, seed)
    inputs: dict[str, np.ndarray] = {}
    ctypes: dict[str, dict[str, str]] = {}
    for s in spec.inputs:
        if s.type == "structured":
            x, types = tabular.feature_matrix(table, s.columns, s.column_types, rows)
            inputs[s.name], ctypes[s.name] = x, types
        elif s.type == "text":
            inputs[s.name] = table.text(s.column, rows)
        else:
            paths = [table.base_dir / p for p in table.text(s.column, rows)]
            inputs[s.name] = _load_images(paths, s.size, s.channels)
    targets: dict[str, np.ndarray] = {}
    names: dict[str, list[str]] = {}
    for h in spec.heads:
        _, y, cn = tabular.encode_target(table.column(h.column, rows), h.type, h.column,
                                         table.source)  # fmt: skip
        targets[h.name] = y
        if cn:
            names[h.name] = cn
    return MultiData(inputs=inputs, targets=targets, class_names=names, column_types=ctypes)


def _load_images(paths: Sequence[Path], size: tuple[int, int] | None, channels: int) -> np.ndarray:
    """Image files → uint8 [N,H,W,C] with the training decoder (data/images, the one decoder);
    size defaults to the first image's; memory checked first."""
    from automl_app.data import images

    if not paths:
        return np.zeros((0, 1, 1, channels), np.uint8)
    return images.load_image_files(
        paths,
        size=size,
        channels=channels,
        source="the spec's image column",
        check_memory=lambda n, shape: check_image_memory(n, shape, "images for search multi"),
    )


_AS_INPUT = {"image": np.asarray, "text": _as_text, "structured": _as_table}


def search_multi(
    spec: MultiSpec | str | Path | Mapping[str, Any],
    inputs: Mapping[str, np.ndarray],
    targets: Mapping[str, np.ndarray],
    *,
    class_names: Mapping[str, Sequence[str]] | None = None,
    column_types: Mapping[str, Mapping[str, str]] | None = None,
    validation_data: tuple[Mapping[str, np.ndarray], Mapping[str, np.ndarray]] | None = None,
    block: str = "auto",
    options: SearchOptions = DEFAULT_OPTIONS,
    say: Say = print,
) -> AutoKerasResult:
    """ak.AutoModel with the spec's inputs and heads (the IO API), on arrays keyed by spec name."""
    spec = spec if isinstance(spec, MultiSpec) else load_spec(spec)
    _check_choice("block", block, BLOCKS)
    options.check()
    class_names = dict(class_names or {})
    column_types = dict(column_types or {})
    for s in spec.inputs:
        if s.name not in inputs:
            raise DataError(f"no data for input {s.name!r} of {spec.source}")
    for h in spec.heads:
        if h.name not in targets:
            raise DataError(f"no data for output {h.name!r} of {spec.source}")
    order_in = [s.name for s in spec.inputs]
    order_out = [h.name for h in spec.heads]
    arrays = [np.asarray(inputs[n]) for n in order_in] + [np.asarray(targets[n]) for n in order_out]
    arrays = _take(arrays, options.max_samples, options.seed)
    xs, ys = arrays[: len(order_in)], arrays[len(order_in) :]
    c = _classes()
    ak = c["ak"]
    nodes = []
    infos = []
    for s, x in zip(spec.inputs, xs, strict=True):
        if s.type == "image":
            if x.ndim not in (3, 4):
                raise DataError(
                    f"input {s.name!r}: images must be [N,H,W] or [N,H,W,C]; got {x.shape}"
                )
            check_image_memory(len(x), x.shape[1:], f"input {s.name!r}", x.dtype.itemsize)
            nodes.append(ak.ImageInput(name=s.name))
            infos.append({"name": s.name, "type": "image", "shape": list(x.shape[1:]),
                          "dtype": str(x.dtype), "block": block})  # fmt: skip
        elif s.type == "text":
            nodes.append(ak.TextInput(name=s.name))
            infos.append({"name": s.name, "type": "text"})
        else:
            cols = list(s.columns)
            types = dict(column_types.get(s.name) or s.column_types or {}) or None
            nodes.append(ak.StructuredDataInput(column_names=cols, column_types=types, name=s.name))
            infos.append({"name": s.name, "type": "structured", "columns": cols})
    xs = [_AS_INPUT[s.type](x) for s, x in zip(spec.inputs, xs, strict=True)]
    heads, head_infos = [], []
    for h, y in zip(spec.heads, ys, strict=True):
        if h.type == "classification":
            names = _check_classes(y, class_names.get(h.name), f"output {h.name!r}")
            heads.append(ak.ClassificationHead(name=h.name))
            head_infos.append({"name": h.name, "type": "classification", "class_names": names})
        else:
            heads.append(ak.RegressionHead(name=h.name))
            head_infos.append({"name": h.name, "type": "regression", "class_names": None})
    ys = [
        y.astype(np.float32) if h.type == "regression" else y
        for h, y in zip(spec.heads, ys, strict=True)
    ]
    gpu = has_gpu()
    initial = None
    if [s.type for s in spec.inputs].count("image") == 1:  # its block is image_block_1
        initial = image_initial_hps(block, gpu, head="")
    factory = tuner_factory(options.tuner, initial_hps=initial, epochs=options.epochs)
    automodel = ak.AutoModel(inputs=nodes, outputs=heads, **options.automodel_kwargs(factory))
    notes = []
    if _configure_image_blocks(automodel, block, gpu):
        notes = [n for n in [image_block_note(block, gpu)] if n]
    for n in notes:
        say(n)
    val = None
    if validation_data is not None:
        vx, vy = validation_data
        val = ([_AS_INPUT[s.type](vx[s.name]) for s in spec.inputs],
               [np.asarray(vy[h.name], np.float32) if h.type == "regression" else
                np.asarray(vy[h.name]) for h in spec.heads])  # fmt: skip
    seconds = _fit(automodel, xs, ys, val, options)
    for node, info in zip(automodel.inputs, infos, strict=True):
        if info["type"] == "structured":
            info["column_types"] = dict(node.column_types)
    return _finish(automodel, "multi", "multi", seconds, notes=notes, inputs=infos,
                   heads=head_infos)  # fmt: skip
