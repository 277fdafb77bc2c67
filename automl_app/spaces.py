"""Search-space files (YAML) ↔ keras_tuner.HyperParameters, conditions included.

A space is data the user edits; this module validates it against the model that will read it, so
a typo fails before any training with the file and key named. Declaring the space into a
HyperParameters object happens inside the hypermodel's build(hp), the way KerasTuner expects.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from automl_app.errors import ConfigError, UsageError
from automl_app.resources import find_named_file, list_named_files

TYPES = ("choice", "int", "float", "boolean", "fixed")
_ALLOWED = {
    "choice": {"values", "default", "ordered"},
    "int": {"min", "max", "step", "sampling", "default"},
    "float": {"min", "max", "step", "sampling", "default"},
    "boolean": {"default"},
    "fixed": {"value"},
}
_COMMON = {"type", "when"}
_SAMPLINGS = ("linear", "log", "reverse_log")


@dataclass(frozen=True)
class Entry:
    """One hyperparameter: its KerasTuner type, arguments, and optional parent conditions."""

    name: str
    type: str
    args: Mapping[str, Any]
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()


@dataclass(frozen=True)
class Space:
    """A validated search space for one model."""

    model: str
    entries: tuple[Entry, ...]
    source: str = "<memory>"
    fixed: Mapping[str, Any] = field(default_factory=dict)
    # configurations a search tries right after the defaults (`portfolio:` in the file)
    portfolio: tuple[Mapping[str, Any], ...] = ()

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def declare(self, hp) -> dict[str, Any]:
        """Register every entry in `hp` (inside conditional scopes) and return the active values."""
        values: dict[str, Any] = {}
        for e in self.entries:
            with contextlib.ExitStack() as stack:
                for parent, parent_values in e.when:
                    stack.enter_context(hp.conditional_scope(parent, list(parent_values)))
                value = _declare_one(hp, e)
            if value is not None:
                values[e.name] = value
        return values

    def to_hyperparameters(self):
        """A fresh keras_tuner.HyperParameters holding this space (for oracles and tests)."""
        import keras_tuner as kt

        hp = kt.HyperParameters()
        self.declare(hp)
        return hp


def _declare_one(hp, e: Entry) -> Any:
    a = dict(e.args)
    if e.type == "choice":
        return hp.Choice(e.name, a["values"], ordered=a.get("ordered"), default=a.get("default"))
    if e.type == "int":
        return hp.Int(
            e.name,
            a["min"],
            a["max"],
            step=a.get("step"),
            sampling=a.get("sampling", "linear"),
            default=a.get("default"),
        )
    if e.type == "float":
        return hp.Float(
            e.name,
            a["min"],
            a["max"],
            step=a.get("step"),
            sampling=a.get("sampling", "linear"),
            default=a.get("default"),
        )
    if e.type == "boolean":
        return hp.Boolean(e.name, default=a.get("default", False))
    return hp.Fixed(e.name, a["value"])


def available() -> list[str]:
    """Names of the search spaces shipped with automl (search_spaces/*.yaml)."""
    return list_named_files("search_spaces")


def resolve(name_or_path: str) -> Path:
    """A space name from search_spaces/ or a path to a YAML file; unknown names exit 2."""
    path = find_named_file("search_spaces", name_or_path)
    if path is None:
        raise UsageError(
            f"unknown search space {name_or_path!r}: use one of {', '.join(available())} "
            "or a path to a .yaml file"
        )
    return path


def load(
    name_or_path: str,
    *,
    known: Mapping[str, Mapping[str, Any]] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Space:
    """Read and validate a space file.

    known: model name -> the hyperparameter names that model reads (with defaults); when given,
    the file's `model` must be one of them and every entry must be a name that model reads.
    overrides: `--set name=value` pairs, each turned into a Fixed entry.
    """
    path = resolve(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not a YAML search space (binary, not UTF-8 text: byte {exc.start}); pass "
            f"a .yaml file or one of {', '.join(available())}"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the search space ({exc.strerror or exc})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    return parse(raw, source=str(path), known=known, overrides=overrides)


def parse(
    raw: Any,
    *,
    source: str = "<memory>",
    known: Mapping[str, Mapping[str, Any]] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Space:
    """Validate an already-loaded mapping (see load)."""
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{source}: a search space must be a mapping with `model` and `hyperparameters`"
        )
    unknown_top = set(raw) - {"model", "hyperparameters", "description", "portfolio"}
    if unknown_top:
        raise ConfigError(
            f"{source}: unknown key {sorted(unknown_top)[0]!r} (allowed: model, "
            "hyperparameters, portfolio, description)"
        )
    model = raw.get("model")
    if not isinstance(model, str):
        raise ConfigError(f"{source}: `model` must name a model. Received: model={model!r}")
    if known is not None and model not in known:
        raise ConfigError(
            f"{source}: `model` must be one of {', '.join(sorted(known))}. Received: model={model!r}"
        )
    hps = raw.get("hyperparameters") or {}
    if not isinstance(hps, Mapping):
        raise ConfigError(f"{source}: `hyperparameters` must be a mapping of name -> spec")
    reads = None if known is None else known[model]
    entries = [_parse_entry(source, str(name), spec) for name, spec in hps.items()]
    names = {e.name for e in entries}
    for e in entries:
        if reads is not None and e.name not in reads:
            raise ConfigError(
                f"{source}: hyperparameters.{e.name}: model {model!r} never reads {e.name!r} "
                f"(it reads {', '.join(sorted(reads))})"
            )
        for parent, _ in e.when:
            if parent not in names:
                raise ConfigError(
                    f"{source}: hyperparameters.{e.name}.when: unknown parent {parent!r}"
                )
    portfolio = _parse_portfolio(source, raw.get("portfolio"), {e.name: e for e in entries})
    space = Space(model=model, entries=tuple(entries), source=source, portfolio=portfolio)
    return apply_overrides(space, overrides or {}, reads=reads)


def _parse_portfolio(
    source: str, raw: Any, entries: Mapping[str, Entry]
) -> tuple[dict[str, Any], ...]:
    """`portfolio:` a list of partial configurations (the rest at their defaults), each value
    one the space allows, so a typo fails before training as any other key of the file does."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(c, Mapping) and c for c in raw):
        raise ConfigError(
            f"{source}: `portfolio` must be a list of mappings like "
            f"[{{learning_rate: 0.003}}]. Received: {raw!r}"
        )
    for i, config in enumerate(raw):
        for name, value in config.items():
            where = f"{source}: portfolio[{i}].{name}"
            if name not in entries:
                raise ConfigError(
                    f"{where}: not a hyperparameter of the space (it has "
                    f"{', '.join(sorted(entries))})"
                )
            allowed = _allowed_values(entries[name])
            if not _allows(entries[name], value):
                raise ConfigError(f"{where} must be {allowed}. Received: {value!r}")
    return tuple(dict(c) for c in raw)


def _allows(e: Entry, value: Any) -> bool:
    a = e.args
    if e.type == "choice":
        return value in a["values"]
    if e.type == "boolean":
        return isinstance(value, bool)
    if e.type == "fixed":
        return value == a["value"]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return (e.type == "float" or isinstance(value, int)) and a["min"] <= value <= a["max"]


def _allowed_values(e: Entry) -> str:
    a = e.args
    if e.type == "choice":
        return f"one of {a['values']}"
    if e.type == "boolean":
        return "true or false"
    if e.type == "fixed":
        return f"{a['value']!r} (fixed)"
    return f"{'an int' if e.type == 'int' else 'a number'} in {a['min']}..{a['max']}"


def _parse_entry(source: str, name: str, spec: Any) -> Entry:
    where = f"{source}: hyperparameters.{name}"
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: must be a mapping like {{type: choice, values: [...]}}")
    typ = spec.get("type")
    if typ not in TYPES:
        raise ConfigError(f"{where}.type must be one of {', '.join(TYPES)}. Received: {typ!r}")
    extra = set(spec) - _ALLOWED[typ] - _COMMON
    if extra:
        raise ConfigError(
            f"{where}: unknown key {sorted(extra)[0]!r} for type {typ} (allowed: "
            f"{', '.join(sorted(_ALLOWED[typ] | _COMMON))})"
        )
    args = {k: v for k, v in spec.items() if k not in _COMMON}
    _check_args(where, typ, args)
    when = _parse_when(where, spec.get("when"))
    return Entry(name=name, type=typ, args=args, when=when)


def _check_args(where: str, typ: str, a: dict[str, Any]) -> None:
    if typ == "choice":
        vals = a.get("values")
        if not isinstance(vals, list) or not vals:
            raise ConfigError(f"{where}.values must be a non-empty list. Received: {vals!r}")
        if len({type(v) for v in vals}) > 1 and not all(isinstance(v, (int, float)) for v in vals):
            raise ConfigError(f"{where}.values must all have one type. Received: {vals!r}")
        if "default" in a and a["default"] not in vals:
            raise ConfigError(
                f"{where}.default must be one of the values. Received: {a['default']!r}"
            )
    elif typ in ("int", "float"):
        for key in ("min", "max"):
            if key not in a:
                raise ConfigError(f"{where}: missing `{key}`")
            ok = isinstance(a[key], int) if typ == "int" else isinstance(a[key], (int, float))
            if not ok or isinstance(a[key], bool):
                raise ConfigError(
                    f"{where}.{key} must be a{'n int' if typ == 'int' else ' number'}. "
                    f"Received: {a[key]!r}"
                )
        lo, hi = a["min"], a["max"]
        if not lo < hi:
            raise ConfigError(
                f"{where}: empty range, min must be < max. Received: min={lo}, max={hi}"
            )
        sampling = a.get("sampling", "linear")
        if sampling not in _SAMPLINGS:
            raise ConfigError(
                f"{where}.sampling must be one of {', '.join(_SAMPLINGS)}. Received: {sampling!r}"
            )
        if sampling != "linear" and lo <= 0:
            raise ConfigError(f"{where}: {sampling} sampling needs min > 0. Received: min={lo}")
        step = a.get("step")
        if step is not None and (not isinstance(step, (int, float)) or step <= 0):
            raise ConfigError(f"{where}.step must be > 0. Received: {step!r}")
        if step is not None and sampling == "linear" and step > hi - lo:
            raise ConfigError(f"{where}.step {step} is larger than the range {lo}..{hi}")
        if "default" in a and not lo <= a["default"] <= hi:
            raise ConfigError(f"{where}.default must lie in {lo}..{hi}. Received: {a['default']!r}")
        if typ == "float":
            a["min"], a["max"] = float(lo), float(hi)
            if not (math.isfinite(a["min"]) and math.isfinite(a["max"])):
                raise ConfigError(f"{where}: min and max must be finite")
    elif typ == "boolean":
        if "default" in a and not isinstance(a["default"], bool):
            raise ConfigError(f"{where}.default must be true or false. Received: {a['default']!r}")
    elif typ == "fixed" and "value" not in a:
        raise ConfigError(f"{where}: missing `value`")


def _parse_when(where: str, when: Any) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    if when is None:
        return ()
    if not isinstance(when, Mapping) or not when:
        raise ConfigError(
            f"{where}.when must map a parent name to a list of values, "
            f"e.g. {{optimizer: [sgd]}}. Received: {when!r}"
        )
    out = []
    for parent, vals in when.items():
        vals = vals if isinstance(vals, list) else [vals]
        if not vals:
            raise ConfigError(f"{where}.when.{parent}: needs at least one value")
        out.append((str(parent), tuple(vals)))
    return tuple(out)


def parse_set(pairs: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """`--set name=value` strings → {name: value} (values parsed as YAML scalars)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--set must look like name=value. Received: {pair!r}")
        out[name.strip()] = yaml.safe_load(value) if value.strip() else ""
    return out


def apply_overrides(
    space: Space, overrides: Mapping[str, Any], *, reads: Mapping[str, Any] | None = None
) -> Space:
    """Replace entries by Fixed values (`--set`); names the model never reads exit 2."""
    if not overrides:
        return space
    entries = list(space.entries)
    by_name = {e.name: i for i, e in enumerate(entries)}
    for name, value in overrides.items():
        if name in by_name:
            old = entries[by_name[name]]
            entries[by_name[name]] = replace(old, type="fixed", args={"value": value})
        elif reads is None or name in reads:
            entries.append(Entry(name=name, type="fixed", args={"value": value}))
        else:
            raise UsageError(
                f"--set {name}=...: model {space.model!r} has no hyperparameter {name!r} "
                f"(it reads {', '.join(sorted(reads))})"
            )
    # a value fixed with --set wins over the portfolio's (the rest of that configuration runs)
    portfolio = tuple(
        kept
        for kept in ({k: v for k, v in c.items() if k not in overrides} for c in space.portfolio)
        if kept
    )
    return replace(
        space, entries=tuple(entries), fixed={**space.fixed, **overrides}, portfolio=portfolio
    )


def with_min_batch_size(space: Space, minimum: int | None, default: int = 64) -> Space:
    """`--min-batch-size`: drop smaller batch sizes (tiny batches make some trials 10× slower)."""
    if not minimum:
        return space
    entries = list(space.entries)
    for i, e in enumerate(entries):
        if e.name != "batch_size":
            continue
        a = dict(e.args)
        if e.type == "choice":
            kept = [v for v in a["values"] if v >= minimum]
            if not kept:
                raise UsageError(
                    f"--min-batch-size {minimum} removes every batch_size in "
                    f"{space.source} (values {a['values']})"
                )
            a["values"] = kept
            if a.get("default") is not None and a["default"] < minimum:
                a["default"] = kept[0]
        elif e.type == "int":
            if a["max"] < minimum:
                raise UsageError(f"--min-batch-size {minimum} is above batch_size max {a['max']}")
            a["min"] = max(a["min"], minimum)
            if a.get("default") is not None:
                a["default"] = max(a["default"], minimum)
        elif e.type == "fixed" and a["value"] < minimum:
            a["value"] = minimum
        entries[i] = replace(e, args=a)
        portfolio = tuple(  # a portfolio's smaller batch gives way to the (raised) default
            {k: v for k, v in c.items() if not (k == "batch_size" and v < minimum)}
            for c in space.portfolio
        )
        return replace(space, entries=tuple(entries), portfolio=portfolio)
    if default < minimum:
        entries.append(Entry(name="batch_size", type="fixed", args={"value": minimum}))
    return replace(space, entries=tuple(entries))
