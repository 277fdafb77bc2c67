"""A parallel search (`--workers N`, `automl worker`): KerasTuner's own distributed mode, launched
and looked after. Who talks to whom:

```
automl search --workers N                     (the launching process: no TensorFlow here)
  parallel.run_parallel(cfg)                  prints the join line; warns when the oracle port is
    launcher.launch(argv_for_role, settings)  not on loopback (no authentication in KerasTuner)
      │ starts, each `automl worker --oracle HOST:PORT --tuner-id ID` (workers.worker_env:
      │ KERASTUNER_* ids and address, a CPU thread share, a GPU), each dying with the launcher
      │ (liveness.die_with_parent); follows RUN_DIR/workers/<id>.log and events.jsonl; restarts a
      │ worker that exits non-zero or that the chief declared lost (at most max_restarts times)
      ▼
  chief process (tuner id `chief`)            parallel.run_role → workers.search
    chief.serve_oracle(oracle)                KerasTuner's OracleServicer over gRPC, plus
      chief.Servicer                          heartbeats, reap() of silent workers (their trial
      │   ▲                                   goes back to the retry queue), MAX_RUNS per trial
      │   │ gRPC: CreateTrial/UpdateTrial/EndTrial…, every call tagged with tuner id + instance
      │   │       (liveness.tag_client); GetSpace with the heartbeat flag every `heartbeat` s
      │   │       (liveness.ChiefWatch), which ends the worker once the chief is silent too long
      ▼   │
    events.jsonl  ◀── the chief appends join / assign / end / lost / given_up / done
      │               (liveness.EventLog); the launcher reads it (liveness.read_events) and
      │               run.json records its faults (parallel.launch_record)
  worker processes (tuner0 … tunerN-1, or `automl worker` on another host sharing RUN_DIR)
      parallel.run_role → workers.search      train the trials the chief hands out, each with the
                                              deadline the launcher wrote to run.json
                                              (parallel.shared_deadline)
```

Modules: launcher.py (start, supervise, stop: `launch` and its `LaunchSettings`), workers.py (a
role's environment and its `search`), chief.py (the gRPC oracle server with liveness),
liveness.py (timeouts, heartbeats, the event log, dying with the launcher), parallel.py (the
search-level glue the engine calls). Layers: below engines (the engine hands in its tuner
builders), above tuning (tuning never imports this package). No TensorFlow, KerasTuner or grpc
import at module level: the launcher runs in the CLI's process.
"""
