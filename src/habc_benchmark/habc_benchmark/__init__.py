"""The paper's experiment (habc-spec.md §8) on the simulated rig: presets, seed plan, evaluation,
orchestration (`habc-benchmark`), critic probes and the generated docs/results.md.

| module | job |
| --- | --- |
| `config.py` | `ExperimentConfig` (frozen, validated) and presets `config/experiment_*.yaml` |
| `seeds.py` | disjoint episode-seed ranges for demos / rollouts / probes / evaluation |
| `stats.py` | Wilson intervals, trajectory-length statistics, aggregation over seeds |
| `evaluation.py` | N held-out trials of a checkpoint through collect's `Collector` |
| `stages.py` | one protocol stage each: demos, rollouts, a training round, an evaluation |
| `plan.py` | the protocol as a task graph (cells), what is finished on disk |
| `runner.py` | runs the graph on a process pool, resumable, incremental JSON |
| `probes.py` | critic probes: g_t per source, p_v / V_e traces, viability map, calibration |
| `report/` | results.json, the plots and docs/results.md from whatever finished (its own table) |
| `cli.py` | the `habc-benchmark` console script |
"""
