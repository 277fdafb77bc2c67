"""AutoKeras results → the flow's EngineResult: a serving model that takes raw inputs, the
function that predicts the test split through it, its checked SavedModel export (named inputs for
tables and multi-input models) and the trial rows. The flow (workflows.complete) decides when the
test split is read, evaluates it (evaluate.final), checks chance and calls `export`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from automl_app import runs
from automl_app.engines.autokeras.constants import EXPORT_CHECK_EXAMPLES
from automl_app.engines.autokeras.core import AutoKerasResult, _classes
from automl_app.engines.autokeras.io import safe_name
from automl_app.engines.autokeras.tasks import trial_rows
from automl_app.engines.base import EngineResult, TestPredictions

Say = Callable[[str], None]


def serving_model(result: AutoKerasResult):
    """A Keras model taking raw inputs (uint8 images, strings, one tensor per column) that
    returns probabilities [N, classes] per classification head and values per regression head.

    AutoKeras keeps its text tokenizer, categorical encoders and label encoders in a separate
    pipeline; this rebuilds them as layers so the export needs nothing else.
    """
    import keras

    c = _classes()
    model = result.model
    pipe_inputs = result.pipeline.inputs  # one list of preprocessors per input
    raw_inputs = []
    model_inputs = []
    for info, pre in zip(result.inputs, pipe_inputs, strict=True):
        kind = info["type"]
        if kind == "image":
            raw = keras.Input(shape=tuple(info["shape"]), dtype=info["dtype"], name=info["name"])
            raw_inputs.append(raw)
            model_inputs.append(raw)
        elif kind == "text":
            tok = next(p for p in pre if type(p).__name__ == "TextTokenizer")
            vocab = [w for w, _ in sorted(tok.vocab.items(), key=lambda kv: kv[1])]
            raw = keras.Input(shape=(), dtype="string", name=info["name"])
            raw_inputs.append(raw)
            model_inputs.append(c["TextTokenizer"](vocab, tok.max_len)(raw))
        else:
            enc = next(p for p in pre if type(p).__name__ == "CategoricalToNumerical")
            cols = []
            for j, (col, kind_j) in enumerate(zip(enc.column_names, enc.encoding, strict=True)):
                if kind_j == "none":
                    raw = keras.Input(shape=(), dtype="float32", name=safe_name(col))
                    cols.append(c["NumericColumn"]()(raw))
                else:
                    raw = keras.Input(shape=(), dtype="string", name=safe_name(col))
                    cols.append(c["CategoryEncoder"](enc.encoders[j].labels)(raw))
                raw_inputs.append(raw)
            model_inputs.append(keras.layers.Concatenate()(cols) if len(cols) > 1 else cols[0])
    outs = model(model_inputs if len(model_inputs) > 1 else model_inputs[0])
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    if isinstance(outs, dict):  # pragma: no cover - AutoKeras returns lists
        outs = list(outs.values())
    final = {}
    for head, out in zip(result.heads, outs, strict=True):
        if head["type"] == "classification" and out.shape[-1] == 1:
            out = c["BinaryToTwoClass"](name=f"{head['name']}_probabilities")(out)
        else:
            out = keras.layers.Identity(name=f"{head['name']}_out")(out)
        final[head["name"]] = out
    outputs = final if len(final) > 1 else next(iter(final.values()))
    return keras.Model(raw_inputs if len(raw_inputs) > 1 else raw_inputs[0], outputs,
                       name="automl_autokeras_serving")  # fmt: skip


def raw_input_names(serving) -> list[str]:
    """Names of the serving model's raw inputs, in order."""
    return [t.name.split(":")[0] for t in serving.inputs]


def structured_inputs(x: np.ndarray, column_names: Sequence[str], numeric: Sequence[bool]) -> dict:
    """A string matrix [N, C] → {column: array} as the structured export takes it."""
    out = {}
    for j, (col, is_num) in enumerate(zip(column_names, numeric, strict=True)):
        cells = np.asarray(x)[:, j]
        out[safe_name(col)] = (
            np.asarray([_to_float(v) for v in cells], np.float32) if is_num else cells.astype(str)
        )
    return out


def _to_float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def raw_feed(result: AutoKerasResult, x: Any) -> dict[str, np.ndarray]:
    """Test inputs (as given to search_*) → {raw input name: array} for the serving model."""
    out: dict[str, np.ndarray] = {}
    xs = x if result.kind == "multi" else {result.inputs[0]["name"]: x}
    for info, pre in zip(result.inputs, result.pipeline.inputs, strict=True):
        arr = np.asarray(xs[info["name"]])
        if info["type"] == "image":
            out[info["name"]] = arr.astype(info["dtype"])
        elif info["type"] == "text":
            out[info["name"]] = arr.astype(str).reshape(-1)
        else:
            enc = next(p for p in pre if type(p).__name__ == "CategoricalToNumerical")
            numeric = [e == "none" for e in enc.encoding]
            out.update(structured_inputs(arr.astype(str), enc.column_names, numeric))
    return out


