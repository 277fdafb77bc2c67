"""Random search vs TPE + median pruning on Fashion-MNIST (fcn space) under one wall budget.

    AUTOML_DATA_DIR=../shared/datasets .venv/bin/python bench/search_efficiency.py
    (--budget 3m --seeds 0 1 2 --max-samples 12000 --epochs 4 --tpe-startup 5)

Each method runs once per seed with the same wall-clock budget. Printed per method: the median
best validation accuracy, and the median time at which random search's final best (per seed)
was first reached. The claim under test: TPE + pruning gets there in <= 0.5x random's time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

METHODS = {
    "random": {"tuner": "random", "prune": "none"},
    "tpe+median": {"tuner": "tpe", "prune": "median"},
}


def run_once(method: str, seed: int, args) -> dict:
    from automl_app import workflows
    from automl_app.config import DataConfig, SearchConfig, SpaceConfig, TunerConfig
    from automl_app.tuning.budget import parse_duration
    from automl_app.tuning.tuners import load_rows

    run_dir = Path(tempfile.mkdtemp(prefix=f"bench-eff-{method}-{seed}-"))
    cfg = SearchConfig(
        data=DataConfig(dataset="fashion_mnist", max_samples=args.max_samples, seed=0),
        space=SpaceConfig(space="fcn"),
        tuner=TunerConfig(
            tuner=METHODS[method]["tuner"],
            prune=METHODS[method]["prune"],
            tpe_startup=args.tpe_startup if METHODS[method]["tuner"] == "tpe" else None,
            max_trials=1000,
            epochs=args.epochs,
            seed=seed,
            time_budget=parse_duration(args.budget),
            max_failures=50,
        ),
        run_dir=str(run_dir),
    )
    timeline: list[tuple[float, float]] = []  # (seconds since start, best so far)
    t0 = time.perf_counter()
    best = float("-inf")

    def on_line(line: str) -> None:
        nonlocal best
        if not line.startswith("trial "):
            return
        for row in load_rows(run_dir).values():
            if row.get("objective") is not None and row["status"] in ("completed", "pruned"):
                best = max(best, float(row["objective"]))
        timeline.append((time.perf_counter() - t0, best))

    summary = workflows.search(cfg, say=on_line)
    return {
        "method": method,
        "seed": seed,
        "timeline": timeline,
        "final_best": best,
        "trials": summary["trials"],
        "test_accuracy": summary["test"]["accuracy"],
    }


def _fmt(seconds: float) -> str:
    return "never" if seconds == float("inf") else f"{seconds:.0f}s"


def first_time_at(timeline, target: float) -> float:
    for t, b in timeline:
        if b >= target - 1e-12:
            return t
    return float("inf")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", default="3m")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--max-samples", type=int, default=12000)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument(
        "--tpe-startup", type=int, default=5, help="TPE's random start-up trials (Optuna: 10)"
    )
    args = p.parse_args()
    os.environ.setdefault(
        "AUTOML_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "datasets")
    )
    from automl_app.data import datasets

    datasets.load("fashion_mnist", max_samples=args.max_samples)  # prepare TFDS: no run pays it
    results = {m: [run_once(m, s, args) for s in args.seeds] for m in METHODS}
    targets = {r["seed"]: r["final_best"] for r in results["random"]}
    print(
        f"budget {args.budget} per run, seeds {args.seeds}, fcn space, fashion_mnist "
        f"max_samples={args.max_samples}, {args.epochs} epochs/trial, "
        f"--tpe-startup {args.tpe_startup}, {os.cpu_count()} cores"
    )
    medians = {}
    for m, rs in results.items():
        best = statistics.median(r["final_best"] for r in rs)
        times = [first_time_at(r["timeline"], targets[r["seed"]]) for r in rs]
        medians[m] = statistics.median(times)
        trials = [r["trials"]["total"] for r in rs]
        print(
            f"{m:12s} median best val_accuracy {best:.4f} | median time to random's final "
            f"best {medians[m]:.0f}s (per seed {[_fmt(t) for t in times]}) | trials {trials}"
        )
    ratio = medians["tpe+median"] / medians["random"] if medians["random"] else float("nan")
    print(f"ratio tpe+median / random time-to-target: {ratio:.2f} (target <= 0.5)")
    print("RESULT " + json.dumps({"ratio": ratio, "medians_s": medians}))


if __name__ == "__main__":
    main()
