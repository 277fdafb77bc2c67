"""One function per command, and the one flow they share: also the Python API.

    from automl_app import workflows
    from automl_app.config import SearchConfig, TunerConfig
    manifest = workflows.search(SearchConfig(tuner=TunerConfig(max_trials=2, epochs=1)))

Every command that trains goes through `run_plan`: the engine checks its options and returns a
Plan (nothing written yet), then runs.open_run opens RUN_DIR (lock, run.json, --resume /
--overwrite) and the engine's `fit` trains and returns an engines.base.EngineResult. The middle
is then the same for KerasTuner, AutoKeras and train-scratch (`complete`): the test split is read
once (`result.read_test`), evaluate.final writes the scikit-learn report, evaluate.chance_check
compares the accuracy with the split's majority class (one warning line, run.json `chance`), the
best model is exported (export.export_best, or the engine's `export` for named-input models;
reload-and-compare before the atomic rename; the model card says how inputs are scaled) and the
trial table is written. The lifecycle then finishes the run (status, wall time), regenerates the
report and logs to MLflow. Ctrl-C leaves `status: interrupted` and a run that `--resume`
continues. `say` receives the lines the CLI prints.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from automl_app import interrupts, runs
from automl_app.config import SearchConfig, TrainConfig, check_storage
from automl_app.engines.base import EngineResult, Plan
from automl_app.errors import UsageError

Say = Callable[[str], None]


def plan_for(cfg: SearchConfig | TrainConfig) -> Plan:
    """The engine's Plan for a config (options checked; nothing written)."""
    # Every engine mirrors its trials into --storage: refuse a bad URL before data loads.
    check_storage(getattr(cfg, "storage", None))
    if isinstance(cfg, TrainConfig):
        from automl_app.engines import scratch

        return scratch.plan_train(cfg)
    if cfg.engine == "autokeras":
        from automl_app.engines.autokeras import engine as ak

        plans = {"image": ak.plan_image, "text": ak.plan_text,
                 "structured": ak.plan_structured, "multi": ak.plan_multi}  # fmt: skip
        return plans[cfg.task](cfg)
    if cfg.engine != "kerastuner":
        raise UsageError(f"--engine must be one of kerastuner, autokeras. Received: {cfg.engine!r}")
    if cfg.task != "image":
        raise UsageError(f"search {cfg.task} needs --engine autokeras (KerasTuner searches images)")
    from automl_app.engines.kerastuner.engine import plan_search

    return plan_search(cfg)


def run_plan(plan: Plan, say: Say = print) -> dict[str, Any]:
    """The lifecycle: open the run, fit, finish, report; returns the final run.json."""
    from automl_app.tf_env import set_verbose

    cfg = plan.cfg
    set_verbose(cfg.verbose)
    out, say = say, (quiet_say(say) if getattr(cfg, "quiet", False) else say)
    if cfg.mlflow:
        from automl_app.integrations.mlflow import require_mlflow

        require_mlflow()  # exit 2 before anything is written when the extra is missing
    with runs.open_run(
        plan.run_dir,
        command=plan.command,
        engine=plan.engine,
        config=cfg.to_dict(),
        overwrite=cfg.overwrite,
        resume=cfg.resume,
        say=say,
        **plan.fields,
    ) as run:
        fields = complete(run.dir, plan.fit(run, say), say)
        interrupts.check()  # a Ctrl-C that the training loop swallowed still interrupts the run
        manifest = run.finish(**fields)
        _report(run.dir, say)
        if cfg.mlflow:
            from automl_app.integrations.mlflow import log_mlflow

            log_mlflow(run.dir, cfg.mlflow, say=say)
    if say is not out:
        for line in summary_lines(manifest, run.dir):
            out(line)
    out(f"report: {run.dir / 'report'}; wall time {manifest['wall_seconds']:.1f}s")
    _check_fail_below(manifest, getattr(cfg, "fail_below", None), run.dir)
    return manifest


