"""The policy's observation, built one way by the policy node (ROS) and the sim env (collector).

`Policy.infer(obs)` (habc_core.policy) takes this dict: `proprio` (P,) float32 (per arm EE xyz +
6-D rotation + gripper, or 6 joints + gripper), `task` (the prompt), `images.<camera>` (h, w, 3)
uint8 RGB for every camera that has a fresh frame, and `env_state` (privileged object state; the
sim rig only, for state-mode policies).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from habc_core.features import ENV_STATE, PROPRIO, TASK, image_key


def build_observation(
    proprio: np.ndarray,
    task: str,
    images: Mapping[str, np.ndarray] | None = None,
    env_state: np.ndarray | None = None,
) -> dict[str, Any]:
    obs: dict[str, Any] = {PROPRIO: np.asarray(proprio, dtype=np.float32), TASK: str(task)}
    for cam, img in (images or {}).items():
        obs[image_key(cam)] = img
    if env_state is not None:
        obs[ENV_STATE] = np.asarray(env_state, dtype=np.float32)
    return obs
