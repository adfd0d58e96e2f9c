"""Small ROS helpers shared by the habc_control nodes: QoS profiles, parameters, conversions.

The only module here besides the *_node.py files that imports rclpy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from arx_x5_driver.backend import ee9_from_xyz_quat
from habc_control.authority import Authority
from habc_control.command_mux import ArmTarget
from habc_interfaces.msg import ArmCommand, ControlAuthority

# /control_authority: a late subscriber (recorder, mux, policy) must get the current state.
AUTHORITY_QOS = QoSProfile(
    depth=1,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
COMMAND_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
STATE_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
IMAGE_QOS = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
EVENTS_QOS = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)

MODE_BY_SPACE = {"joint": ArmCommand.MODE_JOINT, "ee": ArmCommand.MODE_EE}


def declare(node: Node, name: str, default: Any, description: str) -> Any:
    """Declare one parameter with its description and return its value."""
    return node.declare_parameter(
        name, default, ParameterDescriptor(description=description)
    ).value


def entries(value: Any) -> tuple[str, ...]:
    """A string-list parameter's entries. Unset (None) and "" entries mean none: an empty list
    has no ROS parameter type, so `-p sim_schedule:=[]` (and habc-rollout's
    `teleop.sim_schedule=[]`) arrive unset, and a declared default of `[""]` stands for none."""
    if value is None:
        return ()
    return tuple(str(v) for v in value if v)


def refuse_runtime_changes(node: Node) -> None:
    """Parameters are read once into typed attributes: refuse later changes instead of ignoring
    them silently. Call at the end of __init__ (the callback also sees declarations)."""

    def _refuse(params) -> SetParametersResult:
        names = ", ".join(p.name for p in params)
        return SetParametersResult(
            successful=False, reason=f"{names}: read at startup; restart {node.get_name()}"
        )

    node.add_on_set_parameters_callback(_refuse)


def now_ns(node: Node) -> int:
    return node.get_clock().now().nanoseconds


def authority_msg(node: Node, snapshot: Mapping[str, Authority], source: str) -> ControlAuthority:
    msg = ControlAuthority()
    msg.header.stamp = node.get_clock().now().to_msg()
    msg.arm_names = list(snapshot)
    msg.authority = [int(a) for a in snapshot.values()]
    msg.source = source
    return msg


def authority_from_msg(msg: ControlAuthority) -> dict[str, Authority]:
    return {arm: Authority(int(a)) for arm, a in zip(msg.arm_names, msg.authority, strict=False)}


def arm_command_msg(
    node: Node,
    target: ArmTarget,
    mode: int,
    authority: Authority,
    model_index: int,
    frame_id: str = "",
) -> ArmCommand:
    msg = ArmCommand()
    msg.header.stamp = node.get_clock().now().to_msg()
    msg.header.frame_id = frame_id
    msg.mode = int(mode)
    msg.targets = [float(v) for v in np.asarray(target.targets, dtype=np.float64)]
    msg.gripper = float(target.gripper)
    msg.authority = int(authority)
    msg.model_index = int(model_index)
    return msg


def target_from_command(msg: ArmCommand) -> ArmTarget:
    return ArmTarget(np.asarray(msg.targets, dtype=np.float64), float(msg.gripper))


def target_from_state(
    joint_positions: np.ndarray | None, ee: np.ndarray | None, gripper: float, space: str
) -> ArmTarget | None:
    """The measured pose in the action space (`ee`: 9 values, `joint`: 6)."""
    values = ee if space == "ee" else joint_positions
    if values is None:
        return None
    return ArmTarget(np.asarray(values, dtype=np.float64), float(gripper))


def pose_to_ee9(position: Any, orientation: Any) -> np.ndarray:
    """geometry_msgs Pose (xyz + quaternion) -> xyz + 6-D rotation."""
    o = orientation
    return ee9_from_xyz_quat([position.x, position.y, position.z], [o.x, o.y, o.z, o.w])
