"""Resident memory of a search process over a long tiny search (digits, fcn space, 1 epoch).

    .venv/bin/python bench/memory_50_trials.py            # 50 trials, ~5 min on 2 busy cores
    .venv/bin/python bench/memory_50_trials.py --workers 2

Runs `automl search` as a subprocess and samples the resident set size (RSS) of the search
process (with --workers: of every process of the search, each role apart) every 0.2 s, next to
the number of trials recorded in trials.jsonl. Prints the RSS after trial 5, 10, 25 and the last,
the peak, and the growth per trial from trial 10 on (a least-squares slope): bounded memory means
a slope near 0 MB/trial (TensorFlow's caches fill during the first trials, then stay).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]


def measure(n_trials: int, run_dir: Path, workers: int = 1, interval: float = 0.2) -> dict:
    """Run the search; return {role: [(trials_done, rss_mb), ...]} and the wall time."""
    argv = [sys.executable, "-m", "automl_app.cli", "search", "image", "--space", "fcn",
            "--set", "num_layers=2", "--set", "layer_size=64", "--set", "batch_size=64",
            "--max-samples", "300", "--epochs", "1", "--seed", "0", "--tuner", "random",
            "--max-trials", str(n_trials), "--run-dir", str(run_dir), "--overwrite"]  # fmt: skip
    if workers > 1:
        argv += ["--workers", str(workers)]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root = psutil.Process(proc.pid)
    samples: dict[str, list[tuple[int, float]]] = defaultdict(list)
    t0 = time.monotonic()
    while proc.poll() is None:
        done = _trials_done(run_dir)
        for name, p in [("search", root), *_roles(root)]:
            try:
                samples[name].append((done, p.memory_info().rss / 2**20))
            except psutil.NoSuchProcess:
                pass
        time.sleep(interval)
    if proc.returncode != 0:
        raise SystemExit(f"search failed: {proc.stderr.read().decode()[-2000:]}")
    return {"samples": dict(samples), "wall_s": time.monotonic() - t0}


def _trials_done(run_dir: Path) -> int:
    try:
        return len((run_dir / "trials.jsonl").read_text().splitlines())
    except OSError:
        return 0


def _roles(root: psutil.Process) -> list[tuple[str, psutil.Process]]:
    out = []
    for p in root.children(recursive=True):
        try:
            cmd = p.cmdline()
        except psutil.NoSuchProcess:
            continue
        if "--tuner-id" in cmd and "-c" not in cmd:
            out.append((cmd[cmd.index("--tuner-id") + 1], p))
    return out


def summary(points: list[tuple[int, float]], n_trials: int) -> dict:
    """RSS (MB) at a few trial counts, the peak, and the slope from trial 10 on."""
    at = {}
    for k in (5, 10, 25, n_trials):
        after = [rss for done, rss in points if done >= k]
        if after:
            at[k] = round(after[0], 1)
    tail = [(d, r) for d, r in points if d >= 10]
    slope = None
    if len({d for d, _ in tail}) >= 2:
        mx = sum(d for d, _ in tail) / len(tail)
        my = sum(r for _, r in tail) / len(tail)
        var = sum((d - mx) ** 2 for d, _ in tail)
        slope = round(sum((d - mx) * (r - my) for d, r in tail) / var, 2)
    return {"rss_mb_at": at, "peak_mb": round(max(r for _, r in points), 1), "mb_per_trial": slope}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=50)
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    run_dir = Path(tempfile.mkdtemp(prefix="bench-memory-")) / "run"
    result = measure(args.trials, run_dir, args.workers)
    print(f"{args.trials} trials, --workers {args.workers}: {result['wall_s']:.0f} s")
    for role, points in sorted(result["samples"].items()):
        s = summary(points, args.trials)
        at = ", ".join(f"after trial {k}: {v:.0f} MB" for k, v in s["rss_mb_at"].items())
        print(f"{role}: RSS {at}; peak {s['peak_mb']:.0f} MB; {s['mb_per_trial']} MB/trial")


if __name__ == "__main__":
    main()
