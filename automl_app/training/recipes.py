"""Recipes for training from scratch (pipelines/*.yaml): one frozen ScratchConfig, read from a
recipe file and single-value overrides, validated with Keras-style messages naming the file and key.

A recipe fixes the data pipeline, the model and the optimisation; CLI flags override single values.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from automl_app.errors import ConfigError, UsageError

MODELS = ("mobilenetv2",)


OPTIMIZERS = ("sgd", "adam", "rmsprop")


MIXED_PRECISION = ("auto", "on", "off")


DISTRIBUTE = ("auto", "none", "mirrored")


BALANCE = ("none", "oversample")


SECTIONS = {
    "model": ("name", "image_size", "alpha", "dropout", "bn_momentum"),
    "data": (
        "scale",
        "cache",
        "balance",
        "val_fraction",
        "test_fraction",
        "shuffle_buffer",
        "max_pixels",
        "max_samples",
    ),
    "augment": ("flip", "rotation", "crop", "brightness", "contrast", "jpeg_quality"),
    "train": (
        "batch_size",
        "epochs",
        "optimizer",
        "lr_per_256",
        "momentum",
        "nesterov",
        "schedule",
        "warmup_epochs",
        "label_smoothing",
        "weight_decay",
        "mixed_precision",
        "distribute",
        "seed",
    ),
}


OPTION_NAMES = {
    "image_size": "--image-size",
    "alpha": "--alpha",
    "batch_size": "--batch-size",
    "epochs": "--epochs",
    "optimizer": "--optimizer",
    "lr_per_256": "--lr",
    "momentum": "--momentum",
    "nesterov": "--nesterov",
    "schedule": "--schedule",
    "warmup_epochs": "--warmup-epochs",
    "label_smoothing": "--label-smoothing",
    "weight_decay": "--weight-decay",
    "mixed_precision": "--mixed-precision",
    "distribute": "--distribute",
    "max_samples": "--max-samples",
    "seed": "--seed",
    "scale": "--scale",
    "cache": "--cache",
}


@dataclass(frozen=True)
class ScratchConfig:
    """Everything one from-scratch run needs; defaults are the MobileNetV2 paper's recipe."""

    name: str = "mobilenetv2"
    image_size: int = 224
    alpha: float = 1.0
    dropout: float = 0.2
    bn_momentum: float = 0.999
    scale: str = "-1_1"
    cache: str | None = None
    balance: str = "none"
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    shuffle_buffer: int = 2048
    max_pixels: int = 50_000_000
    max_samples: int | None = None
    flip: bool = True
    rotation: float = 0.0
    crop: tuple[float, float] | None = (0.35, 1.0)
    brightness: float = 0.0
    contrast: float = 0.0
    jpeg_quality: tuple[int, int] | None = (70, 100)
    batch_size: int = 192
    epochs: int = 150
    optimizer: str = "sgd"
    lr_per_256: float = 0.045
    momentum: float = 0.9
    nesterov: bool = True
    schedule: str = "cosine"
    warmup_epochs: float = 5.0
    label_smoothing: float = 0.1
    weight_decay: float = 4e-5
    mixed_precision: str = "auto"
    distribute: str = "auto"
    seed: int = 0
    recipe: str | None = None

    @property
    def lr(self) -> float:
        """The learning rate actually used: lr_per_256 scaled linearly to the batch size."""
        return self.lr_per_256 * self.batch_size / 256.0


def recipe_dirs() -> list[Path]:
    """Where recipe names are looked up: the checkout's pipelines/, then the wheel's copy."""
    here = Path(__file__).resolve().parents[1]
    return [here.parent / "pipelines", here / "pipelines"]


def resolve_recipe(recipe: str) -> Path:
    """`--recipe NAME|FILE`: an existing file path, or pipelines/NAME.yaml."""
    path = Path(recipe).expanduser()
    if path.is_file():
        return path
    if os.sep not in recipe and not recipe.endswith((".yaml", ".yml")):
        for folder in recipe_dirs():
            candidate = folder / f"{recipe}.yaml"
            if candidate.is_file():
                return candidate
    known = sorted({p.stem for d in recipe_dirs() if d.is_dir() for p in d.glob("*.yaml")})
    raise UsageError(
        f"--recipe {recipe!r} is neither a file nor a recipe name; names: {', '.join(known)}"
    )


