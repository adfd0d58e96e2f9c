"""Benchmark (not a test): the commanded EE jump at chunk boundaries vs the steps inside chunks.

    python bench/bench_chunks.py                      # trains its SFT checkpoint once (~3 min)
    python bench/bench_chunks.py --checkpoint DIR --episodes 6 --latencies 1 38

A trained state-mode policy runs evaluation trials (no takeover) in the DDS-free collector with
the rollout graph's settings (config/rollout.yaml), under each chunk boundary and each inference
latency in ticks (1: the sim presets; 38: the base preset's 1.27 s p50 on this CPU, longer than
the 25 executed rows). Same checkpoint, same seeds, one factor changed per row. Boundaries:
`none` switches to the new chunk; `blend` cross-fades over `chunk_blend_steps` rows; `inpaint`
is real-time chunking alone (the next chunk inpainted on the running one, no fade); `rtc`, the
graph's default, is both.

Per row: the policy's commanded EE position step (per arm, mm per tick, before the safety core
clamps it) at the tick a new chunk takes over vs the steps inside chunks (ticks more than
`chunk_blend_steps` after a switch), the ticks the policy had no row (the arm stopped), and the
arm's pace (mean in-chunk step relative to the same boundary at latency 1). Bound (issue 17):
median boundary jump within 2x the median in-chunk step.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from figures import peak_rss_mb, report_figure

from habc_control.authority import Authority
from habc_control.collect_sinks import EpisodeSink

BOUND = 2.0
CACHE = Path("out/bench/chunks")
DEMOS, STEPS = 40, 2000


def ensure_checkpoint(path: str | None) -> Path:
    """The checkpoint to run: given, or one trained here once (cached under out/bench)."""
    if path:
        return Path(path)
    ckpt = CACHE / "ckpt" / "sft" / "round_000"
    if not (ckpt / "config.json").is_file():
        print(
            f"training an SFT checkpoint into {CACHE} ({DEMOS} demos, {STEPS} steps)", flush=True
        )
        data = CACHE / "data"
        run = ["habc-collect", "--demos", str(DEMOS), "--obs", "state", "--out", str(data)]
        run.append("--quiet")
        subprocess.run(run, check=True)
        subprocess.run(
            [
                "train_round",
                "--config",
                "config/train_sim.yaml",
                "--data-root",
                str(data),
                "--ckpt-root",
                str(CACHE / "ckpt"),
                "--round",
                "0",
                "--method",
                "sft",
                "--set",
                f"steps_per_round={STEPS}",
                f"checkpoint_every={STEPS}",
            ],
            check=True,
        )
    return ckpt


class StepSink(EpisodeSink):
    """Per tick: each arm's commanded EE position under POLICY, and whether a chunk landed."""

    def __init__(self) -> None:
        self.ticks: list[dict] = []
        self._landed = False

    def begin(self, meta) -> None:
        self.ticks = []
        self._landed = False

    def observation(self, env, obs, t_ns) -> None:
        # A chunk's first row reaches the mux a tick after the chunk landed (row transport,
        # docs/sim-rig.md): that tick's request is the switch.
        self.ticks.append({"switch": self._landed})
        self._landed = False

    def command_request(self, arm, out, mode, t_ns) -> None:
        policy = out.authority == Authority.POLICY and not out.held
        self.ticks[-1][arm] = np.asarray(out.target.targets[:3], float) if policy else None

    def chunk(self, *args, **kwargs) -> None:
        self._landed = True


def episode_steps(ticks: list[dict], arms: tuple[str, ...], blend: int) -> tuple[list, list, list]:
    """(steps at switches, steps inside chunks, second differences inside chunks) in mm, over
    consecutive policy ticks per arm. The second difference is the zig-zag: a smooth path has
    almost none, whatever its speed."""
    at_switch, inside, zigzag = [], [], []
    since_switch = 10**9
    first_chunk = True
    for k in range(1, len(ticks)):
        prev, cur = ticks[k - 1], ticks[k]
        since_switch = 0 if cur["switch"] else since_switch + 1
        for arm in arms:
            a, b = prev.get(arm), cur.get(arm)
            if a is None or b is None:
                continue
            step = 1000.0 * float(np.linalg.norm(b - a))
            if since_switch == 0 and not first_chunk:
                at_switch.append(step)
            elif since_switch > blend:
                inside.append(step)
                before = ticks[k - 2].get(arm)
                if since_switch > blend + 1 and before is not None:
                    zigzag.append(1000.0 * float(np.linalg.norm(b - 2 * a + before)))
        if cur["switch"]:
            first_chunk = False
    return at_switch, inside, zigzag


# name: (chunk_boundary, chunk_blend_steps; None: the graph's)
ARMS = {
    "none": ("none", None),
    "blend": ("blend", None),
    "inpaint": ("rtc", 0),
    "rtc": ("rtc", None),
}


