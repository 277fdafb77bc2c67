"""The model card: one dict (model_card.json) and its readable twin (model_card.md), written
beside every export (best/, selected/, `automl export`'s SavedModel) from the same dict.

A user who gets only the export folder should learn from it what the model takes (shape, dtype,
scaling, resizing), what it returns (class names), how well it did on the test split (and on how
many examples), which data it saw (the split fingerprints) and the command that made it.
`complete_card` adds those sections to what an engine and the flow already put in the card;
`render_markdown` is the one function that turns a card into text.
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from automl_app import runs
from automl_app.export.specs import input_scaling

__all__ = ["complete_card", "render_markdown", "write_card"]


def _manifest(run_dir: str | Path | None) -> dict[str, Any]:
    if run_dir is None or not (Path(run_dir) / runs.MANIFEST).is_file():
        return {}
    try:
        return runs.load_manifest(run_dir)
    except Exception:  # an unreadable run.json leaves those sections out, never the export
        return {}


def command_line(manifest: Mapping[str, Any]) -> str | None:
    """`automl search image ...` as typed, when the run was started from the command line."""
    argv = manifest.get("argv") or []
    if argv:
        return "automl " + shlex.join(str(a) for a in argv)
    if manifest.get("command"):
        return f"automl {manifest['command']} (started through the Python API; options in config)"
    return None


def _data_source(manifest: Mapping[str, Any]) -> str | None:
    data = manifest.get("data") or {}
    cfg = (manifest.get("config") or {}).get("data") or {}
    folder = data.get("folder") if isinstance(data.get("folder"), Mapping) else {}
    for value in (folder.get("data_dir"), data.get("source"), data.get("data_dir"),
                  cfg.get("csv"), cfg.get("data_dir"), data.get("dataset")):  # fmt: skip
        if value:
            return str(value)
    return None


def _takes(card: Mapping[str, Any], info: Mapping[str, Any], spec: Any) -> dict[str, Any]:
    extra = dict(getattr(spec, "extra", None) or card.get("preprocessing") or {})
    takes: dict[str, Any] = {"endpoint": info.get("endpoint", "serve")}
    if info.get("input"):
        takes["description"] = info["input"]
    if spec is not None:
        takes["dtype"] = spec.dtype
        if spec.shape is not None:
            takes["shape"] = ["N" if d is None else d for d in spec.shape]
        elif spec.fixed_shape is not None:
            h, w, c = (list(spec.fixed_shape) + [None] * 3)[:3]
            takes["shape"] = f"[N,{h},{w}] or [N,{h},{w},{c}]"
    if "height" in extra or "image_size" in extra:
        size = extra.get("image_size") or (extra.get("height"), extra.get("width"))
        takes["training_size"] = size if isinstance(size, int) else list(size)
        takes["channels"] = extra.get("channels")
        resize = extra.get("resize")
        takes["resizing"] = (
            f"{resize} to {extra['image_size']}x{extra['image_size']} inside (any input size)"
            if resize
            else "none: send images of the training size"
        )
    if extra.get("scale") is not None or card.get("input_scaling"):
        takes["scaling"] = card.get("input_scaling") or input_scaling(
            card.get("dataset"), extra.get("scale")
        )
    if extra.get("tokenizer"):
        takes["tokenizer"] = extra["tokenizer"]
    if info.get("input_names"):
        takes["input_names"] = list(info["input_names"])
    for inp in card.get("inputs") or []:  # AutoKeras: column types of a table, image blocks
        if isinstance(inp, Mapping) and inp.get("column_types"):
            takes["column_types"] = dict(inp["column_types"])
    return takes


def _returns(card: Mapping[str, Any], spec: Any) -> dict[str, Any]:
    heads = [h for h in card.get("heads") or [] if isinstance(h, Mapping)]
    names = card.get("class_names")
    task = getattr(spec, "task", None) or (heads[0].get("type") if len(heads) == 1 else None)
    if len(heads) > 1:
        return {"heads": [{"name": h.get("name"), "type": h.get("type"),
                           "class_names": h.get("class_names")} for h in heads]}  # fmt: skip
    if names is None and len(heads) == 1:
        names = heads[0].get("class_names")
    if task == "regression" or (names is None and task != "classification"):
        return {"description": "float32 predicted values [N,1]"}
    out: dict[str, Any] = {"description": "float32 probabilities [N,classes], one per class"}
    if names is not None:
        out["class_names"] = list(names)
    return out


def complete_card(
    card: Mapping[str, Any],
    *,
    info: Mapping[str, Any],
    spec: Any = None,
    run_dir: str | Path | None = None,
) -> dict[str, Any]:
    """The card with its standard sections (`takes`, `returns`, `test_examples`, `data`,
    `command`) added from the serving info, the spec and run.json. Existing keys stay."""
    out = dict(card)
    out.setdefault("serving", dict(info))
    out["takes"] = _takes(out, info, spec)
    out["returns"] = _returns(out, spec)
    test = out.get("test")
    if isinstance(test, Mapping) and isinstance(test.get("examples"), int):
        out["test_examples"] = test["examples"]
    manifest = _manifest(run_dir)
    if manifest:
        data = manifest.get("data") or {}
        out["data"] = {
            "source": _data_source(manifest),
            "fingerprint": data.get("fingerprint"),
            "split": data.get("split"),
        }
        out["command"] = {
            "command": manifest.get("command"),
            "engine": manifest.get("engine"),
            "line": command_line(manifest),
            "run_dir": str(Path(run_dir).resolve()) if run_dir else None,
            "started_at": manifest.get("started_at"),
        }
    return _jsonable(out)


def _jsonable(v: Any) -> Any:
    """NaN/inf → None, numpy scalars → Python, tuples → lists: every card parses as strict JSON."""
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        try:
            v = v.item()
        except (TypeError, ValueError):
            return str(v)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    return str(v)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


def _metrics_lines(metrics: Mapping[str, Any], indent: str = "") -> list[str]:
    lines = []
    for k, v in metrics.items():
        if isinstance(v, Mapping):
            lines.append(f"{indent}- {k}:")
            lines += _metrics_lines(v, indent + "  ")
        else:
            lines.append(f"{indent}- {k}: {_fmt(v)}")
    return lines


def render_markdown(card: Mapping[str, Any]) -> str:
    """model_card.md: the card's sections as a short readable page (same facts as the JSON)."""
    cmd = card.get("command") if isinstance(card.get("command"), Mapping) else {}
    title = cmd.get("command") or card.get("engine") or "model"
    lines = [f"# Model card: {title}", ""]
    source = (card.get("data") or {}).get("source") or card.get("dataset") or card.get("source")
    if source:
        lines += [f"Trained on **{source}**.", ""]
    takes = card.get("takes") or {}
    lines += ["## What it takes", ""]
    for key in ("endpoint", "description", "shape", "dtype", "training_size", "channels",
                "resizing", "scaling", "tokenizer", "input_names", "column_types"):  # fmt: skip
        if takes.get(key) is not None:
            lines.append(f"- {key.replace('_', ' ')}: {_fmt(takes[key])}")
    returns = card.get("returns") or {}
    lines += ["", "## What it returns", ""]
    if returns.get("description"):
        lines.append(f"- {returns['description']}")
    if returns.get("class_names") is not None:
        lines.append(f"- class names (column order): {', '.join(map(str, returns['class_names']))}")
    for head in returns.get("heads") or []:
        names = head.get("class_names")
        lines.append(f"- head {head.get('name')} ({head.get('type')})"
                     + (f": {', '.join(map(str, names))}" if names else ""))  # fmt: skip
    test = card.get("test")
    lines += ["", "## Test metrics", ""]
    if isinstance(test, Mapping) and test:
        n = card.get("test_examples")
        if n is not None:
            lines.append(f"On the held-out test split ({n} examples), touched once:")
            lines.append("")
        lines += _metrics_lines(test)
    else:
        lines.append("- not measured")
    data = card.get("data") or {}
    lines += ["", "## Data", ""]
    lines.append(f"- source: {data.get('source') or source or 'unknown'}")
    prints = data.get("fingerprint")
    if isinstance(prints, Mapping):
        for split, fp in prints.items():
            lines.append(f"- fingerprint {split}: `{fp}`")
    else:
        lines.append("- fingerprint: not recorded")
    split = data.get("split")
    if isinstance(split, Mapping) and split.get("method"):
        lines.append(f"- split: {split['method']}")
    lines += ["", "## How it was made", ""]
    if cmd.get("line"):
        lines += ["```", str(cmd["line"]), "```"]
    for key in ("engine", "run_dir", "started_at"):
        if cmd.get(key):
            lines.append(f"- {key.replace('_', ' ')}: {cmd[key]}")
    for key in ("best_trial", "trial", "model", "test_time_augmentation"):
        if card.get(key) is not None:
            lines.append(f"- {key.replace('_', ' ')}: {_fmt(card[key])}")
    return "\n".join(lines).rstrip() + "\n"


def write_card(out_dir: str | Path, card: Mapping[str, Any], *, stem: str = "model_card") -> None:
    """Write OUT_DIR/<stem>.json and OUT_DIR/<stem>.md (atomic, from the same dict)."""
    out_dir = Path(out_dir)
    card = _jsonable(card)
    runs.atomic_write_json(out_dir / f"{stem}.json", card)
    runs.atomic_write_text(out_dir / f"{stem}.md", render_markdown(card))


def write_export_card(run_dir: str | Path, out: str | Path, info: Mapping[str, Any]) -> Path:
    """`automl export`'s SavedModel at OUT gets OUT.model_card.json/.md beside it (as its
    labels): the run's best card with this export's serving info."""
    run_dir, out = Path(run_dir), Path(out)
    best = run_dir / "best" / "model_card.json"
    card = json.loads(best.read_text()) if best.is_file() else {}
    best_takes = dict(card.get("takes") or {})  # shape and dtype: the same spec as best/
    card["serving"] = dict(info)
    card = complete_card(card, info=info, run_dir=run_dir)
    card["takes"] = {**best_takes, **card["takes"]}
    write_card(out.parent, card, stem=f"{out.name}.model_card")
    return out.parent / f"{out.name}.model_card.json"
