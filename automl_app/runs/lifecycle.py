"""The one run lifecycle: open (new or resumed), interrupt, fail, finish — for every engine.

Every command that writes a run goes through `open_run`: it prepares RUN_DIR (--overwrite /
--resume), takes RUN_DIR/.lock, writes run.json (schema_version, command, engine, config,
versions) and, whatever happens inside the `with` block, leaves a truthful status:
`completed` (via Run.finish), `interrupted` (Ctrl-C / SIGINT) or `failed`. run.json is written
here and only here.

What is not ours is safe: `--overwrite` empties only a run directory (run.json) or an empty one.
A command that fails before it trained anything (its input refused while loading the data) removes
the directory it created; a run directory that failed that way elsewhere (after --overwrite) is
taken by a plain rerun without --overwrite.

The lock is an OS file lock (flock) on RUN_DIR/.lock: a second command on the same run directory
is refused at once, and a killed holder never leaves it stuck (the kernel drops the lock with the
process).
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automl_app import __version__, interrupts
from automl_app.errors import DataError, UsageError
from automl_app.runs.files import atomic_write_json, previous_copy

MANIFEST = "run.json"
LOCK = ".lock"
SCHEMA_VERSION = 2
STATUSES = ("running", "completed", "interrupted", "failed")


def versions() -> dict[str, str]:
    """Versions of the stack that shaped the run (read from metadata, no heavy imports)."""
    from importlib import metadata

    out = {"automl-app": __version__, "python": platform.python_version()}
    for dist in (
        "tensorflow",
        "keras",
        "keras-tuner",
        "autokeras",
        "tensorflow-datasets",
        "optuna",
        "scikit-learn",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def load_manifest(run_dir: str | os.PathLike) -> dict:
    """Read RUN_DIR/run.json; a missing one is a usage error, a damaged one names the damage
    and the way back (the copy `update` kept before its last write, when it is intact)."""
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        raise UsageError(f"{str(run_dir)!r} is not a run directory (no {MANIFEST})")
    manifest, problem = _parse_manifest(path)
    if problem is None:
        return manifest
    prev = previous_copy(path)
    if prev.is_file() and _parse_manifest(prev)[1] is None:
        way = f"restore the copy kept before its last update: cp {prev} {path}"
    else:
        way = "restore it from a backup, or start the run again with --overwrite"
    raise DataError(f"{path} is damaged ({problem}); {way}")


def _parse_manifest(path: Path) -> tuple[dict, str | None]:
    try:
        text = path.read_text(encoding="utf-8")
        manifest = json.loads(text)
    except UnicodeDecodeError as exc:
        return {}, f"not UTF-8 text (byte {exc.start})"
    except json.JSONDecodeError as exc:
        if not text.strip():
            return {}, "empty: truncated?"
        cut = "" if text.rstrip().endswith("}") else " (truncated?)"
        return {}, f"not valid JSON{cut}: {exc.msg} at line {exc.lineno} column {exc.colno}"
    except OSError as exc:
        return {}, f"unreadable: {exc.strerror or exc}"
    if not isinstance(manifest, dict):
        return {}, f"a JSON {type(manifest).__name__}, not an object"
    wrong = [
        k for k, t in (("config", dict), ("status", str)) if not isinstance(manifest.get(k, t()), t)
    ]
    if wrong:
        return {}, f"{', '.join(wrong)} of the wrong type"
    return manifest, None


def update(run_dir: str | os.PathLike, **fields: Any) -> dict:
    """Merge fields into run.json atomically and return the new manifest (the replaced version
    stays as .run.json.prev, see load_manifest)."""
    manifest = load_manifest(run_dir)
    manifest.update(fields)
    atomic_write_json(Path(run_dir) / MANIFEST, manifest, keep_previous=True)
    return manifest


def start(
    run_dir: str | os.PathLike, command: str, config: Mapping[str, Any], **fields: Any
) -> dict:
    """Write the first manifest (status 'running') and return it."""
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "command": command,
        "status": "running",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv[1:],
        "config": dict(config),
        "versions": versions(),
        **fields,
    }
    atomic_write_json(Path(run_dir) / MANIFEST, manifest)
    return manifest


def test_metrics(manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """The run's test metrics (`test`; runs written before schema 2 by train-scratch used
    `test_metrics`)."""
    return manifest.get("test") or manifest.get("test_metrics")


# ----------------------------------------------------------------------------------- the lock


class RunLock:
    """An exclusive flock on RUN_DIR/.lock, released on close or when the process dies."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 300, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise UsageError(
                f"run directory {str(self.path.parent)!r} is in use by {holder}; wait for it to "
                "finish (or stop it) before running another command on it"
            ) from None
        try:  # who holds it, for the next one's message; a full disk only loses that
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} (automl {' '.join(sys.argv[1:3])})".encode(), 0)
        except OSError:
            pass
        self.fd = fd
        return self

    @contextmanager
    def hold(self) -> Iterator[RunLock]:
        """`with runs.lock(d).hold():` releases the lock when the block ends."""
        try:
            yield self
        finally:
            self.release()

    def release(self) -> None:
        if self.fd is not None:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = None


