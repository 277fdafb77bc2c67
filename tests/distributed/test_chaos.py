"""Chaos: faults in a row during ONE search over two hosts (network namespaces), through the CLI.

Host 1 runs `automl search … --workers 2 --oracle-bind HOST1` (the chief and two workers), host 2
two `automl worker` processes. Then, one after another (support.faults.chaos): a random local
worker SIGKILLed, the other SIGSTOPped past the liveness limit, the link cut until host 2's workers
gave up and restored, the chief SIGKILLed and the search resumed with `--resume` (a new host-2
worker joins it over the restored link). Every trial id must end completed exactly once; a trial may be handed out again only
when its worker was hit by a fault, at most one per worker hit (the chief's events.jsonl); the
export is written, no process of the search is left and both namespaces are gone.
With `--time-budget` the same faults must not make the search outlast its deadline (run.json's,
shared by every role and kept by --resume) by more than 5 % of the budget.
"""

from __future__ import annotations

import json
import time

import pytest
from support.faults import assigned, chaos, leftovers, rows
from support.hosts import make_hosts, namespaces

pytestmark = [pytest.mark.slow, pytest.mark.timing, pytest.mark.chaos]  # make test-stress runs it

MAX_TRIALS = 60  # enough for trials to stay in flight through the four faults
# --time-budget of the second case (at least config.MIN_TIME_BUDGET_S, 48 s): the resumed command
# must outlast the three worker faults, each bounded by LIMIT_S (about 3 x LIMIT_S in a row), plus
# a new host-2 worker's start-up (TensorFlow's import beside two CPU hogs) before it rejoins. 90 s
# was too short on an AVX2-only 2-core machine under `make test-stress`: the resumed search
# reached its deadline before the rejoin in 2 of 2 runs (it passed alone, in 165 s of test time).
BUDGET_S = 120


def _check(result, run, n_trials: int | None) -> dict:
    assert result.codes[0] == 1, result.outputs[0][-3000:]  # the launcher of the killed chief
    assert "the chief exited with signal SIGKILL" in result.outputs[0]
    assert result.resumed_rc == 0, result.outputs[1][-3000:]
    done = rows(run)
    if n_trials is not None:
        assert sorted(int(t) for t in done) == list(range(n_trials))  # ids "00", "01", …
    assert done and {r["status"] for r in done.values()} == {"completed"}, done
    handed = assigned(run)
    assert set(handed) == set(done)  # no trial handed out and never ended
    assert result.host2_after_restore(), "no host-2 worker reached a chief once the link was back"
    assert not result.unexplained_reruns(), result.unexplained_reruns()
    reruns = result.reruns()
    assert reruns <= len(result.hit_pids)  # at most one per worker a fault hit
    assert (run / "best" / "saved_model" / "saved_model.pb").is_file()
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["status"] == "completed" and manifest["resumed"] == 1
    return {"trials": len(done), "reruns": reruns, "handed": sum(handed.values())}


@pytest.mark.parametrize("budget", [None, f"{BUDGET_S}s"], ids=["max_trials", "time_budget"])
def test_faults_in_a_row_lose_no_trial_and_leave_nothing(tmp_path, budget):
    run = tmp_path / "run"
    with make_hosts() as hosts:
        made = {hosts.ns1, hosts.ns2}
        result = chaos(
            hosts,
            run,
            max_trials=MAX_TRIALS if budget is None else 1000,
            seed=int(time.time()) % 1000,
            budget=budget,
        )
    print(f"\nchaos (seed {result.seed}): " + "; ".join(result.faults))
    figures = _check(result, run, MAX_TRIALS if budget is None else None)
    assert not leftovers(run), leftovers(run)
    assert not made & namespaces()
    assert len(result.faults) == 4
    print(
        f"faults {len(result.faults)}, workers hit {len(result.hit_pids)}, trials "
        f"{figures['trials']}, re-runs {figures['reruns']}, lost 0, wall {result.wall:.0f} s"
    )
    if budget is not None:
        deadline = json.loads((run / "run.json").read_text())["deadline"]
        assert deadline["seconds"] == BUDGET_S  # the resumed command's own budget
        print(f"resumed command with --time-budget {budget}: {result.resumed_wall:.1f} s")
        # The trials end at run.json's trials_deadline (the budget less the reserve for the
        # evaluation and export that follow), so the whole command keeps to its budget.
        assert result.resumed_wall <= 1.05 * BUDGET_S, result.outputs[1][-3000:]
