"""How well the simulated operator recovers a policy's failing rollouts, and how it takes over.

    python scripts/measure_operator_recovery.py --rollouts 60 --policy weak-expert
    python scripts/measure_operator_recovery.py --rollouts 60 --policy runs/sft/checkpoint

Rollouts go through collect's own rollout path (`Collector.run_episode`: arbiter, chunk
executor, mux blend, the arm driver's safety core) with the operator forced to take over every
failing episode and never hand back (intervene_prob 1, hand_back_prob 0, an override of the sim
config, not of config/sim.yaml). Prints the takeovers, how many recovered (Wilson 95 %
interval), the failure modes of the rest, and the right gripper's recorded (executed) opening
next to a lying marker in the first ticks of a takeover against demos in the same kind of state.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from habc_control.collect import CollectConfig, Collector, NullSink, make_policy_factory
from habc_control.graph import load_graph_config
from habc_sim.config import SimConfig, load_sim_config
from habc_sim.env import PouchEnv
from habc_sim.model import GRIPPER_STROKE

WINDOW_TICKS = 15  # after a takeover: the mux blend (0.5 s) and the first plan's start
NEAR_M = 0.05  # right tool point within this of the marker: "next to the marker"
OPEN_M = 0.5 * GRIPPER_STROKE  # a recorded opening above half the stroke counts as open
REPO = Path(__file__).resolve().parents[1]


@dataclass
class TickRow:
    tick: int
    marker_lying: bool
    near: bool  # right tool within NEAR_M of the marker
    where: str  # the marker: held | in pouch | on table | elsewhere (rim, tilted in the mouth)
    right_grip: float = math.nan  # executed (recorded) right gripper command


class TraceSink(NullSink):
    """Keeps what the measurement needs from each episode instead of writing a bag."""

    def __init__(self) -> None:
        self.rows: list[TickRow] = []
        self.extra: dict[str, Any] = {}

    def begin(self, meta: Any) -> None:
        self.rows, self.extra = [], {}

    def observation(self, env: Any, obs: dict[str, Any], t_ns: int) -> None:
        rig = env.rig
        xyz, _ = rig.ee_pose("right")
        dist = float(np.linalg.norm(xyz + rig.base_pos["right"] - rig.marker_pos()))
        s = env.state
        lying = bool(s.marker_on_table and not s.marker_held)
        where = (
            "held"
            if s.marker_held
            else "in pouch"
            if s.marker_in_pouch
            else "on table"
            if s.marker_on_table
            else "elsewhere"
        )
        self.rows.append(TickRow(env.tick, lying, dist < NEAR_M, where))

    def command(self, arm: str, executed: Any, t_ns: int) -> None:
        if arm == "right":
            self.rows[-1].right_grip = float(executed.command.gripper)

    def end(self, meta: Any, extra: dict[str, Any]) -> str | None:
        self.extra = extra
        return None


@dataclass(frozen=True)
class Episode:
    seed: int
    outcome: str
    taken: bool
    right_take_tick: int | None
    reason: str  # collect's outcome_reason
    slips: int
    lid_snaps: int
    milestones: dict[str, int]
    rows: tuple[TickRow, ...]


@dataclass(frozen=True)
class OpenFraction:
    open_frames: int
    frames: int
    mean_opening: float  # m

    @property
    def fraction(self) -> float:
        return self.open_frames / self.frames if self.frames else math.nan


@dataclass(frozen=True)
class RecoveryReport:
    policy: str
    rollouts: int
    autonomous_success: int
    failing_not_taken: int  # failed with no takeover (e.g. marker knocked off first)
    takeovers: int
    recovered: int
    failure_modes: dict[str, int]
    open_after_takeover: OpenFraction  # marker lying, tool next to it
    open_after_takeover_any: OpenFraction  # marker lying, the tool anywhere
    open_in_demos: OpenFraction
    demos: int
    demo_success: int
    demo_mean_len: float
    after_takeover_ticks: tuple[int, ...] = field(default_factory=tuple)

    @property
    def rate(self) -> float:
        return self.recovered / self.takeovers if self.takeovers else math.nan

    @property
    def median_ticks_after_takeover(self) -> float:
        return (
            float(np.median(self.after_takeover_ticks)) if self.after_takeover_ticks else math.nan
        )

    @property
    def wilson(self) -> tuple[float, float]:
        return wilson_interval(self.recovered, self.takeovers)


def wilson_interval(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for k successes of n (scipy is not installed in the venv)."""
    if n == 0:
        return math.nan, math.nan
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def takeover_config(cfg: SimConfig) -> SimConfig:
    """The operator takes over every failing episode and keeps the arms to the end."""
    op = dataclasses.replace(cfg.operator, intervene_prob=1.0, hand_back_prob=0.0)
    return dataclasses.replace(cfg, operator=op)


def failure_mode(ep: Episode) -> str:
    if ep.reason == "marker off the table":
        mode = "marker off the table"
    elif ep.reason.startswith("step limit"):
        order = sorted(ep.milestones, key=ep.milestones.get)
        end = ep.rows[-1].where if ep.rows else "?"
        mode = f"step limit, last milestone {order[-1] if order else 'none'}, marker {end} at end"
    else:
        mode = ep.reason
    flags = [f"{n} {what}" for n, what in ((ep.slips, "slip"), (ep.lid_snaps, "lid snap")) if n]
    return mode + (f" [{', '.join(flags)}]" if flags else "")