def lock(run_dir: str | os.PathLike) -> RunLock:
    """Take RUN_DIR's lock now or refuse with a one-line UsageError naming the holder."""
    return RunLock(Path(run_dir)).acquire()


# Files a run holds before anything is trained: the manifest (and the copy `update` keeps), the
# lock, and the Python API's DataFrame (data/tables.py FRAME_FILE). A failed run with nothing else
# trained nothing: a plain rerun may take its directory, and a failed command that created it
# removes it (see open_run).
PRE_TRAINING = frozenset({MANIFEST, previous_copy(MANIFEST).name, LOCK, "data.parquet"})


def _entries(run_dir: Path) -> list[Path]:
    """What RUN_DIR holds, the lock aside (a leftover .lock alone counts as empty)."""
    if not run_dir.is_dir():
        return []
    return sorted(p for p in run_dir.iterdir() if p.name != LOCK)


def _trained_nothing(run_dir: Path) -> bool:
    """RUN_DIR holds only pre-training files (and empty folders)."""
    for p in _entries(run_dir):
        if p.is_dir() and not p.is_symlink():
            if any(p.iterdir()):
                return False
        elif p.name not in PRE_TRAINING:
            return False
    return True


def failed_before_training(run_dir: str | os.PathLike) -> bool:
    """RUN_DIR is a run that failed before it trained anything (its input was refused): a plain
    rerun may start again there without --overwrite."""
    run_dir = Path(run_dir)
    path = run_dir / MANIFEST
    if not path.is_file() or not _trained_nothing(run_dir):
        return False
    manifest, problem = _parse_manifest(path)
    return problem is None and manifest.get("status") == "failed"


def _check_replaceable(run_dir: Path) -> None:
    """--overwrite empties only a run (run.json) or an empty folder; never a home directory."""
    resolved = run_dir.resolve()
    if resolved in (Path.home().resolve(), Path(resolved.anchor)):
        raise UsageError(
            f"--overwrite refuses to empty {str(run_dir)!r}: it is "
            f"{'your home directory' if resolved != Path(resolved.anchor) else 'a filesystem root'}"
            "; pass a new or empty --run-dir"
        )
    entries = _entries(run_dir)
    if entries and not (run_dir / MANIFEST).is_file():
        first = entries[0].name + ("/" if entries[0].is_dir() else "")
        more = f" and {len(entries) - 1} more" if len(entries) > 1 else ""
        raise UsageError(
            f"--overwrite refuses to empty {str(run_dir)!r}: it holds files ({first}{more}) but "
            f"no run ({MANIFEST} missing); pass a new or empty --run-dir"
        )


def _clear(run_dir: Path) -> None:
    """--overwrite: remove everything in RUN_DIR but the lock we hold; only a run directory or an
    empty one (checked again here, since this is what deletes)."""
    import shutil

    _check_replaceable(run_dir)
    for p in _entries(run_dir):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def prepare_run_dir(
    run_dir: str | os.PathLike, *, overwrite: bool, resume: bool = False, clear: bool = True
) -> Path:
    """Check RUN_DIR against --overwrite/--resume and create it (exit 2 when they don't fit);
    with --overwrite empty it (open_run passes clear=False and empties it once locked). A run
    that failed before training (failed_before_training) is taken without --overwrite."""
    run_dir = Path(run_dir)
    if resume and overwrite:
        raise UsageError("--resume and --overwrite are exclusive: continue the run or replace it")
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"--run-dir {str(run_dir)!r} is a file, not a directory")
    nonempty = bool(_entries(run_dir))
    if overwrite and nonempty:
        _check_replaceable(run_dir)
    if nonempty and not resume and not overwrite and not failed_before_training(run_dir):
        raise UsageError(
            f"run directory {str(run_dir)!r} already exists; pass --overwrite to start "
            "again or --resume to continue it"
        )
    if resume and not (run_dir / MANIFEST).is_file():
        if not run_dir.exists():
            raise UsageError(f"--resume given but run directory {str(run_dir)!r} does not exist")
        raise UsageError(f"--resume given but {str(run_dir)!r} holds no run ({MANIFEST} missing)")
    run_dir.mkdir(parents=True, exist_ok=True)
    if clear and nonempty and not resume:
        _clear(run_dir)
    return run_dir


def _missing_parts(run_dir: Path) -> list[Path]:
    """RUN_DIR and those of its parents that do not exist yet, deepest first."""
    out, p = [], run_dir.absolute()
    while not p.exists() and p != p.parent:
        out.append(p)
        p = p.parent
    return out


