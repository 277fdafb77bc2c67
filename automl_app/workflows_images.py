"""Orchestration for the image-folder commands: `scan-images` and `train-scratch`.

Plain functions (the Python API the CLI calls); heavy modules are imported inside them so that
importing this module stays cheap.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from automl_app.errors import DataError, UsageError


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


def train_scratch(
    model: str,
    data_dir: str | os.PathLike,
    *,
    recipe: str | None = "mobilenetv2_scratch",
    overrides: Mapping[str, Any] | None = None,
    run_dir: str | os.PathLike = "runs/train-scratch",
    resume: bool = False,
    overwrite: bool = False,
    scan_cache: str | os.PathLike | None = None,
    log: Callable[[str], None] = print,
    verbose: bool = False,
) -> dict[str, Any]:
    """Recipe + overrides → ScratchConfig → training/scratch.py; returns the final run.json."""
    from automl_app.training import scratch

    if model not in scratch.MODELS:
        raise UsageError(f"model must be one of {', '.join(scratch.MODELS)}. Received: {model!r}")
    if not Path(data_dir).is_dir():
        raise DataError(f"--data-dir {str(data_dir)!r} is not a directory")
    cfg = scratch.load_config(recipe, {**(overrides or {}), "name": model})
    manifest = scratch.train_scratch(
        cfg,
        data_dir,
        run_dir,
        resume=resume,
        overwrite=overwrite,
        scan_cache=scan_cache,
        log=log,
        verbose=verbose,
    )
    _report(run_dir, log)
    return manifest


def _report(run_dir: str | os.PathLike, log: Callable[[str], None]) -> None:
    """Regenerate report/ (training curves, LR schedule, per-class plots, index.html)."""
    from automl_app import report

    try:
        info = report.write_report(run_dir, say=lambda _line: None)
        log(f"report: {info['index']}")
    except Exception as exc:  # a plot never fails a training run
        log(f"warning: report not regenerated ({type(exc).__name__}: {exc})")
