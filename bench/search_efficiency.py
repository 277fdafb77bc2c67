"""TPE + median pruning against random search: time to reach random search's final best.

    AUTOML_DATA_DIR=../shared/datasets .venv/bin/python bench/search_efficiency.py
    (--time-budget 5m --seeds 0 1 2 3 4 --max-samples 6000 --epochs 3 --tpe-startup 5)

Each method runs once per seed (fcn space, Fashion-MNIST) with the same --time-budget, through
the real workflow: both start from the space's defaults. The bench measures the search, so the
explore phase of the budget schedule (engines/kerastuner/schedule.py) gets --explore-share of it
(0.9; the command's own share is 0.35 before its final refit). Per seed, random search's best
validation accuracy over its explore phase is the target; for each method the bench records when
(seconds since the search began) a trial first reached it. Printed per method: the median time to
the target with its spread (min–max, and how many seeds never reached it), the median best
validation accuracy, the trial counts; then the ratio of the medians (the claim: <= 0.5).
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
    tpe = METHODS[method]["tuner"] == "tpe"
    cfg = SearchConfig(
        data=DataConfig(dataset="fashion_mnist", max_samples=args.max_samples, seed=0),
        space=SpaceConfig(space="fcn"),
        tuner=TunerConfig(
            tuner=METHODS[method]["tuner"],
            prune=METHODS[method]["prune"],
            tpe_startup=args.tpe_startup if tpe else None,
            max_trials=1000,
            epochs=args.epochs,
            seed=seed,
            time_budget=parse_duration(args.budget),
            max_failures=50,
        ),
        run_dir=str(run_dir),
    )
    timeline: list[tuple[float, float]] = []  # (seconds since the search began, best so far)
    t0 = None
    best = float("-inf")

    def on_line(line: str) -> None:
        nonlocal best, t0
        if line.startswith("search: ") and t0 is None:
            t0 = time.perf_counter()
        if not line.startswith("trial ") or "[" not in line:
            return
        for row in load_rows(run_dir).values():
            if row.get("objective") not in (None, "") and row["status"] in ("completed", "pruned"):
                best = max(best, float(row["objective"]))
        timeline.append((time.perf_counter() - (t0 or time.perf_counter()), best))

    summary = workflows.search(cfg, say=on_line)
    explore = (summary.get("phases") or [{}])[0]
    return {
        "method": method,
        "seed": seed,
        "timeline": timeline,
        "final_best": best,
        "trials": explore.get("trials", summary["trials"]["total"]),
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
    p.add_argument("--time-budget", "--budget", dest="budget", default="5m")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--max-samples", type=int, default=6000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument(
        "--tpe-startup", type=int, default=5, help="TPE's random start-up trials (Optuna: 10)"
    )
    p.add_argument(
        "--explore-share", type=float, default=0.9, help="of the budget, for the search itself"
    )
    args = p.parse_args()
    from automl_app.engines.kerastuner import schedule

    schedule.EXPLORE_SHARE = args.explore_share  # the bench times the search, not the refit
    os.environ.setdefault(
        "AUTOML_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "datasets")
    )
    from automl_app.data import datasets

    datasets.load("fashion_mnist", max_samples=args.max_samples)  # prepare TFDS: no run pays it
    results: dict[str, list[dict]] = {m: [] for m in METHODS}
    for seed in args.seeds:  # methods interleaved per seed: both see the same machine load
        for m in METHODS:
            r = run_once(m, seed, args)
            r["load"] = round(os.getloadavg()[0], 2)
            print("RUN " + json.dumps({k: v for k, v in r.items() if k != "timeline"}), flush=True)
            results[m].append(r)
    targets = {r["seed"]: r["final_best"] for r in results["random"]}
    print(
        f"budget {args.budget} per run, seeds {args.seeds}, fcn space, fashion_mnist "
        f"max_samples={args.max_samples}, {args.epochs} epochs/trial, "
        f"--tpe-startup {args.tpe_startup}, explore share {args.explore_share}, "
        f"{os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    medians = {}
    for m, rs in results.items():
        best = statistics.median(r["final_best"] for r in rs)
        times = [first_time_at(r["timeline"], targets[r["seed"]]) for r in rs]
        reached = [t for t in times if t != float("inf")]
        medians[m] = statistics.median(times)
        spread = f"{min(reached):.0f}-{max(reached):.0f}s" if reached else "-"
        print(
            f"{m:12s} median time to random's final best {_fmt(medians[m])} (spread {spread}, "
            f"never {len(times) - len(reached)}/{len(times)}; per seed "
            f"{[_fmt(t) for t in times]}) | median best val_accuracy {best:.4f} | trials "
            f"{[r['trials'] for r in rs]} | test {[round(r['test_accuracy'], 4) for r in rs]}"
        )
    ratio = medians["tpe+median"] / medians["random"] if medians["random"] else float("nan")
    print(f"ratio tpe+median / random time-to-target: {ratio:.2f} (target <= 0.5)")
    print("RESULT " + json.dumps({"ratio": ratio, "medians_s": medians}))


if __name__ == "__main__":
    main()
