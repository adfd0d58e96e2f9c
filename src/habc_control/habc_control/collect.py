"""Fast DDS-free episode collector on the simulated rig: demos, rollouts, evaluation trials.

Runs the same core classes as the ROS nodes (AuthorityArbiter, ChunkExecutor, CommandMux, the arm
driver's DriverCore with its safety core, EpisodeManager), configured from the same graph config
(config/rollout.yaml: safety limits, blend steps, policy timeout, chunk sizes), and writes each
episode with the trainer's EpisodeBagWriter: the topics the recorder node records, the executed
command (after safety) as the action and the mux's request beside it. Where it differs from the
ROS graph it says so in docs/sim-rig.md ("Two runtimes, one rig").

    habc-collect --demos 20 --out data                       # scripted operator demonstrations
    habc-collect --rollouts 100 --policy expert --out data   # policy + intervention model
    habc-collect --eval 50 --policy module:factory --obs pixels

This module holds the collector's settings (`CollectConfig`, read from the graph config) and the
`habc-collect` command; the episode loop is habc_control.collector, the sinks
habc_control.collect_sinks, the policies habc_control.collect_policies (their names are
re-exported here for the callers that import them from `habc_control.collect`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from arx_x5_driver.safety import SafetyConfig
from habc_control.chunk_executor import ChunkExecutorConfig
from habc_control.collect_policies import (
    BUILTIN_POLICIES,
    DEFAULT_POLICY,
    PolicyFactory,
    check_checkpoint,
    check_policy_spec,
    checkpoint_model_config,
    expert_actions,
    make_policy_factory,
    record_demo_actions,
    weak_skill,
)
from habc_control.collect_sinks import SIM_LOG_NAME, BagSink, EpisodeSink, NullSink
from habc_control.collector import ROBOT, Collector, EpisodeSummary
from habc_control.command_mux import (
    POLICY_TIMEOUT_S,
    ActionLayout,
    MuxConfig,
    policy_timeout_ticks,
)
from habc_control.graph import load_graph_config, node_specs
from habc_control.teleop import ScheduledOperator, parse_schedule
from habc_core.cli import (
    ArgumentParser,
    UserError,
    coerce_field,
    coerce_fields,
    non_negative_int,
    user_errors,
)
from habc_core.features import CAMERA_NAMES
from habc_core.policy import Policy

__all__ = [
    "BUILTIN_POLICIES",
    "DEFAULT_POLICY",
    "MODES",
    "ROBOT",
    "SIM_LOG_NAME",
    "BagSink",
    "CollectConfig",
    "Collector",
    "EpisodeSink",
    "EpisodeSummary",
    "NullSink",
    "Policy",
    "PolicyFactory",
    "check_checkpoint",
    "check_policy_spec",
    "checkpoint_model_config",
    "expert_actions",
    "main",
    "make_policy_factory",
    "record_demo_actions",
    "summarize",
    "weak_skill",
]

Mode = Literal["demo", "rollout", "eval"]
MODES: tuple[str, ...] = ("demo", "rollout", "eval")
PROG = "habc-collect"


@dataclass(frozen=True)
class CollectConfig:
    mode: Mode = "demo"
    episodes: int = 1
    seed: int = 0
    round: int = 0
    horizon: int = 50
    execute_steps: int = 25
    prefetch_steps: int = 5  # the policy node's default (config/rollout.yaml)
    # Ticks from a chunk request to its first executed row: the sim presets infer in 23-39 ms
    # on this CPU (docs/nodes.md), one tick at 30 Hz, as in the policy node's worker thread.
    inference_latency_ticks: int = 1
    chunk_boundary: str = "rtc"  # the policy node's default: real-time chunking
    chunk_blend_steps: int = 8
    blend_steps: int = 15  # mux interpolation after a takeover (0.5 s at 30 Hz)
    policy_timeout_ticks: int = 15  # mux: a policy silent this long is stalled (held)
    safety: SafetyConfig = field(default_factory=SafetyConfig)  # the arm driver's safety core
    # Rollouts only: scripted takeover windows like teleop's sim_schedule ("left:3.0:5.0") with
    # the sim's scripted expert as the human's hands, instead of the intervention model.
    schedule: tuple[str, ...] = ()
    write_images: bool = True  # pixel mode only
    compressed_images: bool = False

    def __post_init__(self) -> None:
        coerce_fields(self)  # `horizon: true` or 5.7 from a graph YAML is refused by name
        if self.mode not in MODES:
            raise ValueError(f"mode: {self.mode!r} is not one of {list(MODES)}")
        if self.episodes < 0:
            raise ValueError(f"episodes: must be >= 0, got {self.episodes!r}")
        if self.round < 0:
            raise ValueError(f"round: must be >= 0, got {self.round!r}")
        if self.inference_latency_ticks < 0:
            raise ValueError(
                f"inference_latency_ticks: must be >= 0, got {self.inference_latency_ticks!r}"
            )
        self.chunk_config()
        MuxConfig(blend_steps=self.blend_steps, policy_timeout_ticks=self.policy_timeout_ticks)
        parse_schedule(self.schedule)

    def chunk_config(self) -> ChunkExecutorConfig:
        """The chunk executor's settings, as the policy node builds them from its parameters."""
        return ChunkExecutorConfig(
            self.horizon,
            self.execute_steps,
            self.prefetch_steps,
            self.chunk_boundary,
            self.chunk_blend_steps,
        )

    @classmethod
    def from_graph(cls, graph: Mapping[str, Any], **fields: Any) -> CollectConfig:
        """The runtime settings the ROS graph uses (a loaded config/rollout.yaml): the arm
        driver's safety limits, the mux's blend and policy timeout, the policy's chunking."""
        params = {spec.name: spec.parameters for spec in node_specs(graph)}
        driver, mux, policy = params["arm_driver"], params["command_mux"], params["policy"]
        safety = SafetyConfig.from_parameters(
            {k: v for k, v in driver.items() if k in SafetyConfig.parameters()}
        )

        # Typed like the nodes declare them: int() would make a graph's `horizon: 5.7` a 5.
        def number(node: str, values: Mapping[str, Any], key: str, kind: str, default: Any):
            return coerce_field(f"{node}.{key}", kind, values.get(key, default))

        timeout_s = number("command_mux", mux, "policy_timeout_s", "float", POLICY_TIMEOUT_S)
        settings: dict[str, Any] = {
            "safety": safety,
            "blend_steps": number("command_mux", mux, "blend_steps", "int", cls.blend_steps),
            "policy_timeout_ticks": policy_timeout_ticks(
                timeout_s, number("command_mux", mux, "control_hz", "float", 30.0)
            ),
            "horizon": number("policy", policy, "horizon", "int", cls.horizon),
            "execute_steps": number("policy", policy, "execute_steps", "int", cls.execute_steps),
            "prefetch_steps": number(
                "policy", policy, "prefetch_steps", "int", cls.prefetch_steps
            ),
            "chunk_boundary": str(policy.get("chunk_boundary", cls.chunk_boundary)),
            "chunk_blend_steps": number(
                "policy", policy, "chunk_blend_steps", "int", cls.chunk_blend_steps
            ),
        }
        settings.update(fields)
        return cls(**settings)