def complete(run_dir: Path, result: EngineResult, say: Say = print) -> dict[str, Any]:
    """The middle every engine shares: test once → report → chance → export → trial rows.

    Returns the run.json fields of the finished run (the engine's, `test`, `chance`, `export`).
    Also the Python API after an engine's own search function (e.g. AutoKeras's task API):
    `complete(run_dir, akt.engine_result(result, lambda: (x_test, y_test)))`.
    """
    run_dir = Path(run_dir)
    from automl_app import evaluate, export

    fields = dict(result.fields)
    if result.best_line:
        say(result.best_line)
    # The test split is read here, once, for every engine.
    t_test = time.perf_counter()
    got = result.read_test()
    metrics = evaluate.final(got.predictions, got.labels, result.heads, run_dir / "report")
    split = result.split
    if len(result.heads) == 1:
        say(f"{split} {evaluate.metrics_line(metrics)}{result.test_note}")
    else:
        for name, head_metrics in metrics.items():
            say(f"{split} {name}: {evaluate.metrics_line(head_metrics)}")
    chance = None
    if result.class_names and isinstance(metrics.get("accuracy"), (int, float)):
        labels = got.labels
        if isinstance(labels, dict):  # one head of a multi-output spec
            labels = labels.get(result.heads[0]["name"], next(iter(labels.values())))
        chance = evaluate.chance_check(
            metrics["accuracy"], labels, len(result.class_names), split=split
        )
        if chance["within_noise"]:
            cause, step = (result.diagnose or _generic_diagnosis)(chance)
            chance["cause"], chance["next_step"] = cause, step
    spec_extra = getattr(result.spec, "extra", None) or {}
    card = {**result.card, "test": metrics}
    scaling = export.input_scaling(card.get("dataset"), spec_extra.get("scale"))
    if scaling:
        card["input_scaling"] = scaling
    best = run_dir / "best"
    t_export = time.perf_counter()
    if result.export is not None:
        info = result.export(best, got.sample, card)
    else:
        info = export.export_best(
            result.model, result.spec, got.sample, best, labels=result.class_names, card=card
        )
    say(f"model written to {best / 'saved_model'} (serve: {info['input']})")
    if chance is not None and chance["within_noise"]:
        say(evaluate.chance_warning(chance))
    if result.trials is not None:
        runs.write_trial_table(run_dir, result.trials)
    fields.update(got.fields)
    fields.update(test=metrics, export=info)
    # what a --time-budget's reserve pays for, measured: reading and scoring the test split, and
    # the export with its reload check
    fields["finish_seconds"] = {
        "test": round(t_export - t_test, 2),
        "export": round(time.perf_counter() - t_export, 2),
    }
    if chance is not None:
        fields["chance"] = chance
    return fields


def _generic_diagnosis(chance: dict[str, Any]) -> tuple[str, str]:
    return (
        "the model did not learn (learning rate too high or too low, or too few epochs)",
        "train for more --epochs, or change the learning rate",
    )


def _check_fail_below(manifest: dict[str, Any], threshold: float | None, run_dir: Path) -> None:
    """`--fail-below SCORE`: a finished run whose test accuracy is lower exits 1 (scripts, CI)."""
    if threshold is None:
        return
    from automl_app.errors import SearchError

    accuracy = (manifest.get("test") or {}).get("accuracy")
    if not isinstance(accuracy, (int, float)):
        raise SearchError(
            f"--fail-below {threshold:g}: the run has no test accuracy to compare "
            f"(run.json `test` is {manifest.get('test')!r})"
        )
    if accuracy < threshold:
        chance = manifest.get("chance") or {}
        note = " (within noise of chance)" if chance.get("within_noise") else ""
        raise SearchError(
            f"test accuracy {accuracy:.4f} is below --fail-below {threshold:g}{note}; the run is "
            f"in {run_dir}"
        )


def quiet_say(say: Say) -> Say:
    """--quiet: drop what a run says while it works (progress, trials, data); keep warnings.

    The result is marked `quiet`, so live bars (tuning/progress.py, training/loop.py) stay off.
    """

    def filtered(line: str) -> None:
        if line.lstrip().lower().startswith(("warning", "error")):
            say(line)

    filtered.quiet = True  # type: ignore[attr-defined]
    return filtered


def summary_lines(manifest: dict[str, Any], run_dir: Path) -> list[str]:
    """The few lines --quiet prints: best trial, test metrics, where the model is."""
    lines = []
    best = manifest.get("best_trial") or {}
    objective = ((manifest.get("config") or {}).get("tuner") or {}).get("objective") or "score"
    if isinstance(best.get("score"), (int, float)):
        lines.append(f"best trial {best.get('trial_id')}: {objective}={best['score']:.4f}")
    test = manifest.get("test") or {}
    if "accuracy" in test:
        lines.append(
            f"test accuracy {test['accuracy']:.4f}, loss {test.get('loss', float('nan')):.4f} "
            f"on {test.get('examples')} examples"
        )
    elif "mae" in test:
        lines.append(f"test MAE {test['mae']:.4g} on {test.get('examples')} examples")
    model = run_dir / "best" / "saved_model"
    if model.exists():
        lines.append(f"model: {model}")
    return lines


def _report(run_dir: Path, say: Say) -> None:
    """Regenerate report/ (plots + index.html); a plot never fails a run."""
    from automl_app import report

    try:
        report.write_report(run_dir, say=lambda _line: None)
    except Exception as exc:  # plotting problems are reported, not fatal
        say(f"warning: report not regenerated ({type(exc).__name__}: {exc})")


