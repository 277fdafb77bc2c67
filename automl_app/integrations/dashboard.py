"""`automl dashboard RUN_DIR|ROOT`: optuna-dashboard over one run's journal, or over every run
under a folder (one study per run), on 127.0.0.1.

Every engine's trial table is mirrored into that Optuna journal as trials finish (runs.journal,
called by runs.save_rows), and Optuna's JournalStorage re-reads the file on each request, so the
dashboard follows a search while it runs and shows it after. A run from before the journal
existed gets one first, built from its trial table by the report's own replay
(report.build_study: the same params, states and per-epoch curves as report/index.html).

The server is optuna-dashboard's WSGI app under the standard library's wsgiref (what its own
`run_server` uses), threaded so a browser's parallel requests do not queue, and without a line
per request. `serve(...)` returns it unstarted; tests start it on port 0 in a thread.

A folder of runs (ROOT without run.json; its runs are the directories with run.json at most two
levels below it, as `automl runs ROOT` lists them): optuna-dashboard serves one storage, so every
run's journal study is copied into one Optuna InMemoryStorage under the run's path relative to
ROOT (`group/run-a`: unique across runs). The copy is refreshed before an API request when it is
more than REFRESH_S old: journals only ever gain trials, so new trials (and runs that appear
later) are appended and study ids stay stable; a live search shows up as it does over one run.
Notes or studies written from the browser land in the copy only and are not saved.
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
REFRESH_S = 2.0  # the folder copy's age before an API request refreshes it (the dashboard's TTL)


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        pass


class DashboardServer:
    """A running-or-ready optuna-dashboard: `url`, `serve_forever()`, `start()`, `shutdown()`."""

    def __init__(
        self,
        httpd: WSGIServer,
        run_dir: Path,
        journal_file: Path | None,
        merged: MergedStudies | None = None,
    ) -> None:
        self.httpd = httpd
        self.run_dir = run_dir  # the run, or the folder of runs
        self.journal = journal_file  # None over a folder of runs
        self.merged = merged  # over a folder of runs: the studies' one copy
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


def find_runs(root: str | os.PathLike) -> list[Path]:
    """Run directories (run.json) one or two levels below ROOT, as `automl runs ROOT` finds them."""
    root = Path(root)
    found: list[Path] = []
    for pattern in (f"*/{runs.MANIFEST}", f"*/*/{runs.MANIFEST}"):
        found += [p.parent for p in sorted(root.glob(pattern)) if p.is_file()]
    return found


class MergedStudies:
    """Every run's journal study under ROOT, copied into one InMemoryStorage (what one
    optuna-dashboard serves), named by the run's path relative to ROOT; `refresh()` appends
    what the journals gained since (journals are append-only, so ids stay stable)."""

    def __init__(self, root: str | os.PathLike) -> None:
        from optuna.storages import InMemoryStorage

        self.root = Path(root)
        self.storage = InMemoryStorage()
        self._sources: dict[Path, list[Any]] = {}  # run → [journal storage, its study id, ours, n]
        self._lock = threading.Lock()
        self._last = 0.0
        self.found = 0  # runs found under ROOT when it was first prepared

    @property
    def names(self) -> list[str]:
        """The studies served (the runs' paths under ROOT)."""
        return [s.study_name for s in self.storage.get_all_studies()]

    def name_of(self, run_dir: Path) -> str:
        return run_dir.relative_to(self.root).as_posix()

    def refresh(self, max_age: float = 0.0) -> None:
        """Copy new runs and new trials in, unless the copy is younger than `max_age` seconds."""
        import time

        with self._lock:
            if max_age and time.monotonic() - self._last < max_age:
                return
            for run_dir in find_runs(self.root):
                if run_dir not in self._sources and journal.journal_path(run_dir).is_file():
                    self._add_run(run_dir)
            for src in self._sources.values():
                self._copy_new_trials(src)
            self._last = time.monotonic()

    def _add_run(self, run_dir: Path) -> None:
        store = journal.storage(run_dir)  # the file exists: opening it writes nothing
        summaries = store.get_all_studies()
        if not summaries:
            return  # an empty journal: the run's first trial brings its study
        theirs = summaries[0]._study_id
        ours = self.storage.create_new_study(
            store.get_study_directions(theirs), study_name=self.name_of(run_dir)
        )
        for key, value in store.get_study_user_attrs(theirs).items():
            self.storage.set_study_user_attr(ours, key, value)
        for key, value in store.get_study_system_attrs(theirs).items():
            self.storage.set_study_system_attr(ours, key, value)  # the objective's name
        self.storage.set_study_user_attr(ours, "run_dir", str(run_dir))
        self._sources[run_dir] = [store, theirs, ours, 0]

    def _copy_new_trials(self, src: list[Any]) -> None:
        store, theirs, ours, n = src
        trials = store.get_all_trials(theirs, deepcopy=False)
        for trial in trials[n:]:
            self.storage.create_new_trial(ours, template_trial=trial)
        src[3] = len(trials)


def prepare_root(root: str | os.PathLike, say: Say = print) -> MergedStudies:
    """Every run under ROOT with its journal ready, copied into one storage.

    A run whose journal cannot be prepared is named and left out; no runs is a UsageError.
    """
    found = find_runs(root)
    if not found:
        raise UsageError(
            f"{str(root)!r} is not a run directory and holds no runs (run.json) one or two "
            "levels below it; pass a run directory or a folder of runs"
        )
    for run_dir in found:
        try:
            prepare_journal(run_dir, say)
        except Exception as exc:  # one unreadable run does not hide the others
            say(f"left out {run_dir}: {exc}")
    merged = MergedStudies(root)
    merged.found = len(found)
    merged.refresh()
    return merged


def _refreshing(app: Callable, merged: MergedStudies) -> Callable:
    """The dashboard's WSGI app, refreshing the folder's copy before an API request."""

    def wrapped(environ: dict, start_response: Callable) -> Any:
        if str(environ.get("PATH_INFO", "")).startswith("/api/"):
            merged.refresh(max_age=REFRESH_S)
        return app(environ, start_response)

    return wrapped


def serve(
    run_dir: str | os.PathLike,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    say: Say = print,
) -> DashboardServer:
    """optuna-dashboard over RUN_DIR's journal, or over every run under a folder of runs (one
    study each), bound to host:port (0: a free port); not started.

    Call `.serve_forever()` (the CLI, until Ctrl-C) or `.start()` (a thread) on the result.
    """
    from optuna_dashboard import wsgi

    run_dir = Path(run_dir)
    merged: MergedStudies | None = None
    path: Path | None = None
    if run_dir.is_dir() and not (run_dir / runs.MANIFEST).is_file():
        merged = prepare_root(run_dir, say)
        app = _refreshing(wsgi(merged.storage), merged)
    else:
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
    return DashboardServer(httpd, run_dir, path, merged)
