"""Default search on Fashion-MNIST inside a wall-clock budget; prints test accuracy and wall time.

    AUTOML_DATA_DIR=../shared/datasets .venv/bin/python bench/fashion_mnist_budget.py --space cnn
    AUTOML_DATA_DIR=../shared/datasets .venv/bin/python bench/fashion_mnist_budget.py --space fcn

It runs the real `automl search image` workflow (Python API) with the budget given and prints one
summary line per run plus the ratio of wall time to budget. Figures depend on the machine: quote
them with its core count.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="cnn", help="cnn (default space) or fcn")
    p.add_argument("--tuner", default="tpe")
    p.add_argument("--budget", default="10m", help="wall-clock budget for the search (e.g. 10m)")
    p.add_argument("--max-trials", type=int, default=50)
    p.add_argument("--epochs", type=int, default=None, help="epochs per trial")
    p.add_argument("--max-samples", type=int, default=None)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--set", action="append", default=[], help="name=value fixes (repeatable)")
    p.add_argument("--prune", default="median", help="none, median or asha")
    p.add_argument(
        "--enqueue",
        action="append",
        default=['{"batch_size": 64}'],
        help="configurations to run first (JSON); the default starts from the space's defaults",
    )
    p.add_argument("--run-dir", default=None)
    args = p.parse_args()
    os.environ.setdefault(
        "AUTOML_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "datasets")
    )

    from automl_app import spaces, workflows
    from automl_app.config import DataConfig, SearchConfig, SpaceConfig, TunerConfig
    from automl_app.tuning.budget import parse_duration
    from automl_app.tuning.enqueue import parse_enqueue

    budget_s = parse_duration(args.budget)
    epochs = args.epochs or (4 if args.space == "cnn" else 6)
    run_dir = args.run_dir or tempfile.mkdtemp(prefix=f"bench-fmnist-{args.space}-")
    cfg = SearchConfig(
        data=DataConfig(dataset="fashion_mnist", max_samples=args.max_samples, seed=args.seed),
        space=SpaceConfig(space=args.space, overrides=spaces.parse_set(args.set)),
        tuner=TunerConfig(
            prune=args.prune,
            enqueue=tuple(parse_enqueue(args.enqueue)),
            tuner=args.tuner,
            max_trials=args.max_trials,
            epochs=epochs,
            seed=args.seed,
            time_budget=budget_s,
        ),
        run_dir=run_dir,
        overwrite=True,
    )
    t0 = time.perf_counter()
    summary = workflows.search(cfg, say=lambda line: print(line, flush=True))
    wall = time.perf_counter() - t0
    result = {
        "space": args.space,
        "tuner": args.tuner,
        "budget_s": budget_s,
        "epochs_per_trial": epochs,
        "trials": summary["trials"],
        "stop_reason": summary.get("stop_reason"),
        "best_val": summary["best_trial"]["score"],
        "test_accuracy": summary["test"]["accuracy"],
        "wall_s": round(wall, 1),
        "wall_over_budget": round(wall / budget_s, 3),
        "cores": os.cpu_count(),
        "run_dir": run_dir,
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