def _discard(run_dir: Path, created: list[Path]) -> bool:
    """Remove what a command that failed before training wrote: RUN_DIR's files, and RUN_DIR and
    its parents when this command created them. Only pre-training files are ever removed."""
    if not _trained_nothing(run_dir):
        return False
    try:
        for p in _entries(run_dir):
            if p.is_dir() and not p.is_symlink():
                p.rmdir()  # empty (checked above)
            else:
                p.unlink()
        if created:
            (run_dir / LOCK).unlink(missing_ok=True)
            for p in created:  # deepest first; rmdir refuses anything not empty
                p.rmdir()
    except OSError:
        pass  # what is left is a failed run that a plain rerun accepts
    return True


# ------------------------------------------------------------------------------ the lifecycle


@dataclass
class Run:
    """An open run: its directory, the manifest it was resumed from (None when new), its clock."""

    dir: Path
    command: str
    engine: str
    previous: dict | None = None
    t_start: float = field(default_factory=time.perf_counter)
    finished: bool = False

    @property
    def resumed(self) -> bool:
        return self.previous is not None

    def elapsed(self) -> float:
        return time.perf_counter() - self.t_start

    def update(self, **fields: Any) -> dict:
        return update(self.dir, **fields)

    def manifest(self) -> dict:
        return load_manifest(self.dir)

    def check_same_data(self, fingerprints: Mapping[str, Any], hint: str) -> None:
        """A resumed run must see the same train/val data (fingerprints in run.json)."""
        if self.previous is None:
            return
        saved = (self.previous.get("data") or {}).get("fingerprint")
        if saved not in (None, dict(fingerprints)):
            raise UsageError(
                f"cannot resume {self.dir}: its training/validation data differ from this "
                f"command's ({hint} are needed)"
            )

    def finish(self, **fields: Any) -> dict:
        """Status completed, with the wall time; returns the final manifest."""
        self.finished = True
        return update(
            self.dir,
            status="completed",
            error=None,
            wall_seconds=round(self.elapsed(), 2),
            **fields,
        )


def _record_end(run_dir: Path, **fields: Any) -> None:
    """The status of a run that ended badly; a run.json that cannot be written then (a full
    disk, a damaged file) must not hide the error that ended the run."""
    try:
        update(run_dir, **fields)
    except (OSError, DataError):
        pass


def _error_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextmanager
def open_run(
    run_dir: str | os.PathLike,
    *,
    command: str,
    engine: str,
    config: Mapping[str, Any],
    overwrite: bool = False,
    resume: bool = False,
    say: Any = None,
    **fields: Any,
) -> Iterator[Run]:
    """Open RUN_DIR for one command; see the module docstring for what it guarantees."""
    created = _missing_parts(Path(run_dir))
    ours = bool(created) or not _entries(Path(run_dir))  # created by this command, or empty
    run_dir = prepare_run_dir(run_dir, overwrite=overwrite, resume=resume, clear=False)
    held = lock(run_dir)
    try:
        if not resume and _entries(run_dir):  # --overwrite, or a run that failed before training
            _clear(run_dir)
        previous = load_manifest(run_dir) if resume else None
        if previous is not None:
            was = (previous.get("command"), previous.get("engine", "kerastuner"))
            if was != (command, engine):
                raise UsageError(
                    f"cannot resume {run_dir}: it is a {was[0]!r} run with engine {was[1]!r}, "
                    f"not {command!r} with {engine}"
                )
            update(
                run_dir,
                status="running",
                config=dict(config),
                resumed=int(previous.get("resumed", 0)) + 1,
                error=None,
                **fields,
            )
            if say is not None:
                say(f"resuming {run_dir} ({previous.get('status')})")
        else:
            start(run_dir, command, config, engine=engine, **fields)
        run = Run(run_dir, command, engine, previous)
        interrupts.install()
        try:
            yield run
        except UsageError as exc:
            if previous is not None:  # a refused resume leaves the run as it was
                _record_end(
                    run_dir,
                    status=previous.get("status"),
                    config=previous.get("config"),
                    resumed=previous.get("resumed", 0),
                    error=previous.get("error"),
                )
            elif not (ours and _discard(run_dir, created)):
                _record_end(run_dir, status="failed", error=_error_line(exc))
            raise
        except BaseException as exc:
            interrupted = isinstance(exc, KeyboardInterrupt)
            if previous is None and ours and isinstance(exc, Exception):
                if _discard(run_dir, created):  # failed before training: leave nothing behind
                    raise
            _record_end(
                run_dir,
                status="interrupted" if interrupted else "failed",
                error=f"interrupted ({exc or 'Ctrl-C'}); continue with --resume"
                if interrupted
                else _error_line(exc),
                wall_seconds=round(run.elapsed(), 2),
            )
            raise
    finally:
        held.release()