# --- CLI ---
def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument(
        "--demos", type=non_negative_int, metavar="N", help="N scripted-operator demonstrations"
    )
    g.add_argument(
        "--rollouts",
        type=non_negative_int,
        metavar="N",
        help="N policy rollouts with the intervention model",
    )
    g.add_argument(
        "--eval", type=non_negative_int, metavar="N", help="N evaluation trials (no takeover)"
    )
    p.add_argument(
        "--policy",
        default=None,
        help=f"rollouts and eval: {' | '.join(BUILTIN_POLICIES)} | checkpoint dir | "
        f"module:callable (default {DEFAULT_POLICY})",
    )
    p.add_argument(
        "--obs",
        choices=("state", "pixels"),
        default=None,
        help="observation mode (default: config env.obs_mode)",
    )
    p.add_argument("--config", default=None, help="sim YAML (default: config/sim.yaml if found)")
    p.add_argument(
        "--graph-config",
        default=None,
        help="rollout graph YAML whose safety, mux and chunk settings to run "
        "(default: the installed config/rollout.yaml, what habc-rollout runs)",
    )
    p.add_argument(
        "--schedule",
        nargs="+",
        default=None,
        metavar="ARM:START:END",
        help="rollouts: scripted takeovers (teleop's sim_schedule) instead of the "
        "intervention model, e.g. left:3.0:5.0",
    )
    p.add_argument("--out", default=None, help="data root (episode store layout; default data)")
    p.add_argument(
        "--seed", type=non_negative_int, default=0, help="first episode seed (then +1 each)"
    )
    p.add_argument("--round", type=non_negative_int, default=0)
    p.add_argument(
        "--model-index",
        type=non_negative_int,
        default=None,
        help="expert / weak-expert / replay rollouts: the model index stamped on them "
        "(default 0; a checkpoint carries its own)",
    )
    p.add_argument("--dry-run", action="store_true", help="simulate, write nothing")
    p.add_argument(
        "--compressed", action="store_true", help="pixels: JPEG images (CompressedImage)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


MODES_FLAG = {"demo": "demos", "rollout": "rollouts", "eval": "eval"}


def _refuse_combinations(args: argparse.Namespace, mode: str) -> None:
    """Flags that would be silently ignored together: refused before anything runs."""
    if mode == "demo":
        for flag, value in (("--policy", args.policy), ("--model-index", args.model_index)):
            if value is not None:
                raise UserError(f"{flag}: not with --demos (the scripted operator demonstrates)")
    if args.schedule is not None and mode != "rollout":
        raise UserError(f"--schedule: only with --rollouts (--{MODES_FLAG[mode]} has no takeover)")
    policy = args.policy or DEFAULT_POLICY
    if args.model_index is not None and policy not in BUILTIN_POLICIES:
        raise UserError(
            f"--model-index: not with --policy {policy} (a checkpoint or module:callable "
            "carries its own model index)"
        )
    if args.dry_run:
        for flag, value in (("--out", args.out), ("--compressed", args.compressed or None)):
            if value is not None:
                raise UserError(f"{flag}: not with --dry-run (nothing is written)")


def default_config_path() -> Path | None:
    """`--config` unset: config/sim.yaml if found (habc_benchmark's evaluation imports this)."""
    from habc_sim import config as sim_config  # optional: a robot PC has no habc_sim

    return sim_config.default_config_path()


def summarize(results: list[EpisodeSummary], wall_s: float, control_hz: float) -> str:
    n = len(results)
    if n == 0:
        return "no episodes"
    kinds = Counter(r.kind for r in results)
    succ = sum(r.outcome == "success" for r in results)
    ticks = sum(r.ticks for r in results)
    lens = [r.ticks for r in results if r.outcome == "success"]
    lines = [
        f"episodes: {n}  success: {succ} ({100.0 * succ / n:.1f} %)",
        "kinds: " + ", ".join(f"{k}={v}" for k, v in sorted(kinds.items())),
        f"mean length of successes: {np.mean(lens):.1f} ticks" if lens else "no successes",
        f"simulated {ticks} ticks in {wall_s:.1f} s: {ticks / max(wall_s, 1e-9):.0f} ticks/s "
        f"({ticks / control_hz / max(wall_s, 1e-9):.1f}x real time)",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    # optional: the sim rig (habc_sim, MuJoCo) is not installed on a robot PC
    from habc_sim.config import load_sim_config
    from habc_sim.env import PouchEnv

    with user_errors(PROG):
        args = _parse(argv)
        if args.demos is not None:
            mode, n = "demo", args.demos
        elif args.rollouts is not None:
            mode, n = "rollout", args.rollouts
        else:
            mode, n = "eval", args.eval
        _refuse_combinations(args, mode)
        policy = None if mode == "demo" else args.policy or DEFAULT_POLICY
        if policy is not None:
            check_policy_spec(policy)
        if args.schedule is not None:
            try:  # the arms checked too: ScheduledOperator would refuse them mid-run
                ScheduledOperator(parse_schedule(args.schedule), ("left", "right"))
            except ValueError as exc:
                raise UserError(f"--schedule: {exc}") from None
        if args.config is not None and not Path(args.config).is_file():
            raise UserError(f"--config: no such file {args.config}")
        cfg_path = args.config or default_config_path()
        sim_cfg = load_sim_config(cfg_path)
        obs_mode = args.obs or sim_cfg.env.obs_mode
        if args.compressed and obs_mode != "pixels":
            raise UserError(f"--compressed: only with pixel observations, got --obs {obs_mode}")
        graph_path = args.graph_config or "config/rollout.yaml"
        cfg = CollectConfig.from_graph(
            load_graph_config(args.graph_config),
            mode=mode,
            episodes=n,
            seed=args.seed,
            round=args.round,
            schedule=tuple(args.schedule or ()),
        )
        if policy is not None:
            layout = ActionLayout(("left", "right"), sim_cfg.env.action_space)
            check_checkpoint(
                policy,
                execute_steps=cfg.execute_steps,
                source=f"policy.execute_steps of {graph_path}",
                action_dim=layout.dim,
                cameras=CAMERA_NAMES if obs_mode == "pixels" else (),
            )
        out = args.out or "data"
    env = PouchEnv(sim_cfg, obs_mode=obs_mode)
    sink: EpisodeSink = (
        NullSink()
        if args.dry_run
        else BagSink(out, write_images=env.obs_mode == "pixels", compressed_images=args.compressed)
    )
    factory = (
        None
        if policy is None
        else make_policy_factory(
            policy,
            sim_cfg,
            cfg.horizon,
            cfg.execute_steps,
            0 if args.model_index is None else args.model_index,
        )
    )
    collector = Collector(env, cfg, sink, factory)
    seeds = range(args.seed, args.seed + n)
    bar = None
    if not args.quiet:
        from tqdm import tqdm  # imported only for a progress bar

        bar = tqdm(total=n, desc=f"collect {mode}", unit="ep", file=sys.stderr)
    results: list[EpisodeSummary] = []
    t0 = time.perf_counter()
    try:
        for seed in seeds:
            r = collector.run_episode(seed)
            results.append(r)
            if bar is not None:
                ok = sum(x.outcome == "success" for x in results)
                bar.set_postfix(success=f"{ok}/{len(results)}", last=r.kind)
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        env.close()
    print(summarize(results, time.perf_counter() - t0, env.control_hz))
    if not args.dry_run:
        print(f"written under {Path(out).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