def predict_raw(serving, feed: Mapping[str, np.ndarray], batch: int = 512) -> dict[str, np.ndarray]:
    """Run the serving model on raw inputs in batches; {head name: array}."""
    from automl_app.tf_env import tf

    t = tf()
    names = raw_input_names(serving)
    n = len(next(iter(feed.values())))
    chunks: dict[str, list[np.ndarray]] = {}
    for i in range(0, n, batch):
        args = [t.constant(feed[k][i : i + batch]) for k in names]
        res = serving(args if len(args) > 1 else args[0], training=False)
        for k, v in (res if isinstance(res, dict) else {"output": res}).items():
            chunks.setdefault(k, []).append(np.asarray(v))
    return {k: np.concatenate(v) for k, v in chunks.items()}


def _export_named(serving, sample: Mapping[str, np.ndarray], out_dir: Path, atol: float = 1e-4):
    """SavedModel whose `serve` takes one named tensor per raw input (a dict); reload-compare
    before the atomic move, as export.export_saved_model does for single-input models."""
    import shutil
    import tempfile

    import keras

    from automl_app.errors import AutomlError
    from automl_app.tf_env import tf

    t = tf()
    names = raw_input_names(serving)
    specs = {}
    for name, inp in zip(names, serving.inputs, strict=True):
        specs[name] = t.TensorSpec(shape=(None, *inp.shape[1:]), dtype=inp.dtype, name=name)

    def call(inputs):
        args = [inputs[n] for n in names]
        out = serving(args if len(args) > 1 else args[0], training=False)
        if isinstance(out, dict):
            return {k: t.cast(v, t.float32) for k, v in out.items()}
        return t.cast(out, t.float32)

    feed = {n: t.constant(np.asarray(sample[n])) for n in names}
    expected = call(feed)
    archive = keras.export.ExportArchive()
    archive.track(serving)
    archive.add_endpoint(name="serve", fn=call, input_signature=[specs])
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        archive.write_out(str(tmp), verbose=False)
        reloaded = t.saved_model.load(str(tmp))
        got = reloaded.serve(feed)
        exp_d = expected if isinstance(expected, dict) else {"output": expected}
        got_d = got if isinstance(got, dict) else {"output": got}
        diff = 0.0
        for k, e in exp_d.items():
            e, g = np.asarray(e), np.asarray(got_d[k])
            if e.shape != g.shape or not np.allclose(e, g, atol=atol, equal_nan=True):
                raise AutomlError(
                    f"exported SavedModel output {k!r} does not match the in-memory model "
                    f"(shape {g.shape} vs {e.shape}); export not written to {out_dir}"
                )
            if e.size:
                diff = max(diff, float(np.nanmax(np.abs(e - g))))
        runs.atomic_replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    inputs_desc = ", ".join(f"{n}: {s.dtype.name}{list(s.shape)}" for n, s in specs.items())
    return {
        "path": str(out_dir),
        "endpoint": "serve",
        "input": f"dict of named tensors {{{inputs_desc}}} -> float32 outputs",
        "input_names": names,
        "softmax_added": False,
        "checked_examples": int(len(next(iter(sample.values())))),
        "max_abs_diff": diff,
    }


def _spec_for(result: AutoKerasResult, image_size: int | None = None):
    """export.ServingSpec for single-input image/text results (None: needs named inputs).

    With `image_size` (an image-folder run) `serve` takes uint8 images of any size and resizes
    them with padding inside, exactly as the folder pipeline did for training."""
    from automl_app.export import ServingSpec
    from automl_app.tf_env import tf

    t = tf()
    info = result.inputs[0]
    task = result.task
    if result.kind == "image" and image_size is not None:
        from automl_app.data import stages

        shape, dtype = list(info["shape"]), info["dtype"]
        ch = shape[2] if len(shape) == 3 else 1
        out = "probabilities" if task == "classification" else "values"

        def preprocess_any(x):
            x = x if len(x.shape) == 4 else t.expand_dims(x, -1)
            x = stages.resize_with_pad(t.cast(x, t.float32), image_size)
            return t.cast(t.reshape(x, [-1, *shape]), dtype)

        return ServingSpec(
            shape=(None, None, None, ch),
            dtype="uint8",
            preprocess=preprocess_any,
            description=f"uint8 images [N,H,W,{ch}] of any size -> float32 {out}; "
            f"resize_with_pad to {image_size} and normalisation inside",
            task=task,
            extra={"image_size": image_size, "channels": ch, "resize": "resize_with_pad",
                   "scale": "none (raw 0..255)", "block": info.get("block")},
        )  # fmt: skip
    if result.kind == "image":
        shape, dtype = list(info["shape"]), info["dtype"]
        h, w = shape[0], shape[1]
        ch = shape[2] if len(shape) == 3 else None

        def preprocess(x):
            return t.cast(t.reshape(x, [-1, *shape]), dtype)

        dims = f"{h},{w}" + (f"] or [N,{h},{w},{ch}" if ch else "")
        out = "probabilities" if task == "classification" else "values"
        return ServingSpec(
            shape=None,
            dtype="uint8",
            preprocess=preprocess,
            description=f"uint8 images [N,{dims}] -> float32 {out}; normalisation inside",
            task=task,
            extra={"height": h, "width": w, "channels": ch or 1, "scale": "none (raw 0..255)",
                   "block": info.get("block")},
        )  # fmt: skip
    if result.kind == "text":
        out = "probabilities" if task == "classification" else "values"
        return ServingSpec(
            shape=(None,),
            dtype="string",
            preprocess=lambda x: t.reshape(x, [-1]),
            description=f"raw strings [N] -> float32 {out}; tokenisation inside",
            task=task,
            extra={"tokenizer": "whitespace split, AutoKeras vocabulary, max_len inside"},
        )
    return None


