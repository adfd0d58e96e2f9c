"""Fast DDS-free episode collector on the simulated rig: demos, rollouts, evaluation trials.

Runs the same core classes as the ROS nodes (AuthorityArbiter, ChunkExecutor, CommandMux, the arm
driver's DriverCore with its safety core, EpisodeManager), configured from the same graph config
(config/rollout.yaml: safety limits, blend steps, policy timeout, chunk sizes), and writes each
episode with the trainer's EpisodeBagWriter: the topics the recorder node records, the executed
command (after safety) as the action and the mux's request beside it. Where it differs from the
ROS graph it says so in docs/sim-rig.md ("Two runtimes, one rig").

    collect --demos 20 --out data                       # scripted operator demonstrations
    collect --rollouts 100 --policy expert --out data   # policy + intervention model
    collect --eval 50 --policy module:factory --obs pixels

Per tick t (timestamp start + t / control_hz): observations (joint states, EE poses, images or
env state) are written first, then the operator and the policy act, the mux picks each arm's
request, the driver core puts it through the safety core and sends it, the executed command is
written and the simulator steps. A frame therefore pairs an action with the observation it was
computed from (episode-format.md "Frames"). Inference takes `inference_latency_ticks` ticks, as
the policy node's worker does (a chunk requested at t is executed from t + latency, its first rows
skipped), and the next chunk is requested `prefetch_steps` before the current one runs out.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import yaml

from arx_x5_driver.safety import Command, SafetyConfig
from habc_control.authority import Authority, AuthorityArbiter, AuthorityConfig
from habc_control.chunk_executor import ChunkExecutor, ChunkExecutorConfig
from habc_control.command_mux import (
    POLICY_TIMEOUT_S,
    ActionLayout,
    ArmTarget,
    CommandMux,
    MuxConfig,
    policy_timeout_ticks,
)
from habc_control.episode_manager import EpisodeManager, EpisodeManagerConfig
from habc_control.graph import load_graph_config, node_specs
from habc_control.teleop import ScheduledOperator, parse_schedule
from habc_core.cli import (
    ArgumentParser,
    UserError,
    coerce_field,
    coerce_fields,
    non_negative_int,
    one_line,
    user_errors,
)
from habc_core.contract import MODE_EE, MODE_JOINT
from habc_core.features import CAMERA_NAMES, ENV_STATE, image_key

Mode = Literal["demo", "rollout", "eval"]
MODES: tuple[str, ...] = ("demo", "rollout", "eval")
ROBOT = "arx_x5_bimanual_sim"
PROG = "collect"
# `--policy` names collect runs itself; anything else is a checkpoint directory or module:callable.
BUILTIN_POLICIES: tuple[str, ...] = ("expert", "weak-expert", "replay")
DEFAULT_POLICY = "weak-expert"
SIM_LOG_NAME = "sim_log.yaml"  # operator decisions and task milestones, next to the sidecar


class Policy(Protocol):
    def infer(self, obs: dict[str, Any]) -> dict[str, Any]: ...


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
        ChunkExecutorConfig(self.horizon, self.execute_steps, self.prefetch_steps)
        MuxConfig(blend_steps=self.blend_steps, policy_timeout_ticks=self.policy_timeout_ticks)
        parse_schedule(self.schedule)

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
        }
        settings.update(fields)
        return cls(**settings)


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


class EpisodeSink(Protocol):
    """Where one episode's messages go (a bag, or nothing for dry runs and tests)."""

    def begin(self, meta: Any) -> None: ...
    def observation(self, env: Any, obs: dict[str, Any], t_ns: int) -> None: ...
    def command_request(self, arm: str, out: Any, mode: int, t_ns: int) -> None: ...
    def command(self, arm: str, executed: Any, t_ns: int) -> None: ...
    def authority(self, snapshot: dict[str, Authority], t_ns: int, source: str) -> None: ...
    def chunk(
        self,
        actions: np.ndarray,
        t_ns: int,
        chunk_id: int,
        model_index: int,
        execute_steps: int,
        dim_names: Sequence[str],
    ) -> None: ...
    def end(self, meta: Any, extra: dict[str, Any]) -> str | None: ...


