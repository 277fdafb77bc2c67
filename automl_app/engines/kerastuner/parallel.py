"""The KerasTuner engine's side of a parallel search: how a role builds its tuner.

The processes, the chief, liveness and the launcher live in automl_app.distributed; this module
only hands it the engine's builders (`load_space`, `make_search_tuner`), which distributed, below
engines in the layers, cannot import.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from automl_app.config import SearchConfig
from automl_app.distributed.parallel import as_chief, run_role
from automl_app.engines.kerastuner.setup import load_space, make_search_tuner

Say = Callable[[str], None]


def worker(run_dir: str | Path, say: Say = print) -> None:
    """One role of a parallel search (chief or worker) of this engine: `automl worker`."""
    run_role(run_dir, load_space, make_search_tuner, say=say)


def reload_search_tuner(cfg: SearchConfig, space, data, run_dir: Path, say: Say):
    """The finished parallel search's tuner and fit args, reloaded as the chief saved it."""
    with as_chief():
        return make_search_tuner(
            cfg, space, data, run_dir, say, None, lr_find=False, announce=False
        )
