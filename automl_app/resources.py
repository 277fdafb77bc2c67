"""Find the YAML files shipped with automl (search_spaces/, pipelines/).

In a source checkout they sit at the repository root; in an installed wheel they are force-included
under automl_app/. Users may also pass a path to their own file.
"""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def data_dirs(kind: str) -> list[Path]:
    """Where shipped files of `kind` ('search_spaces' or 'pipelines') may live, in order."""
    return [p for p in (_PKG / kind, _PKG.parent / kind) if p.is_dir()]


def list_named_files(kind: str) -> list[str]:
    """Names (file stems) of the shipped YAML files of `kind`."""
    names: set[str] = set()
    for d in data_dirs(kind):
        names.update(p.stem for p in d.glob("*.yaml"))
    return sorted(names)


def find_named_file(kind: str, name_or_path: str) -> Path | None:
    """A shipped file by name, or an existing path; None when neither exists."""
    path = Path(name_or_path).expanduser()
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    for d in data_dirs(kind):
        candidate = d / f"{name_or_path}.yaml"
        if candidate.is_file():
            return candidate
    if path.is_file():
        return path
    return None
