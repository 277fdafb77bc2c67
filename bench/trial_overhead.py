"""Per-trial overhead of the search loop on Fashion-MNIST with the fcn space.

    AUTOML_DATA_DIR=../shared/datasets .venv/bin/python bench/trial_overhead.py

Prints, in one run: first-epoch minus steady-epoch seconds per trial (tracing and start-up cost;
target <= 1 s) and search wall time divided by the sum of all epoch times (1.0 = no overhead).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--max-samples", type=int, default=6000)
    args = p.parse_args()
    os.environ.setdefault(
        "AUTOML_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "datasets")
    )
    from automl_app import workflows
    from automl_app.config import DataConfig, SearchConfig, SpaceConfig, TunerConfig
    from automl_app.tuning.tuners import load_rows

    run_dir = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    cfg = SearchConfig(
        data=DataConfig(dataset="fashion_mnist", max_samples=args.max_samples),
        # batch sizes >= 64 keep the dense space's epochs comparable (16 is ~10x slower)
        space=SpaceConfig(space="fcn", overrides={"batch_size": 128}),
        tuner=TunerConfig(tuner="random", max_trials=args.trials, epochs=args.epochs, seed=0),
        run_dir=str(run_dir),
    )
    marks: dict[str, float] = {}

    def on_line(line: str) -> None:
        if line.startswith("search: "):
            marks["start"] = time.perf_counter()
        if line.startswith("search stopped"):
            marks["end"] = time.perf_counter()

    workflows.search(cfg, say=on_line)
    rows = [r for r in load_rows(run_dir).values() if r.get("steady_epoch_s")]
    overhead = [r["first_epoch_s"] - r["steady_epoch_s"] for r in rows]
    epoch_total = sum(r["seconds_per_epoch"] * r["epochs"] for r in rows)
    wall = marks["end"] - marks["start"]
    print(
        f"{len(rows)} trials x {args.epochs} epochs, fashion_mnist max_samples="
        f"{args.max_samples}, fcn space (batch 128), {os.cpu_count()} cores"
    )
    print(
        f"first-epoch minus steady-epoch: median {statistics.median(overhead):.2f}s, max "
        f"{max(overhead):.2f}s (target <= 1 s)"
    )
    print(
        f"search wall {wall:.1f}s / sum of epoch times {epoch_total:.1f}s = "
        f"{wall / epoch_total:.2f}"
    )


if __name__ == "__main__":
    main()