def export(
    result: AutoKerasResult,
    best_dir: str | Path,
    sample_raw: Any,
    *,
    card: Mapping[str, Any] | None = None,
    image_size: int | None = None,
) -> dict[str, Any]:
    """Write RUN_DIR/best: saved_model/ (serve takes raw inputs; checked), model.keras,
    labels.json (classifiers), model_card.json/.md. Image and text go through export.export_best;
    structured and multi use named inputs (one per column / per input)."""
    from automl_app import export as export_mod

    best_dir = Path(best_dir)
    serving = serving_model(result)
    card = {
        "engine": "autokeras",
        "autokeras_task": result.summary()["autokeras_task"],
        "best_trial": result.best["trial_id"],
        "hyperparameters": result.best["hyperparameters"],
        "inputs": result.inputs,
        "heads": result.heads,
        **dict(card or {}),
    }
    spec = _spec_for(result, image_size)
    if spec is not None:
        feed = raw_feed(result, sample_raw)
        raw = next(iter(feed.values()))[:EXPORT_CHECK_EXAMPLES]
        return export_mod.export_best(serving, spec, raw, best_dir, labels=result.class_names,
                                      card={**card, "class_names": result.class_names})  # fmt: skip
    feed = {k: v[:EXPORT_CHECK_EXAMPLES] for k, v in raw_feed(result, sample_raw).items()}
    best_dir.mkdir(parents=True, exist_ok=True)
    info = _export_named(serving, feed, best_dir / "saved_model")
    tmp_keras = best_dir / ".model.tmp.keras"
    serving.save(tmp_keras)
    tmp_keras.replace(best_dir / "model.keras")
    labels: Any = None
    if result.kind == "multi":
        labels = {h["name"]: h["class_names"] for h in result.heads if h["class_names"]}
    elif result.class_names:
        labels = list(result.class_names)
    if labels:
        runs.atomic_write_json(best_dir / "labels.json", labels)
    from automl_app.export.model_card import complete_card, write_card

    card = complete_card({**card, "serving": info}, info=info, run_dir=best_dir.parent)
    write_card(best_dir, card)
    return info


def engine_result(
    result: AutoKerasResult,
    read_test: Callable[[], tuple[Any, Any]],
    *,
    card: Mapping[str, Any] | None = None,
    image_size: int | None = None,
    test_fields: Callable[[Any], dict[str, Any]] | None = None,
) -> EngineResult:
    """What the flow needs from a finished AutoKeras search. `read_test` returns the test inputs
    (as given to search_*) and targets; the flow calls it once, then evaluates through the
    serving model (what the export computes) and exports with `export` below."""

    def predict_test() -> TestPredictions:
        x_test, y_test = read_test()
        preds = predict_raw(serving_model(result), raw_feed(result, x_test))
        extra = test_fields(x_test) if test_fields is not None else {}
        return TestPredictions(preds, y_test, x_test, extra)

    def export_best(best_dir: Path, sample: Any, card_: Mapping[str, Any]) -> dict[str, Any]:
        return export(result, best_dir, sample, card=card_, image_size=image_size)

    stop = result.stop
    score = result.best.get("score")
    shown = f"{score:.4f}" if isinstance(score, (int, float)) else str(score)
    heads = [{"name": h["name"], "type": h["type"], "class_names": h.get("class_names")}
             for h in result.heads]  # fmt: skip
    return EngineResult(
        fields={**result.summary(), "search": stop, "stop_reason": stop.get("stop_reason")},
        read_test=predict_test,
        heads=heads,
        spec=_spec_for(result, image_size),
        export=export_best,
        card=dict(card or {}),
        trials=trial_rows(result),
        best_line=f"best trial {result.best['trial_id']}: {result.objective}={shown}",
    )
