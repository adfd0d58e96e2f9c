"""Leader arms read through the ARX SDK: the human's commands for HUMAN authority. No rclpy.

Each leader is an X5 on its own CAN bus, run by `Arx5JointController` with zero position gain and
a small damping gain: the SDK's gravity compensation keeps it floating so the operator moves it
by hand, and we only read its pose. The pose comes out in the follower's action space (`ee`:
xyz + 6-D rotation, `joint`: 6 joints) plus the gripper opening.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from arx_x5_driver.real_backend import check_can_interface
from habc_control.command_mux import ArmTarget
from habc_core.rotations import ee9_from_pose6


@dataclass(frozen=True)
class LeaderConfig:
    can_interfaces: Mapping[str, str]  # arm -> leader CAN interface
    action_space: str = "ee"
    kd: float = 0.1  # light damping: the leader floats but does not drift away
    model: str = "X5"

    def __post_init__(self) -> None:
        if not self.can_interfaces:
            raise ValueError("can_interfaces: need at least one arm -> leader CAN interface")
        if self.action_space not in ("ee", "joint"):
            raise ValueError(f"action_space: expected 'ee' or 'joint', got {self.action_space!r}")
        if self.kd < 0:
            raise ValueError(f"kd: must be >= 0, got {self.kd!r}")


class LeaderArms:
    def __init__(
        self, config: LeaderConfig, sdk: Any | None = None, sys_class_net: str = "/sys/class/net"
    ) -> None:
        if sdk is None:
            import arx5_interface as sdk  # robot PC only
        self.config = config
        for iface in config.can_interfaces.values():
            check_can_interface(iface, sys_class_net)
        self._ctrl: dict[str, Any] = {}
        for arm, iface in config.can_interfaces.items():
            ctrl = sdk.Arx5JointController(config.model, iface)
            dof = 6
            # kp = 0: no position hold, the operator moves the arm; gravity is compensated.
            ctrl.set_gain(sdk.Gain(np.zeros(dof), np.full(dof, config.kd), 0.0, 0.0))
            self._ctrl[arm] = ctrl

    def read(self, arm: str) -> ArmTarget:
        ctrl = self._ctrl[arm]
        js = ctrl.get_joint_state()
        if self.config.action_space == "joint":
            targets = np.asarray(js.pos(), dtype=np.float64).reshape(-1)[:6]
        else:
            targets = ee9_from_pose6(ctrl.get_eef_state().pose_6d())
        return ArmTarget(targets, float(js.gripper_pos))

    def close(self) -> None:
        for ctrl in self._ctrl.values():
            ctrl.set_to_damping()  # a leader let go of must sink slowly, not drop
        self._ctrl.clear()
