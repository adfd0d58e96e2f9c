"""The action vector's layout: per arm its targets (EE: xyz + 6-D rotation; joint: 6 joints) and
the gripper, arms in order. One definition for the policy's chunks, the mux, the driver's
commands, the bags and the trainer's episodes (episode-format.md "Actions").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from habc_core.contract import MODE_BY_SPACE

# Target values per arm by action space (the gripper comes on top), and by command mode.
ACTION_SPACES: dict[str, int] = {"ee": 9, "joint": 6}
TARGET_DIMS: dict[int, int] = {MODE_BY_SPACE[space]: n for space, n in ACTION_SPACES.items()}


@dataclass(frozen=True)
class ArmTarget:
    """One arm's command: `targets` (9 for ee, 6 for joint) and the gripper opening [m]."""

    targets: np.ndarray
    gripper: float

    def vector(self) -> np.ndarray:
        return np.append(np.asarray(self.targets, dtype=np.float64), float(self.gripper))


@dataclass(frozen=True)
class ActionLayout:
    arms: tuple[str, ...] = ("left", "right")
    action_space: str = "ee"

    def __post_init__(self) -> None:
        if self.action_space not in ACTION_SPACES:
            raise ValueError(
                f"action_space: expected one of {tuple(ACTION_SPACES)}, got {self.action_space!r}"
            )

    @property
    def per_arm(self) -> int:
        return ACTION_SPACES[self.action_space] + 1

    @property
    def dim(self) -> int:
        return self.per_arm * len(self.arms)

    def dim_names(self) -> list[str]:
        if self.action_space == "ee":
            names = ["x", "y", "z", "r11", "r21", "r31", "r12", "r22", "r32"]
        else:
            names = [f"joint{i}" for i in range(1, 7)]
        return [f"{arm}.{n}" for arm in self.arms for n in [*names, "gripper"]]

    def arm_slice(self, arm: str) -> slice:
        i = self.arms.index(arm)
        return slice(i * self.per_arm, (i + 1) * self.per_arm)

    def split(self, action: np.ndarray) -> dict[str, ArmTarget]:
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (self.dim,):
            raise ValueError(f"action: expected shape ({self.dim},), got {action.shape}")
        out = {}
        for arm in self.arms:
            v = action[self.arm_slice(arm)]
            out[arm] = ArmTarget(v[:-1].copy(), float(v[-1]))
        return out

    def join(self, targets: Mapping[str, ArmTarget]) -> np.ndarray:
        return np.concatenate([targets[arm].vector() for arm in self.arms]).astype(np.float32)
