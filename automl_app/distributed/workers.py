"""A role of a parallel search: its environment (`worker_env`: KerasTuner's ids and address, a
CPU thread share, one GPU) and its `search`.

KerasTuner already runs one search across processes: every process runs the same script; the one
whose `KERASTUNER_TUNER_ID` is `chief` serves the oracle over gRPC (`KERASTUNER_ORACLE_IP:PORT`) and
the others ask it for trials, train them and report back. launcher.py starts those processes and
looks after them; this module says who each one is and how it searches:

* KerasTuner's chief polls every 20 s for the end of the search once a worker got STOPPED;
  `search()` below serves the same `OracleServicer` with the same exit test, polling every 0.5 s
  (chief.py), and a worker searches with liveness on (liveness.py).

No TensorFlow or KerasTuner import at module level: the launcher runs in the CLI's process.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Sequence
from typing import Any

from automl_app.distributed import liveness
from automl_app.errors import UsageError

__all__ = [
    "CHIEF",
    "detect_gpus",
    "free_port",
    "join_addresses",
    "parse_oracle",
    "search",
    "tuner_id",
    "worker_env",
]

CHIEF = "chief"
Role = str | int  # "chief" or a worker index 0..N-1
THREAD_VARS = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")


def tuner_id(role: Role) -> str:
    """KerasTuner's id for a role: `chief` or `tuner<i>`."""
    if role == CHIEF:
        return CHIEF
    if isinstance(role, bool) or not isinstance(role, int) or role < 0:
        raise ValueError(f"`role` must be 'chief' or a worker index >= 0. Received: {role!r}")
    return f"tuner{role}"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` right now (the OS picks it; a tiny race is accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def join_addresses(bind: str) -> list[str]:
    """Addresses another host can dial for a chief bound to `bind`: the address itself, or for
    0.0.0.0 every non-loopback IPv4 address of this machine (not its hostname, which the other
    host may not resolve)."""
    if bind not in ("0.0.0.0", "::", ""):
        return [bind]
    found: list[str] = []
    try:
        import psutil

        for addrs in psutil.net_if_addrs().values():
            for a in addrs:
                if a.family == socket.AF_INET and not a.address.startswith("127."):
                    found.append(a.address)
    except Exception:  # psutil missing or no permission: fall back to the resolver
        pass
    return sorted(set(found)) or [socket.gethostname()]


def parse_oracle(address: str) -> tuple[str, int]:
    """`HOST:PORT` (the `--oracle` option) → (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--oracle must be HOST:PORT, e.g. 127.0.0.1:8000. Received: {address!r}")
    return host, int(port)


def detect_gpus() -> list[str]:
    """GPU ids to hand out: `CUDA_VISIBLE_DEVICES` if set, else `nvidia-smi -L`; no TF import."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    gpus = []
    for line in out.stdout.splitlines():  # "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-…)"
        head = line.split(":", 1)[0].split()
        if len(head) == 2 and head[0] == "GPU" and head[1].isdigit():
            gpus.append(head[1])
    return gpus


def worker_env(
    role: Role,
    oracle_host: str,
    port: int,
    n_workers: int,
    cpu_count: int,
    gpus: Sequence[str],
) -> dict[str, str]:
    """Environment of one role: KerasTuner's three variables, a CPU thread share, a GPU.

    Workers split the CPU threads evenly (TensorFlow would otherwise give every process all cores
    and they would fight); worker i gets GPU `gpus[i % len(gpus)]` (memory growth on when GPUs are
    shared); the chief only serves gRPC: one thread, no GPU.
    """
    if n_workers < 1:
        raise ValueError(f"`n_workers` must be >= 1. Received: {n_workers!r}")
    env = {
        "KERASTUNER_TUNER_ID": tuner_id(role),
        "KERASTUNER_ORACLE_IP": str(oracle_host),
        "KERASTUNER_ORACLE_PORT": str(int(port)),
    }
    threads = 1 if role == CHIEF else max(1, int(cpu_count) // n_workers)
    env.update({name: str(threads) for name in THREAD_VARS})
    if role == CHIEF:
        env["CUDA_VISIBLE_DEVICES"] = ""
    elif gpus:
        env["CUDA_VISIBLE_DEVICES"] = str(gpus[int(role) % len(gpus)])
        if n_workers > len(gpus):
            env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
    return env


def search(tuner: Any, *fit_args: Any, poll: float = 0.5, **fit_kwargs: Any) -> None:
    """`tuner.search(...)` for every role of a distributed (or plain) search.

    Single-process runs call `tuner.search` unchanged. Workers call it with liveness on: a
    heartbeat to the chief, our metadata on every call, bounded waits (liveness.py). The chief
    saves the tuner and serves the oracle like KerasTuner's own chief (`BaseTuner.search`), but
    returns within `poll` seconds of the last trial's end instead of up to 20 s later.
    """
    from automl_app.distributed import chief
    from automl_app.tuning.compat import dist_utils
    from automl_app.tuning.tuners import plain_search, tidy_resumed

    if not dist_utils.has_chief_oracle():
        plain_search(tuner, *fit_args, **fit_kwargs)
        return
    if not dist_utils.is_chief_oracle():
        import grpc

        watch = liveness.watch_chief()
        liveness.tag_client(tuner.oracle)
        try:
            tuner.search(*fit_args, **fit_kwargs)
        except grpc.RpcError as exc:  # the chief went away during a call
            watch.give_up(
                f"lost the chief at {watch.address} during a call ({exc.code().name}: "
                f"{exc.details()})"
            )
        watch.stop()
        return
    if "verbose" in fit_kwargs:
        tuner.oracle.verbose = fit_kwargs["verbose"]
    tidy_resumed(tuner)  # rows a killed chief's workers could not write, too
    tuner.save()
    chief.serve_oracle(tuner.oracle, poll=poll)
