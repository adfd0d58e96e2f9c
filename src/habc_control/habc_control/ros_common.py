"""Small ROS helpers shared by the habc_control nodes: message conversions, per-arm topics.

The only module here besides the *_node.py files that imports rclpy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.time import Time
from sensor_msgs.msg import JointState

from arx_x5_driver.qos import STATE_QOS
from habc_control.arm_state import ArmStates
from habc_control.authority import Authority
from habc_control.command_mux import ArmTarget
from habc_core.contract import ee_pose_topic, joint_states_topic, ros_name
from habc_core.rotations import ee9_from_xyz_quat
from habc_interfaces.msg import ArmCommand, ControlAuthority

N = TypeVar("N", bound=Node)


def entries(value: Any) -> tuple[str, ...]:
    """A string-list parameter's entries. Unset (None) and "" entries mean none: an empty list
    has no ROS parameter type, so `-p sim_schedule:=[]` (and habc-rollout's
    `teleop.sim_schedule=[]`) arrive unset, and a declared default of `[""]` stands for none."""
    if value is None:
        return ()
    return tuple(str(v) for v in value if v)


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
    stamp_ns: int | None = None,
) -> ArmCommand:
    """One ArmCommand, stamped now or with `stamp_ns` (a policy row: its observation's time)."""
    msg = ArmCommand()
    now = node.get_clock().now() if stamp_ns is None else Time(nanoseconds=stamp_ns)
    msg.header.stamp = now.to_msg()
    msg.header.frame_id = frame_id
    msg.mode = int(mode)
    msg.targets = [float(v) for v in np.asarray(target.targets, dtype=np.float64)]
    msg.gripper = float(target.gripper)
    msg.authority = int(authority)
    msg.model_index = int(model_index)
    return msg


def target_from_command(msg: ArmCommand) -> ArmTarget:
    return ArmTarget(np.asarray(msg.targets, dtype=np.float64), float(msg.gripper))


def pose_to_ee9(position: Any, orientation: Any) -> np.ndarray:
    """geometry_msgs Pose (xyz + quaternion) -> xyz + 6-D rotation."""
    o = orientation
    return ee9_from_xyz_quat([position.x, position.y, position.z], [o.x, o.y, o.z, o.w])


def subscribe_arms(
    node: Node,
    msg_type: type,
    topic_of: Callable[[str], str],
    arms: Iterable[str],
    callback: Callable[[str, Any], None],
    qos: QoSProfile,
) -> None:
    """One subscription per arm on `topic_of(arm)` (relative: namespaces apply), delivered as
    `callback(arm, msg)`."""
    for arm in arms:
        node.create_subscription(
            msg_type, ros_name(topic_of(arm)), lambda m, a=arm: callback(a, m), qos
        )


def follow_joint_states(
    node: Node,
    states: ArmStates,
    lock: threading.Lock,
    then: Callable[[str], None] | None = None,
) -> None:
    """Keep `states` current from every arm's joint_states; `then(arm)` after each message
    (outside `lock`): the arm driver's tick, which the mux and the policy node run on."""

    def on_joint_state(arm: str, msg: JointState) -> None:
        with lock:
            states.set_joint_state(arm, msg.position, Time.from_msg(msg.header.stamp).nanoseconds)
        if then is not None:
            then(arm)

    subscribe_arms(node, JointState, joint_states_topic, states.arms, on_joint_state, STATE_QOS)


def follow_ee_poses(node: Node, states: ArmStates, lock: threading.Lock) -> None:
    """Keep `states` current from every arm's ee_pose."""

    def on_pose(arm: str, msg: PoseStamped) -> None:
        ee9 = pose_to_ee9(msg.pose.position, msg.pose.orientation)
        with lock:
            states.set_ee(arm, ee9)

    subscribe_arms(node, PoseStamped, ee_pose_topic, states.arms, on_pose, STATE_QOS)


def exit_on_bad_parameter(make: Callable[[], N], name: str) -> Callable[[], N]:
    """`make` for run_node, with a bad parameter (a ValueError from the node's __init__) ending
    the process with its one-line reason under the node's `name`, not a traceback."""

    def make_node() -> N:
        try:
            return make()
        except ValueError as exc:
            raise SystemExit(f"{name}: {exc}") from None

    return make_node
