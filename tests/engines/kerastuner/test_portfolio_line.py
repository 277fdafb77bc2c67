"""The portfolio line is said once per search: by the process whose oracle holds the queue (a
plain search, or a parallel search's chief), not by its workers or by the finished search's
reload (each printed it again before)."""

from __future__ import annotations

from pathlib import Path

import pytest

from automl_app.config import DataConfig, SearchConfig, SpaceConfig, TunerConfig
from automl_app.data import source
from automl_app.engines.kerastuner.setup import load_space, make_search_tuner


@pytest.mark.parametrize("announce", [True, False])
def test_only_the_announcing_role_says_the_portfolio(tmp_path: Path, announce: bool):
    cfg = SearchConfig(
        data=DataConfig(max_samples=200),
        space=SpaceConfig(space="cnn"),
        tuner=TunerConfig(max_trials=2, epochs=1),
        run_dir=str(tmp_path / "run"),
    )
    space = load_space(cfg)
    assert space.portfolio  # the cnn space has one: the line is the thing under test
    lines: list[str] = []
    make_search_tuner(
        cfg, space, source.load_image_data(cfg.data), tmp_path / "run", lines.append, None,
        announce=announce,
    )  # fmt: skip
    said = [line for line in lines if "then its portfolio" in line]
    assert len(said) == int(announce), lines
