"""Controlled arms for the chunked scripted expert (`habc-collect --policy expert`), 20 eval seeds.

    python scripts/measure_expert_arms.py

One factor at a time against the graph's settings: the arm driver's safety limits loosened until
they never act, and the policy node's prefetch / inference latency switched off. Prints success
and mean length of successes per arm (docs/sim-rig.md "Measured").
"""

import dataclasses
from pathlib import Path

import numpy as np

from arx_x5_driver.safety import SafetyConfig
from habc_control.collect import CollectConfig, Collector, NullSink, make_policy_factory
from habc_control.graph import load_graph_config
from habc_sim.config import load_sim_config
from habc_sim.env import PouchEnv

cfg_sim = load_sim_config(Path(__file__).resolve().parents[1] / "config" / "sim.yaml")
env = PouchEnv(cfg_sim, obs_mode="state")
loose = SafetyConfig(
    max_joint_step=10,
    max_ee_step=10,
    max_rot_step=3.0,
    max_gripper_step=1,
    workspace_min=(-5, -5, -5),
    workspace_max=(5, 5, 5),
)
base = CollectConfig.from_graph(load_graph_config(), mode="eval")
arms = {
    "graph settings (safety, prefetch 5, latency 1)": base,
    "no latency, no prefetch": dataclasses.replace(
        base, prefetch_steps=0, inference_latency_ticks=0
    ),
    "safety limits loosened": dataclasses.replace(base, safety=loose),
    "both": dataclasses.replace(base, safety=loose, prefetch_steps=0, inference_latency_ticks=0),
}
for name, c in arms.items():
    f = make_policy_factory("expert", cfg_sim, c.horizon, c.execute_steps, 0)
    col = Collector(env, c, NullSink(), f)
    rs = [col.run_episode(9000000 + s) for s in range(20)]
    ok = [r for r in rs if r.outcome == "success"]
    print(f"{name}: {len(ok)}/20 success, mean length {np.mean([r.ticks for r in ok]):.0f} ticks")
