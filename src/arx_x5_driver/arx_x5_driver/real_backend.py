"""Real ARX X5 arms through the arx5-interface SDK (one controller per arm, one CAN bus each).

The SDK runs its own 500 Hz send/recv loop in a background thread; we only set targets.
`Arx5CartesianController` for EE commands, `Arx5JointController` for joint commands. The SDK's
ZMQ server is never used. SDK facts this module relies on:
* no command timeout: the last target is held forever, so the watchdog lives in safety.py;
* a controller starts in damping (kp = 0, the default kd): connected and read, nothing moves;
  commands need stiffness, which `enable()` ramps in (the arm node's lifecycle activate), and
  `set_gain` refuses a non-zero kp while the command is far from the measured pose;
* `set_to_damping()` is the safe stop; the destructor damps for 2 s only on a clean exit;
* over-current puts an arm in a damping emergency state that needs a restart (not recoverable
  from here: we report it and stop).

The SDK speaks xyz + rpy (R = Rz(yaw) Ry(pitch) Rx(roll)); our commands carry xyz + 6-D rotation.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from arx_x5_driver.safety import Command, Measured
from habc_core.contract import MODE_EE, MODE_JOINT
from habc_core.rotations import ee9_from_pose6, pose6_from_ee9

_LOG = logging.getLogger(__name__)


class CanInterfaceError(RuntimeError):
    """A configured CAN interface does not exist on this machine."""


def check_can_interface(name: str, sys_class_net: str = "/sys/class/net") -> None:
    """Fail with the interface's name before the SDK fails obscurely (or blocks) on it."""
    if not os.path.exists(os.path.join(sys_class_net, name)):
        raise CanInterfaceError(
            f"CAN interface {name!r} not found (no {sys_class_net}/{name}); plug the arm's "
            f"USB-CAN adapter in and bring it up (e.g. `sudo ip link set up {name} type can "
            "bitrate 1000000`), or fix `can_interfaces` in the config"
        )


@dataclass(frozen=True)
class RealBackendConfig:
    can_interfaces: Mapping[str, str]  # arm -> CAN interface, e.g. {"left": "can0"}
    mode: int = MODE_EE  # which SDK controller: Cartesian (EE) or joint
    model: str = "X5"
    # Gains ramp from damping to the SDK's defaults over this long (its reset_to_home takes
    # 0.5 s too): stiffness switched on at once jolts an arm that sagged while damped.
    enable_ramp_s: float = 0.5

    def __post_init__(self) -> None:
        if not self.can_interfaces:
            raise ValueError("can_interfaces: need at least one arm -> CAN interface entry")
        if len(set(self.can_interfaces.values())) != len(self.can_interfaces):
            raise ValueError(f"can_interfaces: one CAN bus per arm, got {self.can_interfaces!r}")
        if self.mode not in (MODE_EE, MODE_JOINT):
            raise ValueError(f"mode: expected 0 (joint) or 1 (ee), got {self.mode!r}")
        if not self.enable_ramp_s >= 0:
            raise ValueError(f"enable_ramp_s: must be >= 0, got {self.enable_ramp_s!r}")


class RealRigBackend:
    """One SDK controller per arm. `sdk` is the arx5_interface module (a fake in tests)."""

    def __init__(
        self,
        config: RealBackendConfig,
        sdk: ModuleType | Any | None = None,
        sys_class_net: str = "/sys/class/net",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if sdk is None:
            import arx5_interface as sdk  # only on the robot PC: the import loads the SDK .so
        self.config = config
        self.arms = tuple(config.can_interfaces)
        self._sdk = sdk
        self._sleep = sleep
        for iface in config.can_interfaces.values():
            check_can_interface(iface, sys_class_net)
        cls = sdk.Arx5CartesianController if config.mode == MODE_EE else sdk.Arx5JointController
        self._ctrl: dict[str, Any] = {}
        try:
            for arm, iface in config.can_interfaces.items():
                self._ctrl[arm] = cls(config.model, iface)
        except Exception:
            self.safe_stop()  # damp the arms already started, then report
            raise
        self._dof = 6

    def read(self, arm: str) -> Measured:
        ctrl = self._ctrl[arm]
        js = ctrl.get_joint_state()
        ee = ctrl.get_eef_state()
        joints = np.asarray(js.pos(), dtype=np.float64).reshape(-1)[: self._dof]
        return Measured(joints, ee9_from_pose6(ee.pose_6d()), float(js.gripper_pos))

    def send(self, arm: str, command: Command) -> None:
        ctrl = self._ctrl[arm]
        if command.mode != self.config.mode:
            raise ValueError(
                f"{arm}: command mode {command.mode} but the SDK controller is mode "
                f"{self.config.mode} (set `mode` in the config to match the policy's action space)"
            )
        if command.mode == MODE_EE:
            state = self._sdk.EEFState(pose6_from_ee9(command.targets), float(command.gripper))
            ctrl.set_eef_cmd(state)
        else:
            zeros = np.zeros(self._dof)
            state = self._sdk.JointState(
                np.asarray(command.targets, dtype=np.float64), zeros, zeros, float(command.gripper)
            )
            ctrl.set_joint_cmd(state)

    def enable(self, steps: int = 25) -> None:
        """Stiffness on every arm, holding where it is: the measured pose is commanded (so the
        SDK accepts a non-zero kp), then kp ramps from 0 to the SDK's default in `steps` steps
        over `enable_ramp_s` (kd stays the default damping throughout)."""
        for arm in self._ctrl:
            m = self.read(arm)
            target = m.ee if self.config.mode == MODE_EE else m.joints
            self.send(arm, Command(self.config.mode, target, m.gripper))
        configs = {arm: ctrl.get_controller_config() for arm, ctrl in self._ctrl.items()}
        for i in range(1, steps + 1):
            alpha = i / steps
            for arm, ctrl in self._ctrl.items():
                c = configs[arm]
                kp = np.asarray(c.default_kp, dtype=np.float64) * alpha
                gain = self._sdk.Gain(
                    kp,
                    np.asarray(c.default_kd, dtype=np.float64),
                    float(c.default_gripper_kp) * alpha,
                    float(c.default_gripper_kd),
                )
                ctrl.set_gain(gain)
            self._sleep(self.config.enable_ramp_s / steps)

    def step(self) -> None:
        """The SDK's background thread does the 500 Hz loop."""

    def safe_stop(self) -> None:
        """Damping on every arm: the X5 cannot hold itself unpowered, damping lets it sink slowly.

        Every arm is tried even when one fails, and the failures are re-raised together.
        """
        errors = []
        for arm, ctrl in self._ctrl.items():
            try:
                ctrl.set_to_damping()
            except Exception as exc:  # noqa: BLE001 - keep damping the other arms
                _LOG.error("%s: set_to_damping failed: %s", arm, exc)
                errors.append(f"{arm}: {exc}")
        if errors:
            raise RuntimeError("safe stop failed on " + "; ".join(errors))

    def close(self) -> None:
        # Dropping the controllers runs the SDK destructor (2 s damping, then passive).
        self._ctrl.clear()