def read_recipe(path: str | os.PathLike) -> dict[str, Any]:
    """Flatten a recipe's sections into ScratchConfig fields; unknown keys name file and key."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a recipe is a mapping of sections {', '.join(SECTIONS)}")
    flat: dict[str, Any] = {}
    for section, values in raw.items():
        if section not in SECTIONS:
            raise ConfigError(
                f"{path}: unknown section {section!r}; allowed: {', '.join(SECTIONS)}"
            )
        for key, value in (values or {}).items():
            if key not in SECTIONS[section]:
                raise ConfigError(
                    f"{path}: unknown key {section}.{key}; allowed in {section}: "
                    f"{', '.join(SECTIONS[section])}"
                )
            flat[key] = value
    return flat


def _check(cfg: ScratchConfig, origin: Callable[[str], str]) -> None:
    """Validate values; `origin(field)` names where a value came from for the message."""
    from automl_app.data.stages import SCALES

    def fail(key: str, allowed: str) -> None:
        value = getattr(cfg, key)
        where = origin(key)
        cls = UsageError if where.startswith("--") else ConfigError
        raise cls(f"{where} must be {allowed}. Received: {value!r}")

    def pair(v: Any) -> bool:
        return v is None or (isinstance(v, (list, tuple)) and len(v) == 2)

    choices = {
        "name": MODELS,
        "scale": SCALES,
        "balance": BALANCE,
        "optimizer": OPTIMIZERS,
        "schedule": ("cosine", "step", "exponential", "constant"),
        "mixed_precision": MIXED_PRECISION,
        "distribute": DISTRIBUTE,
    }
    for key, allowed in choices.items():
        if getattr(cfg, key) not in allowed:
            fail(key, f"one of {', '.join(allowed)}")
    positive_ints = ("image_size", "batch_size", "epochs", "shuffle_buffer", "max_pixels")
    for key in positive_ints:
        if not isinstance(getattr(cfg, key), int) or getattr(cfg, key) < 1:
            fail(key, "a positive integer")
    if cfg.image_size < 32:
        fail("image_size", "at least 32")
    if cfg.max_samples is not None and (
        not isinstance(cfg.max_samples, int) or cfg.max_samples < 1
    ):
        fail("max_samples", "a positive integer")
    if not cfg.alpha > 0:
        fail("alpha", "> 0")
    if not cfg.lr_per_256 > 0:
        fail("lr_per_256", "> 0")
    for key in ("dropout", "momentum", "label_smoothing", "bn_momentum"):
        if not 0 <= getattr(cfg, key) < 1:
            fail(key, "in [0, 1)")
    for key in ("weight_decay", "warmup_epochs", "rotation", "brightness", "contrast"):
        if not getattr(cfg, key) >= 0:
            fail(key, ">= 0")
    if not pair(cfg.crop) or (cfg.crop and not 0 < cfg.crop[0] <= cfg.crop[1] <= 1):
        fail("crop", "null or [min_area, max_area] with 0 < min <= max <= 1")
    if not pair(cfg.jpeg_quality) or (
        cfg.jpeg_quality and not 0 <= cfg.jpeg_quality[0] < cfg.jpeg_quality[1] <= 100
    ):
        fail("jpeg_quality", "null or [min, max] with 0 <= min < max <= 100")


def load_config(
    recipe: str | None = None, overrides: Mapping[str, Any] | None = None
) -> ScratchConfig:
    """Recipe values, then CLI overrides (None = not given); checked, with errors naming origin."""
    values: dict[str, Any] = {}
    path = None
    if recipe:
        path = resolve_recipe(recipe)
        values.update(read_recipe(path))
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = set(given) - {f.name for f in fields(ScratchConfig)}
    if unknown:
        raise UsageError(f"unknown override(s) {sorted(unknown)}")
    values.update(given)
    for key in ("crop", "jpeg_quality"):
        if isinstance(values.get(key), list):
            values[key] = tuple(values[key])
    for key in (
        "alpha",
        "dropout",
        "bn_momentum",
        "lr_per_256",
        "momentum",
        "warmup_epochs",
        "weight_decay",
    ):
        if isinstance(values.get(key), int) and not isinstance(values.get(key), bool):
            values[key] = float(values[key])
    cfg = replace(ScratchConfig(), **values, recipe=str(path) if path else None)

    def origin(key: str) -> str:
        if key in given:
            return OPTION_NAMES.get(key, key)
        section = next((s for s, keys in SECTIONS.items() if key in keys), "")
        return f"{path}: {section}.{key}" if path else key

    _check(cfg, origin)
    return cfg
