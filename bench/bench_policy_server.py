"""Benchmark (not a test): a chunk from a policy server on localhost vs the same policy in-process.

    python bench/bench_policy_server.py               # sim preset, state and pixels; raw frames
    python bench/bench_policy_server.py --calls 200

The policy node calls `infer(obs)` once per chunk; with `checkpoint: ws://host:port` that call is
a websocket round trip (habc_core.policy_client) to `habc-policy-server`. Each row runs the
server in its own process (one torch thread, as the rollout graph's policy node) and times the
same observations in-process and through the server. "frames640" is an echo policy fed three
640x480 RGB frames: the transport cost of raw camera frames, with no model at all. The budget is
the prefetch time (config's prefetch_steps at control_hz): a round trip over it stops the arm.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

CASES = ("sim-state", "sim-pixels", "frames640")
PROPRIO_DIM, ACTION_DIM, ENV_STATE_DIM = 20, 20, 13


class EchoPolicy:
    """Returns a zero chunk: what remains is the transport."""

    def infer(self, obs):
        return {"actions": np.zeros((50, ACTION_DIM), np.float32)}


def make_case(case: str):
    """(policy, obs) of one benchmark case, seeded."""
    rng = np.random.default_rng(0)
    if case == "frames640":
        obs = {f"images.{c}": rng.integers(0, 255, (480, 640, 3), np.uint8) for c in "abc"}
        obs["proprio"] = np.zeros(PROPRIO_DIM, np.float32)
        obs["task"] = "put the marker in the pouch"
        return EchoPolicy(), obs
    import dataclasses

    import torch

    from habc_core.features import CAMERA_NAMES
    from habc_trainer.models.config import model_preset
    from habc_trainer.models.example import example_stats, make_example_batch, make_example_obs
    from habc_trainer.models.policy import FlowPolicy

    torch.set_num_threads(1)
    pixels = case == "sim-pixels"
    base = model_preset("sim")
    if pixels:
        base = dataclasses.replace(base, cameras=CAMERA_NAMES)
    cfg = base.with_dims(
        proprio_dim=PROPRIO_DIM,
        action_dim=ACTION_DIM,
        env_state_dim=0 if pixels else ENV_STATE_DIM,
    )
    policy = FlowPolicy(cfg, example_stats(make_example_batch(cfg, 8, rng), cfg)).eval()
    return policy, make_example_obs(cfg, rng)


def serve(case: str) -> None:
    """Child process: serve the case's policy on a free port, print the port, serve forever."""
    from habc_core.policy_server import PolicyServer

    policy, _ = make_case(case)
    server = PolicyServer(policy, port=0)
    print(json.dumps({"port": server.port}), flush=True)
    server.serve_forever()


def timed(fn, obs, calls: int) -> np.ndarray:
    for _ in range(3):  # warm-up (first connection, lazy init)
        fn(obs)
    times = np.empty(calls)
    for i in range(calls):
        t0 = time.perf_counter()
        fn(obs)
        times[i] = 1000 * (time.perf_counter() - t0)
    return times


def run_case(case: str, calls: int) -> dict:
    from habc_core.policy_client import PolicyClient

    policy, obs = make_case(case)
    local = timed(policy.infer, obs, calls)
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", case], stdout=subprocess.PIPE, text=True
    )
    try:
        port = json.loads(child.stdout.readline())["port"]
        client = PolicyClient(f"ws://127.0.0.1:{port}", timeout_s=30.0)
        remote = timed(client.infer, obs, calls)
        client.close()
    finally:
        child.terminate()
        child.wait(timeout=10)
    payload = sum(v.nbytes for v in obs.values() if isinstance(v, np.ndarray))
    return {
        "case": case,
        "payload_kb": payload / 1024,
        "local_p50": float(np.percentile(local, 50)),
        "local_p99": float(np.percentile(local, 99)),
        "served_p50": float(np.percentile(remote, 50)),
        "served_p99": float(np.percentile(remote, 99)),
        "client_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def budget_ms() -> float:
    from habc_control.graph import load_graph_config, node_specs

    params = {spec.name: spec.parameters for spec in node_specs(load_graph_config())}
    return (
        1000.0
        * float(params["policy"]["prefetch_steps"])
        / float(params["policy"].get("control_hz", 30.0))
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    p.add_argument("--calls", type=int, default=100)
    p.add_argument("--serve", choices=CASES, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    budget = budget_ms()
    print(f"budget: prefetch_steps ticks = {budget:.0f} ms (config); {args.calls} calls per row")
    print(
        f"{'case':<11} {'obs kB':>7} {'local p50':>9} {'p99':>6} {'served p50':>10} {'p99':>6} "
        f"{'+p50 ms':>7} {'served/local':>12} {'p99/budget':>10} {'peak MB':>7}"
    )
    for case in args.cases:
        r = run_case(case, args.calls)
        extra = r["served_p50"] - r["local_p50"]
        ratio = r["served_p50"] / max(r["local_p50"], 1e-6)
        print(
            f"{case:<11} {r['payload_kb']:7.0f} {r['local_p50']:9.2f} {r['local_p99']:6.1f} "
            f"{r['served_p50']:10.2f} {r['served_p99']:6.1f} {extra:7.2f} {ratio:12.2f} "
            f"{r['served_p99'] / budget:10.2f} {r['client_peak_mb']:7.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
