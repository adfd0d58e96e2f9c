"""The collector's policies: built-in sim policies, checkpoints and module:callable specs.

`make_policy_factory(spec, ...)` turns a `--policy` spec into (env, episode seed) -> Policy;
`check_policy_spec` and `check_checkpoint` refuse a spec this runtime cannot run before the
first episode (the collect CLI, habc-rollout and the benchmark call them). The scripted expert's
demo loop (`expert_actions`) is here too: the replay policy and bench/bench_sim.py run it.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from habc_core.cli import UserError, one_line
from habc_core.policy import Policy, spec_kind

# `--policy` names collect runs itself; anything else is a checkpoint directory or module:callable.
BUILTIN_POLICIES: tuple[str, ...] = ("expert", "weak-expert", "replay")
DEFAULT_POLICY = "weak-expert"

PolicyFactory = Callable[[Any, int], Policy]  # (env, episode seed) -> policy


def check_policy_spec(spec: str, name: str = "--policy") -> None:
    """Refuse a policy spec that cannot load, before anything runs: not a built-in name, not a
    directory, not an importable module:callable. `name` is the flag or field it came from."""
    if spec in BUILTIN_POLICIES or Path(spec).is_dir() or spec_kind(spec) == "server":
        return
    if spec_kind(spec) == "callable":
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
    from habc_trainer.checkpoint import CheckpointError, load_checkpoint  # torch: deferred

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
    if spec in BUILTIN_POLICIES or spec_kind(spec) in ("callable", "server"):
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
    from habc_sim.policies import ExpertChunkPolicy, ReplayPolicy  # optional: habc_sim

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
    if spec_kind(spec) != "checkpoint" or Path(spec).is_dir():
        # Checkpoints, servers and module:callable load exactly as the policy node does, once the
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
    from habc_sim.config import ExpertConfig  # optional: habc_sim

    return ExpertConfig(pos_noise=0.011, yaw_noise=0.3, hesitation_prob=0.3, regrasp_prob=0.0)


def expert_actions(env: Any, expert: Any) -> list[np.ndarray]:
    """Step `env` with `expert.act()` until the episode ends; the actions, one row per tick."""
    rows, done = [], False
    while not done:
        a = expert.act()
        rows.append(a)
        _, _, term, trunc, _ = env.step(a)
        done = term or trunc
    return rows


def record_demo_actions(env: Any, seed: int, skill: Any) -> np.ndarray:
    """Run the scripted expert on `seed` and return its (T, D) actions."""
    from habc_sim.expert import ScriptedExpert  # optional: habc_sim

    env.reset(seed)
    expert = ScriptedExpert(env, skill, np.random.default_rng([seed, 2]))
    return np.asarray(expert_actions(env, expert), dtype=np.float32)
