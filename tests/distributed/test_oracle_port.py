"""`--oracle-bind`: KerasTuner's gRPC oracle has no authentication, so a chief that others can
reach says so in one line on stderr, with how to keep the port private (distributed/parallel.py)."""

from __future__ import annotations

import pytest

from automl_app.config import SearchConfig, TunerConfig
from automl_app.distributed import launcher, parallel, workers


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.1.1", "localhost", "::1", "[::1]"])
def test_loopback_binds_need_no_warning(host):
    assert parallel.is_loopback(host)
    assert parallel.open_oracle_warning(host, 8000) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "10.0.0.5", "chief.example"])
def test_other_binds_warn_in_one_line(host):
    line = parallel.open_oracle_warning(host, 8123)
    assert line is not None and "\n" not in line
    assert "no authentication" in line and "private network" in line
    assert "ssh -N -L 8123:127.0.0.1:8123" in line and "--oracle 127.0.0.1:8123" in line


def _run(monkeypatch, tmp_path, bind: str):
    """run_parallel with the launch replaced: what it prints, not what the workers do."""
    seen = {}

    def fake_launch(argv_for_role, settings, on_line=print, on_log_line=None):
        seen["settings"] = settings
        return launcher.LaunchResult(port=settings.port, returncodes={"chief": 0})

    monkeypatch.setattr(launcher, "launch", fake_launch)
    monkeypatch.setattr(workers, "join_addresses", lambda bind: ["10.0.0.5"])
    cfg = SearchConfig(tuner=TunerConfig(workers=2, oracle_bind=bind, oracle_port=8123))
    said: list[str] = []
    record = parallel.run_parallel(cfg, tmp_path, said.append)
    return seen["settings"], said, record


def test_run_parallel_warns_on_stderr_when_the_oracle_is_reachable(monkeypatch, tmp_path, capsys):
    settings, said, record = _run(monkeypatch, tmp_path, "0.0.0.0")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no authentication" in err[0] and "0.0.0.0:8123" in err[0]
    assert not any("authentication" in line for line in said)  # stderr only, once
    assert settings.bind_host == "0.0.0.0" and settings.port == 8123 and settings.n_workers == 2
    assert record["port"] == 8123


def test_run_parallel_is_quiet_on_loopback(monkeypatch, tmp_path, capsys):
    _run(monkeypatch, tmp_path, "127.0.0.1")
    assert capsys.readouterr().err == ""
