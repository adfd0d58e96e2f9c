"""The last measured state of each arm, as the nodes that follow the arms keep it. No rclpy.

The mux (the measured pose it holds at), teleop (`human_source: measured`) and the policy node
(proprio) all read the same three things per arm from /<arm>_arm/joint_states and
/<arm>_arm/ee_pose: the 6 joints, the EE pose (xyz + 6-D rotation) and the gripper opening
(joint_states' 7th position, where present). Nothing is known before the first message.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from habc_control.command_mux import ArmTarget

ARM_JOINTS = 6  # joint_states positions before the gripper


class ArmStates:
    """Per arm: last joints (6,), EE pose (9,) and gripper; None until first heard."""

    def __init__(self, arms: Sequence[str]) -> None:
        self.arms = tuple(arms)
        self.joints: dict[str, np.ndarray | None] = dict.fromkeys(self.arms)
        self.ee: dict[str, np.ndarray | None] = dict.fromkeys(self.arms)
        self.gripper: dict[str, float] = dict.fromkeys(self.arms, 0.0)
        # The newest joint_states stamp per arm [ns]: the time of the observation a command
        # computed now answers (the policy node stamps its rows with it).
        self.stamp_ns: dict[str, int] = dict.fromkeys(self.arms, 0)

    def set_joint_state(self, arm: str, position: Sequence[float], stamp_ns: int = 0) -> None:
        """A joint_states message's positions: 6 joints, then the gripper if sent."""
        self.stamp_ns[arm] = int(stamp_ns)
        self.joints[arm] = np.array(position[:ARM_JOINTS], dtype=np.float64)
        if len(position) > ARM_JOINTS:
            self.gripper[arm] = float(position[ARM_JOINTS])

    def set_ee(self, arm: str, ee9: np.ndarray) -> None:
        self.ee[arm] = ee9

    def _values(self, arm: str, space: str) -> np.ndarray | None:
        return self.ee[arm] if space == "ee" else self.joints[arm]

    def target(self, arm: str, space: str) -> ArmTarget | None:
        """The measured pose in the action space (`ee`: 9 values, `joint`: 6), a fresh copy."""
        values = self._values(arm, space)
        if values is None:
            return None
        return ArmTarget(np.array(values, dtype=np.float64), float(self.gripper[arm]))

    def proprio(self, space: str) -> np.ndarray | None:
        """Every arm's pose in the action space + gripper, concatenated (float32); None until
        every arm has been heard."""
        parts = []
        for arm in self.arms:
            values = self._values(arm, space)
            if values is None:
                return None
            parts += [np.asarray(values, np.float32), [self.gripper[arm]]]
        return np.concatenate(parts).astype(np.float32)
