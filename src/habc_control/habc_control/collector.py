"""The DDS-free collector's episode loop: the ROS graph's cores stepped in one process.

Per tick t (timestamp start + t / control_hz): observations (joint states, EE poses, images or
env state) go to the sink first, then the operator and the policy act, the mux picks each arm's
request, the driver core puts the previous tick's request through the safety core and sends it,
the executed command is written and the simulator steps. The transport is the graph's
(docs/sim-rig.md, "Row transport"): a policy row reaches the mux one tick after it was computed
and the driver executes a request one tick after the mux made it, so an executed policy command
answers the observation of two ticks before, as on the rig. Inference takes
`inference_latency_ticks` ticks, as the policy node's worker does (a chunk requested at t is
executed from t + latency, its first rows skipped), and the next chunk is requested
`prefetch_steps` before the current one runs out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from arx_x5_driver.driver_core import DriverCore
from arx_x5_driver.safety import Command
from habc_control.authority import Authority, AuthorityArbiter, AuthorityConfig
from habc_control.chunk_executor import ChunkExecutor
from habc_control.collect_policies import PolicyFactory
from habc_control.collect_sinks import EpisodeSink
from habc_control.command_mux import ActionLayout, ArmTarget, CommandMux, MuxConfig
from habc_control.episode_manager import EpisodeManager, EpisodeManagerConfig
from habc_control.teleop import ScheduledOperator, parse_schedule
from habc_core.contract import MODE_BY_SPACE
from habc_core.policy import PREFIX_GUIDED
from habc_core.rotations import rot6d_from_matrix

if TYPE_CHECKING:  # the config lives with the CLI that builds it; no import cycle at run time
    from habc_control.collect import CollectConfig

ROBOT = "arx_x5_bimanual_sim"


@dataclass
class EpisodeSummary:
    seed: int
    episode_id: str
    outcome: str
    intervened: bool
    ticks: int
    path: str | None
    operator: dict = field(default_factory=dict)
    milestones: dict = field(default_factory=dict)
    source: str = "rollout"

    @property
    def kind(self) -> str:
        """demo_<outcome>, autonomous_<outcome> or intervened_<outcome>."""
        if self.source == "demo":
            return f"demo_{self.outcome}"
        if self.intervened:
            return f"intervened_{self.outcome}"
        return f"autonomous_{self.outcome}"


class Collector:
    """Runs episodes on one PouchEnv; one instance per process."""

    def __init__(
        self,
        env: Any,
        cfg: CollectConfig,
        sink: EpisodeSink,
        policy_factory: PolicyFactory | None = None,
    ) -> None:
        if cfg.mode != "demo" and policy_factory is None:
            raise ValueError(f"policy_factory: mode {cfg.mode!r} needs a policy")
        self.env = env
        self.cfg = cfg
        self.sink = sink
        self.policy_factory = policy_factory
        self.layout = ActionLayout(("left", "right"), env.action_space)
        self.executor: ChunkExecutor | None = None  # the last episode's
        self.manager = EpisodeManager(
            EpisodeManagerConfig(
                robot=ROBOT,
                control_hz=env.control_hz,
                t_max_steps=env.cfg.task.t_max,
            )
        )

    def run_episode(self, seed: int) -> EpisodeSummary:
        # optional: the sim rig (habc_sim, MuJoCo) is not installed on a robot PC
        from arx_x5_driver.sim_backend import SimRigBackend
        from habc_sim.expert import ScriptedExpert
        from habc_sim.operator import InterventionModel, label_outcome

        env, cfg = self.env, self.cfg
        arms = self.layout.arms
        period_ns = int(round(1e9 / env.control_hz))
        # The policy first: a replay policy runs its own demo on the env before the episode.
        policy = self.policy_factory(env, seed) if self.policy_factory else None
        obs = env.reset(seed)
        rng = np.random.default_rng([seed, 1])  # operator's own stream, independent of layout
        demo = cfg.mode == "demo"
        scheduled = cfg.mode == "rollout" and bool(cfg.schedule)
        operator = InterventionModel(env, env.cfg.operator, rng)
        # Scheduled takeovers: the human's hands are the scripted expert acting every tick, as
        # the sim arm driver runs it for the teleop node (`publish_expert`, same seed stream).
        hands = (
            ScriptedExpert(env, env.cfg.operator.expert, np.random.default_rng([seed, 1]))
            if scheduled
            else None
        )
        foot = ScheduledOperator(parse_schedule(cfg.schedule), arms) if scheduled else None
        if foot is not None:
            foot.episode_start = 0.0
        arbiter = AuthorityArbiter(
            AuthorityConfig(
                arms=arms,
                initial=Authority.HUMAN if demo else Authority.POLICY,
            )
        )
        executor = ChunkExecutor(cfg.chunk_config())
        self.executor = executor  # the episode's chunk counters, for benchmarks and tests
        mux = CommandMux(
            MuxConfig(arms, env.action_space, cfg.blend_steps, cfg.policy_timeout_ticks)
        )
        mode_code = MODE_BY_SPACE[env.action_space]
        core = DriverCore(SimRigBackend(mode=mode_code, env=env), cfg.safety, mode_code)
        start_ns = time.time_ns()
        model_index = -1 if demo else int(getattr(policy, "model_index", 0))
        res = self.manager.start(env.prompt, cfg.mode, cfg.round, start_ns, model_index)
        if not res.accepted:
            raise RuntimeError(f"episode manager refused to start: {res.message}")
        self.sink.begin(res.meta)
        dim_names = self.layout.dim_names()
        self.manager.note_authority(arbiter.snapshot())
        hand_targets = {arm: _target(hands.act_arm(arm)) for arm in arms} if hands else {}
        in_flight: tuple[Any, dict[str, Any], int] | None = None  # (token, result, due tick)
        in_transit_row: tuple[dict[str, ArmTarget], int] = ({}, -1)  # policy -> mux
        in_transit_requests: list[tuple[str, Command, int, float]] = []  # mux -> driver
        done = False
        t_ns = start_ns
        while not done:
            t_ns = start_ns + env.tick * period_ns
            now = env.tick / env.control_hz
            self.sink.observation(env, obs, t_ns)
            changes = []
            if foot is not None:
                changes = arbiter.update(foot.levels(now), now, "sim_operator")
            elif cfg.mode == "rollout":
                for arm, human in operator.observe(env.tick).items():
                    target = Authority.HUMAN if human else Authority.POLICY
                    changes += arbiter.request(arm, target, now, "sim_operator")
            if changes:
                self.manager.note_authority(arbiter.snapshot())
            if env.tick == 0 or arbiter.heartbeat_due(now) or changes:
                self.sink.authority(arbiter.snapshot(), t_ns, arbiter.source)
                arbiter.mark_published(now)
            auth = arbiter.snapshot()
            executor.on_authority(auth)
            if policy is not None:
                if executor.should_request():
                    token = executor.begin_request()
                    out = policy.infer({**obs, **executor.request_inputs()})
                    in_flight = (token, out, env.tick + cfg.inference_latency_ticks)
                if in_flight is not None and env.tick >= in_flight[2]:
                    token, out, _due = in_flight
                    in_flight = None
                    mi = int(out.get("model_index", model_index))
                    guided = bool(out.get(PREFIX_GUIDED, False))
                    if executor.load(out["actions"], token, model_index=mi, guided=guided):
                        self.manager.note_model_index(mi)
                        self.sink.chunk(
                            out["actions"],
                            t_ns,
                            executor.chunk_id,
                            mi,
                            cfg.execute_steps,
                            dim_names,
                        )
            step = executor.step() if policy is not None else None
            # Transport, as in the graph (docs/sim-rig.md, "Row transport"): the policy's row
            # reaches the mux after the mux's own tick and waits one tick in its FIFO, and the
            # driver executes the mux's request at its next tick.
            row, row_index = in_transit_row
            in_transit_row = (
                self.layout.split(step.action) if step is not None else {},
                step.model_index if step is not None else -1,
            )
            human_t = {
                arm: hand_targets[arm] if hands else _target(operator.act(arm))
                for arm in arms
                if auth[arm] == Authority.HUMAN
            }
            measured = {arm: _target(self._measured(arm)) for arm in arms}
            outs = mux.tick(auth, row, human_t, measured, row_index)
            for arm, cmd, index, sent in in_transit_requests:
                core.request(arm, cmd, index, sent)
            in_transit_requests = []
            for arm in arms:
                out = outs[arm]
                self.sink.command_request(arm, out, mode_code, t_ns)
                core.set_held(arm, auth[arm] == Authority.HOLD)  # the driver's own HOLD path
                try:
                    cmd = Command(
                        mode_code, out.target.targets, out.target.gripper, int(out.authority)
                    )
                except ValueError:
                    continue  # refused like the arm node refuses it (NaN): the watchdog holds
                in_transit_requests.append((arm, cmd, out.model_index, now))
            for arm, (_m, executed) in core.tick(now).items():
                self.sink.command(arm, executed, t_ns)
            obs, _r, terminated, truncated, _info = env.step(None)
            if hands is not None:
                hand_targets = {arm: _target(hands.act_arm(arm)) for arm in arms}
            done = terminated or truncated
        outcome = label_outcome(env)
        end = self.manager.end(outcome, t_ns)
        extra = {
            "seed": seed,
            "outcome_reason": _reason(env),
            "milestones": dict(env.monitor.reached),
            "slips": env.monitor.slips,
            "lid_snaps": env.monitor.lid_snaps,
            "ik_failures": env.ik_failures,
            "invalid_actions": env.invalid_actions,
            "operator": (
                operator.log.to_dict() if foot is None else {"schedule": list(cfg.schedule)}
            ),
        }
        path = self.sink.end(end.meta, extra)
        return EpisodeSummary(
            seed,
            end.meta.episode_id,
            outcome,
            end.meta.intervened,
            env.tick,
            path,
            extra["operator"],
            dict(env.monitor.reached),
            cfg.mode,
        )

    def _measured(self, arm: str) -> np.ndarray:
        rig = self.env.rig
        if self.env.action_space == "ee":
            xyz, rot = rig.ee_pose(arm)
            return np.concatenate([xyz, rot6d_from_matrix(rot), [rig.gripper_opening(arm)]])
        return np.append(rig.joint_pos(arm), rig.gripper_opening(arm))


def _target(v: np.ndarray) -> ArmTarget:
    v = np.asarray(v, dtype=np.float64)
    return ArmTarget(v[:-1].copy(), float(v[-1]))


def _reason(env: Any) -> str:
    done, _success, reason = env.status()
    if done and not reason.startswith("step limit"):
        return reason
    return f"step limit ({env.cfg.task.t_max} ticks), milestones {list(env.monitor.reached)}"
