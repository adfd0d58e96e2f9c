"""Fast DDS-free episode collector on the simulated rig: demos, rollouts, evaluation trials.

Runs the same core classes as the ROS nodes (AuthorityArbiter, ChunkExecutor, CommandMux,
EpisodeManager) and writes each episode with the trainer's EpisodeBagWriter, so a collected bag is
indistinguishable from one the recorder node writes on the simulated rig.

    collect --demos 20 --out data                       # scripted operator demonstrations
    collect --rollouts 100 --policy expert --out data   # policy + intervention model
    collect --eval 50 --policy module:factory --obs pixels

Per tick t (timestamp start + t / control_hz): observations (joint states, EE poses, images or
env state) are written first, then the operator and the policy act, the mux picks each arm's
command, the command is written and the simulator steps. A frame therefore pairs an action with
the observation it was computed from (episode-format.md "Frames").
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import yaml

from habc_control.authority import Authority, AuthorityArbiter, AuthorityConfig
from habc_control.chunk_executor import ChunkExecutor, ChunkExecutorConfig
from habc_control.command_mux import ActionLayout, ArmTarget, CommandMux, MuxConfig
from habc_control.episode_manager import EpisodeManager, EpisodeManagerConfig
from habc_trainer.features import CAMERA_NAMES, ENV_STATE, image_key

Mode = Literal["demo", "rollout", "eval"]
MODES: tuple[str, ...] = ("demo", "rollout", "eval")
ROBOT = "arx_x5_bimanual_sim"
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
    blend_steps: int = 15  # mux interpolation after a takeover (0.5 s at 30 Hz)
    write_images: bool = True  # pixel mode only
    compressed_images: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode: {self.mode!r} is not one of {list(MODES)}")
        if self.episodes < 0:
            raise ValueError(f"episodes: must be >= 0, got {self.episodes!r}")
        if self.round < 0:
            raise ValueError(f"round: must be >= 0, got {self.round!r}")
        ChunkExecutorConfig(horizon=self.horizon, execute_steps=self.execute_steps)


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
    def command(self, arm: str, out: Any, mode: int, t_ns: int) -> None: ...
    def authority(self, snapshot: dict[str, Authority], t_ns: int, source: str) -> None: ...
    def chunk(self, actions: np.ndarray, t_ns: int, chunk_id: int, model_index: int,
              execute_steps: int, dim_names: Sequence[str]) -> None: ...
    def end(self, meta: Any, extra: dict[str, Any]) -> str | None: ...


class NullSink:
    def begin(self, meta: Any) -> None:
        pass

    def observation(self, env: Any, obs: dict[str, Any], t_ns: int) -> None:
        pass

    def command(self, arm: str, out: Any, mode: int, t_ns: int) -> None:
        pass

    def authority(self, snapshot: dict[str, Authority], t_ns: int, source: str) -> None:
        pass

    def chunk(self, actions: np.ndarray, t_ns: int, chunk_id: int, model_index: int,
              execute_steps: int, dim_names: Sequence[str]) -> None:
        pass

    def end(self, meta: Any, extra: dict[str, Any]) -> str | None:
        return None


class BagSink:
    """One rosbag2 (MCAP) directory + sidecar per episode, via habc_trainer's writer."""

    def __init__(self, data_root: Path | str, *, write_images: bool = True,
                 compressed_images: bool = False, storage: str = "mcap") -> None:
        self.data_root = Path(data_root)
        self.write_images = write_images
        self.compressed_images = compressed_images
        self.storage = storage
        self._w: Any = None
        self._typestore: Any = None  # one per sink: rosbags compiles its serializers once

    def begin(self, meta: Any) -> None:
        from habc_trainer.bag_writer import EpisodeBagWriter
        from habc_trainer.contract import EVENT_START, episode_dir
        from habc_trainer.rostypes import make_typestore

        if self._typestore is None:
            self._typestore = make_typestore()
        path = episode_dir(self.data_root, meta.task, meta.round, meta.episode_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._w = EpisodeBagWriter(path, storage=self.storage, typestore=self._typestore).open()
        self._w.write_event(
            EVENT_START, meta.start_ns, episode_id=meta.episode_id, task=meta.task,
            source=meta.source, round_index=meta.round, model_index=meta.model_index,
        )

    def observation(self, env: Any, obs: dict[str, Any], t_ns: int) -> None:
        from arx_x5_driver.sim.model import ARMS

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

    def command(self, arm: str, out: Any, mode: int, t_ns: int) -> None:
        self._w.write_arm_command(
            arm, out.target.targets, out.target.gripper, t_ns,
            authority=int(out.authority), model_index=int(out.model_index), mode=mode,
        )

    def authority(self, snapshot: dict[str, Authority], t_ns: int, source: str) -> None:
        self._w.write_authority({a: int(v) for a, v in snapshot.items()}, t_ns, source=source)

    def chunk(self, actions: np.ndarray, t_ns: int, chunk_id: int, model_index: int,
              execute_steps: int, dim_names: Sequence[str]) -> None:
        self._w.write_action_chunk(
            actions, t_ns, chunk_id=chunk_id, model_index=model_index,
            execute_steps=execute_steps, dim_names=dim_names,
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

    def __init__(self, env: Any, cfg: CollectConfig, sink: EpisodeSink,
                 policy_factory: PolicyFactory | None = None) -> None:
        if cfg.mode != "demo" and policy_factory is None:
            raise ValueError(f"policy_factory: mode {cfg.mode!r} needs a policy")
        self.env = env
        self.cfg = cfg
        self.sink = sink
        self.policy_factory = policy_factory
        self.layout = ActionLayout(("left", "right"), env.action_space)
        self.manager = EpisodeManager(EpisodeManagerConfig(
            robot=ROBOT, control_hz=env.control_hz, t_max_steps=env.cfg.task.t_max,
        ))

    def run_episode(self, seed: int) -> EpisodeSummary:
        from arx_x5_driver.sim.operator import InterventionModel, label_outcome

        env, cfg = self.env, self.cfg
        period_ns = int(round(1e9 / env.control_hz))
        # The policy first: a replay policy runs its own demo on the env before the episode.
        policy = self.policy_factory(env, seed) if self.policy_factory else None
        obs = env.reset(seed)
        rng = np.random.default_rng([seed, 1])  # operator's own stream, independent of layout
        operator = InterventionModel(env, env.cfg.operator, rng)
        demo = cfg.mode == "demo"
        arbiter = AuthorityArbiter(AuthorityConfig(
            arms=self.layout.arms, initial=Authority.HUMAN if demo else Authority.POLICY,
        ))
        executor = ChunkExecutor(ChunkExecutorConfig(cfg.horizon, cfg.execute_steps))
        mux = CommandMux(MuxConfig(self.layout.arms, env.action_space, cfg.blend_steps))
        start_ns = time.time_ns()
        model_index = -1 if demo else int(getattr(policy, "model_index", 0))
        res = self.manager.start(env.prompt, cfg.mode, cfg.round, start_ns, model_index)
        if not res.accepted:
            raise RuntimeError(f"episode manager refused to start: {res.message}")
        self.sink.begin(res.meta)
        mode_code = 1 if env.action_space == "ee" else 0
        dim_names = self.layout.dim_names()
        self.manager.note_authority(arbiter.snapshot())
        done = False
        t_ns = start_ns
        while not done:
            t_ns = start_ns + env.tick * period_ns
            now = env.tick / env.control_hz
            self.sink.observation(env, obs, t_ns)
            if cfg.mode == "rollout":
                wants = operator.observe(env.tick)
                changes = []
                for arm, human in wants.items():
                    target = Authority.HUMAN if human else Authority.POLICY
                    changes += arbiter.request(arm, target, now, "sim_operator")
                if changes:
                    self.manager.note_authority(arbiter.snapshot())
            if env.tick == 0 or arbiter.heartbeat_due(now) or (cfg.mode == "rollout" and changes):
                self.sink.authority(arbiter.snapshot(), t_ns, arbiter.source)
                arbiter.mark_published(now)
            auth = arbiter.snapshot()
            executor.on_authority(auth)
            if policy is not None and executor.should_request():
                token = executor.begin_request()
                out = policy.infer(obs)
                mi = int(out.get("model_index", model_index))
                if executor.load(out["actions"], token, model_index=mi):
                    self.manager.note_model_index(mi)
                    self.sink.chunk(out["actions"], t_ns, executor.chunk_id, mi,
                                    cfg.execute_steps, dim_names)
            step = executor.step() if policy is not None else None
            policy_t = self.layout.split(step.action) if step is not None else {}
            human_t = {
                arm: _target(operator.act(arm)) for arm in self.layout.arms
                if auth[arm] == Authority.HUMAN
            }
            measured = {arm: _target(self._measured(arm)) for arm in self.layout.arms}
            outs = mux.tick(auth, policy_t, human_t, measured,
                            step.model_index if step is not None else -1)
            action = self.layout.join({arm: outs[arm].target for arm in self.layout.arms})
            obs, _r, terminated, truncated, _info = env.step(action)
            for arm in self.layout.arms:
                # Record what the arm was actually told (rotation re-orthonormalised, gripper
                # clipped to its stroke, a NaN row replaced by the held command).
                sent = env.last_command[arm]
                executed = dataclasses.replace(
                    outs[arm], target=ArmTarget(np.asarray(sent.targets), float(sent.gripper))
                )
                self.sink.command(arm, executed, mode_code, t_ns)
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
            "operator": operator.log.to_dict(),
        }
        path = self.sink.end(end.meta, extra)
        return EpisodeSummary(seed, end.meta.episode_id, outcome, end.meta.intervened, env.tick,
                              path, operator.log.to_dict(), dict(env.monitor.reached), cfg.mode)

    def _measured(self, arm: str) -> np.ndarray:
        from arx_x5_driver.sim.rotations import rot6d_from_matrix

        rig = self.env.rig
        if self.env.action_space == "ee":
            xyz, rot = rig.ee_pose(arm)
            return np.concatenate([xyz, rot6d_from_matrix(rot), [rig.gripper_opening(arm)]])
        return np.append(rig.joint_pos(arm), rig.gripper_opening(arm))


def _target(v: np.ndarray) -> ArmTarget:
    v = np.asarray(v, dtype=np.float64)
    return ArmTarget(v[:-1].copy(), float(v[-1]))


def _reason(env: Any) -> str:
    s = env.state
    if env.monitor.succeeded(env.cfg.task.settle_ticks):
        return "success"
    if s.off_table:
        return "marker off the table"
    return f"step limit ({env.cfg.task.t_max} ticks), milestones {list(env.monitor.reached)}"


# --- policies from the command line ---
def make_policy_factory(spec: str, sim_cfg: Any, horizon: int, execute_steps: int,
                        model_index: int) -> PolicyFactory:
    """`expert` (good skill), `weak-expert` (poor skill: the imperfect policy), `replay`
    (open-loop replay of a demo recorded on another seed), or what the policy node loads: a
    trainer checkpoint directory or `module:callable` (callable() -> object with infer(obs))."""
    from arx_x5_driver.sim.policies import ExpertChunkPolicy, ReplayPolicy

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
        # Checkpoints and module:callable load exactly as the policy node loads them.
        from habc_control.policies import load_policy

        policy, index = load_policy(spec, horizon)
        if not hasattr(policy, "model_index"):
            policy.model_index = index

        def loaded(env: Any, seed: int) -> Policy:
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
    from arx_x5_driver.sim.config import ExpertConfig

    return ExpertConfig(pos_noise=0.011, yaw_noise=0.3, hesitation_prob=0.3, regrasp_prob=0.0)


def record_demo_actions(env: Any, seed: int, skill: Any) -> np.ndarray:
    """Run the scripted expert on `seed` and return its (T, D) actions."""
    from arx_x5_driver.sim.expert import ScriptedExpert

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
    p = argparse.ArgumentParser(prog="collect", description=__doc__.split("\n\n")[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--demos", type=int, metavar="N", help="N scripted-operator demonstrations")
    g.add_argument("--rollouts", type=int, metavar="N",
                   help="N policy rollouts with the intervention model")
    g.add_argument("--eval", type=int, metavar="N", help="N evaluation trials (no takeover)")
    p.add_argument("--policy", default="weak-expert",
                   help="expert | weak-expert | replay | checkpoint dir | module:callable")
    p.add_argument("--obs", choices=("state", "pixels"), default=None,
                   help="observation mode (default: config env.obs_mode)")
    p.add_argument("--config", default=None, help="sim YAML (default: config/sim.yaml if found)")
    p.add_argument("--out", default="data", help="data root (episode store layout)")
    p.add_argument("--seed", type=int, default=0, help="first episode seed (then +1 each)")
    p.add_argument("--round", type=int, default=0)
    p.add_argument("--model-index", type=int, default=0)
    p.add_argument("--dry-run", action="store_true", help="simulate, write nothing")
    p.add_argument("--compressed", action="store_true", help="JPEG images (CompressedImage)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


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
    from arx_x5_driver.sim.config import load_sim_config
    from arx_x5_driver.sim.env import PouchEnv

    args = _parse(argv)
    if args.demos is not None:
        mode, n = "demo", args.demos
    elif args.rollouts is not None:
        mode, n = "rollout", args.rollouts
    else:
        mode, n = "eval", args.eval
    cfg_path = args.config or _default_config_path()
    sim_cfg = load_sim_config(cfg_path)
    env = PouchEnv(sim_cfg, obs_mode=args.obs)
    cfg = CollectConfig(mode=mode, episodes=n, seed=args.seed, round=args.round)
    sink: EpisodeSink = NullSink() if args.dry_run else BagSink(
        args.out, write_images=env.obs_mode == "pixels", compressed_images=args.compressed)
    factory = None if mode == "demo" else make_policy_factory(
        args.policy, sim_cfg, cfg.horizon, cfg.execute_steps, args.model_index)
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
        print(f"written under {Path(args.out).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