class NullSink:
    def begin(self, meta: Any) -> None:
        pass

    def observation(self, env: Any, obs: dict[str, Any], t_ns: int) -> None:
        pass

    def command_request(self, arm: str, out: Any, mode: int, t_ns: int) -> None:
        pass

    def command(self, arm: str, executed: Any, t_ns: int) -> None:
        pass

    def authority(self, snapshot: dict[str, Authority], t_ns: int, source: str) -> None:
        pass

    def chunk(
        self,
        actions: np.ndarray,
        t_ns: int,
        chunk_id: int,
        model_index: int,
        execute_steps: int,
        dim_names: Sequence[str],
    ) -> None:
        pass

    def end(self, meta: Any, extra: dict[str, Any]) -> str | None:
        return None


class BagSink:
    """One rosbag2 (MCAP) directory + sidecar per episode, via habc_trainer's writer."""

    def __init__(
        self,
        data_root: Path | str,
        *,
        write_images: bool = True,
        compressed_images: bool = False,
        storage: str = "mcap",
    ) -> None:
        self.data_root = Path(data_root)
        self.write_images = write_images
        self.compressed_images = compressed_images
        self.storage = storage
        self._w: Any = None
        self._typestore: Any = None  # one per sink: rosbags compiles its serializers once

    def begin(self, meta: Any) -> None:
        from habc_core.bag_writer import EpisodeBagWriter
        from habc_core.contract import EVENT_START, episode_dir
        from habc_core.rostypes import make_typestore

        if self._typestore is None:
            self._typestore = make_typestore()
        path = episode_dir(self.data_root, meta.task, meta.round, meta.episode_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._w = EpisodeBagWriter(path, storage=self.storage, typestore=self._typestore).open()
        self._w.write_event(
            EVENT_START,
            meta.start_ns,
            episode_id=meta.episode_id,
            task=meta.task,
            source=meta.source,
            round_index=meta.round,
            model_index=meta.model_index,
        )

    def observation(self, env: Any, obs: dict[str, Any], t_ns: int) -> None:
        from habc_sim.model import ARMS

        w, rig = self._w, env.rig
        for arm in ARMS:
            q = np.append(rig.joint_pos(arm), rig.gripper_opening(arm))
            dq = np.append(rig.joint_vel(arm), 0.0)
            w.write_joint_state(arm, q, t_ns, velocity=dq)
            xyz, rot = rig.ee_pose(arm)
            w.write_ee_pose(arm, xyz, _quat_xyzw(rot), t_ns)
        if hasattr(w, "write_env_state"):  # /sim/env_state: newer writers only
            w.write_env_state(obs[ENV_STATE], t_ns)
        if self.write_images:
            for cam in CAMERA_NAMES:
                img = obs.get(image_key(cam))
                if img is not None:
                    w.write_image(cam, img, t_ns, compressed=self.compressed_images)

    def command_request(self, arm: str, out: Any, mode: int, t_ns: int) -> None:
        self._w.write_command_request(
            arm,
            out.target.targets,
            out.target.gripper,
            t_ns,
            authority=int(out.authority),
            model_index=int(out.model_index),
            mode=mode,
        )

    def command(self, arm: str, executed: Any, t_ns: int) -> None:
        cmd = executed.command
        self._w.write_arm_command(
            arm,
            cmd.targets,
            cmd.gripper,
            t_ns,
            authority=int(cmd.authority),
            model_index=int(executed.model_index),
            mode=int(cmd.mode),
            safety=int(executed.flags),
        )

    def authority(self, snapshot: dict[str, Authority], t_ns: int, source: str) -> None:
        self._w.write_authority({a: int(v) for a, v in snapshot.items()}, t_ns, source=source)

    def chunk(
        self,
        actions: np.ndarray,
        t_ns: int,
        chunk_id: int,
        model_index: int,
        execute_steps: int,
        dim_names: Sequence[str],
    ) -> None:
        self._w.write_action_chunk(
            actions,
            t_ns,
            chunk_id=chunk_id,
            model_index=model_index,
            execute_steps=execute_steps,
            dim_names=dim_names,
        )

    def end(self, meta: Any, extra: dict[str, Any]) -> str | None:
        path = self._w.bag_dir
        self._w.finish(meta, meta.end_ns)
        self._w = None
        (path / SIM_LOG_NAME).write_text(yaml.safe_dump(extra, sort_keys=False), "utf-8")
        return str(path)


def _quat_xyzw(rot: np.ndarray) -> np.ndarray:
    import mujoco

    q = np.empty(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(rot).reshape(-1))
    return np.array([q[1], q[2], q[3], q[0]])


PolicyFactory = Callable[[Any, int], Policy]  # (env, episode seed) -> policy


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
        self.manager = EpisodeManager(
            EpisodeManagerConfig(
                robot=ROBOT,
                control_hz=env.control_hz,
                t_max_steps=env.cfg.task.t_max,
            )
        )

    def run_episode(self, seed: int) -> EpisodeSummary:
        from arx_x5_driver.driver_core import DriverCore
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
        executor = ChunkExecutor(
            ChunkExecutorConfig(cfg.horizon, cfg.execute_steps, cfg.prefetch_steps)
        )
        mux = CommandMux(
            MuxConfig(arms, env.action_space, cfg.blend_steps, cfg.policy_timeout_ticks)
        )
        mode_code = MODE_EE if env.action_space == "ee" else MODE_JOINT
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
                    in_flight = (token, policy.infer(obs), env.tick + cfg.inference_latency_ticks)
                if in_flight is not None and env.tick >= in_flight[2]:
                    token, out, _due = in_flight
                    in_flight = None
                    mi = int(out.get("model_index", model_index))
                    if executor.load(out["actions"], token, model_index=mi):
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
            policy_t = self.layout.split(step.action) if step is not None else {}
            human_t = {
                arm: hand_targets[arm] if hands else _target(operator.act(arm))
                for arm in arms
                if auth[arm] == Authority.HUMAN
            }
            measured = {arm: _target(self._measured(arm)) for arm in arms}
            outs = mux.tick(
                auth, policy_t, human_t, measured, step.model_index if step is not None else -1
            )
            for arm in arms:
                out = outs[arm]
                self.sink.command_request(arm, out, mode_code, t_ns)
                core.set_held(arm, auth[arm] == Authority.HOLD)
                try:
                    cmd = Command(
                        mode_code, out.target.targets, out.target.gripper, int(out.authority)
                    )
                except ValueError:
                    continue  # refused like the arm node refuses it (NaN): the watchdog holds
                core.request(arm, cmd, out.model_index, now)
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
        from habc_sim.rotations import rot6d_from_matrix

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


# --- policies from the command line ---
def check_policy_spec(spec: str, name: str = "--policy") -> None:
    """Refuse a policy spec that cannot load, before anything runs: not a built-in name, not a
    directory, not an importable module:callable. `name` is the flag or field it came from."""
    if spec in BUILTIN_POLICIES or Path(spec).is_dir():
        return
    if ":" in spec and not Path(spec).exists():
        module, _, attr = spec.partition(":")
        try:
            found = bool(module) and importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found or not attr:
            raise UserError(f"{name}: {spec!r}: no module {module!r} to take {attr!r} from")
        return
    if Path(spec).exists():
        raise UserError(f"{name}: {spec}: not a directory (expected a checkpoint directory)")
    raise UserError(
        f"{name}: {spec!r} is not one of {', '.join(BUILTIN_POLICIES)}, an existing checkpoint "
        "directory or module:callable"
    )


def checkpoint_model_config(path: Path | str, name: str = "--policy") -> Any:
    """The ModelConfig a checkpoint directory was trained with, read by the trainer's own loader
    (habc_trainer.checkpoint.load_checkpoint: its layout, version and integrity checks); a
    damaged or foreign directory is a UserError naming it instead of a traceback."""
    from habc_trainer.checkpoint import CheckpointError, load_checkpoint

    try:
        return load_checkpoint(path).model_config
    except (CheckpointError, ValueError, KeyError, OSError, yaml.YAMLError) as exc:
        reason = one_line(exc).removeprefix(f"{path}: ")  # the loader names the path too
        raise UserError(f"{name} {path}: {reason}") from None


def check_checkpoint(
    spec: str,
    *,
    execute_steps: int,
    source: str,
    name: str = "--policy",
    action_dim: int | None = None,
    cameras: Sequence[str] | None = None,
    env_state: bool | None = None,
) -> None:
    """Refuse a checkpoint this runtime cannot run, before the first episode (a checkpoint's
    chunk that is too short fails only once the first chunk arrives, mid-episode).

    `execute_steps` (named by `source`, e.g. the graph config's policy.execute_steps) must fit
    in the model's horizon; where given, the model's action dim must be `action_dim`, its
    cameras among `cameras` (the images this run provides) and, for a state-mode model
    (env_state_dim > 0), `env_state` true. A spec that is not a checkpoint directory
    (a built-in policy, module:callable) is not checked here.
    """
    if spec in BUILTIN_POLICIES or (":" in spec and not Path(spec).exists()):
        return
    if not Path(spec).is_dir():
        raise UserError(f"{name} {spec}: no such checkpoint directory")
    model = checkpoint_model_config(spec, name)
    where = f"{name} {spec}"
    if model.horizon < execute_steps:
        raise UserError(
            f"{where}: checkpoint horizon {model.horizon} < execute_steps {execute_steps} "
            f"({source}); each chunk must hold the steps executed from it"
        )
    if action_dim is not None and model.action_dim and model.action_dim != action_dim:
        raise UserError(
            f"{where}: checkpoint action_dim {model.action_dim}, this rig's action layout has "
            f"{action_dim}"
        )
    missing = [c for c in model.cameras if cameras is not None and c not in cameras]
    if missing:
        given = ", ".join(cameras) if cameras else "none (state observations)"
        raise UserError(
            f"{where}: checkpoint needs camera images {missing}; this run provides {given}"
        )
    if env_state is False and model.env_state_dim:
        raise UserError(
            f"{where}: checkpoint is a state-mode model (env_state_dim {model.env_state_dim}); "
            "only the simulated rig provides the env state"
        )


def make_policy_factory(
    spec: str, sim_cfg: Any, horizon: int, execute_steps: int, model_index: int
) -> PolicyFactory:
    """`expert` (good skill), `weak-expert` (poor skill: the imperfect policy), `replay`
    (open-loop replay of a demo recorded on another seed), or what the policy node loads: a
    trainer checkpoint directory or `module:callable` (callable() -> object with infer(obs))."""
    from habc_sim.policies import ExpertChunkPolicy, ReplayPolicy

    if spec in ("expert", "weak-expert"):
        skill = sim_cfg.operator.expert if spec == "expert" else weak_skill()

        def expert(env: Any, seed: int) -> Policy:
            return ExpertChunkPolicy(env, skill, seed + 7919, horizon, execute_steps, model_index)

        return expert
    if spec == "replay":

        def replay(env: Any, seed: int) -> Policy:
            actions = record_demo_actions(env, seed + 100_003, sim_cfg.operator.expert)
            return ReplayPolicy(actions, lambda: env.tick, horizon, model_index)

        return replay
    if ":" in spec or Path(spec).is_dir():
        # Checkpoints and module:callable load exactly as the policy node loads them, once the
        # checkpoint's chunks are known to cover execute_steps (else the first chunk fails).
        from habc_control.policies import load_policy

        check_checkpoint(spec, execute_steps=execute_steps, source="the collector's config")

        policy, index = load_policy(spec, horizon)
        if not hasattr(policy, "model_index"):
            policy.model_index = index

        def loaded(env: Any, seed: int) -> Policy:
            # A flow policy samples its noise from torch's global generator: seeding it per
            # episode makes an episode a function of (policy, episode seed), whatever the
            # process ran before it, so a seed reproduces its rollout or trial.
            torch = sys.modules.get("torch")
            if torch is not None:
                torch.manual_seed(seed)
            if hasattr(policy, "reset"):
                policy.reset(seed)
            return policy

        return loaded
    raise ValueError(
        f"policy: {spec!r} is not one of expert, weak-expert, replay, a checkpoint directory "
        "or module:callable"
    )


def weak_skill() -> Any:
    """A policy that roughly knows the task but aims badly: grasps miss or slip now and then."""
    from habc_sim.config import ExpertConfig

    return ExpertConfig(pos_noise=0.011, yaw_noise=0.3, hesitation_prob=0.3, regrasp_prob=0.0)


def record_demo_actions(env: Any, seed: int, skill: Any) -> np.ndarray:
    """Run the scripted expert on `seed` and return its (T, D) actions."""
    from habc_sim.expert import ScriptedExpert

    env.reset(seed)
    expert = ScriptedExpert(env, skill, np.random.default_rng([seed, 2]))
    rows, done = [], False
    while not done:
        a = expert.act()
        rows.append(a)
        _, _, term, trunc, _ = env.step(a)
        done = term or trunc
    return np.asarray(rows, dtype=np.float32)


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


def _default_config_path() -> Path | None:
    for parent in [Path.cwd(), *Path(__file__).resolve().parents]:
        cand = parent / "config" / "sim.yaml"
        if cand.is_file():
            return cand
    return None


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
        cfg_path = args.config or _default_config_path()
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
        from tqdm import tqdm

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