def search(cfg: SearchConfig, say: Say = print) -> dict[str, Any]:
    """`automl search image|text|structured|multi`: search, evaluate once on test, export."""
    return run_plan(plan_for(cfg), say)


def train_scratch(cfg: TrainConfig, say: Say = print) -> dict[str, Any]:
    """`automl train-scratch MODEL`: one recipe, no search, evaluate once on test, export."""
    return run_plan(plan_for(cfg), say)


def worker(run_dir: str | Path, say: Say = print) -> None:
    """One role (chief or worker) of a parallel KerasTuner search; see engines/kerastuner."""
    from automl_app.engines.kerastuner.parallel import worker as run_worker

    run_worker(run_dir, say=say)


def scan_images(
    data_dir: str | os.PathLike,
    *,
    output: str | os.PathLike | None = None,
    max_pixels: int = 50_000_000,
    cache: str | os.PathLike | None = None,
) -> Any:
    """Scan every file below `data_dir`; write the blacklist to `output` if given.

    Returns the scan.ScanResult (files, bad ones with reasons, duplicate groups, summary()).
    """
    from automl_app.data import scan
    from automl_app.errors import DataError

    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"{str(root)!r} is not a directory; pass the image folder to scan")
    if max_pixels < 1:
        raise UsageError(f"--max-pixels must be a positive integer. Received: {max_pixels!r}")
    result = scan.scan_folder(
        root, max_pixels=max_pixels, cache_path=cache or scan.default_cache_path(root)
    )
    if output is not None:
        scan.write_blacklist(result, output)
    return result


EXPORT_FORMATS = ("saved_model", "tflite", "onnx")
CHECK_EXAMPLES = 256


def export_run(
    run_dir: str | Path,
    out: str | Path | None = None,
    *,
    format: str = "saved_model",
    quantize: str = "none",
    say: Say = print,
) -> dict[str, Any]:
    """Export a finished run's best model: a SavedModel again (reloaded and compared), or a
    .tflite / .onnx with a fixed input shape, verified against the SavedModel on test images."""
    run_dir = Path(run_dir)
    if format not in EXPORT_FORMATS:
        raise UsageError(
            f"--format must be one of {', '.join(EXPORT_FORMATS)}. Received: {format!r}"
        )
    if quantize != "none" and format != "tflite":
        raise UsageError(f"--quantize applies to --format tflite. Received: --format {format}")
    manifest = runs.load_manifest(run_dir)
    saved = run_dir / "best" / "saved_model"
    if manifest.get("status") != "completed" or not (saved / "saved_model.pb").is_file():
        raise UsageError(
            f"run {str(run_dir)!r} has no finished export ({saved} missing; status "
            f"{manifest.get('status')!r})"
        )
    if not (manifest.get("data") or {}).get("image_shape"):
        raise UsageError(
            f"run {str(run_dir)!r} is a {manifest.get('command')!r} run; `automl export` works on "
            "image runs (its best/saved_model is already the export)"
        )
    if format != "saved_model" and manifest.get("engine") == "autokeras":
        # AutoKeras's exported image model resizes inside with ScaleAndTranslate, an op TFLite and
        # tf2onnx lack, and it has no fixed-shape `serve_fixed` endpoint to convert instead.
        raise UsageError(
            f"--format {format} is not available for AutoKeras runs ({str(run_dir)!r}): its "
            "SavedModel resizes with an op TFLite/ONNX lack; use --format saved_model, or a "
            "KerasTuner search or train-scratch run"
        )
    with runs.lock(run_dir).hold():
        if format == "saved_model":
            target = _export_target(run_dir, manifest, out, None)
            return _export_saved_model(
                run_dir, manifest, target or run_dir / "export" / "saved_model", say
            )
        name = f"model{'' if quantize == 'none' else '_' + quantize}.{format}"
        out = _export_target(run_dir, manifest, out, name)
        return _export_fixed(run_dir, manifest, saved, format, quantize, out, say)


def _export_target(run_dir: Path, manifest: dict, out: Any, name: str | None) -> Path | None:
    """Where `export --out` writes, never over what is not ours: an existing directory gets
    DIR/<name> for a file format; a SavedModel replaces only an empty directory or a SavedModel;
    an existing file is replaced only when this run wrote it. UsageError naming it otherwise."""
    if out is None:
        return None
    out = Path(out)
    if name is not None and out.is_dir():
        out = out / name
    ours = {str(Path(e.get("path") or "")) for e in (manifest.get("exports") or {}).values()}
    inside = run_dir.resolve() in out.resolve().parents
    if name is None and out.exists():
        if out.is_file():
            raise UsageError(f"--out {str(out)!r} is a file; a SavedModel is a directory")
        if any(out.iterdir()) and not (out / "saved_model.pb").is_file():
            raise UsageError(
                f"--out {str(out)!r} is a directory that holds other files and no SavedModel; "
                "pass a new or empty directory (nothing in it was changed)"
            )
    elif name is not None and out.is_file() and str(out) not in ours and not inside:
        raise UsageError(
            f"--out {str(out)!r} exists and was not written by this run's export; pass another "
            "path or remove it (it was not changed)"
        )
    return out


