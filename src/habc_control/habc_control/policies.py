"""Policy loading for the policy node, and a stand-in policy. No rclpy.

The node only needs the `Policy` boundary (habc_core.policy): `infer(obs: dict) ->
{"actions": (H, D)}` with obs keys "proprio" (P,), "images.<camera>" (h, w, 3) uint8 RGB and
"task" (str).
`load_policy(spec)`:
* ""                 -> DriftPolicy (no model: repeat the current pose, optionally drifting);
* "ws://host:port"   -> a PolicyClient: inference on a policy server (`habc-policy-server`);
* "module:callable"  -> callable() returns a Policy (custom or wrapped policies);
* anything else      -> a habc_trainer checkpoint directory (habc_trainer.checkpoint.load_policy).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from habc_core import features as F
from habc_core.policy import ACTIONS_OUT, load_callable, spec_kind
from habc_core.policy_client import PolicyClient, PolicyServerError


class DriftPolicy:
    """Chunk = the current proprio repeated H times, xyz of each arm moving by `drift` per step.

    Proprio and action share the layout here (per arm: targets + gripper), so with drift 0 the
    robot holds still under POLICY authority: a safe way to exercise the whole graph.
    """

    def __init__(self, horizon: int = 50, drift: float = 0.0, per_arm: int = 10) -> None:
        self.horizon = horizon
        self.drift = drift
        self.per_arm = per_arm
        self.calls = 0

    def infer(self, obs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        self.calls += 1
        proprio = np.asarray(obs[F.PROPRIO], dtype=np.float32)
        actions = np.repeat(proprio[None], self.horizon, axis=0)
        if self.drift:
            steps = np.arange(1, self.horizon + 1, dtype=np.float32) * self.drift
            for start in range(0, proprio.shape[0], self.per_arm):
                actions[:, start] += steps  # x of each arm
        return {ACTIONS_OUT: actions}


def drifting_policy() -> DriftPolicy:
    """`habc_control.policies:drifting_policy`: each arm's x moves 2 mm per step, closed loop
    (every chunk starts at the measured pose). Moves the arms without a model: smoke runs and the
    cross-runtime test, where the workspace box and the step limits get to act."""
    return DriftPolicy(50, 0.002, 10)


def load_policy(spec: str, horizon: int = 50, per_arm: int = 10) -> tuple[Any, int]:
    """(policy, model_index) for a policy spec (see the module docstring)."""
    kind = spec_kind(spec)
    if kind == "hold":
        return DriftPolicy(horizon, 0.0, per_arm), -1
    if kind == "server":
        return _server_policy(spec, horizon)
    if kind == "callable":
        policy = load_callable(spec)
        return policy, int(getattr(policy, "model_index", -1))
    path = Path(spec)
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint: {path} is not a checkpoint directory")
    from habc_trainer import checkpoint  # torch: imported only when a checkpoint is used

    policy = checkpoint.load_policy(path)
    return policy, checkpoint.load_checkpoint(path).model_index


def _server_policy(url: str, horizon: int) -> tuple[PolicyClient, int]:
    """A client of the server at `url`. A server that does not answer yet is not an error here:
    the node holds until it does (each inference tries again); one of another horizon is."""
    client = PolicyClient(url)
    try:
        meta = client.metadata()
    except PolicyServerError:
        return client, -1
    served = meta.get("horizon")
    if served is not None and int(served) != horizon:
        raise ValueError(f"horizon: {horizon}, but the policy at {url} predicts {served} steps")
    return client, client.model_index
