"""Benchmark (not a test): one-observation chunk inference latency vs the prefetch budget.

    python bench/bench_infer.py                        # tiny + sim presets, smooth and iid heads
    python bench/bench_infer.py --presets sim base --calls 20

The policy node asks for the next chunk `prefetch_steps` ticks before the current one runs out
(config/rollout.yaml: 5 ticks at 30 Hz = 167 ms): inference slower than that stops the arm. Each
row is one (preset, action head) in its own process (peak RSS is that model's alone), one torch
thread as in the rollout graph; "iid" is the head without temporally correlated noise and
low-pass output (noise_length_scale = 0, action_basis = 0), to show what the smooth head costs.
"rtc": the same call with a running chunk's prefix to inpaint on (real-time chunking: a backward
pass per Euler step).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

PROPRIO_DIM, ACTION_DIM, ENV_STATE_DIM = 20, 20, 13
HEADS = {"smooth": {}, "iid": {"noise_length_scale": 0.0, "action_basis": 0}}


def budget_ms() -> float:
    """prefetch_steps / control rate, as the rollout graph runs them (config/rollout.yaml)."""
    from habc_control.graph import load_graph_config, node_specs

    params = {spec.name: spec.parameters for spec in node_specs(load_graph_config())}
    prefetch = float(params["policy"]["prefetch_steps"])
    hz = float(params["command_mux"].get("control_hz", 30.0))
    return 1000.0 * prefetch / hz


def run_one(preset: str, head: str, calls: int) -> dict:
    import dataclasses

    import numpy as np
    import torch

    from habc_core.policy import PREFIX_ACTIONS, PREFIX_FROZEN
    from habc_trainer.models.config import model_preset
    from habc_trainer.models.example import example_stats, make_example_batch, make_example_obs
    from habc_trainer.models.policy import FlowPolicy

    torch.set_num_threads(1)
    cfg = dataclasses.replace(model_preset(preset), **HEADS[head]).with_dims(
        proprio_dim=PROPRIO_DIM,
        action_dim=ACTION_DIM,
        env_state_dim=0 if model_preset(preset).cameras else ENV_STATE_DIM,
    )
    rng = np.random.default_rng(0)
    policy = FlowPolicy(cfg, example_stats(make_example_batch(cfg, 8, rng), cfg)).eval()
    obs = make_example_obs(cfg, rng)
    # Real-time chunking: the running chunk's rows still to come (27 of 50 at prefetch 5 in the
    # rollout graph), one of them sure to run.
    prefix = {
        PREFIX_ACTIONS: np.zeros((cfg.horizon * 27 // 50 or 1, cfg.action_dim), np.float32),
        PREFIX_FROZEN: 1,
    }
    out = {}
    for name, request in (("", obs), ("rtc_", {**obs, **prefix})):
        for _ in range(2):  # warm-up
            policy.infer(request)
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            policy.infer(request)
            times.append(1000 * (time.perf_counter() - t0))
        out[name + "p50_ms"] = float(np.percentile(times, 50))
        out[name + "p99_ms"] = float(np.percentile(times, 99))
    return {
        "preset": preset,
        "head": head,
        **out,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "params": sum(p.numel() for p in policy.parameters()),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["tiny", "sim"])
    p.add_argument("--calls", type=int, default=100)
    p.add_argument("--one", nargs=2, metavar=("PRESET", "HEAD"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(run_one(*args.one, args.calls)))
        return 0
    budget = budget_ms()
    print(f"budget: prefetch_steps ticks = {budget:.0f} ms (config/rollout.yaml)")
    print(
        f"{'preset':<6} {'head':<7} {'p50 ms':>8} {'p99 ms':>8} {'p99/budget':>10} "
        f"{'rtc p50':>8} {'rtc p99':>8} {'peak MB':>8}  params"
    )
    for preset in args.presets:
        for head in HEADS:
            out = subprocess.run(
                [sys.executable, __file__, "--one", preset, head, "--calls", str(args.calls)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(
                f"{preset:<6} {head:<7} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f} "
                f"{r['p99_ms'] / budget:10.2f} {r['rtc_p50_ms']:8.1f} {r['rtc_p99_ms']:8.1f} "
                f"{r['peak_rss_mb']:8.0f}  {r['params']}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
