"""The search-level glue of a parallel search: the launcher's side (`run_parallel`: start a chief
and N workers, record what happened to them) and each role's side (`run_role`: the process that
`automl worker` runs, chief or worker, building its tuner with the engine's functions).

The engine passes its own builders in (`load_space`, `make_search_tuner`): distributed sits below
engines in the layers, so it never imports one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from automl_app import runs
from automl_app.config import SearchConfig
from automl_app.errors import SearchError

Say = Callable[[str], None]


def run_role(
    run_dir: str | Path,
    load_space: Callable[[SearchConfig], Any],
    make_search_tuner: Callable[..., tuple[Any, dict[str, Any]]],
    say: Say = print,
) -> None:
    """One role of a parallel search (chief or worker), configured from RUN_DIR/run.json.

    KERASTUNER_TUNER_ID / _ORACLE_IP / _ORACLE_PORT must be set: the chief serves KerasTuner's
    oracle over gRPC, workers ask it for trials and train them (KerasTuner's distributed mode).
    `load_space(cfg)` and `make_search_tuner(cfg, space, data, run_dir, say, deadline,
    lr_find=..., announce=...)` are the engine's (engines/kerastuner/setup.py).
    """
    from automl_app.config import search_config_from_dict
    from automl_app.distributed import workers
    from automl_app.tf_env import set_verbose, tf
    from automl_app.tuning.tuners import run_search

    run_dir = Path(run_dir)
    is_chief = "chief" in os.environ.get("KERASTUNER_TUNER_ID", "")
    if not is_chief:  # heartbeat from now on: gives up on a chief that never comes, or goes
        from automl_app.distributed import liveness

        liveness.watch_chief()
    cfg = search_config_from_dict(runs.load_manifest(run_dir)["config"])
    set_verbose(cfg.verbose)
    from automl_app.data import source

    space = load_space(cfg)
    data = source.load_image_data(cfg.data, verbose=cfg.verbose)
    tf()
    import keras

    keras.utils.set_random_seed(cfg.tuner.seed)
    deadline = shared_deadline(cfg, runs.load_manifest(run_dir))
    tuner, fit_args = make_search_tuner(
        cfg, space, data, run_dir, say, deadline,
        lr_find=is_chief and cfg.tuner.lr_find, announce=is_chief,
    )  # fmt: skip
    run_search(
        tuner,
        epochs=cfg.tuner.epochs,
        tensorboard_dir=run_dir / "tensorboard",
        prune=cfg.tuner.prune,
        min_epochs=cfg.tuner.min_epochs,
        deadline=deadline,
        search=workers.search,
        **fit_args,
    )


@contextmanager
def as_chief() -> Iterator[None]:
    """Within the block this process reads the project as the chief (KERASTUNER_TUNER_ID=chief).

    KerasTuner reloads a project through the tuner file of the reading process's tuner id
    (`tuner0.json` by default), and a local worker that never finished a trial (killed each
    time) leaves none: the chief's `chief.json` is always there. No KERASTUNER_ORACLE_IP: a plain
    reload.
    """
    before = os.environ.get("KERASTUNER_TUNER_ID")
    os.environ["KERASTUNER_TUNER_ID"] = "chief"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("KERASTUNER_TUNER_ID", None)
        else:
            os.environ["KERASTUNER_TUNER_ID"] = before


def run_parallel(cfg: SearchConfig, run_dir: Path, say: Say) -> dict[str, Any]:
    """Start a chief and N workers (KerasTuner's gRPC mode), wait for them, and return what
    happened to them for run.json (`parallel_stop_summary`).

    The chief binds cfg.tuner.oracle_bind (127.0.0.1 by default; an address of this host, or
    0.0.0.0, lets `automl worker` on other hosts join through a shared run directory).
    """
    import sys

    from automl_app.distributed import workers
    from automl_app.distributed.launcher import LaunchSettings, launch

    bind = cfg.tuner.oracle_bind
    port = cfg.tuner.oracle_port or workers.free_port(bind)

    # Local workers dial the address the chief listens on (loopback when it listens everywhere).
    dial = "127.0.0.1" if bind in ("0.0.0.0", "::", "") else bind

    def argv(role):
        address = f"{bind}:{port}" if role == "chief" else f"{dial}:{port}"
        return [
            sys.executable,
            "-m",
            "automl_app.cli",
            "worker",
            "--run-dir",
            str(run_dir),
            "--oracle",
            address,
            "--tuner-id",
            workers.tuner_id(role),
        ]

    say(
        f"parallel: chief oracle on {bind}:{port}, {cfg.tuner.workers} local workers "
        f"(logs in {run_dir / 'workers'})"
    )
    warning = open_oracle_warning(bind, port)
    if warning is not None:
        sys.stdout.flush()
        print(warning, file=sys.stderr, flush=True)
    if bind not in ("127.0.0.1", "localhost"):
        for host in workers.join_addresses(bind):
            say(
                f"other hosts can join: automl worker --run-dir {run_dir.resolve()} "
                f"--oracle {host}:{port}"
            )
    res = launch(
        argv,
        LaunchSettings(cfg.tuner.workers, run_dir, port=port, bind_host=bind),
        on_line=say,
        on_log_line=lambda _, line: say(line) if line.startswith(("trial ", "warning: ")) else None,
    )
    if not res.ok:
        raise SearchError(f"parallel search failed: {res.error} (logs in {run_dir / 'workers'})")
    return launch_record(res)


def is_loopback(host: str) -> bool:
    """Is `host` reachable from this machine only (127.0.0.0/8, ::1, localhost)?"""
    import ipaddress

    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name (or 0.0.0.0's empty spelling): others may reach it
        return False


def open_oracle_warning(bind: str, port: int) -> str | None:
    """The one line for a chief whose gRPC oracle others can reach (None on loopback).

    KerasTuner's oracle service has no authentication and no encryption: anyone who reaches the
    port can read the search space and trials and hand in results.
    """
    if is_loopback(bind):
        return None
    return (
        f"warning: the chief's oracle on {bind}:{port} (KerasTuner's gRPC) has no "
        "authentication: keep that port on a private network or behind a firewall, or bind "
        f"127.0.0.1 and let other hosts reach it through an SSH tunnel (ssh -N -L "
        f"{port}:127.0.0.1:{port} CHIEF_HOST, then automl worker --oracle 127.0.0.1:{port})"
    )


def launch_record(res) -> dict[str, Any]:
    """run.json's record of a parallel search: who ran what, restarts and faults."""
    from collections import Counter

    assigned = Counter(e["trial_id"] for e in res.events if e.get("event") == "assign")
    joined = {e["tuner_id"]: e.get("peer") for e in res.events if e.get("event") == "join"}
    return {
        "port": res.port,
        "tuners": joined,
        "restarts": {k: v for k, v in res.restarts.items() if v},
        "faults": res.faults,
        "reassigned_trials": sorted(t for t, n in assigned.items() if n > 1),
    }


def parallel_stop_summary(
    tuner, cfg: SearchConfig, launched: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Why a parallel search ended, read back from the reloaded oracle, with `run_parallel`'s
    record of the workers."""
    from automl_app.tuning import budget

    summary = budget.stop_summary(tuner.oracle)
    summary["stop_reason"] = budget.ended_stop_reason(
        summary["trials"], cfg.tuner.max_trials, cfg.tuner.time_budget
    )
    summary["workers"] = cfg.tuner.workers
    if launched is not None:
        summary["parallel"] = launched
    return summary


def shared_deadline(cfg: SearchConfig, manifest: dict[str, Any]):
    """The search's deadline for one role of a parallel search.

    The launching command writes its deadline (wall-clock) into run.json, so the chief, every
    worker, a restarted worker and `automl worker` on another host all stop at the same instant
    instead of each counting the budget from its own start (budget.Deadline.from_record). Its
    `trials_deadline` (the budget less the evaluation and export reserve) comes first; an older
    run.json without either counts from now.
    """
    from automl_app.tuning import budget

    if not cfg.tuner.time_budget:
        return None
    record = manifest.get("trials_deadline") or manifest.get("deadline")
    stored = budget.Deadline.from_record(record)
    return stored or budget.Deadline.after(cfg.tuner.time_budget)
