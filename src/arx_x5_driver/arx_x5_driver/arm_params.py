"""The arm driver's parameters: defaults, ranges and choices, all read-only.

Every limit of the safety core is a parameter whose range comes from the core itself: a bound
whose larger value is looser (`safety.UPPER_BOUNDS`) may only be lowered (0 .. the shipped
default; the core refuses 0 itself), the joint margin only raised (the shipped margin .. half the
narrowest SDK joint range), and the EE box only shrunk inside the shipped one. Nothing may change
while the node runs: the values are read once into the safety core, and loosening a limit under
a moving arm is what the read-only flag is there to refuse.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from arx_x5_driver.node_main import AUTOSTART
from arx_x5_driver.realtime import FIFO_PRIORITY_MAX
from arx_x5_driver.ros_params import ACTION_SPACE, ARMS, CONTROL_HZ, ParamSpec
from arx_x5_driver.safety import UPPER_BOUNDS, SafetyConfig

BACKENDS = ("kinematic", "sim", "arx5")
# camera_every: ticks between two published sim frames; a frame a minute at 30 Hz is the least
# anyone could mean (0: never).
CAMERA_EVERY_MAX = 1800


def safety_specs() -> dict[str, ParamSpec]:
    """The safety core's parameters (SafetyConfig.parameters()) with their ranges."""
    shipped = SafetyConfig()
    specs: dict[str, ParamSpec] = {}
    for name, (default, text) in SafetyConfig.parameters().items():
        if name in UPPER_BOUNDS:
            specs[name] = ParamSpec(default, f"{text}; may only be lowered", bounds=(0.0, default))
        elif name == "joint_margin":
            # Past half the narrowest joint range no joint could move at all.
            widest = min(
                hi - lo for lo, hi in zip(shipped.joint_min, shipped.joint_max, strict=True)
            )
            specs[name] = ParamSpec(
                default, f"{text}; may only be raised", bounds=(default, widest / 2)
            )
        else:  # the EE box (lists: checked by check_arm_params)
            specs[name] = ParamSpec(default, f"{text}; inside the shipped box only")
    return specs


def arm_param_specs() -> dict[str, ParamSpec]:
    return {
        "autostart": AUTOSTART,
        "arms": ARMS,
        "backend": ParamSpec("kinematic", "rig backend", choices=BACKENDS),
        "control_hz": CONTROL_HZ,
        "action_space": ACTION_SPACE,
        "can_interfaces": ParamSpec(
            ["can0", "can1"], "arx5 backend: CAN interface per arm, in `arms` order"
        ),
        "sim_config": ParamSpec("", "sim backend: sim YAML (empty: the sim's defaults)"),
        "camera_every": ParamSpec(
            1, "sim: publish camera images every N ticks (0: never)", bounds=(0, CAMERA_EVERY_MAX)
        ),
        "loop_priority": ParamSpec(
            50,
            "SCHED_FIFO priority of the control loop thread (0: the normal scheduler); refused "
            "without the right to it: a warning, then the normal scheduler",
            bounds=(0, FIFO_PRIORITY_MAX),
        ),
        "publish_expert": ParamSpec(
            False, "sim: the scripted expert's targets on /teleop/source/<arm>"
        ),
        **safety_specs(),
    }


def check_arm_params(values: Mapping[str, Any]) -> None:
    """What one parameter's range cannot say; a ValueError naming the parameter and value."""
    shipped = SafetyConfig()
    for name, lo, hi in (
        ("workspace_min", shipped.workspace_min, None),
        ("workspace_max", None, shipped.workspace_max),
    ):
        value = list(values[name])
        if len(value) != 3:
            raise ValueError(f"{name}: need 3 values (x, y, z), got {value!r}")
        looser = [
            axis
            for axis, v in enumerate(value)
            if (lo is not None and v < lo[axis]) or (hi is not None and v > hi[axis])
        ]
        if looser:
            raise ValueError(
                f"{name}: {value} reaches outside the shipped box {list(shipped.workspace_min)}"
                f"..{list(shipped.workspace_max)} (axis {looser[0]}); a profile may only shrink it"
            )
    if values["backend"] == "arx5":
        arms, ifaces = list(values["arms"]), list(values["can_interfaces"])
        if len(ifaces) != len(arms):
            raise ValueError(f"can_interfaces: need one per arm {arms}, got {ifaces}")
