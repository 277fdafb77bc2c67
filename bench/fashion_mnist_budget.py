"""The whole search command against the space's defaults trained for the same wall-clock time.

    AUTOML_DATA_DIR=../shared/datasets .venv/bin/python bench/fashion_mnist_budget.py
    (--time-budget 10m --seeds 1 2 3 --space cnn --tuner random)
    .venv/bin/python bench/fashion_mnist_budget.py --data-dir ../shared/datasets/intel_scenes \
        --time-budget 5m --seeds 1 --scratch

Per seed, side by side:
- search: `automl search image --dataset fashion_mnist --space SPACE --time-budget B` (Python API,
  the CLI's defaults otherwise): explore on a subset, promote the best few, train the winner,
  evaluate, export, report. `--data-dir DIR` searches an image folder instead (DIR/{train,test}:
  test/ is the test split; the CLI's 64 px);
- defaults: the space's default configuration trained on the whole training split until B (less
  a few seconds for the evaluation) with the search's own refit recipe, which the defaults get
  too: a cosine learning rate over the time left reaching 0 at the deadline, the weight
  average (EMA) or the last weights, whichever validates better, and `--tta auto` (the
  view, mirror or 1-pixel shifts, that validates best, or none); then evaluated on the test
  split, as a hand-written Keras script would. No export, no report: it only has to train.
- scratch (`--scratch`, folders): `automl train-scratch mobilenetv2 --recipe
  mobilenetv2_scratch_fast --image-size 64` for as many epochs as fit B, counted from a one- and
  a three-epoch run of the same command (whose time is not part of the figure).
Printed: test accuracies per seed, mean ± std, differences, and wall / budget. Figures depend on
the machine and on what else runs on it: quote them with its core count, load, and each arm's
`steal_s` (CPU seconds the hypervisor gave to other guests during it, from /proc/stat; a
contended host slowed this 2-core VM's epochs by a third in one run while the load average
looked as usual).
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

EVAL_RESERVE_S = 5.0


def run_search(args, seed: int, budget_s: float) -> dict:
    from automl_app import spaces, workflows
    from automl_app.config import SearchConfig, SpaceConfig, TunerConfig

    run_dir = tempfile.mkdtemp(prefix=f"bench-budget-{args.space}-{seed}-")
    cfg = SearchConfig(
        data=_data_config(args, seed),
        space=SpaceConfig(space=args.space, overrides=spaces.parse_set(args.set)),
        tuner=TunerConfig(
            tuner=args.tuner,
            prune=args.prune,
            max_trials=args.max_trials,
            epochs=args.epochs,
            seed=seed,
            time_budget=budget_s,
        ),
        run_dir=run_dir,
        overwrite=True,
    )
    t0 = time.perf_counter()
    manifest = workflows.search(
        cfg, say=lambda line: print(f"  [search {seed}] {line}", flush=True)
    )
    wall = time.perf_counter() - t0
    return {
        "test_accuracy": manifest["test"]["accuracy"],
        "wall_s": round(wall, 1),
        "trials": manifest["trials"],
        "exported": manifest.get("exported"),
        "phases": manifest.get("phases"),
        "best_hyperparameters": manifest["best_trial"]["hyperparameters"],
        "tta": manifest.get("tta"),
        "run_dir": run_dir,
    }


def _data_config(args, seed: int):
    from automl_app.config import DataConfig

    if args.data_dir:
        return DataConfig(data_dir=args.data_dir, max_samples=args.max_samples, seed=seed)
    return DataConfig(dataset="fashion_mnist", max_samples=args.max_samples, seed=seed)


def run_scratch(args, seed: int, budget_s: float) -> dict:
    """train-scratch on the folder for the epochs that fit the budget (from two probe runs)."""
    import subprocess

    def once(epochs: int) -> dict:
        run_dir = tempfile.mkdtemp(prefix=f"bench-scratch-{seed}-{epochs}-")
        cmd = [
            sys.executable, "-m", "automl_app.cli", "train-scratch", "mobilenetv2",
            "--data-dir", args.data_dir, "--recipe", "mobilenetv2_scratch_fast",
            "--image-size", "64", "--epochs", str(epochs), "--seed", str(seed),
            "--run-dir", run_dir, "--overwrite", "--quiet",
        ]  # fmt: skip
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        manifest = json.loads((Path(run_dir) / "run.json").read_text())
        return {"manifest": manifest, "wall_s": time.perf_counter() - t0, "run_dir": run_dir}

    # Every run's first epoch decodes and caches the folder and traces the model, so one
    # one-epoch probe planned too few epochs: the arm used 125 s of a 300 s budget on
    # intel_scenes. Two probes (1 and 3 epochs) give the later epochs' cost (measured there:
    # 57.7 s of wall for the one-epoch run, 20.0 s per later epoch); the run of E epochs takes
    # the one-epoch run's wall plus E − 1 of those.
    first, third = once(1), once(3)
    steady = (_find(third["manifest"], "fit_seconds") - _find(first["manifest"], "fit_seconds")) / 2
    epochs = 1 + max(0, int((budget_s - first["wall_s"]) / max(steady, 1e-6)))
    real = once(epochs)
    return {
        "test_accuracy": real["manifest"]["test"]["accuracy"],
        "wall_s": round(real["wall_s"], 1),
        "epochs": epochs,
        "probe_first_wall_s": round(first["wall_s"], 1),
        "probe_later_epoch_s": round(steady, 2),
        "run_dir": real["run_dir"],
    }


def _find(obj, key: str):
    """The first value of `key` anywhere in a nested run.json."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        obj = list(obj.values())
    if isinstance(obj, list):
        for item in obj:
            found = _find(item, key)
            if found is not None:
                return found
    return None


