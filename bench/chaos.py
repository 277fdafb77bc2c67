"""The chaos test's search, once with its faults and once without: what the faults cost.

    sudo AUTOML_DATA_DIR=../shared/datasets .venv/bin/python bench/chaos.py [--trials 60]

One search over two network namespaces (two workers beside the chief on host 1, two `automl
worker` on host 2; tests/support/faults.py `chaos`): a random local worker SIGKILLed, the other
SIGSTOPped past the liveness limit (8 s), the link cut until host 2's workers gave up and
restored, the chief SIGKILLed and the search resumed with `--resume`. Then the same search with no
fault. Printed: the faults, the workers they hit, the trials re-run, the trials lost (must be 0)
and both walls with their ratio. Needs root and iproute2 (as the test); one run of each, so the
figures depend on the machine and its load: quote them with its core count and load.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from support.faults import chaos, rows  # noqa: E402
from support.hosts import make_hosts  # noqa: E402


def one(trials: int, faults: bool, seed: int):
    run = Path(tempfile.mkdtemp(prefix="bench-chaos-")) / "run"
    with make_hosts() as hosts:
        result = chaos(hosts, run, max_trials=trials, seed=seed, faults=faults)
    done = rows(run)
    lost = trials - sum(r["status"] == "completed" for r in done.values())
    return result, lost


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    t0 = time.time()
    hit, lost = one(args.trials, True, args.seed)
    calm, calm_lost = one(args.trials, False, args.seed)
    print(f"chaos: {args.trials} trials, 4 workers on 2 hosts, {os.cpu_count()} cores, load "
          f"{load:.1f} before; seed {args.seed}")  # fmt: skip
    print("faults injected: " + "; ".join(hit.faults))
    print(f"faults {len(hit.faults)}, workers hit {len(hit.hit_pids)}, re-runs {hit.reruns()}, "
          f"lost {lost}")  # fmt: skip
    print(f"wall with faults {hit.wall:.0f} s (resume included), without {calm.wall:.0f} s "
          f"(re-runs {calm.reruns()}, lost {calm_lost}): {hit.wall / calm.wall:.2f}x; "
          f"bench {time.time() - t0:.0f} s")  # fmt: skip
    return 0 if lost == 0 and calm_lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
