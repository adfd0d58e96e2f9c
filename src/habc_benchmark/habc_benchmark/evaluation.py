"""Held-out evaluation of one policy: N trials through collect's own episode loop.

The trials run `collect.Collector` in `eval` mode (no operator takeover) with a `NullSink`, so
evaluation and `habc-collect --eval` are the same code path; only the bookkeeping is added here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from habc_benchmark.seeds import EVAL_BASE, check_eval_seeds

# Deferred to the call that needs it: torch and mujoco (habc_sim.env, habc_sim.model).
from habc_benchmark.stats import Summary, summarize
from habc_control.collect import (
    CollectConfig,
    Collector,
    NullSink,
    default_config_path,
    make_policy_factory,
)
from habc_sim.config import load_sim_config

OBS_MODES: tuple[str, ...] = ("state", "pixels")


@dataclass(frozen=True)
class EvalConfig:
    trials: int = 50
    first_seed: int = EVAL_BASE
    obs_mode: str = "state"
    sim_config: str | None = None  # sim YAML; None: collect's default (config/sim.yaml)
    torch_threads: int = 1  # a tiny actor: more threads only add contention on a shared CPU

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise ValueError(f"trials: must be >= 1, got {self.trials!r}")
        if self.obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode: {self.obs_mode!r} is not one of {list(OBS_MODES)}")
        if self.torch_threads < 1:
            raise ValueError(f"torch_threads: must be >= 1, got {self.torch_threads!r}")
        check_eval_seeds(self.first_seed, self.trials)


@dataclass(frozen=True)
class Trial:
    seed: int
    success: bool
    length: int  # action frames (control ticks) until the episode ended
    milestones: list[str] = field(default_factory=list)


@dataclass
class EvalResult:
    policy: str
    obs_mode: str
    model_index: int
    trials: list[Trial]
    summary: Summary
    wall_s: float
    ticks_per_s: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "obs_mode": self.obs_mode,
            "model_index": self.model_index,
            "summary": self.summary.to_dict(),
            "wall_s": self.wall_s,
            "ticks_per_s": self.ticks_per_s,
            "trials": [asdict(t) for t in self.trials],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalResult:
        trials = [Trial(**t) for t in d["trials"]]
        return cls(
            d["policy"],
            d["obs_mode"],
            int(d["model_index"]),
            trials,
            Summary(**d["summary"]),
            float(d["wall_s"]),
            float(d["ticks_per_s"]),
        )

    def write_json(self, path: Path | str) -> None:
        """Atomic: a reader (or a resumed run) never sees half a result."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1), "utf-8")
        tmp.replace(path)


class GripperClampedPolicy:
    """A policy whose gripper commands are clipped to the rig's stroke [0, GRIPPER_STROKE].

    The simulated rig clamps the gripper anyway (env._ee_command), so the robot does exactly
    what it did before; the difference is what gets *recorded*: collect writes the policy's raw
    chunk as the executed command, and the episode converter rejects a whole episode whose
    gripper command leaves [-0.01, 0.1] m (a flow policy's "closed" is often -0.02). Without
    this, most rollouts of a trained policy silently drop out of the replay buffer.
    """

    def __init__(self, inner: Any, arm_dim: int, arms: int, stroke: float) -> None:
        self.inner = inner
        self.grip = [a * arm_dim + arm_dim - 1 for a in range(arms)]
        self.stroke = stroke
        self.model_index = int(getattr(inner, "model_index", 0))

    def reset(self, seed: int) -> None:
        if hasattr(self.inner, "reset"):
            self.inner.reset(seed)

    def infer(self, obs: dict[str, Any]) -> dict[str, Any]:
        out = dict(self.inner.infer(obs))
        actions = np.array(out["actions"], dtype=np.float32, copy=True)
        actions[:, self.grip] = np.clip(actions[:, self.grip], 0.0, self.stroke)
        out["actions"] = actions
        return out


def rig_policy_factory(policy: str, env: Any, horizon: int, execute_steps: int) -> Any:
    """collect's policy factory for `policy`, with gripper commands kept on the rig's stroke."""
    from habc_sim.model import ARMS, GRIPPER_STROKE  # deferred: mujoco

    inner = make_policy_factory(policy, env.cfg, horizon, execute_steps, 0)

    def factory(env: Any, seed: int) -> GripperClampedPolicy:
        # make_policy_factory seeds a flow policy per episode: a trial is a function of
        # (checkpoint, episode seed), so reruns repeat it.
        return GripperClampedPolicy(inner(env, seed), env.arm_dim, len(ARMS), GRIPPER_STROKE)

    return factory


def load_sim(sim_config: str | None) -> Any:
    return load_sim_config(sim_config or default_config_path())


def evaluate_policy(
    policy: str, cfg: EvalConfig, on_trial: Callable[[Trial], None] | None = None
) -> EvalResult:
    """Run `cfg.trials` held-out trials of `policy` (a checkpoint directory, or any spec
    `habc-collect --policy` accepts) and summarise them."""
    import torch  # deferred: torch

    from habc_sim.env import PouchEnv  # deferred: mujoco

    torch.set_num_threads(cfg.torch_threads)
    sim_cfg = load_sim(cfg.sim_config)
    env = PouchEnv(sim_cfg, obs_mode=cfg.obs_mode)
    ccfg = CollectConfig(mode="eval", episodes=cfg.trials, seed=cfg.first_seed)
    factory = rig_policy_factory(policy, env, ccfg.horizon, ccfg.execute_steps)
    collector = Collector(env, ccfg, NullSink(), factory)
    trials: list[Trial] = []
    model_index = -1
    t0 = time.perf_counter()
    try:
        for seed in range(cfg.first_seed, cfg.first_seed + cfg.trials):
            r = collector.run_episode(seed)
            trial = Trial(seed, r.outcome == "success", int(r.ticks), list(r.milestones))
            trials.append(trial)
            if on_trial is not None:
                on_trial(trial)
        model_index = int(getattr(factory(env, cfg.first_seed), "model_index", -1))
    finally:
        env.close()
    wall = time.perf_counter() - t0
    summary = summarize([t.success for t in trials], [t.length for t in trials])
    ticks = sum(t.length for t in trials)
    return EvalResult(
        policy, cfg.obs_mode, model_index, trials, summary, wall, ticks / max(wall, 1e-9)
    )