def run_defaults(args, seed: int, budget_s: float) -> dict:
    """The space's defaults, trained for the budget on all training examples."""
    import numpy as np

    t0 = time.perf_counter()
    from automl_app import models, spaces
    from automl_app.data import source
    from automl_app.engines.kerastuner import schedule, tta
    from automl_app.evaluate import classification_metrics
    from automl_app.models.hypermodel import VAL_BATCH, SpaceHyperModel, batches
    from automl_app.tf_env import tf
    from automl_app.tuning.budget import Deadline, deadline_callback

    deadline = Deadline(at=time.time() + budget_s - EVAL_RESERVE_S, seconds=budget_s)
    t = tf()
    import keras
    import keras_tuner as kt

    keras.utils.set_random_seed(seed)
    data = source.load_image_data(_data_config(args, seed))
    space = spaces.load(args.space, known=models.known(), overrides=spaces.parse_set(args.set))
    hm = SpaceHyperModel(space, data.info.image_shape, data.info.num_classes, seed=seed)
    train = t.data.Dataset.from_tensor_slices((data.x_train, data.y_train)).cache()
    val = t.data.Dataset.from_tensor_slices((data.x_val, data.y_val)).cache()
    hp = kt.HyperParameters()
    model = hm.build(hp)
    batch = int(hp.values.get("batch_size") or 32)
    per_epoch_steps = -(-len(data.x_train) // batch)
    # The search's refit recipe (the defaults get it too): a cosine learning rate over the time
    # left, reaching 0 at the deadline, and the weight average kept when it validates better.
    val_s = 2.0
    timed = schedule.timed_schedule(model, deadline, val_s, None, 0.0, per_epoch_steps)
    last = schedule.last_weights_class()()
    hm.fit(
        hp,
        model,
        train,
        epochs=schedule.MAX_REFIT_EPOCHS + 1,
        steps_per_epoch=per_epoch_steps,
        verbose=0,
        callbacks=[timed, last, deadline_callback(deadline)],
    )
    fit_args = {"val": val}
    objective = kt.Objective("val_accuracy", "max")
    metrics = schedule.val_metrics(hm, model, fit_args)
    metrics, kept = schedule.average_or_last(hm, model, fit_args, metrics, last.weights, objective)
    # the search's --tta auto too: the view (mirror, 1-pixel shifts) that validates best, or none
    model, tta_record = tta.choose("auto", hm, model, fit_args, objective, lambda line: None)
    x_test, y_test = data.test()
    ds = t.data.Dataset.from_tensor_slices((x_test, y_test))
    probs = model.predict(batches(ds, VAL_BATCH, shuffle=False, seed=None), verbose=0)
    acc = classification_metrics(np.asarray(y_test), probs)["accuracy"]
    return {
        "test_accuracy": acc,
        "wall_s": round(time.perf_counter() - t0, 1),
        "epochs_trained": round(timed.steps / per_epoch_steps, 2),
        "weights": kept,
        "tta": tta_record,
        "val_accuracy": round(metrics["val_accuracy"], 4),
        "defaults": hp.values,
    }


def cpu_steal_s() -> float | None:
    """CPU seconds stolen by the hypervisor since boot, all cores (None off Linux)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _stolen(arm, *args) -> dict:
    """Run one arm; its result with the CPU seconds stolen meanwhile."""
    before = cpu_steal_s()
    out = arm(*args)
    after = cpu_steal_s()
    if before is not None and after is not None:
        out["steal_s"] = round(after - before, 1)
    return out


def _mean_std(xs: list[float]) -> str:
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.4f} ± {sd:.4f}"


def main() -> None:
    from automl_app.tuning.budget import parse_duration

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="cnn", help="cnn (the default space) or fcn")
    p.add_argument("--tuner", default="random", help="the CLI's default: random")
    p.add_argument("--prune", default="none")
    p.add_argument("--time-budget", "--budget", dest="budget", default="10m")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--max-trials", type=int, default=100)
    p.add_argument("--epochs", type=int, default=3, help="epochs per explore trial")
    p.add_argument("--max-samples", type=int, default=None)
    p.add_argument("--set", action="append", default=[], help="name=value fixes (repeatable)")
    p.add_argument("--only", choices=["search", "defaults"], default=None)
    p.add_argument("--data-dir", default=None, help="an image folder instead of Fashion-MNIST")
    p.add_argument("--scratch", action="store_true", help="add the train-scratch arm (folders)")
    args = p.parse_args()
    os.environ.setdefault(
        "AUTOML_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "datasets")
    )
    from automl_app.data import datasets

    budget_s = parse_duration(args.budget)
    if not args.data_dir:
        datasets.load("fashion_mnist", max_samples=args.max_samples)  # prepare TFDS once
    results = []
    for seed in args.seeds:
        row = {"seed": seed, "load_before": round(os.getloadavg()[0], 2)}
        if args.only != "defaults":
            row["search"] = _stolen(run_search, args, seed, budget_s)
        if args.only != "search":
            row["defaults"] = _stolen(run_defaults, args, seed, budget_s)
        if args.scratch and args.data_dir and args.only is None:
            row["scratch"] = _stolen(run_scratch, args, seed, budget_s)
        row["load_after"] = round(os.getloadavg()[0], 2)
        print("SEED " + json.dumps(row, default=str), flush=True)
        results.append(row)
    print(
        f"{args.data_dir or 'fashion_mnist'}, space {args.space}, tuner {args.tuner}, prune {args.prune}, budget "
        f"{budget_s:.0f}s, seeds {args.seeds}, max_samples {args.max_samples}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"
    )
    summary: dict = {"budget_s": budget_s, "seeds": args.seeds, "space": args.space}
    for kind in ("search", "defaults", "scratch"):
        rows = [r[kind] for r in results if kind in r]
        if not rows:
            continue
        accs = [r["test_accuracy"] for r in rows]
        walls = [r["wall_s"] / budget_s for r in rows]
        print(
            f"{kind:8s} test accuracy {_mean_std(accs)} (per seed {[round(a, 4) for a in accs]})"
            f" | wall/budget {_mean_std(walls)} (max {max(walls):.3f})"
            f" | CPU stolen {[r.get('steal_s') for r in rows]} s"
        )
        summary[kind] = {"accuracies": accs, "wall_over_budget": walls}
    if all("search" in r and "defaults" in r for r in results):
        diffs = [r["search"]["test_accuracy"] - r["defaults"]["test_accuracy"] for r in results]
        print(
            f"difference search - defaults: {_mean_std(diffs)} (issue 18's aims: >= +0.003 "
            "mean, the search >= 0.935 mean, wall <= 630 s at 10 minutes)"
        )
        summary["difference"] = diffs
    if all("search" in r and "scratch" in r for r in results) and results:
        diffs = [r["search"]["test_accuracy"] - r["scratch"]["test_accuracy"] for r in results]
        print(f"difference search - scratch: {_mean_std(diffs)}")
        summary["difference_scratch"] = diffs
    print("RESULT " + json.dumps(summary))


if __name__ == "__main__":
    main()