def _export_saved_model(run_dir: Path, manifest: dict, out: str | Path, say: Say) -> dict:
    import numpy as np

    from automl_app import export
    from automl_app.export.runspec import spec_from_manifest
    from automl_app.tf_env import tf

    keras_path = run_dir / "best" / "model.keras"
    if not keras_path.is_file():
        raise UsageError(f"run {str(run_dir)!r} has no {keras_path}")
    tf()
    import keras

    model = keras.saving.load_model(keras_path)
    spec = spec_from_manifest(manifest)
    h, w, c = manifest["data"]["image_shape"]
    sample = np.random.default_rng(0).integers(0, 256, size=(16, h, w, c), dtype=np.uint8)
    out = Path(out)
    info = export.export_saved_model(model, spec, sample, out)
    if (run_dir / "best" / "labels.json").is_file():
        runs.atomic_write_text(
            out.parent / f"{out.name}.labels.json", (run_dir / "best" / "labels.json").read_text()
        )
    from automl_app.export.model_card import write_export_card

    write_export_card(run_dir, out, info)  # OUT.model_card.json/.md beside it
    say(f"exported {keras_path} to {out} (serve: {info['input']})")
    return info


def _export_fixed(
    run_dir: Path, manifest: dict, saved: Path, fmt: str, quantize: str, out, say: Say
) -> dict:
    """tflite/onnx: calibration on training images, the check on test images, both at the
    model's fixed input shape (the run's own data, same splits)."""
    from automl_app import export
    from automl_app.data import source

    data = source.load_for_run(manifest)
    shape = tuple(manifest["data"]["image_shape"])
    check_images = _at_shape(data.test()[0][:CHECK_EXAMPLES], shape)
    calibration = _at_shape(data.x_train[:200], shape) if quantize == "int8" else None
    suffix = {"tflite": ".tflite", "onnx": ".onnx"}[fmt]
    name = f"model{'' if quantize == 'none' else '_' + quantize}{suffix}"
    out = Path(out) if out else run_dir / "export" / name
    if fmt == "tflite":
        info = export.export_tflite(saved, out, check_images=check_images, quantize=quantize,
                                    calibration_images=calibration)  # fmt: skip
    else:
        info = export.export_onnx(saved, out, check_images=check_images)
    exports = dict(runs.load_manifest(run_dir).get("exports") or {})
    exports[name] = {k: info.get(k) for k in ("path", "bytes", "quantize", "input_shape",
                                              "agreement", "near_ties", "max_prob_diff",
                                              "examples", "thresholds")}  # fmt: skip
    runs.update(run_dir, exports=exports)
    ties = info.get("near_ties") or 0
    say(
        f"exported {out} ({info['bytes'] / 1e6:.2f} MB, input uint8 {list(info['input_shape'])}): "
        f"top-1 agreement with the SavedModel {info['agreement']:.4f} on {info['examples']} test "
        f"images{f' ({ties} flips were near ties, excused)' if ties else ''}, largest probability "
        f"difference {info['max_prob_diff']:.4g}"
    )
    return info


def _at_shape(x: Any, shape: tuple) -> Any:
    """uint8 images at the export's fixed shape (grayscale → RGB, resize with padding)."""
    import numpy as np

    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if tuple(x.shape[1:]) == tuple(shape):
        return x.astype(np.uint8)
    from automl_app.data import stages
    from automl_app.tf_env import tf

    t = tf()
    y = t.cast(t.constant(x), t.float32)
    if y.shape[-1] == 1 and shape[-1] == 3:
        y = t.image.grayscale_to_rgb(y)
    y = stages.resize_with_pad(y, int(shape[0]))
    return np.clip(np.rint(y.numpy()), 0, 255).astype(np.uint8)


def predict(
    run: str | Path, inputs: Any, *, say_err: Say | None = None, **options: Any
) -> dict[str, Any]:
    """`automl predict RUN INPUT...`: RUN's exported SavedModel on new images or table rows,
    rows to `out` (default stdout); options as analysis.predict.predict takes them (out, fmt,
    top_k, batch_size, progress). Skipped files and ignored columns go to `say_err`."""
    from automl_app.analysis import predict as predict_mod

    if say_err is not None:
        options["note"] = say_err
    return predict_mod.predict(run, list(inputs), **options)