def run_arm(ckpt: Path, arm: str, latency: int, seeds: range) -> dict:
    import torch

    from habc_control.collect import CollectConfig
    from habc_control.collect_policies import make_policy_factory
    from habc_control.collector import Collector
    from habc_control.graph import load_graph_config
    from habc_sim.config import load_sim_config
    from habc_sim.env import PouchEnv

    torch.set_num_threads(1)  # as in the policy node
    sim_cfg = load_sim_config("config/sim.yaml")
    boundary, blend = ARMS[arm]
    cfg = CollectConfig.from_graph(
        load_graph_config(),
        mode="eval",
        episodes=len(seeds),
        chunk_boundary=boundary,
        inference_latency_ticks=latency,
    )
    if blend is not None:
        cfg = dataclasses.replace(cfg, chunk_blend_steps=blend)
    env = PouchEnv(sim_cfg, obs_mode="state")
    sink = StepSink()
    factory = make_policy_factory(str(ckpt), sim_cfg, cfg.horizon, cfg.execute_steps, 0)
    collector = Collector(env, cfg, sink, factory)
    switch, inside, zigzag, stopped, ticks, success = [], [], [], 0, 0, 0
    counters = {"guided_chunks": 0, "blended_chunks": 0, "extended_rows": 0, "slowed_ticks": 0}
    t0 = time.perf_counter()
    try:
        for seed in seeds:
            r = collector.run_episode(seed)
            success += r.outcome == "success"
            # In-chunk steps: past every arm's fade window alike, so rows compare the same ticks.
            s, i, z = episode_steps(sink.ticks, ("left", "right"), CollectConfig.chunk_blend_steps)
            switch += s
            inside += i
            zigzag += z
            ticks += len(sink.ticks)
            # After the first chunk: ticks where the policy had nothing to send (arm stopped).
            first = next((k for k, t in enumerate(sink.ticks) if t["switch"]), len(sink.ticks))
            stopped += sum(t.get("left") is None for t in sink.ticks[first:])
            ex = collector.executor
            for key in counters:
                counters[key] += getattr(ex, key)
    finally:
        env.close()
    return {
        "boundary": arm,
        "latency": latency,
        "switch_p50": float(np.median(switch)),
        "switch_p90": float(np.percentile(switch, 90)),
        "inside_p50": float(np.median(inside)),
        "inside_mean": float(np.mean(inside)),
        "zigzag_p50": float(np.median(zigzag)),
        "switches": len(switch),
        "stopped": stopped,
        "ticks": ticks,
        "success": success,
        "episodes": len(seeds),
        "wall_s": time.perf_counter() - t0,
        **counters,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None, help="a state-mode checkpoint dir")
    p.add_argument("--episodes", type=int, default=4)
    p.add_argument("--seed", type=int, default=700_000, help="first evaluation seed")
    p.add_argument("--boundaries", nargs="+", choices=list(ARMS), default=list(ARMS))
    p.add_argument("--latencies", nargs="+", type=int, default=[1, 38])
    args = p.parse_args()
    ckpt = ensure_checkpoint(args.checkpoint)
    seeds = range(args.seed, args.seed + args.episodes)
    print(f"checkpoint {ckpt}; {args.episodes} evaluation trials per row, seeds {seeds.start}..")
    print(
        f"{'boundary':<8} {'late':>4} {'switch p50':>10} {'p90':>6} {'inside p50':>10} "
        f"{'ratio':>6} {'zigzag':>6} {'pace':>5} {'stopped':>8} {'slowed':>7} {'guided':>6} "
        f"{'success':>7} "
        f"{'wall s':>6}"
    )
    rows = {}
    for latency in args.latencies:
        for boundary in args.boundaries:
            r = run_arm(ckpt, boundary, latency, seeds)
            rows[(boundary, latency)] = r
            base = rows.get((boundary, args.latencies[0]), r)
            pace = r["inside_mean"] / base["inside_mean"]
            print(
                f"{boundary:<8} {latency:>4} {r['switch_p50']:10.2f} {r['switch_p90']:6.2f} "
                f"{r['inside_p50']:10.2f} {r['switch_p50'] / r['inside_p50']:6.2f} "
                f"{r['zigzag_p50']:6.2f} {pace:5.2f} {r['stopped'] / r['ticks']:8.1%} "
                f"{r['slowed_ticks']:7d} "
                f"{r['guided_chunks']:6d} {r['success']:>3}/{r['episodes']:<3} "
                f"{r['wall_s']:6.0f}",
                flush=True,
            )
    print(
        "steps in mm per tick (commanded EE position, per arm, before the safety core); zigzag: "
        "median in-chunk second difference, mm"
    )
    peak = peak_rss_mb()
    for (boundary, latency), r in rows.items():
        if boundary == "rtc":
            report_figure(
                f"chunk boundary jump / in-chunk step (rtc, latency {latency} ticks)",
                r["switch_p50"] / r["inside_p50"],
                BOUND,
                "x",
                "bound",
                peak_mb=peak,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
