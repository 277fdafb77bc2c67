"""`automl tensorboard`: serve RUN_DIR/tensorboard (per-trial logs, HParams) on 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from automl_app.errors import UsageError

Say = Callable[[str], None]


def tensorboard(run_dir: str | os.PathLike, port: int = 0, say: Say = print) -> tuple[str, Any]:
    """Start TensorBoard on RUN_DIR/tensorboard bound to 127.0.0.1; return (url, server).

    The server runs in a background thread of this process; port 0 picks a free port.
    """
    import socket

    logdir = Path(run_dir) / "tensorboard"
    if not logdir.is_dir():
        raise UsageError(f"{str(run_dir)!r} has no tensorboard/ folder (no logged training)")
    if port == 0:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    from automl_app.tf_env import tf

    tf()
    from tensorboard import program

    tb = program.TensorBoard()
    tb.configure(argv=[None, "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port)])
    url = tb.launch()
    say(f"TensorBoard for {logdir} at {url} (HParams tab compares trials)")
    return url, tb