def run_episodes(collector: Collector, sink: TraceSink, seeds: Sequence[int]) -> list[Episode]:
    out = []
    for seed in seeds:
        r = collector.run_episode(seed)
        takes = [e for e in r.operator.get("events", []) if e["kind"] == "take"]
        right = [e["tick"] for e in takes if "right" in e["arms"]]
        out.append(
            Episode(
                seed,
                r.outcome,
                bool(takes),
                right[0] if right else None,
                sink.extra["outcome_reason"],
                sink.extra["slips"],
                sink.extra["lid_snaps"],
                dict(r.milestones),
                tuple(sink.rows),
            )
        )
    return out


def open_fraction(rows: Sequence[TickRow], near_only: bool = True) -> OpenFraction:
    grips = [
        r.right_grip
        for r in rows
        if r.marker_lying and (r.near or not near_only) and np.isfinite(r.right_grip)
    ]
    return OpenFraction(
        sum(g > OPEN_M for g in grips), len(grips), float(np.mean(grips)) if grips else math.nan
    )


def measure(
    policy: str,
    rollouts: int,
    demos: int,
    seed: int,
    sim_cfg: SimConfig,
    graph: dict[str, Any],
) -> RecoveryReport:
    cfg = takeover_config(sim_cfg)
    env = PouchEnv(cfg, obs_mode="state")
    sink = TraceSink()
    try:
        rc = CollectConfig.from_graph(graph, mode="rollout", episodes=rollouts, seed=seed)
        factory = make_policy_factory(policy, cfg, rc.horizon, rc.execute_steps, 0)
        eps = run_episodes(Collector(env, rc, sink, factory), sink, range(seed, seed + rollouts))
        dc = CollectConfig.from_graph(graph, mode="demo", episodes=demos, seed=seed)
        demo_eps = run_episodes(Collector(env, dc, sink), sink, range(seed, seed + demos))
    finally:
        env.close()
    taken = [e for e in eps if e.taken]
    window: list[TickRow] = []
    for e in taken:
        if e.right_take_tick is not None:
            t0 = e.right_take_tick
            window += [r for r in e.rows if t0 <= r.tick < t0 + WINDOW_TICKS]
    demo_rows = [r for e in demo_eps for r in e.rows]
    demo_ok = [e for e in demo_eps if e.outcome == "success"]
    lost = [e for e in taken if e.outcome != "success"]
    return RecoveryReport(
        policy=policy,
        rollouts=len(eps),
        autonomous_success=sum(e.outcome == "success" and not e.taken for e in eps),
        failing_not_taken=sum(e.outcome != "success" and not e.taken for e in eps),
        takeovers=len(taken),
        recovered=len(taken) - len(lost),
        failure_modes=dict(Counter(failure_mode(e) for e in lost).most_common()),
        open_after_takeover=open_fraction(window),
        open_after_takeover_any=open_fraction(window, near_only=False),
        open_in_demos=open_fraction(demo_rows),
        demos=len(demo_eps),
        demo_success=len(demo_ok),
        demo_mean_len=float(np.mean([len(e.rows) for e in demo_ok])) if demo_ok else math.nan,
        after_takeover_ticks=tuple(
            len(e.rows) - e.right_take_tick
            for e in taken
            if e.outcome == "success" and e.right_take_tick is not None
        ),
    )


def render(r: RecoveryReport) -> str:
    lo, hi = r.wilson
    ot, oa, od = r.open_after_takeover, r.open_after_takeover_any, r.open_in_demos
    lines = [
        f"policy {r.policy}: {r.rollouts} rollouts, {r.autonomous_success} autonomous successes, "
        f"{r.failing_not_taken} failed without a takeover",
        f"takeovers: {r.takeovers}  recovered: {r.recovered} ({100 * r.rate:.1f} %, "
        f"Wilson 95 % {100 * lo:.1f}-{100 * hi:.1f} %)",
    ]
    if r.failure_modes:
        lines.append("unrecovered, by failure mode:")
        lines += [f"  {n:3d}  {mode}" for mode, n in r.failure_modes.items()]
    lines += [
        f"right gripper recorded open (> {OPEN_M * 100:.1f} cm) next to a lying marker "
        f"(tool within {NEAR_M * 100:.0f} cm):",
        f"  first {WINDOW_TICKS} ticks of a right-arm takeover: {100 * ot.fraction:.1f} % "
        f"of {ot.frames} frames, mean opening {100 * ot.mean_opening:.1f} cm",
        f"    (marker lying, tool anywhere: {100 * oa.fraction:.1f} % of {oa.frames} frames, "
        f"mean opening {100 * oa.mean_opening:.1f} cm)",
        f"  demonstrations ({r.demos} from home): {100 * od.fraction:.1f} % of {od.frames} "
        f"frames, mean opening {100 * od.mean_opening:.1f} cm",
        f"recovered right-arm takeovers: median {r.median_ticks_after_takeover:.0f} ticks from "
        "the takeover to the end",
        f"demos: {r.demo_success}/{r.demos} success, mean length {r.demo_mean_len:.1f} ticks",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rollouts", type=int, default=60)
    p.add_argument("--policy", default="weak-expert", help="weak-expert | checkpoint dir | ...")
    p.add_argument("--demos", type=int, default=40, help="demos for the comparable-state baseline")
    p.add_argument("--seed", type=int, default=0, help="first seed (then +1 each)")
    p.add_argument("--config", default=str(REPO / "config" / "sim.yaml"), help="sim YAML")
    p.add_argument("--graph-config", default=None, help="rollout graph YAML (as collect's)")
    args = p.parse_args(argv)
    report = measure(
        args.policy,
        args.rollouts,
        args.demos,
        args.seed,
        load_sim_config(args.config),
        load_graph_config(args.graph_config),
    )
    print(render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
