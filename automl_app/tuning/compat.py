"""Every private `keras_tuner.src` name automl uses, in one place, each with why.

KerasTuner 1.4's public API (`keras_tuner`, `keras_tuner.engine.*`, `keras_tuner.oracles`) covers
tuners, oracles, trials and `synchronized`; callers import those from there. What it does not
expose is its distributed mode's plumbing (gRPC protos, the oracle client and chief, the
environment checks), its debug switch and the grid oracle's linked list. Those live here, so a
KerasTuner upgrade that moves one of them breaks one file, and `grep keras_tuner.src` finds it.

Nothing is imported when this module is: each name is looked up on first use (`from
automl_app.tuning.compat import protos` inside a function stays as lazy as the import it
replaced), and importing KerasTuner goes through tf_env first so TensorFlow loads quietly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers and editors only
    from keras_tuner.src import config, protos
    from keras_tuner.src.distribute import oracle_chief, oracle_client
    from keras_tuner.src.distribute import utils as dist_utils
    from keras_tuner.src.tuners.gridsearch import LinkedList

# name → (module, attribute or None for the module itself)
_PRIVATE: dict[str, tuple[str, str | None]] = {
    # The DEBUG flag: with it off KerasTuner stops printing every failed trial's traceback; no
    # public setting exists (tuners.make_tuner turns it on only under --verbose).
    "config": ("keras_tuner.src.config", None),
    # has_chief_oracle / is_chief_oracle: which role this process has in a distributed search
    # (read from KERASTUNER_* variables); public code only reaches it inside BaseTuner.search,
    # which we replace to add liveness (distributed/workers.search).
    "dist_utils": ("keras_tuner.src.distribute.utils", None),
    # The gRPC service definitions (OracleStub, servicer registration, request messages): the
    # chief's server, the workers' tagged channel and the heartbeat need them; not exported.
    "protos": ("keras_tuner.src.protos", None),
    # OracleClient's module-level call TIMEOUT (60 min by default), which liveness bounds so our
    # watch (distributed/liveness.py) speaks first; there is no parameter for it.
    "oracle_client": ("keras_tuner.src.distribute.oracle_client", None),
    # OracleServicer and exit_chief: distributed/chief.py serves the oracle with the same
    # servicer and exit test as KerasTuner's start_server, plus heartbeats and a short poll;
    # neither is public.
    "oracle_chief": ("keras_tuner.src.distribute.oracle_chief", None),
    # The grid oracle's walk structure; grid.py rebuilds it on reload (GridSearchOracle forgets
    # it), and it is not exported next to the public keras_tuner.oracles.GridSearchOracle.
    "LinkedList": ("keras_tuner.src.tuners.gridsearch", "LinkedList"),
}

__all__ = ["LinkedList", "config", "dist_utils", "oracle_chief", "oracle_client", "protos"]
assert set(__all__) == set(_PRIVATE)


def __getattr__(name: str) -> Any:
    """Import a private KerasTuner name on first use (PEP 562), then cache it here."""
    if name not in _PRIVATE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from automl_app.tf_env import tf

    tf()  # TensorFlow first, quietly, before KerasTuner imports it loudly
    module, attr = _PRIVATE[name]
    value = importlib.import_module(module)
    if attr is not None:
        value = getattr(value, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PRIVATE))
