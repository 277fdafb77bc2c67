"""`automl dashboard RUN_DIR`: optuna-dashboard over RUN_DIR/optuna.journal, on 127.0.0.1.

Every engine's trial table is mirrored into that Optuna journal as trials finish (runs.journal,
called by runs.save_rows), and Optuna's JournalStorage re-reads the file on each request, so the
dashboard follows a search while it runs and shows it after. A run from before the journal
existed gets one first, built from its trial table by the report's own replay
(report.build_study: the same params, states and per-epoch curves as report/index.html).

The server is optuna-dashboard's WSGI app under the standard library's wsgiref (what its own
`run_server` uses), threaded so a browser's parallel requests do not queue, and without a line
per request. `serve(...)` returns it unstarted; tests start it on port 0 in a thread.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from automl_app import runs
from automl_app.errors import UsageError
from automl_app.runs import journal

Say = Callable[[str], None]
DEFAULT_PORT = 8080


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        pass


class DashboardServer:
    """A running-or-ready optuna-dashboard: `url`, `serve_forever()`, `start()`, `shutdown()`."""

    def __init__(self, httpd: WSGIServer, run_dir: Path, journal_file: Path) -> None:
        self.httpd = httpd
        self.run_dir = run_dir
        self.journal = journal_file
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_port)

    @property
    def url(self) -> str:
        host = self.httpd.server_address[0]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{self.port}/dashboard/"

    def serve_forever(self) -> None:
        """Answer requests until shutdown() (from another thread) or Ctrl-C."""
        try:
            self.httpd.serve_forever(poll_interval=0.2)
        finally:
            self.httpd.server_close()

    def start(self) -> DashboardServer:
        """Serve from a daemon thread (tests, notebooks); returns self."""
        self._thread = threading.Thread(target=self.serve_forever, daemon=True, name="dashboard")
        self._thread.start()
        return self

    def shutdown(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        else:
            self.httpd.server_close()


def prepare_journal(run_dir: str | os.PathLike, say: Say = print) -> Path:
    """RUN_DIR/optuna.journal with every finished trial in it; built first for an older run.

    Raises UsageError when RUN_DIR is not a run directory (no run.json).
    """
    run_dir = Path(run_dir)
    runs.load_manifest(run_dir)  # a directory without run.json is a usage error, said once
    path = journal.journal_path(run_dir)
    if (not path.is_file() or path.stat().st_size == 0) and (run_dir / runs.TRIALS_CSV).is_file():
        from automl_app.report import build_study

        added = journal.add_trials(run_dir, build_study(run_dir).trials)
        say(f"built {path} from {runs.TRIALS_CSV} ({added} trials)")
    else:
        journal.ensure_study(run_dir)
    rows = runs.load_rows(run_dir)
    if rows:  # catch up on rows a failed mirror left out
        journal.mirror(run_dir, rows.values())
    return path


def serve(
    run_dir: str | os.PathLike,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    say: Say = print,
) -> DashboardServer:
    """optuna-dashboard over RUN_DIR's journal, bound to host:port (0: a free port); not started.

    Call `.serve_forever()` (the CLI, until Ctrl-C) or `.start()` (a thread) on the result.
    """
    from optuna_dashboard import wsgi

    run_dir = Path(run_dir)
    path = prepare_journal(run_dir, say)
    app = wsgi(journal.storage(run_dir))
    try:
        httpd = make_server(
            host, port, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
        )
    except OSError as exc:
        raise UsageError(
            f"cannot serve on {host}:{port} ({exc.strerror or exc}); pick another --port "
            "(0 picks a free one)"
        ) from None
    return DashboardServer(httpd, run_dir, path)
